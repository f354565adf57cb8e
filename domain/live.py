"""Live events over Redis pub/sub, behind a small interface of ours so the transport can change.

Publishing uses ``redis.asyncio`` (one client per event loop). Subscribing goes through
``broadcaster`` (one Redis connection per server process, fanned out in memory). broadcaster
0.3.1 needs redis-py 7.x (FIELD-NOTES.md). Delivery is at-most-once: the database stays the
source of truth; clients that must not miss anything re-read state by query.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
import structlog
from broadcaster import Broadcast

from settings import get_settings

log = structlog.get_logger(__name__)

_publishers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _publisher() -> aioredis.Redis:
    key = asyncio.get_running_loop()
    client = _publishers.get(key)
    if client is None:
        client = aioredis.from_url(get_settings().redis_url)
        _publishers[key] = client
    return client


def service_request_channel(reference: str) -> str:
    return f"odim:service_request:{reference}"


def conversation_channel(conversation_id: int) -> str:
    return f"odim:conversation:{conversation_id}"


async def publish(channel: str, payload: dict) -> None:
    """Publish ``payload`` (JSON) on ``channel``. Raises redis errors when Redis is unreachable."""
    await _publisher().publish(channel, json.dumps(payload, separators=(",", ":"), default=str))


class LiveBus:
    """Process-wide subscriber side: ``await bus.connect()`` at startup, ``bus.subscribe(channel)``
    per subscription, ``await bus.disconnect()`` at shutdown."""

    def __init__(self, url: str | None = None) -> None:
        self._url = url or get_settings().redis_url
        self._broadcast: Broadcast | None = None

    async def connect(self) -> None:
        self._broadcast = Broadcast(self._url)
        await self._broadcast.connect()

    async def disconnect(self) -> None:
        if self._broadcast is not None:
            await self._broadcast.disconnect()
            self._broadcast = None

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[dict]]:
        """Async iterator of the JSON payloads published on ``channel`` after subscription."""
        if self._broadcast is None:
            raise RuntimeError("LiveBus.connect() was not awaited")
        async with self._broadcast.subscribe(channel) as subscriber:

            async def events() -> AsyncIterator[dict]:
                async for event in subscriber:
                    if event is None:  # the backend closed
                        return
                    try:
                        yield json.loads(event.message)
                    except (TypeError, ValueError):
                        log.warning("live.bad_payload", channel=channel)

            yield events()


bus = LiveBus()

"""Live events over Redis pub/sub, behind a small interface of ours so the transport can change.

Publishing uses ``redis.asyncio`` (one client per event loop). Subscribing goes through
``broadcaster`` (one Redis connection per server process, fanned out in memory). broadcaster
0.3.1 needs redis-py 7.x (FIELD-NOTES.md). Delivery is at-most-once: the database stays the
source of truth; clients that must not miss anything re-read state by query.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
import structlog
from broadcaster import Broadcast
from redis.exceptions import RedisError

from domain.errors import DomainError
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


def booking_channel(booking_id: int) -> str:
    return f"odim:booking:{booking_id}"


def conversation_channel(conversation_id: int) -> str:
    return f"odim:conversation:{conversation_id}"


def notification_channel(user_id: int) -> str:
    """A user's in-app notifications."""
    return f"odim:notifications:{user_id}"


async def publish(channel: str, payload: dict) -> None:
    """Publish ``payload`` (JSON) on ``channel``. Raises redis errors when Redis is unreachable."""
    await _publisher().publish(channel, json.dumps(payload, separators=(",", ":"), default=str))


class LiveUnavailable(DomainError):
    """The pub/sub connection is down (Redis unreachable); the bus is reconnecting."""

    code = "LIVE_UNAVAILABLE"


class LiveBus:
    """Process-wide subscriber side: ``await bus.connect()`` at startup, ``bus.subscribe(channel)``
    per subscription, ``await bus.disconnect()`` at shutdown.

    Supervised (FIELD-NOTES.md, encode/broadcaster#144): broadcaster's Redis listener dies silently
    when Redis restarts and its subscribers then wait forever. A supervisor task watches that
    listener; when it dies, every open subscription is ended (clients see the subscription complete,
    resubscribe, and re-read state by query) and the bus reconnects with exponential backoff
    (0.2 s doubling to 10 s). While it is down, ``subscribe`` raises ``LiveUnavailable``.
    """

    def __init__(self, url: str | None = None) -> None:
        self._url = url
        self._broadcast: Broadcast | None = None
        self._supervisor: asyncio.Task | None = None
        self.reconnects = 0

    @property
    def connected(self) -> bool:
        return self._broadcast is not None

    async def connect(self) -> None:
        """Connect now if Redis answers, and keep (re)connecting in the background either way."""
        try:
            await self._open()
        except (OSError, RedisError) as exc:
            log.warning("live.unavailable_at_start", error=str(exc))
        self._supervisor = asyncio.create_task(self._supervise(), name="live-bus-supervisor")

    async def disconnect(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        broadcast, self._broadcast = self._broadcast, None
        if broadcast is not None:
            await self._close(broadcast)

    async def _open(self) -> None:
        broadcast = Broadcast(self._url or get_settings().redis_url)
        await broadcast.connect()
        self._broadcast = broadcast

    @staticmethod
    async def _close(broadcast: Broadcast) -> None:
        with contextlib.suppress(Exception):  # the connection may already be gone
            await broadcast.disconnect()

    async def _supervise(self) -> None:
        backoff = 0.2
        while True:
            broadcast = self._broadcast
            if broadcast is None:
                try:
                    await self._open()
                except (OSError, RedisError):
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 10.0)
                    continue
                backoff = 0.2
                self.reconnects += 1
                log.info("live.reconnected", reconnects=self.reconnects)
                continue
            # broadcaster 0.3.1 (pinned) keeps its Redis reader task here.
            listener: asyncio.Task | None = getattr(broadcast._backend, "_listener", None)
            if listener is None:  # pragma: no cover - another broadcaster version
                return
            try:
                await asyncio.shield(listener)
            except asyncio.CancelledError:
                if listener.done():
                    pass
                else:
                    raise
            except Exception as exc:
                log.warning("live.listener_died", error=f"{type(exc).__name__}: {exc}")
            self._broadcast = None
            for queues in list(broadcast._subscribers.values()):
                for queue in list(queues):
                    queue.put_nowait(None)  # ends that subscriber's iteration
            await self._close(broadcast)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[dict]]:
        """Async iterator of the JSON payloads published on ``channel`` after subscription; it ends
        when the connection is lost. Raises ``LiveUnavailable`` while disconnected."""
        broadcast = self._broadcast
        if broadcast is None:
            raise LiveUnavailable("Live updates are reconnecting; retry in a few seconds")
        try:
            manager = broadcast.subscribe(channel)
            subscriber = await manager.__aenter__()
        except (OSError, RedisError) as exc:
            raise LiveUnavailable("Live updates are reconnecting; retry in a few seconds") from exc

        async def events() -> AsyncIterator[dict]:
            async for event in subscriber:
                if event is None:
                    return
                try:
                    yield json.loads(event.message)
                except (TypeError, ValueError):
                    log.warning("live.bad_payload", channel=channel)

        try:
            yield events()
        finally:
            with contextlib.suppress(Exception):  # unsubscribing on a dead connection fails: nothing to undo
                await manager.__aexit__(None, None, None)


bus = LiveBus()

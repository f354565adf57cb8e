"""Live events over Redis pub/sub, behind a small interface of ours so the transport can change.

Publishing uses ``redis.asyncio`` (one client per event loop). Subscribing goes through
``broadcaster`` (one Redis connection per server process, fanned out in memory). broadcaster
0.3.1 needs redis-py 7.x (docs/pitfalls.md). Pub/sub delivery is at-most-once; PostgreSQL is the
source of truth, and ``follow`` turns the two into a gapless, exactly-once, ordered stream
(resume from a cursor, resync after a Redis restart).

A *stream* is a sequence of PostgreSQL rows with increasing ids whose writers are serialised until
commit (so id order is commit order within the stream), each published after commit as a JSON
payload carrying ``id`` and ``prev`` (the stream's previous id, 0 for the first).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import redis.asyncio as aioredis
import structlog
from broadcaster import Broadcast
from redis.exceptions import RedisError

from domain.shared.errors import CommonErrorCode, DomainError
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

    code = CommonErrorCode.LIVE_UNAVAILABLE


class LiveBus:
    """Process-wide subscriber side: ``await bus.connect()`` at startup, ``bus.subscribe(channel)``
    per subscription, ``await bus.disconnect()`` at shutdown.

    Supervised (docs/pitfalls.md, encode/broadcaster#144): broadcaster's Redis listener dies silently
    when Redis restarts and its subscribers then wait forever. A supervisor task watches that
    listener; when it dies, every open ``subscribe`` iteration ends, and the bus reconnects with
    exponential backoff (0.2 s doubling to 10 s). While it is down, ``subscribe`` raises
    ``LiveUnavailable``. ``follow`` builds on this: it polls PostgreSQL while the bus is down and
    resubscribes and resyncs when it is back, so its subscribers notice nothing but a delay.
    """

    def __init__(self, url: str | None = None) -> None:
        self._url = url
        self._broadcast: Broadcast | None = None
        self._supervisor: asyncio.Task | None = None
        self._up: asyncio.Event | None = None  # made in connect(): an Event belongs to one event loop
        self.reconnects = 0

    @property
    def connected(self) -> bool:
        return self._broadcast is not None

    async def wait_connected(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the bus to be connected; True when it is."""
        if self.connected:
            return True
        if self._up is None:
            await asyncio.sleep(seconds)
            return self.connected
        try:
            await asyncio.wait_for(self._up.wait(), seconds)
        except TimeoutError:
            return False
        return self.connected

    async def connect(self) -> None:
        """Connect now if Redis answers, and keep (re)connecting in the background either way."""
        self._up = asyncio.Event()
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
        if self._up is not None:
            self._up.clear()
        if broadcast is not None:
            await self._close(broadcast)

    async def _open(self) -> None:
        broadcast = Broadcast(self._url or get_settings().redis_url)
        await broadcast.connect()
        self._broadcast = broadcast
        if self._up is not None:
            self._up.set()

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
            self._up.clear()  # type: ignore[union-attr]  # set by connect() before supervising
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


# --- gapless streams ------------------------------------------------------------------------------

Since = Callable[[int, int], Awaitable[list[dict]]]
"""``since(after, limit)``: the stream's payloads with id > after, oldest first, at most ``limit``
(read from PostgreSQL in a session of its own)."""


@dataclass(frozen=True)
class Stream:
    """One resumable stream: the pub/sub ``channel`` its payloads are published on, ``since`` to
    read them back from PostgreSQL, and ``latest()``, the id of its newest payload (0: none yet)."""

    channel: str
    since: Since
    latest: Callable[[], Awaitable[int]]


def is_next(payload: dict, last: int) -> bool | None:
    """Where a live ``payload`` stands against ``last``, the id delivered last: True when it comes
    next; None when it was already delivered (id <= last); False when something between ``last``
    and it was missed (its ``prev`` is after ``last``) and the stream must be re-read."""
    if int(payload["id"]) <= last:
        return None
    return int(payload.get("prev") or 0) <= last


async def replay(stream: Stream, after: int, *, page: int = 200) -> AsyncIterator[dict]:
    """Every payload of ``stream`` with id > ``after`` from PostgreSQL, in order, page by page."""
    while True:
        rows = await stream.since(after, page)
        for row in rows:
            yield row
            after = int(row["id"])
        if len(rows) < page:
            return


async def follow(stream: Stream, after: int | None = None, *, poll_seconds: float | None = None) -> AsyncIterator[dict]:
    """Every payload of ``stream`` with id > ``after`` exactly once and in id order, then the live
    ones as they are published, forever (the caller stops iterating to end it). ``after=None``:
    from the moment of the call (the stream's latest id, read once subscribed).

    The docs/pitfalls.md recipe: subscribe live first (broadcaster queues what arrives), replay
    ``id > after`` from PostgreSQL, then drain the live events skipping ids already sent. A live
    event whose ``prev`` is after the last id sent reveals a lost publish: the stream is re-read
    from PostgreSQL. When the bus is down (Redis restarting), PostgreSQL is polled every
    ``poll_seconds`` (default ``settings.live_poll_seconds``) until the bus is back; then the stream
    resubscribes and resyncs."""
    poll = get_settings().live_poll_seconds if poll_seconds is None else poll_seconds
    last = after
    while True:
        try:
            async with bus.subscribe(stream.channel) as events:
                if last is None:
                    last = await stream.latest()
                async for row in replay(stream, last):
                    yield row
                    last = int(row["id"])
                async for event in events:
                    place = is_next(event, last)
                    if place is None:
                        continue
                    if place:
                        yield event
                        last = int(event["id"])
                        continue
                    async for row in replay(stream, last):
                        yield row
                        last = int(row["id"])
            log.info("live.follow_resync", channel=stream.channel, last=last)
        except LiveUnavailable:
            if last is None:
                last = await stream.latest()
            async for row in replay(stream, last):
                yield row
                last = int(row["id"])
            await bus.wait_connected(poll)

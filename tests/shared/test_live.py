"""The live bus survives a Redis restart: open subscriptions end (clients resubscribe and re-read
by query) instead of hanging, and the bus reconnects by itself."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from devstack import services
from domain.shared import live
from settings import get_settings


async def stop_redis() -> None:
    settings = get_settings()
    subprocess.run(["redis-cli", "-p", str(settings.redis_port), "shutdown", "nosave"], check=False,
                   capture_output=True)
    await asyncio.sleep(0.5)


def start_redis() -> None:
    settings = get_settings()
    services._redis_up(settings, services._paths(settings))


async def wait_until(predicate, seconds: float, what: str) -> None:
    for _ in range(int(seconds * 20)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_subscriptions_end_and_the_bus_reconnects_after_a_redis_restart():
    bus = live.LiveBus()
    await bus.connect()
    received: list[dict] = []
    ended = asyncio.Event()

    async def listen() -> None:
        async with bus.subscribe("odim:test") as events:
            async for event in events:
                received.append(event)
        ended.set()

    try:
        # given a live subscription that receives events
        task = asyncio.create_task(listen())
        await asyncio.sleep(0.3)
        await live.publish("odim:test", {"n": 1})
        await wait_until(lambda: received == [{"n": 1}], 5, "the first event")
        # when Redis goes away
        await stop_redis()
        # then the subscription ends instead of hanging, and new ones are refused with a typed error
        await asyncio.wait_for(ended.wait(), 10)
        await task
        await wait_until(lambda: not bus.connected, 5, "the bus to notice")
        with pytest.raises(live.LiveUnavailable):
            async with bus.subscribe("odim:test"):
                pass
        # when Redis is back, the bus reconnects by itself and delivers again
        start_redis()
        await wait_until(lambda: bus.connected, 20, "the bus to reconnect")
        assert bus.reconnects == 1
        again: list[dict] = []

        async def listen_again() -> None:
            async with bus.subscribe("odim:test") as events:
                async for event in events:
                    again.append(event)
                    return

        second = asyncio.create_task(listen_again())
        await asyncio.sleep(0.3)
        await live.publish("odim:test", {"n": 2})
        await asyncio.wait_for(second, 10)
        assert again == [{"n": 2}]
        assert received == [{"n": 1}]
    finally:
        start_redis()
        await bus.disconnect()


def table_stream(rows: list[dict], channel: str = "odim:test:stream") -> live.Stream:
    """A stream whose "PostgreSQL" is the list ``rows`` (payloads with id and prev)."""

    async def since(after: int, limit: int) -> list[dict]:
        return [r for r in rows if r["id"] > after][:limit]

    async def latest() -> int:
        return max((r["id"] for r in rows), default=0)

    return live.Stream(channel, since, latest)


def row(ident: int, prev: int) -> dict:
    return {"id": ident, "prev": prev, "body": f"e{ident}"}


async def take(iterator, n: int, seconds: float = 10) -> list[int]:
    got = []
    async def pull():
        async for event in iterator:
            got.append(event["id"])
            if len(got) == n:
                return
    await asyncio.wait_for(pull(), seconds)
    return got


async def test_follow_replays_after_the_cursor_then_goes_live_skipping_what_it_already_sent(monkeypatch):
    bus = live.LiveBus()
    await bus.connect()
    monkeypatch.setattr(live, "bus", bus)
    rows = [row(1, 0), row(2, 1), row(3, 2)]
    stream = table_stream(rows)
    try:
        # given: three stored events and a follower from after 1
        follower = live.follow(stream, 1)
        first = await take(follower, 2)
        # when: event 3 is published again (a relay retry) and event 4 is stored and published
        await live.publish(stream.channel, rows[2])
        rows.append(row(4, 3))
        await live.publish(stream.channel, rows[3])
        # then: 2 and 3 from the replay, then 4 live; the duplicate 3 is skipped
        assert first + await take(follower, 1) == [2, 3, 4]
        await follower.aclose()
    finally:
        await bus.disconnect()


async def test_follow_rereads_postgresql_when_a_live_event_reveals_a_lost_publish(monkeypatch):
    bus = live.LiveBus()
    await bus.connect()
    monkeypatch.setattr(live, "bus", bus)
    rows = [row(1, 0)]
    stream = table_stream(rows)
    try:
        follower = live.follow(stream, 0)
        assert await take(follower, 1) == [1]
        # given: events 2 and 3 are stored, but only 3's publish reaches Redis (2's was lost)
        rows.extend([row(2, 1), row(3, 2)])
        await live.publish(stream.channel, rows[2])
        # then: the follower sees 3's prev is 2, which it never sent, and reads 2 and 3 from "PostgreSQL"
        assert await take(follower, 2) == [2, 3]
        await follower.aclose()
    finally:
        await bus.disconnect()


async def test_follow_without_a_cursor_starts_at_the_latest_event(monkeypatch):
    bus = live.LiveBus()
    await bus.connect()
    monkeypatch.setattr(live, "bus", bus)
    rows = [row(1, 0), row(2, 1)]
    stream = table_stream(rows)
    try:
        follower = live.follow(stream)
        pending = asyncio.ensure_future(take(follower, 1))
        await asyncio.sleep(0.3)
        rows.append(row(3, 2))
        await live.publish(stream.channel, rows[2])
        assert await pending == [3]
    finally:
        await bus.disconnect()

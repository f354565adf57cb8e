"""The live bus survives a Redis restart: open subscriptions end (clients resubscribe and re-read
by query) instead of hanging, and the bus reconnects by itself."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from devstack import services
from domain import live
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

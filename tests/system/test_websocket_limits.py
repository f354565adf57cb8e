"""The server closes idle and abusive WebSockets and caps subscriptions per socket (real uvicorn)."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from tests.support.factories import make_user, token_for
from tests.support.live_harness import Server

pytestmark = pytest.mark.e2e

LIMITS = {"ODIM_WS_IDLE_SECONDS": "2", "ODIM_WS_MAX_MESSAGES_PER_10S": "20", "ODIM_WS_MAX_SUBSCRIPTIONS": "3"}


async def connect(server: Server, token: str | None = None):
    ws = await websockets.connect(server.ws_url, subprotocols=["graphql-transport-ws"], origin=server.base)
    await ws.send(json.dumps({"type": "connection_init", "payload": {"token": token} if token else {}}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
    return ws


async def close_code(ws, seconds: float = 15) -> int:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), seconds)
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else -1


async def test_idle_flooding_and_too_many_subscriptions_are_refused():
    server = Server(**LIMITS)
    await server.start()
    user = await make_user("ada@example.com")
    try:
        # an idle socket (no subscription, no message for 2 s) is closed with 4408
        idle = await connect(server)
        assert await close_code(idle) == 4408

        # a socket sending more than 20 messages in 10 s is closed with 4429
        flood = await connect(server)
        for _ in range(25):
            await flood.send(json.dumps({"type": "ping"}))
        assert await close_code(flood) == 4429

        # the 4th subscription on one socket is refused; the first three keep running
        ws = await connect(server, await token_for(user))
        query = "subscription{ notificationAdded{ id } }"
        for n in range(1, 5):
            await ws.send(json.dumps({"id": str(n), "type": "subscribe", "payload": {"query": query}}))
        refused = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert (refused["id"], refused["type"], refused["payload"][0]["message"]) == (
            "4", "error", "Subscription limit reached")
        await asyncio.sleep(3)  # longer than the idle limit: a socket with subscriptions is not idle
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "pong"
        await ws.close()
    finally:
        server.stop()

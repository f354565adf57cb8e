"""Gapless resume of the live subscriptions against real processes: a uvicorn server, PostgreSQL
and a Redis that is really stopped and started, in both fan-out modes (shared and naive).

Given/when/then in each test; every assertion is on the exact sequence of event ids received."""

from __future__ import annotations

import asyncio
import subprocess

import pytest
from sqlalchemy import select, text

from devstack import services
from domain.messaging import chat
from domain.orders import locks
from domain.orders import service_request as sr_domain
from domain.shared import outbox
from gateways.sandbox import SandboxGateway
from models import Conversation
from models.db import session_scope
from resolvers.ids import decode_id, encode_id
from settings import get_settings
from tests.support.factories import make_provider, make_service, make_user, token_for
from tests.support.live_harness import Server, Subscriber, wait_until

pytestmark = pytest.mark.e2e

MODES = ["shared", "naive"]
CHAT = "subscription($c: ID!, $after: ID){ chatMessageAdded(conversationId: $c, after: $after){ id body } }"
STATUS = ("subscription($r: String!, $after: ID){ serviceRequestStatusChanged(reference: $r, after: $after)"
          "{ id status previousStatus } }")


async def stop_redis() -> None:
    settings = get_settings()
    subprocess.run(["redis-cli", "-p", str(settings.redis_port), "shutdown", "nosave"], check=False,
                   capture_output=True)
    await asyncio.sleep(0.3)


def start_redis() -> None:
    settings = get_settings()
    services._redis_up(settings, services._paths(settings))


async def a_conversation():
    """A paid-for request's conversation: (customer, provider user, conversation id, reference)."""
    customer = await make_user("awa@example.cm", full_name="Awa Ngono")
    provider_user = await make_user("eko@odim.test", role="provider", full_name="Eko Plumbing")
    provider = await make_provider(user_id=provider_user.id)
    service, tiers = await make_service()
    async with session_scope() as s:
        bought = await sr_domain.purchase_service(s, SandboxGateway(), service_id=service.id, tier_id=tiers[0].id,
                                                  customer=None, user=customer)
    async with session_scope() as s:
        request = await locks.lock_request(s, bought.service_request.id)
        request.assigned_provider_id = provider.id
        cid = await s.scalar(select(Conversation.id).where(Conversation.service_request_id == request.id))
    return customer, provider_user, cid, bought.service_request.reference


async def send(user, cid: int, body: str, *, relay: bool = True) -> int:
    """Send a chat message through the domain (as the mutation does) and relay the outbox unless told not to."""
    async with session_scope() as s:
        message = await chat.send_message(s, user, cid, body)
    if relay:
        await outbox.relay_quietly()
    return message.id


def ids(sub: Subscriber, field: str) -> list[int]:
    type_name = {"chatMessageAdded": "ChatMessage", "serviceRequestStatusChanged": "ServiceRequestStatusEvent"}[field]
    return [decode_id(d["id"], type_name, field="id") for d in sub.data(field)]


@pytest.mark.parametrize("mode", MODES)
async def test_a_subscriber_keeps_every_message_exactly_once_in_order_while_redis_restarts(mode):
    # given: a server (PostgreSQL polled every 0.5 s while pub/sub is down) and a subscriber that has message 1
    server = Server(ODIM_LIVE_FANOUT=mode, ODIM_LIVE_POLL_SECONDS="0.5")
    await server.start()
    customer, provider, cid, _ = await a_conversation()
    sent = [await send(customer, cid, "m1")]
    sub = Subscriber(server, CHAT, {"c": encode_id("Conversation", cid), "after": encode_id("ChatMessage", sent[0])},
                     token=await token_for(provider)).start()
    try:
        # when: messages keep coming before, during and after a real Redis restart
        for i in range(2, 8):
            sent.append(await send(customer, cid, f"m{i}"))
        await wait_until(lambda: len(sub.frames) >= 6, 20, "the first messages")
        await stop_redis()
        for i in range(8, 16):
            sent.append(await send(customer if i % 2 else provider, cid, f"m{i}"))  # outbox rows stay pending
        await wait_until(lambda: len(sub.frames) >= 14, 20, "messages polled from PostgreSQL while Redis is down")
        start_redis()
        for i in range(16, 24):
            sent.append(await send(customer, cid, f"m{i}"))
            await asyncio.sleep(0.1)
        await outbox.relay()  # the sweeper publishes what was pending: duplicates the subscriber must skip
        sent.append(await send(customer, cid, "m24"))
        await wait_until(lambda: len(sub.frames) >= 23, 30, "every message")
        await asyncio.sleep(1.0)  # anything extra (a duplicate) would arrive now
        # then: every message after the first exactly once, in order, and the socket never dropped
        assert ids(sub, "chatMessageAdded") == sent[1:]
        assert [d["body"] for d in sub.data("chatMessageAdded")] == [f"m{i}" for i in range(2, 25)]
        assert sub.closed is None and all(f["type"] == "next" for f in sub.frames)
    finally:
        start_redis()
        await sub.stop()
        server.stop()


@pytest.mark.parametrize("mode", MODES)
async def test_after_a_server_crash_the_client_resumes_with_after_and_loses_nothing(mode):
    # given: a subscriber that received messages 2..4 from a server
    server = Server(ODIM_LIVE_FANOUT=mode)
    await server.start()
    customer, provider, cid, _ = await a_conversation()
    sent = [await send(customer, cid, "m1")]
    variables = {"c": encode_id("Conversation", cid), "after": encode_id("ChatMessage", sent[0])}
    first = Subscriber(server, CHAT, variables, token=await token_for(provider)).start()
    for i in range(2, 5):
        sent.append(await send(customer, cid, f"m{i}"))
    await wait_until(lambda: len(first.frames) == 3, 20, "messages 2..4")
    # when: the server process is killed, messages are sent meanwhile, and it comes back
    server.kill()
    await wait_until(lambda: first.task.done(), 10, "the socket to drop")
    for i in range(5, 9):
        sent.append(await send(customer, cid, f"m{i}"))
    await server.start()
    last_seen = first.data("chatMessageAdded")[-1]["id"]
    second = Subscriber(server, CHAT, {**variables, "after": last_seen}, token=await token_for(provider)).start()
    try:
        await wait_until(lambda: len(second.frames) == 4, 20, "the messages sent while the server was down")
        for i in range(9, 12):
            sent.append(await send(customer, cid, f"m{i}"))
        await wait_until(lambda: len(second.frames) == 7, 20, "live messages after the replay")
        await asyncio.sleep(0.5)
        # then: the two sockets together saw every message after the first exactly once, in order
        assert ids(first, "chatMessageAdded") + ids(second, "chatMessageAdded") == sent[1:]
    finally:
        await second.stop()
        server.stop()


@pytest.mark.parametrize("mode", MODES)
async def test_status_subscriptions_replay_from_the_cursor_then_go_live_and_polling_returns_the_same(mode):
    # given: a request with two status changes
    server = Server(ODIM_LIVE_FANOUT=mode)
    await server.start()
    _, _, _, reference = await a_conversation()
    async with session_scope() as s:
        rows = (await s.execute(text(
            "SELECT h.id FROM service_request_status_history h JOIN service_requests r ON r.id = h.service_request_id "
            "WHERE r.reference = :r ORDER BY h.id"), {"r": reference})).scalars().all()

    async def move(to: str, actor: str = "system") -> None:
        async with session_scope() as s:
            found = await sr_domain.get_by_reference(s, reference)
            request = await locks.lock_request(s, found.id)
            await sr_domain.transition(s, request, to, actor_type=actor)
        await outbox.relay_quietly()

    await move("payment_confirmed")
    first_id = rows[0]
    # when: one client subscribes from the creation event, another with no cursor (from now on)
    from_start = Subscriber(server, STATUS, {"r": reference, "after": encode_id("ServiceRequestStatusEvent", first_id)}).start()
    from_now = Subscriber(server, STATUS, {"r": reference}).start()
    try:
        await wait_until(lambda: len(from_start.frames) == 1, 20, "the replayed change")
        await asyncio.sleep(1.0)  # let the no-cursor subscription settle
        await move("pending_contact")
        await move("cancelled", "admin")
        await wait_until(lambda: len(from_start.frames) == 3 and len(from_now.frames) == 2, 20, "the live changes")
        # then
        assert [(d["previousStatus"], d["status"]) for d in from_start.data("serviceRequestStatusChanged")] == [
            ("AWAITING_PAYMENT", "PAYMENT_CONFIRMED"), ("PAYMENT_CONFIRMED", "PENDING_CONTACT"),
            ("PENDING_CONTACT", "CANCELLED")]
        assert from_now.data("serviceRequestStatusChanged") == from_start.data("serviceRequestStatusChanged")[1:]
        # and polling after the same cursor returns the same events
        import httpx

        async with httpx.AsyncClient() as client:
            body = (await client.post(f"{server.base}/graphql", json={
                "query": "query($r: String!, $s: ID){ serviceRequestStatusEventsSince(reference: $r, since: $s)"
                         "{ id status previousStatus } }",
                "variables": {"r": reference, "s": encode_id("ServiceRequestStatusEvent", first_id)}})).json()
        assert body["data"]["serviceRequestStatusEventsSince"] == from_start.data("serviceRequestStatusChanged")
    finally:
        await from_start.stop()
        await from_now.stop()
        server.stop()


@pytest.mark.parametrize("mode", MODES)
async def test_non_participants_and_anonymous_sockets_are_refused_the_chat(mode):
    # given: a conversation and a stranger
    server = Server(ODIM_LIVE_FANOUT=mode)
    await server.start()
    _, _, cid, _ = await a_conversation()
    stranger = await make_user("stranger@odim.test")
    other_provider = await make_user("other@odim.test", role="provider")
    await make_provider(user_id=other_provider.id, display_name="Other")
    try:
        for token in (await token_for(stranger), await token_for(other_provider), None):
            sub = Subscriber(server, CHAT, {"c": encode_id("Conversation", cid)}, token=token).start()
            await asyncio.wait_for(sub.task, 10)
            # then: one frame with the typed error and no data, then the subscription completes
            assert [f["type"] for f in sub.frames] == ["next", "complete"]
            assert sub.frames[0]["payload"]["data"] is None
            codes = [e["extensions"]["code"] for e in sub.frames[0]["payload"]["errors"]]
            assert codes == (["UNAUTHENTICATED"] if token is None else ["FORBIDDEN"])
    finally:
        server.stop()


async def fanout_counters(server: Server) -> tuple[float, float]:
    import httpx

    async with httpx.AsyncClient() as client:
        text_ = (await client.get(f"{server.base}/metrics")).text
    values = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text_.splitlines()
              if line.startswith(("odim_fanout_executions_total", "odim_fanout_deliveries_total"))}
    return values["odim_fanout_executions_total"], values["odim_fanout_deliveries_total"]


async def test_subscribers_with_the_same_selection_share_one_execution_per_event():
    # given: 20 sockets with one selection and 5 with another on the same conversation, all caught up
    server = Server(ODIM_LIVE_FANOUT="shared")
    await server.start()
    customer, provider, cid, _ = await a_conversation()
    first = await send(customer, cid, "m1")
    variables = {"c": encode_id("Conversation", cid), "after": encode_id("ChatMessage", first)}
    other = "subscription($c: ID!, $after: ID){ chatMessageAdded(conversationId: $c, after: $after){ id senderName } }"
    subs = [Subscriber(server, CHAT, variables, token=await token_for(provider)).start() for _ in range(20)]
    subs += [Subscriber(server, other, variables, token=await token_for(customer)).start() for _ in range(5)]
    try:
        await send(customer, cid, "m2")
        await wait_until(lambda: all(len(s.frames) == 1 for s in subs), 30, "every socket to get m2")
        executions, deliveries = await fanout_counters(server)
        # when: four more messages
        for i in range(3, 7):
            await send(customer, cid, f"m{i}")
        await wait_until(lambda: all(len(s.frames) == 5 for s in subs), 30, "every socket to get m3..m6")
        after_executions, after_deliveries = await fanout_counters(server)
        # then: one execution per message and selection (4 x 2), one frame per message and socket (4 x 25)
        assert (after_executions - executions, after_deliveries - deliveries) == (8, 100)
        assert {tuple(d["body"] for d in s.data("chatMessageAdded")) for s in subs[:20]} == {
            ("m2", "m3", "m4", "m5", "m6")}
        assert {tuple(d["senderName"] for d in s.data("chatMessageAdded")) for s in subs[20:]} == {("Awa Ngono",) * 5}
    finally:
        for s in subs:
            await s.stop()
        server.stop()


@pytest.mark.parametrize("mode", MODES)
async def test_notifications_resume_after_the_last_one_seen_and_only_the_owner_gets_them(mode):
    from domain.messaging import feed

    # given: a user with three notifications, and another user with one
    server = Server(ODIM_LIVE_FANOUT=mode)
    await server.start()
    ada = await make_user("ada@example.com")
    bob = await make_user("bob@example.com")

    async def notify(user, title: str) -> None:
        async with session_scope() as s:
            await feed.notify(s, user.id, kind="escalation", title=title, body="")
        await outbox.relay_quietly()

    for title in ("n1", "n2", "n3"):
        await notify(ada, title)
    await notify(bob, "not yours")
    async with session_scope() as s:
        first = (await feed.notifications_since(s, ada.id, 0, 10))[0]["id"]
    query = "subscription($after: ID){ notificationAdded(after: $after){ id title } }"
    sub = Subscriber(server, query, {"after": encode_id("Notification", first)}, token=await token_for(ada)).start()
    try:
        # when: Ada resumes after n1, and one more notification comes for each user
        await wait_until(lambda: len(sub.frames) == 2, 20, "the replay")
        await notify(bob, "still not yours")
        await notify(ada, "n4")
        await wait_until(lambda: len(sub.frames) == 3, 20, "the live notification")
        await asyncio.sleep(0.5)
        # then: n2, n3 (replayed) and n4 (live), nothing of Bob's
        assert [d["title"] for d in sub.data("notificationAdded")] == ["n2", "n3", "n4"]
    finally:
        await sub.stop()
        server.stop()


async def test_a_participant_watching_the_chat_is_not_notified_and_one_away_is():
    from domain.messaging import feed

    # given: the provider has the conversation open (subscribed), the customer does not
    server = Server(ODIM_LIVE_FANOUT="shared")
    await server.start()
    customer, provider, cid, _ = await a_conversation()
    first = await send(customer, cid, "m1")
    sub = Subscriber(server, CHAT, {"c": encode_id("Conversation", cid), "after": encode_id("ChatMessage", first)},
                     token=await token_for(provider)).start()
    try:
        from domain.messaging import presence

        for _ in range(200):  # the subscription marks the provider present once it is running
            if await presence.present(cid, {provider.id}):
                break
            await asyncio.sleep(0.05)
        await send(customer, cid, "are you there?")
        await wait_until(lambda: len(sub.frames) == 1, 20, "the message to reach the provider")

        async def chat_notifications(user) -> list[str]:
            async with session_scope() as s:
                return [n["body"] for n in await feed.notifications_since(s, user.id, 0, 50) if n["kind"] == "chat_message"]

        before = await chat_notifications(provider)
        # when: the customer writes again while the provider watches, and the provider answers
        await send(customer, cid, "the gate is open")
        await send(provider, cid, "on my way")
        await wait_until(lambda: len(sub.frames) == 3, 20, "both messages")
        # then: only m1 (sent before the provider subscribed) notified the provider; the customer, away, is notified
        assert before == ["m1"]
        assert await chat_notifications(provider) == ["m1"]
        assert await chat_notifications(customer) == ["on my way"]
    finally:
        await sub.stop()
        server.stop()


async def test_eighty_sockets_subscribing_at_once_do_not_exhaust_the_connection_pool():
    # given: 80 participants' sockets opening their subscriptions at the same moment (the pool holds 50)
    server = Server(ODIM_LIVE_FANOUT="shared")
    await server.start()
    customer, provider, cid, _ = await a_conversation()
    first = await send(customer, cid, "m1")
    variables = {"c": encode_id("Conversation", cid), "after": encode_id("ChatMessage", first)}
    subs = [Subscriber(server, CHAT, variables, token=await token_for(provider)).start() for _ in range(80)]
    try:
        # when: a message is sent
        await send(customer, cid, "m2")
        # then: every socket gets it (before the fix, each authorisation held two pooled connections
        # and all of them waited on each other until the pool timed out)
        await wait_until(lambda: all(len(s.frames) == 1 for s in subs), 60, "every socket to get m2")
        assert {s.frames[0]["type"] for s in subs} == {"next"}
    finally:
        for s in subs:
            await s.stop()
        server.stop()

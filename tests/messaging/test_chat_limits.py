"""Sending limits and who is told: the per-account rate limit (moving window, typed RATE_LIMITED with
the seconds to wait, nothing stored), failing open when Redis is down, presence in Redis, and in-app
notifications to the participants who are not looking at the conversation."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import redis.asyncio as aioredis
from limits.aio.storage.redis import redispy as limits_redispy
from sqlalchemy import func, select
from structlog.testing import capture_logs

from domain.messaging import chat, presence
from domain.shared import ratelimit
from models import ChatMessage
from models.db import session_scope
from settings import get_settings
from tests.messaging.test_chat import (
    SEND,
    Chat,
    chat_events,
    notifications,
    say,
    stored_messages,
)
from tests.messaging.test_chat_subjects import conversation_of, ticket_world
from tests.support.graphql_client import gql, login

T0 = 1_900_000_000.0  # a fixed instant for the limiter's clock (Unix seconds)




@pytest.fixture
def clock(monkeypatch):
    """The limiter's clock (limits' Redis storage and domain/shared/ratelimit.py), set with ``clock.now = ...``."""
    fake = SimpleNamespace(now=T0)
    timer = SimpleNamespace(time=lambda: fake.now)
    monkeypatch.setattr(limits_redispy, "time", timer)
    monkeypatch.setattr(ratelimit, "time", timer)
    return fake


@pytest.fixture
def three_per_minute(monkeypatch) -> None:
    monkeypatch.setattr(get_settings(), "chat_rate_limit", "3/minute")


async def attempt(room: Chat, body: str) -> str:
    """The customer sends ``body``: "sent" or "RATE_LIMITED <seconds>"."""
    try:
        await say(room.customer, room.conversation_id, body)
    except chat.RateLimited as exc:
        return f"{exc.code} {exc.retry_after_seconds}"
    return "sent"


# --- the rate limit -----------------------------------------------------------------------------------


async def test_over_the_limit_a_message_is_refused_with_the_seconds_to_wait_and_nothing_is_stored(
    api_client, room, clock, three_per_minute
):
    # given three messages in the same second
    token = await login(api_client, "ada@example.com")
    for i in range(3):
        sent = await gql(api_client, SEND, {"input": {"conversationId": room.conversation_gid, "body": f"m{i}"}},
                         token=token)
        assert sent["data"]["sendChatMessage"]["errors"] == []
    before = (await stored_messages(), await chat_events(room.conversation_id), await notifications())
    # when the fourth comes 20 seconds later
    clock.now = T0 + 20
    refused = await gql(api_client, SEND, {"input": {"conversationId": room.conversation_gid, "body": "m3"}},
                        token=token)
    # then
    assert refused["data"]["sendChatMessage"] == {"message": None, "errors": [{
        "field": None, "code": "RATE_LIMITED", "message": "You are sending messages too fast: wait 40 s and send again"}],
        "retryAfterSeconds": 40}
    assert (await stored_messages(), await chat_events(room.conversation_id), await notifications()) == before


async def test_the_window_moves_one_message_at_a_time(room, clock, three_per_minute):
    # given messages at 0 s, 30 s and 30 s
    outcomes = [await attempt(room, "a")]
    clock.now = T0 + 30
    outcomes += [await attempt(room, "b"), await attempt(room, "c")]
    # when: just before the first leaves the window, just after, and once more
    clock.now = T0 + 59.5
    outcomes.append(await attempt(room, "d"))
    clock.now = T0 + 60.5
    outcomes += [await attempt(room, "e"), await attempt(room, "f")]
    # then: a fixed window would have let f through; the moving one waits for b and c (at 30 s)
    assert outcomes == ["sent", "sent", "sent", "RATE_LIMITED 1", "sent", "RATE_LIMITED 30"]
    assert [b for _, b in await stored_messages()] == ["a", "b", "c", "e"]


async def test_the_limit_is_per_account_across_conversations(room, shop_for_chat, clock, three_per_minute):
    # given the customer used its three messages
    for body in ("a", "b", "c"):
        assert await attempt(room, body) == "sent"
    # when the provider writes in the same conversation
    reply = await say(room.provider_user, room.conversation_id, "provider's turn")
    # then the provider is not limited by the customer's messages, the customer still is
    assert reply.body == "provider's turn"
    assert await attempt(room, "d") == "RATE_LIMITED 60"


async def test_refused_attempts_do_not_count(room, clock, three_per_minute):
    # given a forbidden and an empty attempt
    with pytest.raises(chat.EmptyMessage):
        await say(room.customer, room.conversation_id, "   ")
    with pytest.raises(chat.Forbidden):
        await say(room.other_customer, room.conversation_id, "let me in")
    # when / then: the customer still has its three messages
    assert [await attempt(room, b) for b in ("a", "b", "c", "d")] == ["sent", "sent", "sent", "RATE_LIMITED 60"]


async def test_with_redis_down_messages_are_still_sent_and_everyone_offline_is_notified(room, monkeypatch,
                                                                                        three_per_minute):
    # given Redis unreachable (nothing listens on port 1), and the provider "present" in the real Redis
    await presence.touch(room.conversation_id, room.provider_user.id)
    monkeypatch.setattr(get_settings(), "redis_url", "redis://127.0.0.1:1/0")
    # when the customer sends more than the limit
    with capture_logs() as logs:
        sent = [await say(room.customer, room.conversation_id, f"m{i}") for i in range(4)]
    # then: all stored (fail open), and presence unknown means the provider is notified of each
    assert [v.body for v in sent] == ["m0", "m1", "m2", "m3"]
    assert await stored_messages() == [(room.customer.id, f"m{i}") for i in range(4)]
    assert await notifications() == [
        (room.provider_user.id, "New message from Ada", f"m{i}", "Conversation", room.conversation_id) for i in range(4)]
    events = [e["event"] for e in logs]
    assert events.count("chat.rate_limit_unavailable") == 4
    assert events.count("presence.unavailable") == 4


# --- presence ------------------------------------------------------------------------------------------


async def test_touch_marks_present_for_a_ttl_and_leave_forgets(room):
    # when
    await presence.touch(room.conversation_id, room.provider_user.id)
    await presence.touch(room.conversation_id, room.customer.id, ttl_seconds=5)
    await presence.touch(room.conversation_id + 1, room.admin.id)
    # then
    everyone = [room.customer.id, room.provider_user.id, room.admin.id]
    assert await presence.present(room.conversation_id, everyone) == {room.customer.id, room.provider_user.id}
    client = aioredis.from_url(get_settings().redis_url)
    try:
        ttls = [await client.pttl(presence.key(room.conversation_id, u)) for u in (room.provider_user.id, room.customer.id)]
    finally:
        await client.aclose()
    assert 55_000 < ttls[0] <= 60_000 and 0 < ttls[1] <= 5_000
    # and after leaving
    await presence.leave(room.conversation_id, room.customer.id)
    assert await presence.present(room.conversation_id, everyone) == {room.provider_user.id}
    assert await presence.present(room.conversation_id, []) == set()


async def test_with_redis_down_nobody_is_present_and_touch_does_not_raise(room, monkeypatch):
    await presence.touch(room.conversation_id, room.customer.id)
    monkeypatch.setattr(get_settings(), "redis_url", "redis://127.0.0.1:1/0")
    with capture_logs() as logs:
        await presence.touch(room.conversation_id, room.customer.id)
        here = await presence.present(room.conversation_id, [room.customer.id])
    assert here == set()
    assert [e["event"] for e in logs] == ["presence.touch_failed", "presence.unavailable"]


# --- notifications ---------------------------------------------------------------------------------------


async def test_the_offline_provider_is_notified_and_the_sender_and_silent_admins_are_not(room):
    # when
    await say(room.customer, room.conversation_id, "  Hello <b>Paul</b>, the sink leaks again  ")
    # then
    assert await notifications() == [(room.provider_user.id, "New message from Ada",
                                       "Hello <b>Paul</b>, the sink leaks again", "Conversation", room.conversation_id)]


async def test_a_present_participant_is_not_notified(room):
    await presence.touch(room.conversation_id, room.provider_user.id)
    await say(room.customer, room.conversation_id, "Are you there?")
    assert await notifications() == []


async def test_an_admin_who_posted_is_notified_afterwards_and_the_body_is_cut_at_140_characters(room):
    # given an admin posted; the customer and provider are notified of it
    await say(room.admin, room.conversation_id, "Odim here")
    assert await notifications() == [
        (room.customer.id, "New message from Odim", "Odim here", "Conversation", room.conversation_id),
        (room.provider_user.id, "New message from Odim", "Odim here", "Conversation", room.conversation_id)]
    # when the provider answers with a long message, the customer looking at the conversation
    await presence.touch(room.conversation_id, room.customer.id)
    long = "x" * 139 + "yz" + "!" * 50
    await say(room.provider_user, room.conversation_id, long)
    # then the admin is told (cut to 140 characters), the customer is not
    assert await notifications() == [
        (room.customer.id, "New message from Odim", "Odim here", "Conversation", room.conversation_id),
        (room.admin.id, "New message from Paul", "x" * 139 + "y", "Conversation", room.conversation_id),
        (room.provider_user.id, "New message from Odim", "Odim here", "Conversation", room.conversation_id)]


async def test_every_participating_provider_of_a_ticket_is_notified():
    # given a ticket with a paid visit and a completed one (and a held and a declined one)
    made, providers, ada, bob, admin = await ticket_world()
    conversation = await conversation_of("ticket", made.id)
    # when
    await say(ada, conversation.id, "Still broken")
    # then
    told = [(user_id, title) for user_id, title, *_ in await notifications()]
    assert told == sorted([(providers["Paid Fix"].provider_user.id, "New message from Ada"),
                           (providers["Done Fix"].provider_user.id, "New message from Ada")])


async def test_refused_messages_notify_nobody(room, clock, three_per_minute):
    for body in ("a", "b", "c"):
        await attempt(room, body)
    before = await notifications()
    with pytest.raises(chat.Forbidden):
        await say(room.other_customer, room.conversation_id, "spam")
    assert await attempt(room, "d") == "RATE_LIMITED 60"
    assert await notifications() == before
    async with session_scope() as s:
        assert await s.scalar(select(func.count()).select_from(ChatMessage)) == 3

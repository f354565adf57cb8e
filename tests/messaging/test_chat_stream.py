"""A conversation is a resumable stream (brief: the resumable-stream contract): ids in commit order
within a conversation (the conversation row is locked while sending), every published payload carries
``id`` and ``prev``, and ``messages_since`` returns exactly the published payloads."""

from __future__ import annotations

import asyncio

from sqlalchemy import select, text

from domain.messaging import chat
from models import ChatMessage, Conversation
from models.db import session_scope
from tests.messaging.test_chat import event_payloads, say
from tests.support.orders import domain_purchase, pay


async def second_conversation(room, shop) -> int:
    """Another paid request of the same customer, unassigned: its conversation id."""
    request = await domain_purchase(shop, room.customer)
    await pay(request.id)
    async with session_scope() as s:
        return await s.scalar(select(Conversation.id).where(Conversation.service_request_id == request.id))


async def test_published_payloads_carry_id_and_prev_and_messages_since_returns_the_same_dicts(room, shop_for_chat):
    # given two conversations whose messages interleave
    other = await second_conversation(room, shop_for_chat)
    sent = []
    for i in range(3):
        sent.append(await say(room.customer, room.conversation_id, f"here {i}"))
        await say(room.customer, other, f"there {i}")
    sent.append(await say(room.provider_user, room.conversation_id, "<b>reply</b>"))
    # when
    async with session_scope() as s:
        replayed = await chat.messages_since(s, room.conversation_id, 0, 100)
    published = await event_payloads(room.conversation_id)
    # then: identical dicts, and each prev is the previous message of this conversation only
    assert replayed == published
    ids = [v.id for v in sent]
    assert ids == [1, 3, 5, 7]
    assert [(p["id"], p["prev"], p["prev_id"]) for p in replayed] == [(1, 0, 0), (3, 1, 1), (5, 3, 3), (7, 5, 5)]
    assert replayed[-1] == {
        "id": 7, "prev": 5, "prev_id": 5, "conversation_id": room.conversation_id,
        "sender_user_id": room.provider_user.id, "sender_name": "Paul Pro", "body": "<b>reply</b>",
        "created_at": sent[-1].created_at,
    }
    assert [chat.MessageView.from_payload(p) for p in replayed] == sent


async def test_messages_since_pages_after_an_id_oldest_first_with_a_limit(room):
    # given
    sent = [await say(room.customer, room.conversation_id, f"m{i}") for i in range(6)]
    async with session_scope() as s:
        # when
        middle = await chat.messages_since(s, room.conversation_id, sent[1].id, 3)
        tail = await chat.messages_since(s, room.conversation_id, sent[4].id, 3)
        none = await chat.messages_since(s, room.conversation_id, sent[5].id, 3)
    # then
    assert [p["body"] for p in middle] == ["m2", "m3", "m4"]
    assert [(p["id"], p["prev"]) for p in tail] == [(sent[5].id, sent[4].id)]
    assert none == []


async def wait_for_a_lock_waiter() -> None:
    """Until another backend of this database waits for a lock (at most 10 s, then fail)."""
    for _ in range(500):
        async with session_scope() as s:
            waiting = await s.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"))
        if waiting:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no backend waited for the conversation lock")


async def test_a_second_sender_waits_for_the_first_to_commit_and_points_at_its_message(room):
    # given the customer's message inserted but not committed yet
    async with session_scope() as s:
        first = await chat.send_message(s, room.customer, room.conversation_id, "first")
        # when the provider sends meanwhile
        second_task = asyncio.create_task(say(room.provider_user, room.conversation_id, "second"))
        # then it waits for the conversation's lock
        await wait_for_a_lock_waiter()
        assert not second_task.done()
    second = await second_task
    assert (first.prev_id, second.prev_id) == (0, first.id)
    assert second.id > first.id


async def test_forty_concurrent_senders_make_one_gapless_chain(room, unlimited):
    # given
    senders = [room.customer, room.provider_user, room.admin, room.customer]

    async def one(i: int) -> chat.MessageView:
        return await say(senders[i % 4], room.conversation_id, f"n{i}")

    # when forty messages are sent at once from separate connections
    views = await asyncio.gather(*(one(i) for i in range(40)))
    # then each message's prev is the message committed just before it in this conversation
    async with session_scope() as s:
        rows = (await s.execute(select(ChatMessage.id, ChatMessage.prev_id).where(
            ChatMessage.conversation_id == room.conversation_id).order_by(ChatMessage.id))).all()
        conversation = await s.get(Conversation, room.conversation_id)
    ids = [r.id for r in rows]
    assert [r.prev_id for r in rows] == [0, *ids[:-1]]
    assert sorted(v.id for v in views) == ids
    assert conversation.last_message_id == ids[-1]
    assert [(p["id"], p["prev"]) for p in await event_payloads(room.conversation_id)] == list(zip(ids, [0, *ids[:-1]],
                                                                                                strict=True))

"""Chat over GraphQL in a service request's conversation: who may post, read, poll and mark read
(every role), validation, plain-text bodies and history paging with ChatMessage ids as cursors.

The fixtures (``room``, ``shop_for_chat``, ``unlimited``) are in tests/messaging/conftest.py, for
every messaging test; the other chat tests import this module's queries and helpers."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from domain.messaging import chat
from domain.shared.errors import Forbidden
from models import ChatMessage, ChatRead, Conversation, OutboxMessage, User
from models.db import session_scope
from models.messaging.feed import Notification
from resolvers.ids import encode_id
from tests.support.chat import Chat
from tests.support.factories import make_provider, make_user
from tests.support.graphql_client import error_codes, gql, login
from tests.support.orders import domain_purchase, pay

SEND = """
mutation Send($input: SendChatMessageInput!) {
  sendChatMessage(input: $input) {
    message { id conversationId senderId senderName body createdAt }
    errors { field code message }
    retryAfterSeconds
  }
}
"""
READ = """
query Read($reference: String!, $first: Int, $after: String, $before: String) {
  serviceRequest(reference: $reference) {
    conversation {
      id
      messages(first: $first, after: $after, before: $before) {
        edges { cursor node { id body senderName senderId } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      }
    }
  }
}
"""
NODE = """
query Node($id: ID!) { node(id: $id) { ... on Conversation { id } } }
"""
SINCE = """
query Since($c: ID!, $since: ID, $first: Int) {
  chatMessagesSince(conversationId: $c, since: $since, first: $first) { id body senderName }
}
"""
MARK = """
mutation Mark($input: MarkConversationReadInput!) {
  markConversationRead(input: $input) {
    conversation { id unreadCount }
    readReceipt { userId lastReadMessageId }
    errors { field code message }
  }
}
"""
NODE_MESSAGES = """
query NodeMessages($id: ID!) {
  node(id: $id) { ... on Conversation { messages { edges { node { body } } } } }
}
"""


async def stored_messages() -> list[tuple[int, str]]:
    async with session_scope() as s:
        return [tuple(r) for r in (await s.execute(
            select(ChatMessage.sender_user_id, ChatMessage.body).order_by(ChatMessage.id))).all()]


async def chat_events(conversation_id: int) -> list[str]:
    async with session_scope() as s:
        return list((await s.scalars(select(OutboxMessage.payload["body"].astext).where(
            OutboxMessage.kind == "event", OutboxMessage.target == f"odim:conversation:{conversation_id}",
        ).order_by(OutboxMessage.id))).all())


async def event_payloads(conversation_id: int) -> list[dict]:
    async with session_scope() as s:
        return list((await s.scalars(select(OutboxMessage.payload).where(
            OutboxMessage.kind == "event", OutboxMessage.target == f"odim:conversation:{conversation_id}",
        ).order_by(OutboxMessage.id))).all())


async def receipts() -> list[tuple[int, int, int]]:
    async with session_scope() as s:
        return [tuple(r) for r in (await s.execute(select(
            ChatRead.conversation_id, ChatRead.user_id, ChatRead.last_read_message_id
        ).order_by(ChatRead.conversation_id, ChatRead.user_id))).all()]


async def notifications() -> list[tuple[int, str, str, str | None, int | None]]:
    """The chat notifications written: ``(user_id, title, body, subject_type, subject_id)`` by user, then id."""
    async with session_scope() as s:
        return [tuple(r) for r in (await s.execute(select(
            Notification.user_id, Notification.title, Notification.body, Notification.subject_type,
            Notification.subject_id,
        ).where(Notification.kind == "chat_message").order_by(Notification.user_id, Notification.id))).all()]


async def say(user: User, conversation_id: int, body: str) -> chat.MessageView:
    """``user`` sends ``body`` through the domain, committed."""
    async with session_scope() as s:
        return await chat.send_message(s, user, conversation_id, body)


async def send(client, room: Chat, body: str, token: str | None) -> dict:
    return await gql(client, SEND, {"input": {"conversationId": room.conversation_gid, "body": body}}, token=token)


def mid(message_id: int) -> str:
    return encode_id("ChatMessage", message_id)


async def test_the_customer_the_assigned_provider_and_an_admin_talk_and_read(api_client, room):
    # given
    tokens = {email: await login(api_client, email) for email in ("ada@example.com", "pro@example.com",
                                                                 "ops@example.com")}
    # when
    sent = [await send(api_client, room, body, tokens[email]) for email, body in (
        ("ada@example.com", "Hello, the sink leaks."), ("pro@example.com", "On my way."),
        ("ops@example.com", "Odim here: all good?"))]
    # then
    senders = [(room.customer, "Hello, the sink leaks."), (room.provider_user, "On my way."),
               (room.admin, "Odim here: all good?")]
    for body, (user, text) in zip(sent, senders, strict=True):
        payload = body["data"]["sendChatMessage"]
        assert payload["errors"] == []
        assert {k: payload["message"][k] for k in ("conversationId", "senderId", "senderName", "body")} == {
            "conversationId": room.conversation_gid, "senderId": encode_id("User", user.id),
            "senderName": user.full_name, "body": text}
    expected_edges = [{"body": text, "senderName": user.full_name, "senderId": encode_id("User", user.id)}
                      for user, text in senders]
    for token in tokens.values():
        read = await gql(api_client, READ, {"reference": room.reference}, token=token)
        conversation = read["data"]["serviceRequest"]["conversation"]
        assert conversation["id"] == room.conversation_gid
        assert [{k: e["node"][k] for k in ("body", "senderName", "senderId")}
                for e in conversation["messages"]["edges"]] == expected_edges
    assert await stored_messages() == [(u.id, t) for u, t in senders]
    assert await chat_events(room.conversation_id) == [t for _, t in senders]


# --- every role, every way in ----------------------------------------------------------------------------

ROLES = ("customer", "other_customer", "assigned_provider", "unassigned_provider", "admin", "anonymous")
EMAILS = {"customer": "ada@example.com", "other_customer": "eve@example.com", "assigned_provider": "pro@example.com",
          "unassigned_provider": "other@example.com", "admin": "ops@example.com", "anonymous": None}
ALLOWED = {"customer", "assigned_provider", "admin"}


def user_of(room: Chat, role: str) -> User | None:
    return {"customer": room.customer, "other_customer": room.other_customer, "assigned_provider": room.provider_user,
            "unassigned_provider": room.other_provider_user, "admin": room.admin, "anonymous": None}[role]


@pytest.mark.parametrize("role", ROLES)
async def test_each_role_may_or_may_not_read_post_poll_mark_read_and_subscribe(api_client, room, role):
    # given: one message from the customer, marked read by nobody
    first = await say(room.customer, room.conversation_id, "First!")
    before = (await stored_messages(), await chat_events(room.conversation_id), await receipts())
    token = await login(api_client, EMAILS[role]) if EMAILS[role] else None
    # when
    posted = await send(api_client, room, "Hello from me", token)
    read = await gql(api_client, READ, {"reference": room.reference}, token=token)
    by_node = await gql(api_client, NODE, {"id": room.conversation_gid}, token=token)
    polled = await gql(api_client, SINCE, {"c": room.conversation_gid}, token=token)
    marked = await gql(api_client, MARK, {"input": {"conversationId": room.conversation_gid}}, token=token)
    async with session_scope() as s:
        try:
            await chat.get_conversation(s, room.conversation_id, user_of(room, role))  # the subscription's check
            subscribe = "allowed"
        except Forbidden:
            subscribe = "FORBIDDEN"
    # then
    if role in ALLOWED:
        me = user_of(room, role)
        assert posted["data"]["sendChatMessage"]["errors"] == []
        assert posted["data"]["sendChatMessage"]["message"]["id"] == mid(first.id + 1)
        assert [e["node"]["body"] for e in read["data"]["serviceRequest"]["conversation"]["messages"]["edges"]] == [
            "First!", "Hello from me"]
        assert by_node == {"data": {"node": {"id": room.conversation_gid}}}
        assert [m["body"] for m in polled["data"]["chatMessagesSince"]] == ["First!", "Hello from me"]
        assert marked["data"]["markConversationRead"]["errors"] == []
        assert subscribe == "allowed"
        assert await receipts() == [(room.conversation_id, me.id, first.id + 1)]
        assert await stored_messages() == [(room.customer.id, "First!"), (me.id, "Hello from me")]
        return
    expected_top = ["UNAUTHENTICATED"] if role == "anonymous" else ["FORBIDDEN"]
    assert (posted["data"], error_codes(posted)) == (None, expected_top)
    assert (read["data"], error_codes(read)) == ({"serviceRequest": {"conversation": None}}, [])
    assert by_node == {"data": {"node": None}}
    assert (polled["data"], error_codes(polled)) == (None, expected_top)
    assert (marked["data"], error_codes(marked)) == (None, expected_top)
    assert subscribe == "FORBIDDEN"
    assert (await stored_messages(), await chat_events(room.conversation_id), await receipts()) == before


async def test_a_conversation_read_by_node_id_refuses_outsiders_its_messages(api_client, room):
    await say(room.customer, room.conversation_id, "Private")
    outsider = await gql(api_client, NODE_MESSAGES, {"id": room.conversation_gid},
                         token=await login(api_client, "eve@example.com"))
    insider = await gql(api_client, NODE_MESSAGES, {"id": room.conversation_gid},
                        token=await login(api_client, "pro@example.com"))
    assert outsider == {"data": {"node": None}}
    assert insider == {"data": {"node": {"messages": {"edges": [{"node": {"body": "Private"}}]}}}}


async def test_before_assignment_only_the_customer_and_admins_take_part(shop_for_chat):
    # given: a paid request nobody was assigned to yet
    ada = await make_user("ada@example.com", full_name="Ada Eko")
    admin = await make_user("ops@example.com", role="admin")
    pro = await make_user("pro@example.com", role="provider")
    await make_provider(user_id=pro.id)
    request = await domain_purchase(shop_for_chat, ada)
    await pay(request.id)
    async with session_scope() as s:
        conversation = await s.scalar(select(Conversation).where(Conversation.service_request_id == request.id))
        # when / then
        assert await chat.participant_ids(s, conversation) == {ada.id}
        assert [await chat.can_access(s, conversation, u) for u in (ada, admin, pro, None)] == [True, True, False, False]


async def test_a_guest_order_has_no_customer_account_in_its_conversation(shop_for_chat):
    request = await domain_purchase(shop_for_chat)  # a guest purchase
    async with session_scope() as s:
        conversation = await s.scalar(select(Conversation).where(Conversation.service_request_id == request.id))
        assert await chat.participant_ids(s, conversation) == set()


# --- validation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "expected"), [
    ("", {"field": "body", "code": "EMPTY", "message": "Message is empty"}),
    (" \n\t  ", {"field": "body", "code": "EMPTY", "message": "Message is empty"}),
    ("x" * 4001, {"field": "body", "code": "TOO_LONG", "message": "Messages are limited to 4000 characters"}),
    ("é" * 4001, {"field": "body", "code": "TOO_LONG", "message": "Messages are limited to 4000 characters"}),
])
async def test_an_empty_or_too_long_message_is_refused_and_nothing_is_stored(api_client, room, body, expected):
    body_ = await send(api_client, room, body, await login(api_client, "ada@example.com"))
    assert body_["data"]["sendChatMessage"] == {"message": None, "errors": [expected], "retryAfterSeconds": None}
    assert await stored_messages() == []
    assert await chat_events(room.conversation_id) == []
    assert await notifications() == []


async def test_a_message_of_exactly_4000_characters_is_accepted(api_client, room):
    text = "ü" * 4000
    body = await send(api_client, room, text, await login(api_client, "ada@example.com"))
    assert body["data"]["sendChatMessage"]["message"]["body"] == text
    assert await stored_messages() == [(room.customer.id, text)]


async def test_unknown_or_malformed_conversation_ids_are_payload_errors(api_client, room):
    token = await login(api_client, "ops@example.com")
    unknown = await gql(api_client, SEND, {"input": {"conversationId": encode_id("Conversation", 999), "body": "hi"}},
                        token=token)
    malformed = await gql(api_client, SEND, {"input": {"conversationId": encode_id("Provider", 1), "body": "hi"}},
                          token=token)
    assert unknown["data"]["sendChatMessage"]["errors"] == [
        {"field": "conversationId", "code": "NOT_FOUND", "message": "No such conversation"}]
    assert malformed["data"]["sendChatMessage"]["errors"] == [
        {"field": "conversationId", "code": "INVALID_ID", "message": "Not a Conversation id"}]
    assert await stored_messages() == []


async def test_script_markup_is_stored_and_returned_verbatim_as_text(api_client, room):
    # given
    text = "<script>alert(1)</script>"
    # when
    sent = await send(api_client, room, text, await login(api_client, "ada@example.com"))
    token = await login(api_client, "pro@example.com")
    read = await gql(api_client, READ, {"reference": room.reference}, token=token)
    polled = await gql(api_client, SINCE, {"c": room.conversation_gid}, token=token)
    # then: the same characters everywhere, never escaped nor stripped
    assert sent["data"]["sendChatMessage"]["message"]["body"] == "<script>alert(1)</script>"
    assert read["data"]["serviceRequest"]["conversation"]["messages"]["edges"][0]["node"]["body"] == text
    assert polled["data"]["chatMessagesSince"][0]["body"] == text
    assert await stored_messages() == [(room.customer.id, "<script>alert(1)</script>")]
    assert await chat_events(room.conversation_id) == ["<script>alert(1)</script>"]


async def test_markup_comes_back_byte_identical_as_plain_text(api_client, room):
    text = '<script>alert("x")</script> &amp; <b>bold</b> \'quoted\' \u202e emoji \U0001f6b0'
    token = await login(api_client, "ada@example.com")
    sent = await send(api_client, room, text, token)
    read = await gql(api_client, READ, {"reference": room.reference}, token=await login(api_client, "pro@example.com"))
    assert sent["data"]["sendChatMessage"]["message"]["body"] == text
    assert read["data"]["serviceRequest"]["conversation"]["messages"]["edges"][0]["node"]["body"] == text
    assert await stored_messages() == [(room.customer.id, text)]


# --- history paging ----------------------------------------------------------------------------------------


async def test_120_messages_page_by_50_backwards_and_forwards_each_exactly_once(api_client, room, unlimited):
    # given: 120 messages, alternately from the customer and the provider
    async with session_scope() as s:
        for i in range(120):
            sender = room.customer if i % 2 == 0 else room.provider_user
            await chat.send_message(s, sender, room.conversation_id, f"message {i:03d}")
    everything = [f"message {i:03d}" for i in range(120)]
    token = await login(api_client, "ada@example.com")

    async def page(**cursor: str | None) -> dict:
        body = await gql(api_client, READ, {"reference": room.reference, "first": 50, **cursor}, token=token)
        return body["data"]["serviceRequest"]["conversation"]["messages"]

    # when: backwards from the latest
    backwards = []
    latest = await page()
    backwards.append(latest)
    while backwards[-1]["pageInfo"]["hasPreviousPage"]:
        backwards.append(await page(before=backwards[-1]["pageInfo"]["startCursor"]))
    # then
    assert [len(p["edges"]) for p in backwards] == [50, 50, 20]
    seen = [e["node"]["body"] for p in reversed(backwards) for e in p["edges"]]
    assert seen == everything
    # when: forwards from the oldest page
    forwards = [backwards[-1]]
    while forwards[-1]["pageInfo"]["hasNextPage"]:
        forwards.append(await page(after=forwards[-1]["pageInfo"]["endCursor"]))
    # then
    assert [len(p["edges"]) for p in forwards] == [20, 50, 50]
    assert [e["node"]["body"] for p in forwards for e in p["edges"]] == everything
    assert forwards[-1]["edges"] == latest["edges"]
    # and every cursor is its message's global id (messages 1..120: the only ones in the database)
    edges = [e for p in forwards for e in p["edges"]]
    assert [e["cursor"] for e in edges] == [mid(i + 1) for i in range(120)]
    assert all(e["cursor"] == e["node"]["id"] for e in edges)


async def test_a_message_id_from_the_subscription_or_polling_pages_history(api_client, room):
    # given: five messages; the client saw the second one (by its id)
    views = [await say(room.customer, room.conversation_id, f"m{i}") for i in range(5)]
    token = await login(api_client, "ada@example.com")
    seen = mid(views[1].id)
    # when
    after = await gql(api_client, READ, {"reference": room.reference, "after": seen}, token=token)
    before = await gql(api_client, READ, {"reference": room.reference, "before": seen}, token=token)
    polled = await gql(api_client, SINCE, {"c": room.conversation_gid, "since": seen}, token=token)
    # then
    assert [e["node"]["body"] for e in after["data"]["serviceRequest"]["conversation"]["messages"]["edges"]] == [
        "m2", "m3", "m4"]
    assert [e["node"]["body"] for e in before["data"]["serviceRequest"]["conversation"]["messages"]["edges"]] == ["m0"]
    assert polled["data"]["chatMessagesSince"] == [
        {"id": mid(v.id), "body": v.body, "senderName": "Ada Eko"} for v in views[2:]]


async def test_a_cursor_of_another_kind_is_a_typed_error(api_client, room):
    token = await login(api_client, "ada@example.com")
    body = await gql(api_client, READ, {"reference": room.reference, "after": encode_id("Booking", 1)}, token=token)
    assert [(e["extensions"]["code"], e["extensions"]["field"], e["message"]) for e in body["errors"]] == [
        ("INVALID_ID", "after", "Not a ChatMessage id")]


async def test_page_size_is_capped(api_client, room):
    token = await login(api_client, "ada@example.com")
    body = await gql(api_client, READ, {"reference": room.reference, "first": 101}, token=token)
    polled = await gql(api_client, SINCE, {"c": room.conversation_gid, "first": 101}, token=token)
    assert error_codes(body) == ["INVALID_PAGE_SIZE"]
    assert error_codes(polled) == ["INVALID_PAGE_SIZE"]


async def test_polling_pages_with_first_and_an_unknown_conversation_is_forbidden(api_client, room):
    # given
    views = [await say(room.provider_user, room.conversation_id, f"m{i}") for i in range(5)]
    token = await login(api_client, "ada@example.com")
    # when
    page1 = await gql(api_client, SINCE, {"c": room.conversation_gid, "first": 2}, token=token)
    page2 = await gql(api_client, SINCE, {"c": room.conversation_gid, "first": 2,
                                          "since": page1["data"]["chatMessagesSince"][-1]["id"]}, token=token)
    latest = await gql(api_client, SINCE, {"c": room.conversation_gid, "since": mid(views[-1].id)}, token=token)
    unknown = await gql(api_client, SINCE, {"c": encode_id("Conversation", 999)}, token=token)
    # then
    assert [m["body"] for m in page1["data"]["chatMessagesSince"]] == ["m0", "m1"]
    assert [m["body"] for m in page2["data"]["chatMessagesSince"]] == ["m2", "m3"]
    assert latest == {"data": {"chatMessagesSince": []}}
    assert (unknown["data"], error_codes(unknown)) == (None, ["FORBIDDEN"])

"""Chat over GraphQL: who may post and read, validation, plain-text bodies and cursor paging."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import select

from domain import chat
from domain import service_request as sr
from models import ChatMessage, OutboxMessage, User
from models.db import session_scope
from resolvers.ids import encode_id
from tests.factories import make_provider, make_service, make_user
from tests.graphql_client import error_codes, gql, login
from tests.test_service_request import Shop, domain_purchase, pay

SEND = """
mutation Send($input: SendChatMessageInput!) {
  sendChatMessage(input: $input) {
    message { id conversationId senderId senderName body createdAt }
    errors { field code message }
  }
}
"""
READ = """
query Read($reference: String!, $first: Int, $after: String, $before: String) {
  serviceRequest(reference: $reference) {
    conversation {
      id
      messages(first: $first, after: $after, before: $before) {
        edges { cursor node { body senderName senderId } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      }
    }
  }
}
"""
NODE = """
query Node($id: ID!) { node(id: $id) { ... on Conversation { id } } }
"""


@dataclass
class Chat:
    reference: str
    conversation_id: int
    conversation_gid: str
    customer: User
    provider_user: User
    admin: User


@pytest.fixture
async def room(shop_for_chat) -> Chat:
    """Ada's paid request, assigned to pro@'s provider; its conversation has no messages yet."""
    customer = await make_user("ada@example.com", full_name="Ada Eko")
    admin = await make_user("ops@example.com", role="admin", full_name="Odim Ops")
    provider_user = await make_user("pro@example.com", role="provider", full_name="Paul Pro")
    provider = await make_provider(user_id=provider_user.id)
    await make_user("eve@example.com")
    other_provider_user = await make_user("other@example.com", role="provider")
    await make_provider(user_id=other_provider_user.id, display_name="Other Plumbing")
    request = await domain_purchase(shop_for_chat, customer)
    await pay(request.id)
    async with session_scope() as s:
        await sr.assign_provider(s, request.id, provider.id, actor=admin)
        conversation_id = await s.scalar(select(chat.Conversation.id).where(
            chat.Conversation.service_request_id == request.id))
    return Chat(request.reference, conversation_id, encode_id("Conversation", conversation_id), customer,
                provider_user, admin)


@pytest.fixture
async def shop_for_chat() -> Shop:
    service, tiers = await make_service(name="Leak repair", tiers=1, prices={"XAF": 10000})
    return Shop(service.id, [tiers[0].id], service.id, tiers[0].id)


async def stored_messages() -> list[tuple[int, str]]:
    async with session_scope() as s:
        return [tuple(r) for r in (await s.execute(
            select(ChatMessage.sender_user_id, ChatMessage.body).order_by(ChatMessage.id))).all()]


async def chat_events(conversation_id: int) -> list[str]:
    async with session_scope() as s:
        return list((await s.scalars(select(OutboxMessage.payload["body"].astext).where(
            OutboxMessage.kind == "event", OutboxMessage.target == f"odim:conversation:{conversation_id}",
        ).order_by(OutboxMessage.id))).all())


async def send(client, room: Chat, body: str, token: str | None) -> dict:
    return await gql(client, SEND, {"input": {"conversationId": room.conversation_gid, "body": body}}, token=token)


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
        assert [e["node"] for e in conversation["messages"]["edges"]] == expected_edges
    assert await stored_messages() == [(u.id, t) for u, t in senders]
    assert await chat_events(room.conversation_id) == [t for _, t in senders]


async def test_an_unrelated_customer_and_a_provider_not_assigned_are_forbidden(api_client, room):
    # given
    await send(api_client, room, "First!", await login(api_client, "ada@example.com"))
    before = (await stored_messages(), await chat_events(room.conversation_id))
    for email in ("eve@example.com", "other@example.com"):
        token = await login(api_client, email)
        # when
        posted = await send(api_client, room, "Let me in", token)
        read = await gql(api_client, READ, {"reference": room.reference}, token=token)
        by_node = await gql(api_client, NODE, {"id": room.conversation_gid}, token=token)
        # then
        assert (posted["data"], error_codes(posted)) == (None, ["FORBIDDEN"])
        assert (read["data"], error_codes(read)) == ({"serviceRequest": {"conversation": None}}, [])
        assert by_node == {"data": {"node": None}}
    assert (await stored_messages(), await chat_events(room.conversation_id)) == before


async def test_anonymous_callers_are_unauthenticated(api_client, room):
    posted = await send(api_client, room, "Hello?", None)
    read = await gql(api_client, READ, {"reference": room.reference})
    assert (posted["data"], error_codes(posted)) == (None, ["UNAUTHENTICATED"])
    assert (read["data"], error_codes(read)) == ({"serviceRequest": {"conversation": None}}, [])
    assert await stored_messages() == []
    assert await chat_events(room.conversation_id) == []


@pytest.mark.parametrize(("body", "expected"), [
    ("", {"field": "body", "code": "EMPTY", "message": "Message is empty"}),
    (" \n\t  ", {"field": "body", "code": "EMPTY", "message": "Message is empty"}),
    ("x" * 4001, {"field": "body", "code": "TOO_LONG", "message": "Messages are limited to 4000 characters"}),
    ("é" * 4001, {"field": "body", "code": "TOO_LONG", "message": "Messages are limited to 4000 characters"}),
])
async def test_an_empty_or_too_long_message_is_refused_and_nothing_is_stored(api_client, room, body, expected):
    body_ = await send(api_client, room, body, await login(api_client, "ada@example.com"))
    assert body_["data"]["sendChatMessage"] == {"message": None, "errors": [expected]}
    assert await stored_messages() == []
    assert await chat_events(room.conversation_id) == []


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


async def test_markup_comes_back_byte_identical_as_plain_text(api_client, room):
    text = '<script>alert("x")</script> &amp; <b>bold</b> \'quoted\' \u202e emoji \U0001f6b0'
    token = await login(api_client, "ada@example.com")
    sent = await send(api_client, room, text, token)
    read = await gql(api_client, READ, {"reference": room.reference}, token=await login(api_client, "pro@example.com"))
    assert sent["data"]["sendChatMessage"]["message"]["body"] == text
    assert read["data"]["serviceRequest"]["conversation"]["messages"]["edges"][0]["node"]["body"] == text
    assert await stored_messages() == [(room.customer.id, text)]


async def test_120_messages_page_by_50_backwards_and_forwards_each_exactly_once(api_client, room):
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
    # and cursors are the message positions
    assert all(e["cursor"] == chat.encode_cursor(i + 1) for i, e in
               enumerate(e for p in forwards for e in p["edges"]))


async def test_page_size_is_capped(api_client, room):
    token = await login(api_client, "ada@example.com")
    body = await gql(api_client, READ, {"reference": room.reference, "first": 101}, token=token)
    assert error_codes(body) == ["INVALID_PAGE_SIZE"]


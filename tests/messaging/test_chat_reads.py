"""Read receipts (never backwards), unread counts per conversation, and the viewer's conversations
(most recent activity first, keyset pages, unread counts in O(1) statements)."""

from __future__ import annotations

from sqlalchemy import select

from domain.messaging import chat
from domain.orders import service_request as sr
from models import ChatRead, Conversation, Provider
from models.db import session_scope
from resolvers.ids import encode_id
from tests.bookings.test_ticket import open_ticket
from tests.messaging.test_chat import MARK, mid, receipts, say
from tests.support.bookings import Cast, bookable_provider, customer, drive, hold, hold_clock, slot
from tests.support.factories import make_service
from tests.support.graphql_client import error_codes, gql, login
from tests.support.orders import domain_purchase, pay
from tests.support.statements import count_statements

CONVERSATION = """
query C($id: ID!) {
  node(id: $id) {
    ... on Conversation {
      unreadCount
      readReceipts { userId lastReadMessageId readAt }
      lastMessage { id body }
    }
  }
}
"""
MINE = """
query Mine($first: Int, $after: String) {
  myConversations(first: $first, after: $after) {
    edges { cursor node { id subjectType subjectId unreadCount lastMessage { body } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
MINE_DEEP = """
query Mine($first: Int) {
  myConversations(first: $first) {
    edges { node { id subjectType lastActivityAt unreadCount lastMessage { body senderName }
                   readReceipts { userId lastReadMessageId } } }
  }
}
"""




async def mark(client, room, token: str, up_to: str | None = None) -> dict:
    variables = {"input": {"conversationId": room.conversation_gid, **({"upTo": up_to} if up_to else {})}}
    return await gql(client, MARK, variables, token=token)


async def view(client, room, token: str) -> dict:
    return (await gql(client, CONVERSATION, {"id": room.conversation_gid}, token=token))["data"]["node"]


# --- read receipts and unread counts -------------------------------------------------------------------------


async def test_marking_read_records_the_latest_message_and_clears_the_unread_count(api_client, room):
    # given: the provider sent three messages, the customer one
    sent = [await say(room.provider_user, room.conversation_id, f"p{i}") for i in range(3)]
    mine = await say(room.customer, room.conversation_id, "c0")
    ada = await login(api_client, "ada@example.com")
    pro = await login(api_client, "pro@example.com")
    assert ((await view(api_client, room, ada))["unreadCount"], (await view(api_client, room, pro))["unreadCount"]) == (
        3, 1)
    # when the customer marks the conversation read (no upTo: up to its latest message)
    marked = await mark(api_client, room, ada)
    # then
    payload = marked["data"]["markConversationRead"]
    assert payload["errors"] == []
    assert payload["conversation"] == {"id": room.conversation_gid, "unreadCount": 0}
    assert payload["readReceipt"] == {"userId": encode_id("User", room.customer.id), "lastReadMessageId": mid(mine.id)}
    seen = await view(api_client, room, pro)
    assert seen["unreadCount"] == 1  # the provider has not read the customer's message
    assert [(r["userId"], r["lastReadMessageId"]) for r in seen["readReceipts"]] == [
        (encode_id("User", room.customer.id), mid(mine.id))]
    assert seen["lastMessage"] == {"id": mid(mine.id), "body": "c0"}
    assert await receipts() == [(room.conversation_id, room.customer.id, mine.id)]
    assert sent[-1].id < mine.id


async def test_marking_read_up_to_a_message_leaves_the_later_ones_unread(api_client, room):
    sent = [await say(room.provider_user, room.conversation_id, f"p{i}") for i in range(4)]
    ada = await login(api_client, "ada@example.com")
    marked = await mark(api_client, room, ada, up_to=mid(sent[1].id))
    assert marked["data"]["markConversationRead"]["conversation"]["unreadCount"] == 2
    assert await receipts() == [(room.conversation_id, room.customer.id, sent[1].id)]


async def test_a_receipt_never_moves_backwards(api_client, room):
    # given the customer read up to the third message
    sent = [await say(room.provider_user, room.conversation_id, f"p{i}") for i in range(3)]
    ada = await login(api_client, "ada@example.com")
    await mark(api_client, room, ada, up_to=mid(sent[2].id))
    async with session_scope() as s:
        before = (await s.scalar(select(ChatRead))).read_at
    # when an older client marks the first one read
    again = await mark(api_client, room, ada, up_to=mid(sent[0].id))
    # then the receipt is as it was (message and time)
    assert again["data"]["markConversationRead"]["readReceipt"]["lastReadMessageId"] == mid(sent[2].id)
    assert again["data"]["markConversationRead"]["conversation"]["unreadCount"] == 0
    async with session_scope() as s:
        row = await s.scalar(select(ChatRead))
    assert (row.last_read_message_id, row.read_at) == (sent[2].id, before)


async def test_up_to_a_message_of_another_conversation_is_not_found_and_nothing_is_written(api_client, room,
                                                                                          shop_for_chat):
    # given a message in another request's conversation
    other = await domain_purchase(shop_for_chat, room.customer)
    await pay(other.id)
    async with session_scope() as s:
        other_cid = await s.scalar(select(Conversation.id).where(Conversation.service_request_id == other.id))
    elsewhere = await say(room.customer, other_cid, "elsewhere")
    await say(room.provider_user, room.conversation_id, "here")
    ada = await login(api_client, "ada@example.com")
    # when
    foreign = await mark(api_client, room, ada, up_to=mid(elsewhere.id))
    malformed = await mark(api_client, room, ada, up_to=encode_id("Booking", 1))
    # then
    assert foreign["data"]["markConversationRead"] == {"conversation": None, "readReceipt": None, "errors": [
        {"field": "upTo", "code": "NOT_FOUND", "message": "No such message in this conversation"}]}
    assert malformed["data"]["markConversationRead"] == {"conversation": None, "readReceipt": None, "errors": [
        {"field": "upTo", "code": "INVALID_ID", "message": "Not a ChatMessage id"}]}
    assert await receipts() == []


async def test_marking_an_empty_conversation_read_writes_nothing(api_client, room):
    marked = await mark(api_client, room, await login(api_client, "ada@example.com"))
    assert marked["data"]["markConversationRead"] == {
        "conversation": {"id": room.conversation_gid, "unreadCount": 0}, "readReceipt": None, "errors": []}
    assert await receipts() == []


async def test_unread_counts_of_many_conversations_take_one_statement(room, shop_for_chat):
    # given three conversations of the customer: 2 unread, 0 unread (read), none at all
    cids = [room.conversation_id]
    for _ in range(2):
        request = await domain_purchase(shop_for_chat, room.customer)
        async with session_scope() as s:
            cids.append(await s.scalar(select(Conversation.id).where(Conversation.service_request_id == request.id)))
    await say(room.provider_user, cids[0], "a")
    await say(room.provider_user, cids[0], "b")
    await say(room.customer, cids[0], "mine")
    await say(room.admin, cids[1], "c")
    async with session_scope() as s:
        await chat.mark_read(s, room.customer, cids[1])
    # when
    async with session_scope() as s:
        with count_statements() as statements:
            counts = await chat.unread_counts(s, room.customer.id, cids)
    # then
    assert counts == {cids[0]: 2, cids[1]: 0, cids[2]: 0}
    assert len(statements) == 1


# --- the viewer's conversations -------------------------------------------------------------------------------


async def request_conversation(shop, user) -> int:
    request = await domain_purchase(shop, user)
    async with session_scope() as s:
        return await s.scalar(select(Conversation.id).where(Conversation.service_request_id == request.id))


async def test_my_conversations_lists_mine_by_latest_activity_in_keyset_pages(api_client, room, shop_for_chat):
    # given: four conversations of Ada (room's, then three newer), one of Eve's; a message in Ada's oldest
    ada_cids = [room.conversation_id] + [await request_conversation(shop_for_chat, room.customer) for _ in range(3)]
    eve_cid = await request_conversation(shop_for_chat, room.other_customer)
    await say(room.provider_user, room.conversation_id, "news")
    ada = await login(api_client, "ada@example.com")
    # when: pages of two
    pages = [(await gql(api_client, MINE, {"first": 2}, token=ada))["data"]["myConversations"]]
    while pages[-1]["pageInfo"]["hasNextPage"]:
        pages.append((await gql(api_client, MINE, {"first": 2, "after": pages[-1]["pageInfo"]["endCursor"]},
                                token=ada))["data"]["myConversations"])
    # then: the one with the message first, then the newest first; each once
    nodes = [e["node"] for p in pages for e in p["edges"]]
    assert [n["id"] for n in nodes] == [encode_id("Conversation", c) for c in
                                        [ada_cids[0], ada_cids[3], ada_cids[2], ada_cids[1]]]
    assert [len(p["edges"]) for p in pages] == [2, 2]
    assert nodes[0]["unreadCount"] == 1 and nodes[0]["lastMessage"] == {"body": "news"}
    assert [n["unreadCount"] for n in nodes[1:]] == [0, 0, 0]
    assert {n["subjectType"] for n in nodes} == {"SERVICE_REQUEST"}
    assert encode_id("Conversation", eve_cid) not in [n["id"] for n in nodes]


async def test_my_conversations_for_the_assigned_provider_another_provider_an_admin_and_anonymous(api_client, room,
                                                                                                   shop_for_chat):
    # given: the room (assigned to pro@) and one more request of Eve, unassigned
    eve_cid = await request_conversation(shop_for_chat, room.other_customer)
    # when
    answers = {}
    for email in ("pro@example.com", "other@example.com", "ops@example.com", "eve@example.com"):
        body = await gql(api_client, MINE, {"first": 10}, token=await login(api_client, email))
        answers[email] = [e["node"]["id"] for e in body["data"]["myConversations"]["edges"]]
    anonymous = await gql(api_client, MINE, {"first": 10})
    # then
    assert answers == {
        "pro@example.com": [room.conversation_gid],
        "other@example.com": [],
        "ops@example.com": [encode_id("Conversation", eve_cid), room.conversation_gid],
        "eve@example.com": [encode_id("Conversation", eve_cid)],
    }
    assert (anonymous["data"], error_codes(anonymous)) == (None, ["UNAUTHENTICATED"])


async def test_my_conversations_include_bookings_and_tickets_i_take_part_in(api_client):
    # given: Ada's ticket with a paid visit from Paid Fix and a held one from Held Fix, and their conversations
    service, tiers = await make_service(name="Fridge repair", category="appliances", tiers=1)
    paid_fix = await bookable_provider("Paid Fix", service=(service, tiers), categories=["appliances"])
    held_fix = await bookable_provider("Held Fix", service=(service, tiers), categories=["appliances"])
    ada = await customer()
    made = await open_ticket(ada)
    c = Cast(paid_fix, held_fix, ada, ada, ada)
    paid = await hold(paid_fix, ada, slot(0), now=hold_clock(0), ticket_id=made.id)
    await drive(c, paid.id, "paid")
    held = await hold(held_fix, ada, slot(1), now=hold_clock(1), ticket_id=made.id)
    async with session_scope() as s:
        ticket_cid = (await chat.conversations_for(s, "ticket", [made.id]))[made.id].id
        paid_cid = (await chat.conversations_for(s, "booking", [paid.id]))[paid.id].id
        held_cid = (await chat.conversations_for(s, "booking", [held.id]))[held.id].id
    # when
    answers = {}
    for email in ("ada@example.com", "paid.fix@example.com", "held.fix@example.com"):
        body = await gql(api_client, MINE, {"first": 10}, token=await login(api_client, email))
        answers[email] = {(e["node"]["subjectType"], e["node"]["id"]) for e in body["data"]["myConversations"]["edges"]}
    # then (a booking's order has no conversation of its own: the visit's is the one)
    gid = lambda cid: encode_id("Conversation", cid)  # noqa: E731
    assert answers == {
        "ada@example.com": {("TICKET", gid(ticket_cid)), ("BOOKING", gid(paid_cid)), ("BOOKING", gid(held_cid))},
        "paid.fix@example.com": {("TICKET", gid(ticket_cid)), ("BOOKING", gid(paid_cid))},
        "held.fix@example.com": {("BOOKING", gid(held_cid))},
    }


async def test_my_conversations_takes_the_same_statements_for_3_or_12_conversations(api_client, room, shop_for_chat,
                                                                                   unlimited):
    # given: twelve conversations of the customer, each with messages from the provider and a receipt
    async with session_scope() as s:
        provider_id = await s.scalar(select(Provider.id).where(Provider.user_id == room.provider_user.id))
    cids = [room.conversation_id]
    for _ in range(11):
        request = await domain_purchase(shop_for_chat, room.customer)
        await pay(request.id)
        async with session_scope() as s:
            await sr.assign_provider(s, request.id, provider_id, actor=room.admin)
            cids.append(await s.scalar(select(Conversation.id).where(Conversation.service_request_id == request.id)))
    for cid in cids:
        await say(room.provider_user, cid, "hello")
        await say(room.provider_user, cid, "again")
        async with session_scope() as s:
            await chat.mark_read(s, room.customer, cid, up_to=None)
        await say(room.provider_user, cid, "unread")
    token = await login(api_client, "ada@example.com")
    # when
    counts = {}
    for first in (3, 12):
        with count_statements() as statements:
            body = await gql(api_client, MINE_DEEP, {"first": first}, token=token)
        nodes = [e["node"] for e in body["data"]["myConversations"]["edges"]]
        assert len(nodes) == first
        assert all(n["unreadCount"] == 1 and n["lastMessage"] == {"body": "unread", "senderName": "Paul Pro"}
                   and len(n["readReceipts"]) == 1 for n in nodes)
        counts[first] = len(statements)
    # then: viewer 1, page 1, unread counts 1, last messages 1, read receipts 1
    assert counts == {3: 5, 12: 5}

"""Conversations of bookings and tickets: created on first access, exactly one subject each, and
their participants for every role (customer, another customer, the provider taking part, a provider
who does not, admin, anonymous), through GraphQL and the domain check the subscription uses."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from domain.messaging import chat
from domain.shared.errors import Forbidden
from models import Booking, ChatMessage, ChatRead, Conversation, OutboxMessage, User
from models.db import session_scope
from resolvers.ids import encode_id
from tests.bookings.test_ticket import open_ticket
from tests.messaging.test_chat import MARK, SEND, SINCE
from tests.support.bookings import (
    Cast,
    attempt,
    bookable_provider,
    cast,
    customer,
    drive,
    hold,
    hold_clock,
    offer_to,
    slot,
)
from tests.support.factories import make_service, make_user
from tests.support.graphql_client import error_codes, gql, login

BOOKING_CONVERSATION = "query B($id: ID!) { booking(id: $id) { conversation { id subjectType subjectId } } }"
TICKET_CONVERSATION = "query T($id: ID!) { ticket(id: $id) { conversation { id subjectType subjectId } } }"


async def conversation_count() -> int:
    async with session_scope() as s:
        return await s.scalar(select(func.count()).select_from(Conversation))


async def written() -> tuple[int, int, int]:
    """(messages, chat events, read receipts) in the database."""
    async with session_scope() as s:
        return (await s.scalar(select(func.count()).select_from(ChatMessage)),
                await s.scalar(select(func.count()).select_from(OutboxMessage).where(
                    OutboxMessage.target.like("odim:conversation:%"))),
                await s.scalar(select(func.count()).select_from(ChatRead)))


async def new_booking(c: Cast, index: int, status: str = "held", *, provider=None) -> int:
    held = await hold(provider or c.b, c.customer, slot(index), now=hold_clock(index))
    await drive(c, held.id, status)
    return held.id


async def conversation_of(kind: str, subject_id: int) -> Conversation:
    async with session_scope() as s:
        return (await chat.conversations_for(s, kind, [subject_id]))[subject_id]


async def access(conversation_id: int, user: User | None) -> bool:
    """The single check (the live subscription's too)."""
    async with session_scope() as s:
        try:
            await chat.get_conversation(s, conversation_id, user)
        except Forbidden:
            return False
    return True


async def everything(client, conversation_id: int, token: str | None) -> tuple:
    """What ``token`` gets when it posts, polls and marks read: the payload errors, or top-level codes."""
    gid = encode_id("Conversation", conversation_id)
    posted = await gql(client, SEND, {"input": {"conversationId": gid, "body": "Hi"}}, token=token)
    polled = await gql(client, SINCE, {"c": gid}, token=token)
    marked = await gql(client, MARK, {"input": {"conversationId": gid}}, token=token)
    return (posted["data"]["sendChatMessage"]["errors"] if posted["data"] else error_codes(posted),
            [m["body"] for m in polled["data"]["chatMessagesSince"]] if polled["data"] else error_codes(polled),
            marked["data"]["markConversationRead"]["errors"] if marked["data"] else error_codes(marked))


# --- creation --------------------------------------------------------------------------------------------


async def test_a_booking_conversation_is_created_once_on_first_access_even_concurrently():
    # given a held booking without a conversation
    c = await cast()
    booking_id = await new_booking(c, 0)
    assert await conversation_count() == 0

    async def first_access() -> int:
        async with session_scope() as s:
            return (await chat.conversations_for(s, "booking", [booking_id]))[booking_id].id

    # when eight requests open it at once, then once more
    ids = await asyncio.gather(*(first_access() for _ in range(8)))
    again = await first_access()
    # then one conversation, the same for everyone
    assert len(set(ids)) == 1 and again == ids[0]
    async with session_scope() as s:
        rows = [(r.service_request_id, r.booking_id, r.ticket_id, r.last_message_id)
                for r in (await s.scalars(select(Conversation).where(Conversation.booking_id.isnot(None)))).all()]
    assert rows == [(None, booking_id, None, None)]


async def test_a_conversation_belongs_to_exactly_one_subject():
    # given a booking and a ticket
    c = await cast()
    booking_id = await new_booking(c, 0)
    made = await open_ticket(c.customer, category="plumbing")
    # when / then: none, or two subjects, are refused by the CHECK constraint
    for values in ({}, {"booking_id": booking_id, "ticket_id": made.id}):
        with pytest.raises(IntegrityError) as caught:
            async with session_scope() as s:
                s.add(Conversation(**values))
                await s.flush()
        assert "ck_conversations_subject" in str(caught.value)
    assert await conversation_count() == 0


async def test_booking_conversation_field_creates_and_returns_the_same_conversation(api_client):
    # given
    c = await cast()
    booking_id = await new_booking(c, 0, "paid")
    query = {"id": encode_id("Booking", booking_id)}
    # when: the customer, then the provider, open the booking's conversation
    by_customer = await gql(api_client, BOOKING_CONVERSATION, query, token=await login(api_client, "ada@example.com"))
    by_provider = await gql(api_client, BOOKING_CONVERSATION, query,
                            token=await login(api_client, "eko.plumbing@example.com"))
    # then
    async with session_scope() as s:
        cid = await s.scalar(select(Conversation.id).where(Conversation.booking_id == booking_id))
    expected = {"data": {"booking": {"conversation": {
        "id": encode_id("Conversation", cid), "subjectType": "BOOKING", "subjectId": encode_id("Booking", booking_id)}}}}
    assert by_customer == expected
    assert by_provider == expected
    assert await conversation_count() == 1  # the booking's own; its order (created at checkout) has none


# --- a booking's participants, every role ------------------------------------------------------------------

BOOKING_ROLES = {
    "customer": ("ada@example.com", True), "other_customer": ("bob@example.com", False),
    "assigned_provider": ("eko.plumbing@example.com", True),
    "unassigned_provider": ("bonaberi.repairs@example.com", False),
    "admin": ("ops@example.com", True), "anonymous": (None, False),
}


@pytest.mark.parametrize("role", list(BOOKING_ROLES))
async def test_each_role_in_a_booking_conversation(api_client, role):
    # given a paid booking, its conversation with one message from the customer
    c = await cast()
    booking_id = await new_booking(c, 0, "paid")
    conversation = await conversation_of("booking", booking_id)
    async with session_scope() as s:
        await chat.send_message(s, c.customer, conversation.id, "Gate code 1234")
    email, allowed = BOOKING_ROLES[role]
    token = await login(api_client, email) if email else None
    user = {"customer": c.customer, "other_customer": c.other_customer, "assigned_provider": c.b.provider_user,
            "unassigned_provider": c.substitute.provider_user, "admin": c.admin, "anonymous": None}[role]
    before = await written()
    # when
    seen = await gql(api_client, BOOKING_CONVERSATION, {"id": encode_id("Booking", booking_id)}, token=token)
    outcome = await everything(api_client, conversation.id, token)
    subscribe = await access(conversation.id, user)
    # then
    if allowed:
        assert seen["data"]["booking"]["conversation"]["id"] == encode_id("Conversation", conversation.id)
        assert outcome == ([], ["Gate code 1234", "Hi"], [])
        assert subscribe is True
        assert await written() == (before[0] + 1, before[1] + 1, before[2] + 1)
        return
    assert seen["data"] == {"booking": None}
    code = "UNAUTHENTICATED" if role == "anonymous" else "FORBIDDEN"
    assert outcome == ([code], [code], [code])
    assert subscribe is False
    assert await written() == before


async def test_a_substitute_who_takes_the_visit_over_replaces_the_provider_in_its_conversation():
    # given a visit its provider cannot make, with a conversation
    c = await cast()
    booking_id = await new_booking(c, 0, "cannot_make_it")
    conversation = await conversation_of("booking", booking_id)
    assert (await access(conversation.id, c.b.provider_user), await access(conversation.id, c.substitute.provider_user)) == (
        True, False)
    # when the substitute takes it over
    await offer_to(booking_id, c.substitute.provider.id)
    await attempt(c, booking_id, "accepted", "other_provider")
    # then
    async with session_scope() as s:
        assert (await s.get(Booking, booking_id)).provider_id == c.substitute.provider.id
        assert await chat.participant_ids(s, conversation) == {c.customer.id, c.substitute.provider_user.id}
    assert (await access(conversation.id, c.b.provider_user), await access(conversation.id, c.substitute.provider_user)) == (
        False, True)


# --- a ticket's participants ------------------------------------------------------------------------------


async def ticket_world():
    """Ada's ticket with four visits from four providers: held (never paid), paid, declined and
    completed. Plus Bob (another customer) and an admin."""
    service, tiers = await make_service(name="Fridge repair", category="appliances", tiers=1)
    providers = {name: await bookable_provider(name, service=(service, tiers), categories=["appliances"])
                 for name in ("Held Fix", "Paid Fix", "Declined Fix", "Done Fix")}
    ada = await customer()
    bob = await customer("bob@example.com")
    admin = await make_user("ops@example.com", role="admin", full_name="Odim Ops")
    made = await open_ticket(ada)
    c = Cast(providers["Held Fix"], providers["Paid Fix"], ada, bob, admin)
    for index, (name, status) in enumerate((("Held Fix", "held"), ("Paid Fix", "paid"),
                                            ("Declined Fix", "declined"), ("Done Fix", "completed"))):
        held = await hold(providers[name], ada, slot(index), now=hold_clock(index), ticket_id=made.id)
        await drive(c, held.id, status)
    return made, providers, ada, bob, admin


async def test_a_ticket_conversation_takes_in_the_providers_of_paid_or_accepted_visits_only(api_client):
    # given
    made, providers, ada, bob, admin = await ticket_world()
    conversation = await conversation_of("ticket", made.id)
    # when
    async with session_scope() as s:
        participants = await chat.participant_ids(s, conversation)
    allowed = {name: await access(conversation.id, user) for name, user in (
        ("customer", ada), ("other_customer", bob), ("admin", admin), ("anonymous", None),
        *((name, p.provider_user) for name, p in providers.items()))}
    # then
    assert participants == {ada.id, providers["Paid Fix"].provider_user.id, providers["Done Fix"].provider_user.id}
    assert allowed == {"customer": True, "other_customer": False, "admin": True, "anonymous": False,
                       "Held Fix": False, "Paid Fix": True, "Declined Fix": False, "Done Fix": True}


async def test_ticket_conversation_field_is_null_for_a_provider_who_sees_the_ticket_but_takes_no_part(api_client):
    # given
    made, providers, ada, bob, admin = await ticket_world()
    query = {"id": encode_id("Ticket", made.id)}
    # when
    answers = {email: await gql(api_client, TICKET_CONVERSATION, query, token=await login(api_client, email))
               for email in ("ada@example.com", "held.fix@example.com", "paid.fix@example.com", "ops@example.com",
                             "bob@example.com")}
    # then
    async with session_scope() as s:
        cid = await s.scalar(select(Conversation.id).where(Conversation.ticket_id == made.id))
    conversation = {"id": encode_id("Conversation", cid), "subjectType": "TICKET", "subjectId": encode_id("Ticket", made.id)}
    assert answers == {
        "ada@example.com": {"data": {"ticket": {"conversation": conversation}}},
        "held.fix@example.com": {"data": {"ticket": {"conversation": None}}},  # sees the ticket, not its chat
        "paid.fix@example.com": {"data": {"ticket": {"conversation": conversation}}},
        "ops@example.com": {"data": {"ticket": {"conversation": conversation}}},
        "bob@example.com": {"data": {"ticket": None}},
    }


async def test_the_held_visit_provider_cannot_post_in_the_ticket_conversation(api_client):
    made, providers, ada, bob, admin = await ticket_world()
    conversation = await conversation_of("ticket", made.id)
    before = await written()
    outcome = await everything(api_client, conversation.id, await login(api_client, "held.fix@example.com"))
    assert outcome == (["FORBIDDEN"], ["FORBIDDEN"], ["FORBIDDEN"])
    assert await written() == before

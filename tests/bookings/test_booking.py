"""The booking state machine at the domain level, against real PostgreSQL and Redis:
holding a slot, checkout and payment into escrow, every row of ``booking.TRANSITIONS`` with its
allowed actors and refused to the others (nothing changed), the effects of the transitions on the
order's money, the timers, and concurrent transitions on one booking.

Time: bookings are made for March 2027 (``booking_fixtures.MONDAY``) with explicit ``now`` values
where a rule depends on time (hold expiry, notice, the cancellation policy, the no-show wait, the
timers); payments and completions use the real clock, which is months earlier.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text, update

from domain.bookings import booking
from domain.bookings import locks as booking_locks
from domain.money import ledger
from domain.orders import dispute
from domain.orders import payment as payment_domain
from domain.providers import availability
from domain.providers.availability import SlotNotOffered
from domain.shared import live
from domain.shared.errors import DomainError, Forbidden
from models import (
    Booking,
    BookingStatusChange,
    Dispute,
    Email,
    Escalation,
    LedgerEntry,
    OutboxMessage,
    Payment,
    Provider,
    ProviderEarning,
    Refund,
    ServiceRequest,
    ServiceRequestStatusChange,
    SubstitutionOffer,
    Ticket,
)
from models.bookings import BOOKING_STATUSES
from models.db import get_sessionmaker, session_scope
from settings import get_settings
from tests.support.bookings import (
    MONDAY,
    ROUTES,
    Cast,
    attempt,
    cast,
    checkout_and_pay,
    customer,
    drive,
    hold,
    hold_clock,
    offer_to,
    slot,
    status_of,
)
from tests.support.factories import make_provider, make_service, make_user

PRICE = 10_000  # XAF, the fixtures' tier price (XAF has no minor unit)
START = slot(0)  # Monday 1 March 2027, 09:00 UTC = 10:00 in Douala


# --- reading the world --------------------------------------------------------------------------


@dataclass(frozen=True)
class Trace:
    """Everything a booking transition can write, counted (a refused attempt must leave it equal)."""

    status: str
    provider_id: int
    history: int
    events: int  # outbox events on the booking's live channel
    outbox: int
    emails: int
    ledger_entries: int
    refunds: int
    disputes: int
    bookings: int
    offers: tuple[str, ...]
    order_status: str | None
    order_history: int


async def trace(booking_id: int) -> Trace:
    async with session_scope() as s:
        row = await s.get(Booking, booking_id)
        order = await s.get(ServiceRequest, row.service_request_id) if row.service_request_id else None

        async def count(model, *where) -> int:
            return await s.scalar(select(func.count()).select_from(model).where(*where))

        return Trace(
            status=row.status, provider_id=row.provider_id,
            history=await count(BookingStatusChange, BookingStatusChange.booking_id == booking_id),
            events=await count(OutboxMessage, OutboxMessage.target == live.booking_channel(booking_id)),
            outbox=await count(OutboxMessage), emails=await count(Email), ledger_entries=await count(LedgerEntry),
            refunds=await count(Refund), disputes=await count(Dispute), bookings=await count(Booking),
            offers=tuple((await s.scalars(select(SubstitutionOffer.status).where(
                SubstitutionOffer.booking_id == booking_id).order_by(SubstitutionOffer.id))).all()),
            order_status=order.status if order else None,
            order_history=await count(ServiceRequestStatusChange,
                                      ServiceRequestStatusChange.service_request_id == order.id) if order else 0,
        )


async def history(booking_id: int) -> list[tuple[str | None, str, str, int | None]]:
    """``(from, to, actor_type, actor_user_id)`` per history row, oldest first."""
    async with session_scope() as s:
        rows = (await s.scalars(select(BookingStatusChange).where(BookingStatusChange.booking_id == booking_id)
                                .order_by(BookingStatusChange.id))).all()
        return [(r.from_status, r.to_status, r.actor_type, r.actor_user_id) for r in rows]


async def last_event(booking_id: int) -> dict:
    async with session_scope() as s:
        return await s.scalar(select(OutboxMessage.payload).where(OutboxMessage.target == live.booking_channel(booking_id))
                              .order_by(OutboxMessage.id.desc()).limit(1))


async def load(booking_id: int) -> Booking:
    async with session_scope() as s:
        return await s.get(Booking, booking_id)


async def order_of(booking_id: int) -> ServiceRequest:
    async with session_scope() as s:
        row = await s.get(Booking, booking_id)
        return await s.get(ServiceRequest, row.service_request_id)


async def escrow_balance(order_id: int) -> int:
    async with session_scope() as s:
        return await ledger.balance(s, ledger.escrow(order_id, "XAF"))


async def refunds_of(order_id: int) -> list[tuple[int, str]]:
    """``(amount_minor, reason)`` of the order's refunds, oldest first."""
    async with session_scope() as s:
        rows = (await s.scalars(select(Refund).where(Refund.service_request_id == order_id).order_by(Refund.id))).all()
        return [(r.amount_minor, r.reason) for r in rows]


async def ledger_ok() -> None:
    async with session_scope() as s:
        check = await ledger.verify(s)
    assert check.ok, check


async def new_booking(c: Cast, index: int, status: str = "held", *, who=None) -> int:
    """A booking of ``c``'s provider at ``slot(index)`` held at ``hold_clock(index)``, driven to ``status``."""
    held = await hold(c.b, who or c.customer, slot(index), now=hold_clock(index))
    await drive(c, held.id, status)
    return held.id


def table_message(actor_type: str, frm: str, to: str) -> str:
    article = "An" if actor_type[0] in "aeiou" else "A"
    return f"{article} {actor_type} cannot move a booking from {frm} to {to}"


# --- holding a slot -----------------------------------------------------------------------------


async def test_hold_creates_a_held_booking_for_the_hold_time():
    # given a bookable provider and a customer
    b_cast = await cast()
    now = MONDAY - timedelta(days=3)
    # when the customer holds 10:00 (Douala) on Monday
    held = await hold(b_cast.b, b_cast.customer, START, now=now)
    # then the booking is held for settings.booking_hold_seconds, for the service's 60-minute slot
    row = await load(held.id)
    assert (row.status, row.starts_at, row.ends_at, row.blocked_until) == ("held", START, START + timedelta(hours=1),
                                                                            START + timedelta(hours=1))
    assert row.hold_expires_at == now + timedelta(seconds=get_settings().booking_hold_seconds)
    assert (row.provider_id, row.customer_user_id, row.tier_id, row.currency, row.time_zone) == (
        b_cast.b.provider.id, b_cast.customer.id, b_cast.b.tier.id, "XAF", "Africa/Douala")
    assert row.service_request_id is None
    assert row.reference.startswith("BKG-") and len(row.reference) == 13
    assert await history(held.id) == [(None, "held", "customer", b_cast.customer.id)]
    event = await last_event(held.id)
    assert (event["status"], event["previousStatus"], event["actorType"], event["bookingId"]) == (
        "held", None, "customer", held.id)
    assert (await trace(held.id)).events == 1


async def test_hold_of_a_held_slot_is_slot_unavailable_and_writes_nothing():
    # given a slot held by one customer
    c = await cast()
    first = await hold(c.b, c.customer, START, now=hold_clock(0))
    before = await trace(first.id)
    # when another customer holds the same slot
    with pytest.raises(booking.SlotUnavailable) as refused:
        await hold(c.b, c.other_customer, START, now=hold_clock(0))
    # then it is refused by the exclusion constraint and nothing was written
    assert (refused.value.code, refused.value.field, refused.value.message) == (
        "SLOT_UNAVAILABLE", "start", "This time is no longer available: choose another slot")
    assert await trace(first.id) == before
    assert before.bookings == 1


async def test_hold_of_a_slot_overlapping_a_longer_one_is_slot_unavailable():
    # given a 90-minute service beside the 60-minute one, and the 90-minute slot 08:00-09:30 local held
    c = await cast()
    long_service, tiers = await make_service(name="Boiler service", tiers=1)
    async with session_scope() as s:
        await availability.set_service_slot(s, c.b.provider.id, long_service.id, 90)
    async with session_scope() as s:
        await booking.hold_slot(s, customer=c.customer, provider_id=c.b.provider.id, service_id=long_service.id,
                                start=slot(0, 7), currency="XAF", now=hold_clock(0))
    # when another customer holds the 60-minute slot 09:00-10:00 local, which overlaps it
    with pytest.raises(booking.SlotUnavailable):
        await hold(c.b, c.other_customer, slot(0, 8), now=hold_clock(0))
    # then only the back-to-back slot after it can be held
    after = await hold(c.b, c.other_customer, slot(0, 9), now=hold_clock(0))
    assert (await trace(after.id)).bookings == 2


@pytest.mark.parametrize("start", [slot(0, 9) + timedelta(minutes=30), slot(0, 17), slot(0, 5)],
                         ids=["between-steps", "after-hours", "before-hours"])
async def test_hold_of_a_time_the_plan_does_not_offer_is_slot_not_offered(start):
    # given a provider open 08:00-18:00 local (07:00-17:00 UTC) with 60-minute slots from 08:00
    c = await cast()
    # when a customer holds a start that is not one of its slots
    with pytest.raises(SlotNotOffered) as refused:
        await hold(c.b, c.customer, start, now=hold_clock(0))
    # then it is refused and no booking exists
    assert (refused.value.code, refused.value.field) == ("SLOT_NOT_OFFERED", "start")
    async with session_scope() as s:
        assert await s.scalar(select(func.count()).select_from(Booking)) == 0
        assert await s.scalar(select(func.count()).select_from(OutboxMessage)) == 0


async def test_hold_inside_the_minimum_notice_is_refused():
    # given a provider asking for 120 minutes' notice
    c = await cast()
    async with session_scope() as s:
        await availability.set_booking_rules(s, c.b.provider.id, min_notice_minutes=120, buffer_minutes=0,
                                             horizon_days=366)
    # when a customer holds a slot 119 minutes ahead
    with pytest.raises(SlotNotOffered):
        await hold(c.b, c.customer, START, now=START - timedelta(minutes=119))
    async with session_scope() as s:
        assert await s.scalar(select(func.count()).select_from(Booking)) == 0
    # then 120 minutes ahead is still possible
    held = await hold(c.b, c.customer, START, now=START - timedelta(minutes=120))
    assert (await load(held.id)).status == "held"


async def test_hold_with_the_same_idempotency_key_returns_the_same_booking():
    # given a hold made with an idempotency key
    c = await cast()
    first = await hold(c.b, c.customer, START, now=hold_clock(0), idempotency_key="hold-1")
    # when the client retries it
    again = await hold(c.b, c.customer, START, now=hold_clock(0), idempotency_key="hold-1")
    # then it gets the same booking and nothing more is written
    assert again.id == first.id
    assert await history(first.id) == [(None, "held", "customer", c.customer.id)]
    t = await trace(first.id)
    assert (t.bookings, t.events, t.outbox) == (1, 1, 1)


async def test_an_idempotency_key_reused_for_another_slot_is_refused():
    # given a hold made with an idempotency key
    c = await cast()
    first = await hold(c.b, c.customer, START, now=hold_clock(0), idempotency_key="hold-1")
    # when the same key comes with another start
    with pytest.raises(DomainError) as refused:
        await hold(c.b, c.customer, START + timedelta(hours=1), now=hold_clock(0), idempotency_key="hold-1")
    # then it is refused and nothing more is written
    assert refused.value.code == "IDEMPOTENCY_KEY_REUSED"
    t = await trace(first.id)
    assert (t.bookings, t.events, t.outbox) == (1, 1, 1)


@pytest.mark.parametrize(("change", "code"), [({"verified": False}, "PROVIDER_NOT_BOOKABLE"),
                                              ({"suspended": True}, "PROVIDER_SUSPENDED")], ids=["unverified", "suspended"])
async def test_hold_on_a_provider_that_is_not_bookable_is_refused(change, code):
    # given a provider that is unverified or suspended (a suspension says so: PROVIDER_SUSPENDED)
    c = await cast()
    async with session_scope() as s:
        await s.execute(update(Provider).where(Provider.id == c.b.provider.id).values(**change))
    # when a customer holds one of its slots
    with pytest.raises(DomainError) as refused:
        await hold(c.b, c.customer, START, now=hold_clock(0))
    # then it is refused and nothing is written
    assert (refused.value.code, refused.value.field) == (code, "providerId")
    async with session_scope() as s:
        assert await s.scalar(select(func.count()).select_from(Booking)) == 0


async def test_hold_on_another_customers_ticket_is_forbidden():
    # given a ticket of another customer
    c = await cast()
    async with session_scope() as s:
        ticket = Ticket(reference="TKT-0000-0001", customer_user_id=c.other_customer.id, category="plumbing",
                        appliance="Kitchen tap", location="SRID=4326;POINT(9.7679 4.0511)")
        s.add(ticket)
        await s.flush()
        ticket_id = ticket.id
    # when the customer holds a slot for it
    with pytest.raises(Forbidden) as refused:
        await hold(c.b, c.customer, START, now=hold_clock(0), ticket_id=ticket_id)
    # then it is forbidden and nothing is written
    assert (refused.value.code, refused.value.field) == ("FORBIDDEN", "ticketId")
    async with session_scope() as s:
        assert await s.scalar(select(func.count()).select_from(Booking)) == 0
    # and its owner may
    held = await hold(c.b, c.other_customer, START, now=hold_clock(0), ticket_id=ticket_id)
    assert (await load(held.id)).ticket_id == ticket_id


# --- checkout and payment -----------------------------------------------------------------------


async def test_checkout_opens_a_booking_order_for_the_tier_price():
    # given a held booking
    c = await cast()
    held = await hold(c.b, c.customer, START, now=hold_clock(0))
    # when the customer checks out
    async with session_scope() as s:
        out = await booking.checkout(s, held.id, customer=c.customer)
    # then a booking order of the tier's price (no guest fee) is assigned to the provider, with a pending payment
    order = await order_of(held.id)
    assert (order.kind, order.status, order.assigned_provider_id, order.customer_user_id) == (
        "booking", "awaiting_payment", c.b.provider.id, c.customer.id)
    assert (order.amount_minor, order.price_minor, order.guest_surcharge_minor, order.urgent_surcharge_minor,
            order.currency) == (PRICE, PRICE, 0, 0, "XAF")
    assert (out.order.id, out.payment.amount_minor, out.payment.status) == (order.id, PRICE, "pending")
    assert (out.fee_breakdown.total, out.fee_breakdown.guest_surcharge) == (PRICE, 0)
    assert out.checkout_url
    # and the booking is still held
    assert (await load(held.id)).status == "held"


async def test_checkout_twice_returns_the_same_checkout():
    # given a checkout opened for a held booking
    c = await cast()
    held = await hold(c.b, c.customer, START, now=hold_clock(0))
    async with session_scope() as s:
        first = await booking.checkout(s, held.id, customer=c.customer)
    before = await trace(held.id)
    # when the customer opens it again during the hold
    async with session_scope() as s:
        again = await booking.checkout(s, held.id, customer=c.customer)
    # then it is the same order, payment and URL, and nothing new is written
    assert (again.order.id, again.payment.id, again.checkout_url) == (first.order.id, first.payment.id,
                                                                       first.checkout_url)
    assert await trace(held.id) == before
    async with session_scope() as s:
        assert await s.scalar(select(func.count()).select_from(Payment)) == 1


async def test_checkout_of_another_customers_booking_is_forbidden():
    # given a customer's held booking
    c = await cast()
    held = await hold(c.b, c.customer, START, now=hold_clock(0))
    before = await trace(held.id)
    # when another customer checks it out, then it is forbidden and nothing is written
    with pytest.raises(Forbidden):
        async with session_scope() as s:
            await booking.checkout(s, held.id, customer=c.other_customer)
    assert await trace(held.id) == before


async def test_payment_captures_into_escrow_and_marks_the_booking_paid():
    # given a held booking with its checkout
    c = await cast()
    held = await hold(c.b, c.customer, START, now=hold_clock(0))
    # when the gateway says the payment succeeded
    before_payment = datetime.now(UTC)
    payment = await checkout_and_pay(held.id, c.customer)
    # then the money is in the order's escrow, the order is payment_confirmed and the booking paid
    order = await order_of(held.id)
    row = await load(held.id)
    assert (order.status, order.captured_minor, order.refunded_minor) == ("payment_confirmed", PRICE, 0)
    assert await escrow_balance(order.id) == PRICE
    async with session_scope() as s:
        assert (await s.get(Payment, payment.id)).status == "completed"
    assert (row.status, row.hold_expires_at, row.service_request_id) == ("paid", None, order.id)
    response = timedelta(seconds=get_settings().booking_response_seconds)
    assert before_payment + response <= row.response_due_at <= datetime.now(UTC) + response
    assert await history(held.id) == [(None, "held", "customer", c.customer.id), ("held", "paid", "system", None)]
    await ledger_ok()


async def test_checkout_after_the_hold_expired_is_hold_expired_and_writes_nothing():
    # given a held booking whose hold is over (the sweeper has not run yet)
    c = await cast()
    held = await hold(c.b, c.customer, START, now=hold_clock(0))
    before = await trace(held.id)
    # when the customer checks out
    with pytest.raises(booking.HoldExpired) as refused:
        async with session_scope() as s:
            await booking.checkout(s, held.id, customer=c.customer, now=held.hold_expires_at)
    # then it is refused and no order or payment exists
    assert (refused.value.code, refused.value.field) == ("HOLD_EXPIRED", "bookingId")
    assert await trace(held.id) == before
    async with session_scope() as s:
        assert await s.scalar(select(func.count()).select_from(ServiceRequest)) == 0
        assert await s.scalar(select(func.count()).select_from(Payment)) == 0


async def test_payment_after_the_hold_expired_is_captured_and_refunded():
    # given a checkout opened in time, then the hold swept away before the payment came
    c = await cast()
    held = await hold(c.b, c.customer, START, now=hold_clock(0))
    async with session_scope() as s:
        await booking.checkout(s, held.id, customer=c.customer)
    assert await booking.expire_holds(now=held.hold_expires_at) == 1
    order = await order_of(held.id)
    assert order.status == "cancelled"
    # when the payment succeeds anyway
    payment = await checkout_and_pay_late(held.id)
    # then the money is captured and refunded at once; the booking stays expired
    order = await order_of(held.id)
    assert (order.status, order.captured_minor, order.refunded_minor) == ("cancelled", PRICE, PRICE)
    assert await escrow_balance(order.id) == 0
    assert await refunds_of(order.id) == [(PRICE, "Refunded: the order was cancelled")]
    async with session_scope() as s:
        assert (await s.get(Payment, payment)).status == "completed"
    assert await status_of(held.id) == "payment_expired"
    assert await history(held.id) == [(None, "held", "customer", c.customer.id),
                                      ("held", "payment_expired", "system", None)]
    await ledger_ok()


async def checkout_and_pay_late(booking_id: int) -> int:
    """The gateway's success for the booking's (only) payment, however late."""
    async with session_scope() as s:
        order_id = await s.scalar(select(Booking.service_request_id).where(Booking.id == booking_id))
        # as the webhook does: the payment row alone (a FOR UPDATE over a join would lock the booking too)
        payment = await s.scalar(select(Payment).where(Payment.service_request_id == order_id)
                                 .with_for_update(key_share=True))
        result = await payment_domain.apply_payment_status(s, payment, "succeeded", amount_minor=payment.amount_minor,
                                                           currency=payment.currency, event_id="evt_late")
        assert result == "completed"
        return payment.id


# --- the transition table -----------------------------------------------------------------------

ROWS = sorted(booking.TRANSITIONS)


def row_id(row: tuple[str, str]) -> str:
    return f"{row[0]}->{row[1]}"


def allowed_actors(frm: str, to: str) -> list[str]:
    """The cast members who make this row in the app: a substitute (another provider with an
    offer) is the provider who takes a visit its own provider cannot make."""
    actors = sorted(booking.TRANSITIONS[(frm, to)].actors)
    if (frm, to) == ("cannot_make_it", "accepted"):
        return ["other_provider" if a == "provider" else a for a in actors]
    return actors


def public_refusal(frm: str, to: str, actor: str) -> tuple[type[DomainError], str]:
    """What the app's entry point answers a disallowed ``actor`` (see booking_fixtures.attempt)."""
    if actor == "system":
        return booking.InvalidTransition, table_message("system", frm, to)
    if to == "disputed" and actor == "provider":
        return Forbidden, "Only the customer or an admin can open a dispute"
    if to == "reviewed" and actor in ("provider", "admin"):
        return Forbidden, "Only the booking's customer can review it"
    if to == "resolved":
        return Forbidden, "Only admins resolve disputes"
    return booking.InvalidTransition, table_message(actor, frm, to)


@pytest.mark.parametrize("row", ROWS, ids=row_id)
async def test_every_row_of_the_table_moves_with_its_allowed_actors(row):
    # given, for each actor the table allows, a booking in the row's from-status
    frm, to = row
    c = await cast()
    for index, actor in enumerate(allowed_actors(frm, to)):
        booking_id = await new_booking(c, index, frm)
        if actor == "other_provider":
            await offer_to(booking_id, c.substitute.provider.id)
        before = await trace(booking_id)
        now = None
        if to == "customer_no_show":  # the guard: the wait after arriving is over
            wait = timedelta(seconds=get_settings().booking_no_show_wait_seconds)
            now = (await load(booking_id)).arrived_at + wait
        # when that actor makes the transition
        await attempt(c, booking_id, to, actor, now=now)
        # then the booking is in the new status with exactly one more history row and one live event
        after = await trace(booking_id)
        actor_type = "provider" if actor == "other_provider" else actor
        user = None if actor == "system" else {
            "customer": c.customer, "provider": c.b.provider_user, "other_provider": c.substitute.provider_user,
            "admin": c.admin}[actor]
        assert after.status == to, actor
        assert (after.history - before.history, after.events - before.events) == (1, 1), actor
        assert (await history(booking_id))[-1] == (frm, to, actor_type, user.id if user else None)
        event = await last_event(booking_id)
        assert (event["bookingId"], event["status"], event["previousStatus"], event["actorType"]) == (
            booking_id, to, frm, actor_type)
    await ledger_ok()


@pytest.mark.parametrize("row", ROWS, ids=row_id)
async def test_every_row_of_the_table_is_refused_to_other_actors_and_changes_nothing(row):
    # given a booking in the row's from-status
    frm, to = row
    c = await cast()
    booking_id = await new_booking(c, 0, frm)
    before = await trace(booking_id)
    refused_actors = sorted({"customer", "provider", "admin", "system"} - booking.TRANSITIONS[row].actors)
    for actor in refused_actors:
        # when an actor the table does not name tries it through the state machine itself
        with pytest.raises(booking.InvalidTransition) as core:
            async with session_scope() as s:
                user_id = None if actor == "system" else c.admin.id
                await booking.transition(s, await booking_locks.lock_booking(s, booking_id), to, actor_type=actor,
                                         actor_user_id=user_id)
        assert (core.value.code, core.value.message) == ("INVALID_TRANSITION", table_message(actor, frm, to))
        # and through the app's entry point
        error, message = public_refusal(frm, to, actor)
        with pytest.raises(error) as public:
            await attempt(c, booking_id, to, actor)
        assert public.value.message == message, actor
        # then nothing changed: status, history, events, outbox, emails, money
        assert await trace(booking_id) == before, actor
    # and a provider who is no party to the booking (and was not offered it) is forbidden
    stranger = await make_user("stranger@example.com", role="provider", full_name="Stranger")
    await make_provider(display_name="Stranger Works", user_id=stranger.id)
    with pytest.raises(Forbidden):
        async with session_scope() as s:
            if (frm, to) == ("cannot_make_it", "accepted"):
                await booking.take_over(s, booking_id, actor=stranger)
            else:
                await booking.change_status(s, booking_id, to, actor=stranger)
    assert await trace(booking_id) == before


async def test_statuses_outside_the_table_are_refused():
    # given a paid booking
    c = await cast()
    booking_id = await new_booking(c, 0, "paid")
    before = await trace(booking_id)
    # when an admin jumps ahead, goes back, or names a status that does not exist
    for to, message in [
        ("completed", table_message("admin", "paid", "completed")),
        ("held", table_message("admin", "paid", "held")),
        ("paid", table_message("admin", "paid", "paid")),
        ("teleported", "Unknown booking status 'teleported'"),
    ]:
        with pytest.raises(booking.InvalidTransition) as refused:
            await attempt(c, booking_id, to, "admin")
        # then each is refused and nothing changed
        assert (refused.value.code, refused.value.message) == ("INVALID_TRANSITION", message)
        assert await trace(booking_id) == before


@pytest.mark.parametrize("to", ["disputed", "reviewed", "resolved", "needs_follow_up"])
async def test_change_status_refuses_the_statuses_with_their_own_mutation(to):
    # given a completed visit
    c = await cast()
    booking_id = await new_booking(c, 0, "completed")
    before = await trace(booking_id)
    # when an admin names a status that has its own mutation, then it is refused and nothing changed
    with pytest.raises(booking.InvalidTransition) as refused:
        async with session_scope() as s:
            await booking.change_status(s, booking_id, to, actor=c.admin)
    assert refused.value.message == f"Use the dedicated mutation to move a booking to {to}"
    assert await trace(booking_id) == before


async def test_customer_no_show_before_the_wait_is_refused():
    # given a provider who arrived
    c = await cast()
    booking_id = await new_booking(c, 0, "arrived")
    arrived_at = (await load(booking_id)).arrived_at
    wait = timedelta(seconds=get_settings().booking_no_show_wait_seconds)
    before = await trace(booking_id)
    # when it reports nobody home one second before the wait is over
    with pytest.raises(booking.InvalidTransition) as refused:
        await attempt(c, booking_id, "customer_no_show", "provider", now=arrived_at + wait - timedelta(seconds=1))
    # then it is refused and nothing changed
    assert refused.value.message == "Wait 15 minutes after arriving before reporting that nobody is home"
    assert await trace(booking_id) == before
    # and once the wait is over it is accepted and escalated to the admins
    await attempt(c, booking_id, "customer_no_show", "provider", now=arrived_at + wait)
    assert await status_of(booking_id) == "customer_no_show"
    async with session_scope() as s:
        kinds = (await s.scalars(select(Escalation.kind).where(Escalation.booking_id == booking_id))).all()
    assert kinds == ["customer_no_show"]


async def test_a_stranger_cannot_act_on_a_booking():
    # given a paid booking and a customer who is no party to it
    c = await cast()
    booking_id = await new_booking(c, 0, "paid")
    stranger = await customer("eve@example.com")
    before = await trace(booking_id)
    # when the stranger cancels it, then it is forbidden and nothing changed
    with pytest.raises(Forbidden) as refused:
        async with session_scope() as s:
            await booking.change_status(s, booking_id, "cancelled_by_customer", actor=stranger)
    assert refused.value.message == "Only the customer, the booking's provider or an admin can act on this booking"
    assert await trace(booking_id) == before


# --- effects ------------------------------------------------------------------------------------


async def test_decline_refunds_in_full():
    # given a paid booking
    c = await cast()
    booking_id = await new_booking(c, 0, "paid")
    # when the provider declines it
    await attempt(c, booking_id, "declined", "provider")
    # then the order is cancelled and everything is refunded
    order = await order_of(booking_id)
    reference = (await load(booking_id)).reference
    assert (order.status, order.refunded_minor) == ("cancelled", PRICE)
    assert await refunds_of(order.id) == [(PRICE, f"Booking {reference}: declined by the provider (100 % refunded)")]
    assert await escrow_balance(order.id) == 0
    await ledger_ok()


async def test_unanswered_booking_expires_at_the_response_deadline_with_a_full_refund():
    # given a paid booking the provider has not answered
    c = await cast()
    booking_id = await new_booking(c, 0, "paid")
    due = (await load(booking_id)).response_due_at
    before = await trace(booking_id)
    # when the timer runs one second before the deadline, nothing happens
    assert await booking.expire_unanswered(now=due - timedelta(seconds=1)) == 0
    assert await trace(booking_id) == before
    # when it runs at the deadline
    assert await booking.expire_unanswered(now=due) == 1
    # then the booking expired and the customer is refunded in full
    order = await order_of(booking_id)
    assert await status_of(booking_id) == "expired"
    assert (order.status, order.refunded_minor) == ("cancelled", PRICE)
    assert [amount for amount, _ in await refunds_of(order.id)] == [PRICE]
    assert (await history(booking_id))[-1] == ("paid", "expired", "system", None)
    # and running it again does nothing more
    assert await booking.expire_unanswered(now=due + timedelta(hours=1)) == 0
    await ledger_ok()


@pytest.mark.parametrize(("hours", "refunded"), [(72, PRICE), (48, PRICE), (30, PRICE // 2), (24, PRICE // 2),
                                                 (23, 0), (2, 0)])
async def test_customer_cancellation_refunds_per_the_policy(hours, refunded):
    # given an accepted booking and the policy 48 h+ -> 100 %, 24 h+ -> 50 %, less -> 0 %
    assert get_settings().refund_policy == [(48, 100), (24, 50), (0, 0)]
    c = await cast()
    booking_id = await new_booking(c, 0, "accepted")
    # when the customer cancels ``hours`` before the start
    await attempt(c, booking_id, "cancelled_by_customer", "customer", now=START - timedelta(hours=hours))
    # then the order is cancelled and the policy's share is refunded; what it keeps leaves escrow
    # (the provider's share of it and the commission, as for a completed visit)
    order = await order_of(booking_id)
    assert (order.status, order.refunded_minor) == ("cancelled", refunded)
    assert [amount for amount, _ in await refunds_of(order.id)] == ([refunded] if refunded else [])
    assert await escrow_balance(order.id) == 0
    assert order.settled_provider_minor == (PRICE - refunded) * 9 // 10
    await ledger_ok()


async def test_customer_cancellation_of_a_visit_the_provider_cannot_make_refunds_in_full():
    # given a visit its provider cannot make, one hour before its start
    c = await cast()
    booking_id = await new_booking(c, 0, "cannot_make_it")
    # when the customer cancels it
    await attempt(c, booking_id, "cancelled_by_customer", "customer", now=START - timedelta(hours=1))
    # then the customer gets everything back, however late (the provider could not come)
    order = await order_of(booking_id)
    assert (order.status, order.refunded_minor) == ("cancelled", PRICE)


@pytest.mark.parametrize(("frm", "to", "actor"), [
    ("accepted", "cancelled_by_provider", "provider"), ("accepted", "cancelled_by_admin", "admin"),
    ("paid", "cancelled_by_admin", "admin"), ("customer_no_show", "cancelled_by_admin", "admin"),
])
async def test_cancellation_by_the_provider_or_an_admin_refunds_in_full(frm, to, actor):
    # given a booking one hour before its start
    c = await cast()
    booking_id = await new_booking(c, 0, frm)
    # when the provider or an admin cancels it
    await attempt(c, booking_id, to, actor, now=START - timedelta(hours=1))
    # then the customer gets everything back
    order = await order_of(booking_id)
    assert (order.status, order.refunded_minor) == ("cancelled", PRICE)
    assert await escrow_balance(order.id) == 0
    await ledger_ok()


async def test_completed_by_the_provider_releases_escrow_after_the_grace_period():
    # given a visit in progress
    c = await cast()
    booking_id = await new_booking(c, 0, "in_progress")
    assert (await order_of(booking_id)).status == "in_progress"
    # when the provider completes it
    before = datetime.now(UTC)
    await attempt(c, booking_id, "completed", "provider")
    # then the order is completed, its money still in escrow until the grace period is over
    order = await order_of(booking_id)
    grace = timedelta(seconds=get_settings().escrow_release_grace_seconds)
    assert (order.status, order.released_at) == ("completed", None)
    assert before + grace <= order.release_due_at <= datetime.now(UTC) + grace
    assert await escrow_balance(order.id) == PRICE
    assert (await load(booking_id)).completed_at is not None
    async with session_scope() as s:
        assert (await s.scalars(select(ServiceRequestStatusChange.to_status).where(
            ServiceRequestStatusChange.service_request_id == order.id).order_by(ServiceRequestStatusChange.id))
        ).all() == ["awaiting_payment", "payment_confirmed", "team_assigned", "in_progress", "completed"]
        assert await s.scalar(select(func.count()).select_from(ProviderEarning)) == 0


async def test_completed_by_an_admin_releases_escrow_at_once():
    # given a visit in progress
    c = await cast()
    booking_id = await new_booking(c, 0, "in_progress")
    # when an admin completes it
    await attempt(c, booking_id, "completed", "admin")
    # then escrow is released now: the provider's earning is its share after the 10 % commission
    order = await order_of(booking_id)
    assert order.status == "completed" and order.released_at is not None
    assert await escrow_balance(order.id) == 0
    async with session_scope() as s:
        earnings = (await s.scalars(select(ProviderEarning))).all()
        assert [(e.provider_id, e.service_request_id, e.amount_minor) for e in earnings] == [
            (c.b.provider.id, order.id, PRICE * 9 // 10)]
        assert await ledger.balance(s, ledger.provider_payable(c.b.provider.id, "XAF")) == PRICE * 9 // 10
    await ledger_ok()


async def test_no_show_completed_by_an_admin_pays_the_provider_for_the_trip():
    # given a visit where nobody was home
    c = await cast()
    booking_id = await new_booking(c, 0, "customer_no_show")
    # when an admin completes it
    await attempt(c, booking_id, "completed", "admin")
    # then nothing is refunded and the escrow is released at once
    order = await order_of(booking_id)
    assert (order.status, order.refunded_minor) == ("completed", 0)
    assert order.released_at is not None
    await ledger_ok()


async def test_auto_complete_after_the_grace_period():
    # given a visit still in progress after its slot ended
    c = await cast()
    booking_id = await new_booking(c, 0, "in_progress")
    grace = timedelta(seconds=get_settings().booking_auto_complete_seconds)
    ends_at = (await load(booking_id)).ends_at
    before = await trace(booking_id)
    # when the timer runs one second before the grace period is over, nothing happens
    assert await booking.auto_complete(now=ends_at + grace - timedelta(seconds=1)) == 0
    assert await trace(booking_id) == before
    # when it runs at the end of the grace period
    assert await booking.auto_complete(now=ends_at + grace) == 1
    # then the system completed it and the order's escrow waits for its own grace period
    assert (await history(booking_id))[-1] == ("in_progress", "completed", "system", None)
    order = await order_of(booking_id)
    assert (order.status, order.released_at) == ("completed", None)
    assert order.release_due_at is not None


async def test_follow_up_visit_shares_the_order_which_completes_with_it():
    # given a visit in progress
    c = await cast()
    booking_id = await new_booking(c, 0, "in_progress")
    order_id = (await order_of(booking_id)).id
    # when the provider books a follow-up two hours later
    async with session_scope() as s:
        follow_up = await booking.book_follow_up(s, booking_id, actor=c.b.provider_user, start=START + timedelta(hours=2),
                                                 note="Needs a new valve")
        follow_up_id = follow_up.id
    # then the first visit needs a follow-up and the new visit is accepted on the same order
    row = await load(follow_up_id)
    assert await status_of(booking_id) == "needs_follow_up"
    assert (row.status, row.service_request_id, row.parent_booking_id, row.provider_id, row.starts_at) == (
        "accepted", order_id, booking_id, c.b.provider.id, START + timedelta(hours=2))
    assert await history(follow_up_id) == [(None, "accepted", "provider", c.b.provider_user.id)]
    assert (await history(booking_id))[-1] == ("in_progress", "needs_follow_up", "provider", c.b.provider_user.id)
    assert (await order_of(booking_id)).status == "in_progress"
    # and the follow-up's slot is taken
    with pytest.raises(booking.SlotUnavailable):
        await hold(c.b, c.other_customer, START + timedelta(hours=2), now=hold_clock(1))
    # when the follow-up starts, the order is still in progress; when it completes, the order completes
    await attempt(c, follow_up_id, "in_progress", "provider")
    assert (await order_of(booking_id)).status == "in_progress"
    await attempt(c, follow_up_id, "completed", "provider")
    order = await order_of(booking_id)
    assert (order.status, order.captured_minor, order.refunded_minor) == ("completed", PRICE, 0)
    await ledger_ok()


async def test_no_follow_up_after_all_cancels_the_booked_one_and_completes_the_order():
    # given a visit whose follow-up is booked
    c = await cast()
    booking_id = await new_booking(c, 0, "needs_follow_up")
    async with session_scope() as s:
        follow_up_id = await s.scalar(select(Booking.id).where(Booking.parent_booking_id == booking_id))
    # when an admin completes the first visit (needs_follow_up -> completed: no follow-up after all)
    await attempt(c, booking_id, "completed", "admin")
    # then the follow-up is cancelled and the order completes, its escrow released at once
    assert await status_of(follow_up_id) == "cancelled_by_admin"
    order = await order_of(booking_id)
    assert (order.status, order.refunded_minor) == ("completed", 0)
    assert order.released_at is not None
    await ledger_ok()


async def test_dispute_on_a_completed_visit_and_its_resolution():
    # given a completed visit
    c = await cast()
    booking_id = await new_booking(c, 0, "completed")
    order_id = (await order_of(booking_id)).id
    # when the customer disputes it
    async with session_scope() as s:
        await booking.open_dispute(s, booking_id, actor=c.customer, reason="The leak is back")
    # then the booking is disputed and the order has an open dispute
    assert await status_of(booking_id) == "disputed"
    async with session_scope() as s:
        opened = (await s.scalars(select(Dispute).where(Dispute.service_request_id == order_id))).all()
    assert [(d.status, d.reason) for d in opened] == [("open", "The leak is back")]
    # when an admin resolves it with a full refund
    async with session_scope() as s:
        await dispute.resolve_dispute(s, opened[0].id, actor=c.admin, resolution="refund_full")
    # then the booking is resolved and the customer refunded
    assert (await history(booking_id))[-2:] == [("completed", "disputed", "customer", c.customer.id),
                                               ("disputed", "resolved", "admin", c.admin.id)]
    order = await order_of(booking_id)
    assert order.refunded_minor == PRICE
    await ledger_ok()


async def test_a_provider_cannot_dispute_its_own_visit():
    # given a completed visit
    c = await cast()
    booking_id = await new_booking(c, 0, "completed")
    before = await trace(booking_id)
    # when its provider opens a dispute, then it is forbidden and nothing changed
    with pytest.raises(Forbidden):
        async with session_scope() as s:
            await booking.open_dispute(s, booking_id, actor=c.b.provider_user, reason="Paid too little")
    assert await trace(booking_id) == before


@pytest.mark.parametrize("rating", [1, 4, 5])
async def test_review_stores_the_rating_and_comment(rating):
    # given a completed visit
    c = await cast()
    booking_id = await new_booking(c, 0, "completed")
    # when its customer reviews it
    async with session_scope() as s:
        await booking.review(s, booking_id, actor=c.customer, rating=rating, comment="  On time, tidy work  ")
    # then the rating and the trimmed comment are stored
    row = await load(booking_id)
    assert (row.status, row.review_rating, row.review_comment) == ("reviewed", rating, "On time, tidy work")
    assert (await history(booking_id))[-1] == ("completed", "reviewed", "customer", c.customer.id)


@pytest.mark.parametrize("rating", [0, 6, -1])
async def test_review_outside_one_to_five_stars_is_refused(rating):
    # given a completed visit
    c = await cast()
    booking_id = await new_booking(c, 0, "completed")
    before = await trace(booking_id)
    # when its customer gives a rating outside 1-5, then it is refused and nothing changed
    with pytest.raises(DomainError) as refused:
        async with session_scope() as s:
            await booking.review(s, booking_id, actor=c.customer, rating=rating)
    assert (refused.value.code, refused.value.field) == ("INVALID_RATING", "rating")
    assert await trace(booking_id) == before
    assert (await load(booking_id)).review_rating is None


async def test_expire_holds_frees_the_slot_for_another_customer():
    # given a hold on a slot: another customer cannot hold it
    c = await cast()
    held = await hold(c.b, c.customer, START, now=hold_clock(0))
    with pytest.raises(booking.SlotUnavailable):
        await hold(c.b, c.other_customer, START, now=hold_clock(0))
    # when the sweeper runs before the hold is over, nothing happens
    assert await booking.expire_holds(now=held.hold_expires_at - timedelta(seconds=1)) == 0
    assert await status_of(held.id) == "held"
    # when it runs once the hold is over
    assert await booking.expire_holds(now=held.hold_expires_at) == 1
    # then the hold expired and the other customer gets the slot
    assert (await history(held.id))[-1] == ("held", "payment_expired", "system", None)
    other = await hold(c.b, c.other_customer, START, now=held.hold_expires_at)
    assert (await load(other.id)).status == "held"


async def test_an_expired_hold_is_expired_lazily_by_the_next_hold():
    # given a hold that is over, and no sweeper run
    c = await cast()
    held = await hold(c.b, c.customer, START, now=hold_clock(0))
    # when another customer holds the same slot after the hold is over
    other = await hold(c.b, c.other_customer, START, now=held.hold_expires_at)
    # then the old hold expired in the same transaction and the new one holds the slot
    assert await status_of(held.id) == "payment_expired"
    assert await status_of(other.id) == "held"
    assert (await history(held.id))[-1] == ("held", "payment_expired", "system", None)


# --- concurrency --------------------------------------------------------------------------------


@pytest.mark.parametrize(("frm", "provider_to", "customer_to"), [
    ("paid", "declined", "cancelled_by_customer"),
    ("accepted", "en_route", "cancelled_by_customer"),
    ("accepted", "in_progress", "cancelled_by_customer"),
])
async def test_concurrent_transitions_by_two_actors_have_exactly_one_winner(frm, provider_to, customer_to):
    # given several bookings in the same status (each raced once, over separate connections)
    c = await cast()
    outcomes = []
    for index in range(6):
        booking_id = await new_booking(c, index, frm)
        before = await trace(booking_id)

        async def act(to: str, actor: str, booking_id: int = booking_id) -> str:
            try:
                await attempt(c, booking_id, to, actor, now=START - timedelta(days=10))
            except booking.InvalidTransition as exc:
                return exc.code
            return "done"

        # when the provider and the customer move it at the same time
        results = await asyncio.gather(act(provider_to, "provider"), act(customer_to, "customer"))
        # then exactly one wins and the other gets INVALID_TRANSITION
        assert sorted(results) == ["INVALID_TRANSITION", "done"], results
        winner = provider_to if results[0] == "done" else customer_to
        actor = "provider" if results[0] == "done" else "customer"
        user = c.b.provider_user if actor == "provider" else c.customer
        # and the history holds exactly the winner's row
        assert (await history(booking_id))[before.history:] == [(frm, winner, actor, user.id)]
        assert await status_of(booking_id) == winner
        after = await trace(booking_id)
        assert (after.history - before.history, after.events - before.events) == (1, 1)
        outcomes.append(winner)
    await ledger_ok()
    print(f"\n{frm}: {provider_to} vs {customer_to}: winners {outcomes}")


async def test_concurrent_accept_and_customer_cancel_are_serialised():
    """``paid -> accepted`` and ``-> cancelled_by_customer`` raced: the customer may also cancel an
    accepted booking, so both can succeed one after the other, but never both from ``paid``."""
    # given paid bookings (each raced once, over separate connections)
    c = await cast()
    seen = set()
    for index in range(6):
        booking_id = await new_booking(c, index, "paid")

        async def act(to: str, actor: str, booking_id: int = booking_id) -> str:
            try:
                await attempt(c, booking_id, to, actor, now=START - timedelta(days=10))
            except booking.InvalidTransition as exc:
                return exc.code
            return "done"

        # when the provider accepts as the customer cancels
        results = await asyncio.gather(act("accepted", "provider"), act("cancelled_by_customer", "customer"))
        rows = [(frm, to) for frm, to, _, _ in (await history(booking_id))[2:]]
        # either the cancellation came first (the acceptance is refused) or the acceptance did
        assert (results, rows) in [
            (["INVALID_TRANSITION", "done"], [("paid", "cancelled_by_customer")]),
            (["done", "done"], [("paid", "accepted"), ("accepted", "cancelled_by_customer")]),
        ], (results, rows)
        assert await status_of(booking_id) == "cancelled_by_customer"
        order = await order_of(booking_id)
        assert (order.status, order.refunded_minor) == ("cancelled", PRICE)
        seen.add(tuple(results))
    await ledger_ok()
    print(f"\naccept vs cancel outcomes: {sorted(seen)}")


async def test_the_customer_is_told_when_a_substitute_takes_the_visit_in_the_same_second():
    # given an accepted visit its provider cannot make, offered to a substitute
    c = await cast()
    moment = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    booking_id = await new_booking(c, 0, "paid")
    await attempt(c, booking_id, "accepted", "provider", now=moment)
    await attempt(c, booking_id, "cannot_make_it", "provider", now=moment)
    await offer_to(booking_id, c.substitute.provider.id)
    async with session_scope() as s:
        accepted_before = await s.scalar(select(func.count()).select_from(Email).where(
            Email.to_address == c.customer.email, Email.subject.contains("Confirmed by the provider")))
    # when the substitute takes it within the same second
    await attempt(c, booking_id, "accepted", "other_provider", now=moment)
    # then the customer gets a second "confirmed" email
    async with session_scope() as s:
        accepted_after = await s.scalar(select(func.count()).select_from(Email).where(
            Email.to_address == c.customer.email, Email.subject.contains("Confirmed by the provider")))
    assert (accepted_before, accepted_after) == (1, 2)


# --- closing a job that has a follow-up; what a late cancellation keeps -------------------------


async def lock_waiters() -> int:
    """Transactions of this database waiting for a lock right now (pg_stat_activity)."""
    async with session_scope() as s:
        return await s.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                   "AND wait_event_type = 'Lock'"))


async def until_lock_waiters(n: int) -> None:
    """Poll until ``n`` transactions wait for a lock (orders the racers; nothing is timed)."""
    for _ in range(2000):
        if await lock_waiters() >= n:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{n} transactions never waited for a lock")


async def race_a_payment_against(c: Cast, booking_id: int, make_transition) -> list:
    """The booking's row is held by another transaction (as a checkout or any transition holds it
    for a moment); ``make_transition`` queues for it first, then the gateway's success arrives and
    queues behind it; the row is released. Returns both results (exceptions included). Before the
    lock order provider -> order -> booking (``booking.lock``), this deadlocked every time: the
    payment held the order and waited for the booking, the transition the other way round."""
    gate = get_sessionmaker()()
    await gate.begin()
    await gate.execute(select(Booking.id).where(Booking.id == booking_id).with_for_update(key_share=True))
    transition = asyncio.ensure_future(make_transition())
    await until_lock_waiters(1)
    payment = asyncio.ensure_future(checkout_and_pay_late(booking_id))
    await until_lock_waiters(2)
    await gate.rollback()
    await gate.close()
    return await asyncio.gather(transition, payment, return_exceptions=True)


async def test_a_payment_and_the_customer_releasing_the_hold_at_once_both_complete():
    # given a held booking with its checkout open
    c = await cast()
    held = await hold(c.b, c.customer, START, now=hold_clock(0))
    async with session_scope() as s:
        payment_id = (await booking.checkout(s, held.id, customer=c.customer)).payment.id

    async def release_the_hold():
        async with session_scope() as s:
            await booking.change_status(s, held.id, "cancelled_by_customer", actor=c.customer)

    # when the customer lets the hold go as the payment arrives
    results = await race_a_payment_against(c, held.id, release_the_hold)
    # then both complete: the hold is released, and the money that came is refunded at once
    assert [r if not isinstance(r, BaseException) else type(r).__name__ for r in results] == [None, payment_id]
    assert await status_of(held.id) == "cancelled_by_customer"
    order = await order_of(held.id)
    assert (order.status, order.captured_minor, order.refunded_minor) == ("cancelled", PRICE, PRICE)
    await ledger_ok()


async def test_a_payment_and_the_hold_sweeper_at_once_both_complete():
    # given a held booking with its checkout open, and its hold just over
    c = await cast()
    held = await hold(c.b, c.customer, START, now=hold_clock(0))
    async with session_scope() as s:
        payment_id = (await booking.checkout(s, held.id, customer=c.customer)).payment.id
    # when the sweeper expires it as the payment arrives
    results = await race_a_payment_against(c, held.id, lambda: booking.expire_holds(now=held.hold_expires_at))
    # then both complete: the hold expired, and the money is refunded at once
    assert [r if not isinstance(r, BaseException) else type(r).__name__ for r in results] == [1, payment_id]
    assert await status_of(held.id) == "payment_expired"
    order = await order_of(held.id)
    assert (order.status, order.captured_minor, order.refunded_minor) == ("cancelled", PRICE, PRICE)
    await ledger_ok()


async def test_a_payment_and_a_lazy_expiry_by_another_hold_at_once_both_complete():
    # given a held booking with its checkout open, and its hold just over
    c = await cast()
    held = await hold(c.b, c.customer, START, now=hold_clock(0))
    async with session_scope() as s:
        payment_id = (await booking.checkout(s, held.id, customer=c.customer)).payment.id
    # when another customer holds the same slot (expiring the old hold lazily) as the payment arrives
    results = await race_a_payment_against(
        c, held.id, lambda: hold(c.b, c.other_customer, START, now=held.hold_expires_at))
    # then both complete: the new hold has the slot, and the late money is refunded at once
    assert [type(r).__name__ if isinstance(r, BaseException) else r for r in results][1:] == [payment_id]
    assert isinstance(results[0], Booking)
    assert (await status_of(held.id), await status_of(results[0].id)) == ("payment_expired", "held")
    order = await order_of(held.id)
    assert (order.status, order.captured_minor, order.refunded_minor) == ("cancelled", PRICE, PRICE)
    await ledger_ok()


async def test_abandoning_a_job_cancels_its_booked_follow_up_and_refunds_the_order():
    # given a visit whose follow-up is booked (accepted, on the same order)
    c = await cast()
    booking_id = await new_booking(c, 0, "needs_follow_up")
    async with session_scope() as s:
        follow_up_id = await s.scalar(select(Booking.id).where(Booking.parent_booking_id == booking_id))
    # when an admin abandons the job (needs_follow_up -> cancelled_by_admin)
    await attempt(c, booking_id, "cancelled_by_admin", "admin")
    # then the follow-up visit is cancelled too, and the order cancelled and refunded in full
    assert await status_of(follow_up_id) == "cancelled_by_admin"
    assert (await history(follow_up_id))[-1] == ("accepted", "cancelled_by_admin", "admin", c.admin.id)
    order = await order_of(booking_id)
    assert (order.status, order.refunded_minor) == ("cancelled", PRICE)
    assert await escrow_balance(order.id) == 0
    # and its slot is free again
    again = await hold(c.b, c.other_customer, START + timedelta(hours=2), now=hold_clock(1))
    assert (await load(again.id)).status == "held"
    await ledger_ok()


async def test_a_job_cannot_be_closed_while_its_follow_up_is_under_way():
    # given a visit whose follow-up is in progress
    c = await cast()
    booking_id = await new_booking(c, 0, "needs_follow_up")
    async with session_scope() as s:
        follow_up = await s.scalar(select(Booking).where(Booking.parent_booking_id == booking_id))
    await attempt(c, follow_up.id, "in_progress", "provider")
    before, before_follow_up = await trace(booking_id), await trace(follow_up.id)
    for to in ("cancelled_by_admin", "completed"):
        # when an admin closes the job
        with pytest.raises(booking.InvalidTransition) as refused:
            await attempt(c, booking_id, to, "admin")
        # then it is refused and nothing changed
        assert refused.value.message == (f"The follow-up visit {follow_up.reference} is under way (in_progress): "
                                         "finish or cancel it first")
        assert (await trace(booking_id), await trace(follow_up.id)) == (before, before_follow_up)


async def test_late_cancellation_releases_what_is_not_refunded():
    # given an accepted visit cancelled by its customer 30 hours before (50 % refunded)
    c = await cast()
    booking_id = await new_booking(c, 0, "accepted")
    await attempt(c, booking_id, "cancelled_by_customer", "customer", now=START - timedelta(hours=30))
    # then the half that is not refunded leaves escrow: 90 % of it to the provider, the commission to Odim
    order = await order_of(booking_id)
    assert (order.refunded_minor, order.settled_provider_minor, order.settled_platform_minor) == (
        PRICE // 2, PRICE // 2 * 9 // 10, PRICE // 2 // 10)
    assert order.released_at is not None
    assert await escrow_balance(order.id) == 0
    async with session_scope() as s:
        assert [(e.provider_id, e.amount_minor) for e in (await s.scalars(select(ProviderEarning))).all()] == [
            (c.b.provider.id, PRICE // 2 * 9 // 10)]
    await ledger_ok()


# --- the table itself ---------------------------------------------------------------------------


def test_every_status_is_reachable_and_every_route_follows_the_table():
    # every status of the model has a route from held, made only of table rows for their actors
    assert set(ROUTES) == set(BOOKING_STATUSES) == set(booking.STATUS_LABELS)
    for status, steps in ROUTES.items():
        current = "held"
        for to, actor in steps:
            assert booking.allowed(current, to, actor), (status, current, to, actor)
            current = to
        assert current == status
    assert {to for _, to in booking.TRANSITIONS} | {"held"} == set(BOOKING_STATUSES)

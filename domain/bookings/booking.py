"""Bookings: holding a slot of a provider's time, paying for it through escrow, and the booking
state machine (a Sharetribe-style transaction process: one table of states and transitions, each
with the actors allowed to make it, its guards and its effects).

The booking state machine is ``MACHINE`` below (each rule names its actors and what it means;
rendered in docs/state-machines.md). Guards: a no-show needs settings.booking_no_show_wait_seconds
after arrival; ``in_progress`` needs the visit's contract accepted by both parties. Effects per target
status are ``EFFECTS``.

Contracts (domain/orders/contract.py): a visit gets its contract when paid and when accepted (a
take-over by another provider makes a new version; a follow-up visit gets its own); any move to
``in_progress`` requires the current version accepted by both parties (``ContractNotAccepted``).

Statuses that occupy the provider's time (``models.booking.LIVE_STATUSES``) take part in the
exclusion constraint: double booking is refused by PostgreSQL (SQLSTATE 23P01 -> ``SlotUnavailable``),
never by a check-then-insert. Every transition runs in the caller's transaction on a row-locked
booking (``SELECT ... FOR NO KEY UPDATE``), so two actors can never both win; it writes a history row,
a ``bookingStatusChanged`` event (published after commit by the outbox) and its effects.

Money: a booking's order is a ``service_requests`` row of kind ``booking`` opened at checkout; its
escrow, refunds, disputes and payouts are the money issue's (domain/money/escrow.py, refund.py, dispute.py).
The order follows its visits: paid -> payment_confirmed, accepted -> team_assigned,
in_progress -> in_progress, completed -> completed (escrow released after the grace period, at once
when an admin completes), declined/expired/cancelled -> cancelled with the refund above.
Follow-up visits share their first visit's order; the order completes with its last visit.
Closing a job from ``needs_follow_up`` (completed or cancelled_by_admin) first closes its whole chain
of follow-ups (``_close_follow_ups``), so an order is never cancelled or completed while one of its
visits is live (a follow-up under way refuses the move).
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import exists, func, or_, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.bookings import substitution
from domain.bookings.errors import BookingsErrorCode
from domain.bookings.events import BookingStatusEvent
from domain.bookings.locks import CLAIM_SQL, lock_booking, time_keys
from domain.catalogue import fees, offers
from domain.messaging import feed, notification
from domain.money import escrow, ledger, refund
from domain.orders import contract, dispute, escalation, locks, service_request
from domain.providers import availability, standing
from domain.providers.locks import lock_provider_if_any
from domain.reviews import review as review_domain  # not ``review``: this module's function has that name
from domain.shared import live, outbox, pagination, statemachine
from domain.shared.errors import CommonErrorCode, DomainError, Forbidden, NotFound
from domain.shared.statemachine import rule
from gateways.base import PaymentGateway
from models import (
    Booking,
    BookingStatusChange,
    Payment,
    Provider,
    Service,
    ServiceRequest,
    SubstitutionOffer,
    Ticket,
    User,
)
from models.bookings import LIVE_STATUSES, BookingStatus
from models.db import session_scope
from settings import get_settings

TRANSITIONS: dict[tuple[str, str], statemachine.Rule] = {
    ("held", "paid"): rule("system", why="payment captured within the hold"),
    ("held", "payment_expired"): rule("system", why="the hold expired unpaid"),
    ("held", "cancelled_by_customer"): rule("customer", why="the customer lets the hold go"),
    ("paid", "accepted"): rule("provider", "admin", why="the provider takes the visit"),
    ("paid", "declined"): rule("provider", why="the provider declines: full refund"),
    ("paid", "expired"): rule("system", why="no answer by the response deadline: full refund"),
    ("paid", "cancelled_by_customer"): rule("customer", why="refund per the cancellation policy"),
    ("paid", "cancelled_by_admin"): rule("admin", why="full refund"),
    ("accepted", "en_route"): rule("provider", why="the provider is on the way"),
    ("accepted", "in_progress"): rule("provider", why="work starts"),
    ("accepted", "cannot_make_it"): rule("provider", why="offered to substitutes"),
    ("accepted", "cancelled_by_customer"): rule("customer", why="refund per the cancellation policy"),
    ("accepted", "cancelled_by_provider"): rule("provider", why="full refund"),
    ("accepted", "cancelled_by_admin"): rule("admin", why="full refund"),
    ("en_route", "arrived"): rule("provider", why="the provider is at the door"),
    ("en_route", "in_progress"): rule("provider", why="work starts"),
    ("en_route", "cannot_make_it"): rule("provider", why="offered to substitutes"),
    ("arrived", "in_progress"): rule("provider", why="work starts"),
    ("arrived", "customer_no_show"): rule("provider", why="nobody home after the wait: escalated"),
    ("cannot_make_it", "accepted"): rule("provider", "admin", why="a substitute takes the visit"),
    ("cannot_make_it", "cancelled_by_customer"): rule("customer", why="full refund"),
    ("cannot_make_it", "cancelled_by_admin"): rule("admin", why="full refund"),
    ("customer_no_show", "completed"): rule("admin", why="the provider is paid for the trip"),
    ("customer_no_show", "cancelled_by_admin"): rule("admin", why="full refund"),
    ("in_progress", "completed"): rule("provider", "admin", "system", why="the work is done"),
    ("in_progress", "needs_follow_up"): rule("provider", "admin", why="another visit is booked"),
    ("needs_follow_up", "completed"): rule("admin", why="no follow-up after all"),
    ("needs_follow_up", "cancelled_by_admin"): rule("admin", why="the job is abandoned"),
    ("completed", "disputed"): rule("customer", "admin", why="a dispute is opened on the order"),
    ("completed", "reviewed"): rule("customer", why="the customer reviews the visit"),
    ("disputed", "resolved"): rule("admin", "system", why="the dispute is settled"),
}
MACHINE = statemachine.Machine("booking", BookingStatus, TRANSITIONS, initial=BookingStatus.HELD)
InvalidTransition = statemachine.InvalidTransition
STATUS_LABELS = {
    "held": "Slot held: complete the payment",
    "payment_expired": "The hold expired before payment",
    "paid": "Paid: waiting for the provider to accept",
    "declined": "Declined by the provider: refunded",
    "expired": "The provider did not answer: refunded",
    "accepted": "Confirmed by the provider",
    "en_route": "The provider is on the way",
    "arrived": "The provider has arrived",
    "in_progress": "Work in progress",
    "needs_follow_up": "Another visit is needed",
    "completed": "Completed",
    "cancelled_by_customer": "Cancelled by the customer",
    "cancelled_by_provider": "Cancelled by the provider: refunded",
    "cancelled_by_admin": "Cancelled by Odim",
    "cannot_make_it": "The provider cannot make it: we are finding another one",
    "customer_no_show": "Nobody was home",
    "disputed": "Under dispute",
    "resolved": "Dispute resolved",
    "reviewed": "Reviewed",
}
FULL_REFUND = {"declined", "expired", "cancelled_by_provider", "cancelled_by_admin"}
CANCELLED = FULL_REFUND | {"cancelled_by_customer"}
# The customer is emailed on these; the provider on paid (a new visit to accept) and cancellations.
CUSTOMER_EMAILED = {"paid", "accepted", "declined", "expired", "en_route", "cancelled_by_provider",
                    "cancelled_by_admin", "cannot_make_it", "completed", "resolved"}
PROVIDER_EMAILED = {"paid", "cancelled_by_customer", "cancelled_by_admin"}
MAX_NOTE = 2000
REFERENCE_ALPHABET = service_request.REFERENCE_ALPHABET


class SlotUnavailable(DomainError):
    """The slot overlaps a live booking or hold of this provider (the exclusion constraint said so)."""

    code = BookingsErrorCode.SLOT_UNAVAILABLE
    field = "start"


class HoldExpired(DomainError):
    code = BookingsErrorCode.HOLD_EXPIRED
    field = "bookingId"


class ProviderNotBookable(DomainError):
    code = BookingsErrorCode.PROVIDER_NOT_BOOKABLE
    field = "providerId"


def allowed(from_status: str, to_status: str, actor_type: str) -> bool:
    """Whether ``MACHINE`` lets ``actor_type`` move a booking from ``from_status`` to ``to_status``."""
    return MACHINE.allowed(from_status, to_status, actor_type)


def new_reference() -> str:
    """``BKG-XXXX-XXXX`` (Crockford base32, 40 random bits)."""
    chars = "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(8))
    return f"BKG-{chars[:4]}-{chars[4:]}"


def _sqlstate(exc: DBAPIError) -> str | None:
    orig = exc.orig
    for candidate in (orig, getattr(orig, "__cause__", None)):
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if state:
            return state
    return None


def is_exclusion_violation(exc: DBAPIError) -> bool:
    """True when ``exc`` is PostgreSQL's exclusion_violation (SQLSTATE 23P01)."""
    return _sqlstate(exc) == "23P01"


# --- holding a slot ----------------------------------------------------------------------------


async def hold_slot(
    session: AsyncSession,
    *,
    customer: User,
    provider_id: int,
    service_id: int,
    start: datetime,
    tier_id: int | None = None,
    currency: str | None = None,
    ticket_id: int | None = None,
    note: str = "",
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> Booking:
    """Hold one slot (``start``, aware datetime; the slot's end comes from the provider's slot length
    for the service) for ``customer`` for settings.booking_hold_seconds: a booking in status ``held``.
    Expired holds on the same provider and time are expired first (lazy expiry, in this transaction).
    The same ``idempotency_key`` from the same customer returns the earlier booking (for another
    slot: ``IdempotencyKeyReused``).
    Raises ``ProviderSuspended`` (a suspended provider), ``ProviderNotBookable`` (unknown or unverified provider), the availability
    errors (``ServiceNotBookable``, ``SlotNotOffered``: not a slot of the plan, inside the minimum
    notice or beyond the horizon), the catalogue's ``TierRequired``/``TierNotFound``/``CurrencyNotOffered``,
    ``NotFound``/``Forbidden`` for another customer's ticket, ``Forbidden`` for a provider's account booking its
    own time, ``SlotUnavailable`` (another live booking
    or hold overlaps it, buffers included: decided by the exclusion constraint). On error nothing is
    written (the caller rolls back)."""
    settings = get_settings()
    now = now or datetime.now(UTC)
    if start.tzinfo is None:
        raise DomainError("Give the start with its UTC offset", field="start", code=BookingsErrorCode.INVALID_DATETIME)
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise DomainError(f"The note is limited to {MAX_NOTE} characters", field="note", code=CommonErrorCode.TOO_LONG)
    if idempotency_key:
        earlier = await session.scalar(
            select(Booking).where(Booking.customer_user_id == customer.id, Booking.idempotency_key == idempotency_key)
        )
        if earlier is not None:
            return _same_hold(earlier, provider_id, service_id, start)
    read = (await session.execute(_HOLD_READ, {
        "provider_id": provider_id, "service_id": service_id, "days": list(availability.calendar_dates(start)),
    })).one_or_none()  # the provider share-locked (see domain/bookings/locks.py), its plan, the catalogue
    if read is not None and read.suspended:
        raise standing.ProviderSuspended("This provider is suspended and takes no new work")
    if read is None or not read.verified:
        raise ProviderNotBookable("This provider does not take bookings")
    if read.user_id is not None and read.user_id == customer.id:
        # A provider booking its own time would pay itself through escrow and could review itself.
        raise Forbidden("You cannot book your own time", field="providerId")
    currency = (currency or settings.default_currency).upper()
    if not read.service_active:
        raise offers.ServiceNotFound("No such service")
    prices = {tier: amounts or {} for tier, amounts in read.tiers}
    chosen_tier = offers.choose_tier(list(prices), tier_id)
    if currency not in prices[chosen_tier]:
        raise offers.not_offered(currency, list(prices[chosen_tier]))
    ticket = await _customer_ticket(session, ticket_id, customer) if ticket_id is not None else None
    offer, bookable = availability.offer_from_row(
        service_id=service_id, time_zone=read.time_zone, verified=read.verified, suspended=read.suspended,
        min_notice_minutes=read.min_notice_minutes, buffer_minutes=read.buffer_minutes,
        horizon_days=read.horizon_days, slot_minutes=read.slot_minutes, offered=read.offered,
        listed=read.service_active)
    plan, dates = _calendar(read.rules, read.exceptions)
    offered = availability.check_offered(offer, bookable, plan, dates, service_id=service_id, start=start, now=now)
    slot, blocked_until = offered.slot, offered.blocked_until
    claim = (await session.execute(_CLAIM_AND_EXPIRED, {
        "keys": time_keys(provider_id, slot.start, blocked_until), "provider_id": provider_id, "now": now,
        "start": slot.start, "until": blocked_until,
    })).one()
    if not claim.claimed:
        # Someone is taking overlapping time right now: refused at once, not queued behind them.
        raise SlotUnavailable("This time is no longer available: choose another slot")
    await _expire_holds(session, claim.expired or [], now)
    booking = Booking(
        provider_id=provider_id, service_id=service_id, tier_id=chosen_tier, customer_user_id=customer.id,
        ticket_id=ticket.id if ticket else None, currency=currency, status="held", starts_at=slot.start,
        ends_at=slot.end, blocked_until=blocked_until, time_zone=read.time_zone,
        hold_expires_at=now + timedelta(seconds=settings.booking_hold_seconds), customer_note=note,
        idempotency_key=idempotency_key, reference=new_reference(),
    )
    try:
        await _insert(session, booking, savepoint=idempotency_key is not None)
    except (SlotUnavailable, IntegrityError):
        # The same key raced in from a retry: the first one committed, return it (Stripe's rule).
        earlier = await session.scalar(
            select(Booking).where(Booking.customer_user_id == customer.id, Booking.idempotency_key == idempotency_key)
        ) if idempotency_key else None
        if earlier is None:
            raise
        return _same_hold(earlier, provider_id, service_id, start)
    await _record(session, booking, None, "held", actor_type="customer", actor_user_id=customer.id, note="Slot held")
    return booking


def _same_hold(earlier: Booking, provider_id: int, service_id: int, start: datetime) -> Booking:
    """The earlier hold of an idempotency key, if it was for the same provider, service and start;
    a key reused for another slot is ``IdempotencyKeyReused`` (Stripe's rule, as for purchases)."""
    if (earlier.provider_id, earlier.service_id, earlier.starts_at) != (provider_id, service_id, start):
        raise service_request.IdempotencyKeyReused("This idempotency key was used for another slot")
    return earlier


async def _insert(session: AsyncSession, booking: Booking, *, savepoint: bool = True) -> None:
    """Insert ``booking``; the exclusion constraint's refusal becomes ``SlotUnavailable`` (as does a
    deadlock between overlapping inserts, which the time claims and provider locks should prevent).
    In a savepoint unless ``savepoint`` is False (a refused hold without an idempotency key leaves the
    transaction failed: the caller rolls back, as on every error)."""
    try:
        if savepoint:
            async with session.begin_nested():
                session.add(booking)
                await session.flush()
        else:
            session.add(booking)
            await session.flush()
    except DBAPIError as exc:
        if _sqlstate(exc) in ("23P01", "40P01"):
            raise SlotUnavailable("This time is no longer available: choose another slot") from exc
        raise


async def _customer_ticket(session: AsyncSession, ticket_id: int, customer: User) -> Ticket:
    """The customer's open ticket, share-locked so a concurrent cancellation waits for this hold."""
    ticket = await session.scalar(select(Ticket).where(Ticket.id == ticket_id).with_for_update(read=True))
    if ticket is None:
        raise NotFound("No such ticket", field="ticketId")
    if ticket.customer_user_id != customer.id:
        raise Forbidden("This ticket is not yours", field="ticketId")
    if ticket.status in ("closed", "cancelled"):
        raise DomainError("This ticket is closed", field="ticketId", code=BookingsErrorCode.TICKET_CLOSED)
    return ticket


def _calendar(rules: list, exceptions: list) -> tuple[dict[int, list[tuple[int, int]]], dict[date, list[tuple[int, int]]]]:
    """The weekly plan and date exceptions (local minutes, sorted) from ``_HOLD_READ``'s JSON arrays."""
    plan: dict[int, list[tuple[int, int]]] = defaultdict(list)
    dates: dict[date, list[tuple[int, int]]] = defaultdict(list)
    for weekday, first, last in rules:
        plan[weekday].append((first, last))
    for on_date, first, last in exceptions:
        ranges = dates[date.fromisoformat(on_date)]  # touching the key makes the date an exception
        if first is not None:
            ranges.append((first, last))
    for per_day in (plan, dates):
        for ranges in per_day.values():
            ranges.sort()
    return plan, dates


async def _expire_holds(session: AsyncSession, booking_ids: list[int], now: datetime) -> None:
    """Lazy expiry: the holds ``_CLAIM_AND_EXPIRED`` found on the claimed time whose time is up leave
    the live statuses now, so the new hold does not wait for the sweeper."""
    for booking_id in booking_ids:
        booking = await lock_booking(session, booking_id)  # its order first (see ``locks.lock_booking``), then the state again
        if booking.status == "held" and booking.hold_expires_at is not None and booking.hold_expires_at <= now:
            await transition(session, booking, "payment_expired", actor_type="system", note="Hold expired")


# One statement reads everything a hold decides on: the provider (share-locked), its booking rules and
# the service's row, the catalogue's tiers with their prices, the weekly plan and the date exceptions
# around the start (domain/providers/availability.py ``calendar_dates``).
_HOLD_READ = text("""
SELECT p.user_id, p.time_zone, p.verified, p.suspended,
       bs.min_notice_minutes, bs.buffer_minutes, bs.horizon_days,
       ps.slot_minutes, ps.active AS offered, sv.active AS service_active,
       (SELECT coalesce(json_agg(json_build_array(t.id,
                  (SELECT json_object_agg(tp.currency, tp.amount_minor) FROM tier_prices tp WHERE tp.tier_id = t.id))
                ORDER BY t.id), '[]') FROM service_tiers t WHERE t.service_id = :service_id) AS tiers,
       (SELECT coalesce(json_agg(json_build_array(r.weekday, r.start_minute, r.end_minute)), '[]')
          FROM availability_rules r WHERE r.provider_id = p.id) AS rules,
       (SELECT coalesce(json_agg(json_build_array(e.on_date, e.start_minute, e.end_minute)), '[]')
          FROM availability_exceptions e
         WHERE e.provider_id = p.id AND e.on_date BETWEEN (CAST(:days AS date[]))[1] AND (CAST(:days AS date[]))[2])
         AS exceptions
FROM providers p
LEFT JOIN provider_booking_settings bs ON bs.provider_id = p.id
LEFT JOIN provider_services ps ON ps.provider_id = p.id AND ps.service_id = :service_id
LEFT JOIN services sv ON sv.id = :service_id
WHERE p.id = :provider_id
FOR SHARE OF p
""")
# One statement claims the time (domain/bookings/locks.py) and finds the expired holds on it.
_CLAIM_AND_EXPIRED = text(f"""
SELECT ({CLAIM_SQL}) AS claimed,
       (SELECT array_agg(b.id ORDER BY b.id) FROM bookings b
         WHERE b.provider_id = :provider_id AND b.status = 'held' AND b.hold_expires_at <= :now
           AND b.starts_at < :until AND b.blocked_until > :start) AS expired
""")


# --- checkout: the booking's order -------------------------------------------------------------


@dataclass(frozen=True)
class Checkout:
    booking: Booking
    order: ServiceRequest
    payment: Payment
    checkout_url: str
    fee_breakdown: fees.FeeBreakdown


async def checkout(
    session: AsyncSession, booking_id: int, *, customer: User, gateway: PaymentGateway | None = None,
    now: datetime | None = None,
) -> Checkout:
    """Open the held booking's order and a checkout session at the gateway for its price (plus the
    urgent surcharge when its ticket is urgent). Calling it again during the hold returns the same
    checkout. Raises ``NotFound``, ``Forbidden`` (not the customer's), ``HoldExpired`` (the hold is
    over: hold the slot again), ``InvalidTransition`` (not held any more), ``GatewayUnavailableError``,
    ``GatewayRefused``."""
    now = now or datetime.now(UTC)
    booking = await lock_booking(session, booking_id)
    if booking.customer_user_id != customer.id:
        raise Forbidden("This booking is not yours", field="bookingId")
    if booking.status != "held":
        raise InvalidTransition(f"Only a held booking can be paid; this one is {booking.status}", field="bookingId")
    if booking.hold_expires_at is not None and booking.hold_expires_at <= now:
        raise HoldExpired("The hold on this slot expired: hold it again")
    if booking.service_request_id is not None:
        order = await locks.lock_request(session, booking.service_request_id)
        payment = await session.scalar(
            select(Payment).where(Payment.service_request_id == order.id).order_by(Payment.id.desc()).limit(1)
        )
        assert payment is not None
        return Checkout(booking, order, payment, payment.checkout_url or "", escrow.order_breakdown(order))
    service, tier, price, _ = await offers.offer(session, booking.service_id, booking.tier_id, booking.currency, None)
    urgent = False
    if booking.ticket_id is not None:
        urgent = bool(await session.scalar(select(Ticket.urgent).where(Ticket.id == booking.ticket_id)))
    urgent_bps = get_settings().ticket_urgent_surcharge_bps if urgent else 0
    quote = fees.quote(price.amount_minor, booking.currency, service.category, guest=False, urgent_bps=urgent_bps)
    order = ServiceRequest(
        ledger_stripe=ledger.new_stripe(),
        kind="booking", service_id=service.id, tier_id=tier.id, customer_user_id=customer.id,
        customer_name=customer.full_name, customer_email=customer.email, customer_phone=customer.phone,
        requirements=booking.customer_note, status="awaiting_payment", assigned_provider_id=booking.provider_id,
        amount_minor=quote.total, price_minor=quote.price, urgent_surcharge_minor=quote.urgent_surcharge,
        guest_surcharge_minor=0, commission_bps=quote.commission_bps, guest_surcharge_bps=0,
        affiliate_commission_bps=0, currency=booking.currency,
    )
    await service_request.insert_with_reference(session, order)
    booking.service_request_id = order.id
    gateway = gateway or service_request.gateway_for(booking.currency)
    when = _local(booking).strftime("%Y-%m-%d %H:%M")
    payment, url = await service_request.open_order(
        session, gateway, order, actor_user_id=customer.id,
        description=f"{service.name} — {tier.name}, {when} ({booking.reference})",
    )
    return Checkout(booking, order, payment, url, escrow.order_breakdown(order))


async def order_paid(session: AsyncSession, order: ServiceRequest, *, amount: str) -> bool:
    """Called by domain/orders/payment.py when a booking's order is paid (order row-locked): the held visit
    moves to ``paid`` and the order to ``payment_confirmed``. Returns False when no visit is held any
    more (the hold expired first): the caller refunds the money at once."""
    booking = await session.scalar(
        select(Booking).where(Booking.service_request_id == order.id, Booking.parent_booking_id.is_(None))
        .with_for_update(key_share=True)
    )
    if booking is None or booking.status != "held":
        return False
    order.paid_at = datetime.now(UTC)
    await service_request.transition(session, order, "payment_confirmed", actor_type="system", note=f"Paid {amount}")
    await transition(session, booking, "paid", actor_type="system", note=f"Paid {amount}")
    return True


# --- the state machine -------------------------------------------------------------------------


async def actor_type_for(session: AsyncSession, booking: Booking, user: User) -> str:
    """``admin``, ``customer`` (the booking's) or ``provider`` (the booking's); raises ``Forbidden``."""
    if user.role == "admin":
        return "admin"
    if booking.customer_user_id == user.id:
        return "customer"
    if user.role == "provider":
        owner = await session.scalar(select(Provider.user_id).where(Provider.id == booking.provider_id))
        if owner == user.id:
            return "provider"
    raise Forbidden("Only the customer, the booking's provider or an admin can act on this booking")


async def change_status(
    session: AsyncSession, booking_id: int, to_status: str, *, actor: User, note: str = "",
    now: datetime | None = None,
) -> Booking:
    """A user moves a booking on (the API's entry point). Raises ``NotFound``, ``Forbidden``,
    ``InvalidTransition`` (not in the table for this actor, or a guard failed), DomainError
    ``TOO_LONG`` for the note; plus the effects' errors. Nothing is written on error."""
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise DomainError(f"The note is limited to {MAX_NOTE} characters", field="note", code=CommonErrorCode.TOO_LONG)
    booking = await lock_booking(session, booking_id)
    actor_type = await actor_type_for(session, booking, actor)
    if to_status in ("disputed", "reviewed", "resolved", "needs_follow_up"):
        raise InvalidTransition(f"Use the dedicated mutation to move a booking to {to_status}")
    await transition(session, booking, to_status, actor_type=actor_type, actor_user_id=actor.id, note=note, now=now)
    return booking


async def transition(
    session: AsyncSession,
    booking: Booking,
    to_status: str,
    *,
    actor_type: str,
    actor_user_id: int | None = None,
    note: str = "",
    now: datetime | None = None,
) -> BookingStatusChange:
    """Move ``booking`` (row-locked by the caller) to ``to_status``: checks the table and the guards,
    writes the history row and the live event, then runs the transition's effects, all in the
    caller's transaction. Raises ``InvalidTransition``."""
    now = now or datetime.now(UTC)
    MACHINE.check(booking.status, to_status, actor_type)
    _guard(booking, to_status, now)
    if to_status == "in_progress":  # before work starts: the visit's contract accepted by both
        await contract.require_accepted(session, booking=booking)
    previous = booking.status
    MACHINE.move(booking, to_status, actor=actor_type, history=None)
    booking.updated_at = now
    change = await _record(session, booking, previous, to_status, actor_type=actor_type, actor_user_id=actor_user_id, note=note)
    effect = EFFECTS.get(to_status)
    if effect is not None:
        await effect(session, booking, previous, actor_type, actor_user_id, now)
    await _emails(session, booking, change)
    await feed.booking_status_changed(session, booking, to_status=to_status, status_label=STATUS_LABELS[to_status],
                                      actor_user_id=actor_user_id)
    return change


def _guard(booking: Booking, to_status: str, now: datetime) -> None:
    if to_status == "customer_no_show":
        wait = timedelta(seconds=get_settings().booking_no_show_wait_seconds)
        if booking.arrived_at is None or now < booking.arrived_at + wait:
            minutes = wait.total_seconds() / 60
            raise InvalidTransition(f"Wait {minutes:g} minutes after arriving before reporting that nobody is home")
    if to_status == "paid" and booking.service_request_id is None:
        raise InvalidTransition("A booking is paid through its order")


async def _record(
    session: AsyncSession, booking: Booking, previous: str | None, to_status: str, *, actor_type: str,
    actor_user_id: int | None, note: str,
) -> BookingStatusChange:
    change = BookingStatusChange(
        booking_id=booking.id, from_status=previous, to_status=to_status, actor_type=actor_type,
        actor_user_id=actor_user_id, note=note,
    )
    session.add(change)
    await session.flush()
    prev = await session.scalar(
        select(func.coalesce(func.max(BookingStatusChange.id), 0)).where(
            BookingStatusChange.booking_id == booking.id, BookingStatusChange.id < change.id
        )
    ) if previous is not None else 0
    outbox.publish_event(
        session, live.booking_channel(booking.id),
        status_event(change.id, prev, booking.id, booking.reference, to_status, previous, note, actor_type,
                     change.created_at),
    )
    return change


def status_event(
    change_id: int, prev: int, booking_id: int, reference: str, status: str, previous: str | None, note: str | None,
    actor_type: str, at: datetime | None,
) -> BookingStatusEvent:
    """The live event of one booking status change (``BookingStatusEvent``; ``at`` ISO 8601 UTC)."""
    return BookingStatusEvent(
        id=change_id, prev=prev, historyId=change_id, bookingId=booking_id, reference=reference, status=str(status),
        previousStatus=None if previous is None else str(previous), note=note or "", actorType=actor_type,
        at=(at or datetime.now(UTC)).isoformat(),
    )


async def latest_status_event_id(session: AsyncSession, booking_id: int) -> int:
    """The id of booking ``booking_id``'s latest status change (0 when none)."""
    return await session.scalar(
        select(func.coalesce(func.max(BookingStatusChange.id), 0)).where(BookingStatusChange.booking_id == booking_id)
    )


async def status_events_since(session: AsyncSession, booking_id: int, after: int, limit: int) -> list[dict]:
    """Status changes of booking ``booking_id`` with history id > ``after``, oldest first, at most
    ``limit``, as ``_record`` published them. 1 statement."""
    history = BookingStatusChange
    numbered = (
        select(
            history.id, history.from_status, history.to_status, history.note, history.actor_type,
            history.created_at, Booking.reference, func.lag(history.id, 1, 0).over(order_by=history.id).label("prev"),
        )
        .join(Booking, Booking.id == history.booking_id)
        .where(history.booking_id == booking_id)
        .subquery()
    )
    rows = (
        await session.execute(select(numbered).where(numbered.c.id > after).order_by(numbered.c.id).limit(limit))
    ).all()
    return [
        status_event(r.id, r.prev, booking_id, r.reference, r.to_status, r.from_status, r.note, r.actor_type,
                     r.created_at).payload()
        for r in rows
    ]


# --- effects -----------------------------------------------------------------------------------

Effect = Callable[[AsyncSession, Booking, str, str, "int | None", datetime], Awaitable[None]]


async def _order(session: AsyncSession, booking: Booking) -> ServiceRequest | None:
    if booking.service_request_id is None:
        return None
    return await locks.lock_request(session, booking.service_request_id)


async def _on_paid(session, booking, previous, actor_type, actor_user_id, now) -> None:
    booking.hold_expires_at = None
    booking.response_due_at = now + timedelta(seconds=get_settings().booking_response_seconds)
    await contract.ensure_contract(session, booking=booking, now=now)


async def _on_payment_expired(session, booking, previous, actor_type, actor_user_id, now) -> None:
    order = await _order(session, booking)
    if order is not None and order.status == "awaiting_payment":
        await service_request.transition(session, order, "cancelled", actor_type="system", note="Hold expired unpaid")


async def _on_accepted(session, booking, previous, actor_type, actor_user_id, now) -> None:
    booking.response_due_at = None
    booking.substitution_due_at = None
    if previous == "cannot_make_it":  # taken over (or the provider can make it after all): offers close
        await session.execute(
            update(SubstitutionOffer)
            .where(SubstitutionOffer.booking_id == booking.id, SubstitutionOffer.status == "offered")
            .values(status="lost", decided_at=now)
        )
    # Same terms: the current version stays; a substitute provider (take-over): a new version to accept.
    await contract.ensure_contract(session, booking=booking, now=now)
    order = await _order(session, booking)
    if order is not None:
        order.assigned_provider_id = booking.provider_id
        if order.status == "payment_confirmed":
            await service_request.transition(session, order, "team_assigned", actor_type="system", note="Visit accepted")
    if booking.ticket_id is not None:
        ticket = await session.get(Ticket, booking.ticket_id, with_for_update={"key_share": True})
        if ticket is not None and ticket.status == "open":
            ticket.status = "scheduled"


async def _on_in_progress(session, booking, previous, actor_type, actor_user_id, now) -> None:
    order = await _order(session, booking)
    if order is not None and order.status == "team_assigned":
        await service_request.transition(session, order, "in_progress", actor_type="system", note="Visit started")


async def _on_arrived(session, booking, previous, actor_type, actor_user_id, now) -> None:
    booking.arrived_at = now


async def _on_completed(session, booking, previous, actor_type, actor_user_id, now) -> None:
    booking.completed_at = now
    if previous == "needs_follow_up":
        await _close_follow_ups(session, booking, actor_user_id, now)
    order = await _order(session, booking)
    if order is None or await _other_open_visits(session, booking):
        return
    if order.status == "team_assigned":
        await service_request.transition(session, order, "in_progress", actor_type="system", note="Visit started")
    if order.status == "in_progress":
        await service_request.transition(session, order, "completed", actor_type="system", note="Visit completed")
        await service_request.money_effects(
            session, order, "completed", actor_type="admin" if actor_type == "admin" else "system",
            actor_user_id=actor_user_id,
        )
    if booking.ticket_id is not None:
        ticket = await session.get(Ticket, booking.ticket_id, with_for_update={"key_share": True})
        if ticket is not None and ticket.status in ("open", "scheduled"):
            ticket.status = "closed"


async def _other_open_visits(session: AsyncSession, booking: Booking) -> bool:
    """Whether another visit of the same order is still to be done (a booked follow-up)."""
    return bool(await session.scalar(select(exists().where(
        Booking.service_request_id == booking.service_request_id, Booking.id != booking.id,
        Booking.status.in_(LIVE_STATUSES + ("cannot_make_it",)),
    ))))


async def _on_cancelled(session, booking, previous, actor_type, actor_user_id, now) -> None:
    booking.response_due_at = None
    booking.substitution_due_at = None
    if previous == "cannot_make_it":
        await session.execute(
            update(SubstitutionOffer)
            .where(SubstitutionOffer.booking_id == booking.id, SubstitutionOffer.status == "offered")
            .values(status="expired", decided_at=now)
        )
    await _reopen_ticket(session, booking)
    if previous == "needs_follow_up":
        await _close_follow_ups(session, booking, actor_user_id, now)
    order = await _order(session, booking)
    if order is None or booking.parent_booking_id is not None:
        # A follow-up visit shares its order: cancelling it moves no money by itself (an admin refunds).
        return
    if previous == "held":
        if order.status == "awaiting_payment":
            await service_request.transition(session, order, "cancelled", actor_type="system", note="Hold released")
        return
    percent = 100
    if booking.status == "cancelled_by_customer" and previous not in ("cannot_make_it",):
        hours = (booking.starts_at - now).total_seconds() / 3600
        percent = refund.refund_percent_for_cancellation(hours)
    if order.status not in ("cancelled", "completed"):
        label = STATUS_LABELS[booking.status]
        await service_request.transition(session, order, "cancelled", actor_type="system", note=label)
        await service_request.money_effects(
            session, order, "cancelled", actor_type="system", actor_user_id=actor_user_id, refund_percent=percent,
            reason=f"Booking {booking.reference}: {label.split(':')[0].lower()} ({percent} % refunded)",
        )
        if escrow.refundable(order) > 0 and not await escrow.has_open_dispute(session, order.id):
            # What the policy keeps is a late-cancellation fee: it leaves escrow as a completed
            # visit's money does (provider's share and commission), never stays there.
            await escrow.release(session, order)


async def _close_follow_ups(session: AsyncSession, booking: Booking, actor_user_id: int | None, now: datetime) -> None:
    """The job is closed from ``needs_follow_up`` (abandoned, or no follow-up after all; ``booking``
    already has its new status, ``completed`` or ``cancelled_by_admin``): its whole chain of follow-ups
    is closed, so no visit of the order stays live once the order is cancelled or completed.
    A booked follow-up (``accepted``, ``cannot_make_it``) is cancelled (``cancelled_by_admin``); a
    follow-up that itself waits for a follow-up (``needs_follow_up``) is closed the same way as
    ``booking`` (its own table row, by an admin), which closes its follow-ups in turn; one already
    under way (``paid``..``in_progress``) refuses the whole move (``InvalidTransition``)."""
    follow_ups = (await session.scalars(
        select(Booking).where(
            Booking.parent_booking_id == booking.id,
            Booking.status.in_(LIVE_STATUSES + ("cannot_make_it", "needs_follow_up")),
        ).order_by(Booking.id).with_for_update(key_share=True)
    )).all()
    for visit in follow_ups:
        if visit.status not in ("accepted", "cannot_make_it", "needs_follow_up"):
            raise InvalidTransition(f"The follow-up visit {visit.reference} is under way ({visit.status}): finish or cancel it first")
        to_status = booking.status if visit.status == "needs_follow_up" else "cancelled_by_admin"
        await transition(session, visit, to_status, actor_type="admin", actor_user_id=actor_user_id,
                         note=f"The job of {booking.reference} was closed", now=now)


async def _reopen_ticket(session: AsyncSession, booking: Booking) -> None:
    """A scheduled ticket whose visit fell through, with no other visit under way, is open again
    (so the stale-ticket escalation sees it)."""
    if booking.ticket_id is None:
        return
    ticket = await session.get(Ticket, booking.ticket_id, with_for_update={"key_share": True})
    if ticket is None or ticket.status != "scheduled":
        return
    other = await session.scalar(select(exists().where(
        Booking.ticket_id == ticket.id, Booking.id != booking.id,
        Booking.status.in_(LIVE_STATUSES + ("cannot_make_it", "needs_follow_up")),
    )))
    if not other:
        ticket.status = "open"


async def _on_cannot_make_it(session, booking, previous, actor_type, actor_user_id, now) -> None:
    booking.substitution_due_at = now + timedelta(seconds=get_settings().booking_substitution_seconds)
    await substitution.offer_substitution(session, booking, now=now)


async def _on_no_show(session, booking, previous, actor_type, actor_user_id, now) -> None:
    if booking.ticket_id is not None:
        ticket = await session.get(Ticket, booking.ticket_id, with_for_update={"key_share": True})
        if ticket is not None:
            ticket.flagged_reason = f"Customer not at home for visit {booking.reference}"
    await escalation.escalate(session, "customer_no_show", booking=booking,
                   note=f"Provider waited from {booking.arrived_at:%H:%M} UTC; nobody was home")


EFFECTS: dict[str, Effect] = {
    "paid": _on_paid,
    "payment_expired": _on_payment_expired,
    "accepted": _on_accepted,
    "in_progress": _on_in_progress,
    "arrived": _on_arrived,
    "completed": _on_completed,
    "declined": _on_cancelled,
    "expired": _on_cancelled,
    "cancelled_by_customer": _on_cancelled,
    "cancelled_by_provider": _on_cancelled,
    "cancelled_by_admin": _on_cancelled,
    "cannot_make_it": _on_cannot_make_it,
    "customer_no_show": _on_no_show,
}


async def _emails(session: AsyncSession, booking: Booking, change: BookingStatusChange) -> None:
    """Queue the emails a transition sends (CUSTOMER_EMAILED, PROVIDER_EMAILED), once per history row."""
    to_status, note = change.to_status, change.note
    if to_status not in CUSTOMER_EMAILED and to_status not in PROVIDER_EMAILED:
        return
    service = await session.get(Service, booking.service_id)
    context = {
        "reference": booking.reference, "service": service.name if service else "", "status_label": STATUS_LABELS[to_status],
        "when": f"{_local(booking):%Y-%m-%d %H:%M} ({booking.time_zone})", "note": note,
        "next_step": "Open the booking in the app for details.",
    }
    recipients: list[User] = []
    if to_status in CUSTOMER_EMAILED:
        recipients.append(await session.get(User, booking.customer_user_id))
    if to_status in PROVIDER_EMAILED:
        owner = await session.scalar(select(User).join(Provider, Provider.user_id == User.id).where(Provider.id == booking.provider_id))
        if owner is not None:
            recipients.append(owner)
    for user in recipients:
        if user is None:
            continue
        await notification.queue_email(
            session, dedupe_key=f"booking:{change.id}:{user.id}",
            kind="booking_update", to=user.email, template="booking_update", context={**context, "name": user.full_name},
        )


def _local(booking: Booking) -> datetime:
    from zoneinfo import ZoneInfo

    return booking.starts_at.astimezone(ZoneInfo(booking.time_zone))


# --- dedicated transitions ---------------------------------------------------------------------


async def book_follow_up(
    session: AsyncSession, booking_id: int, *, actor: User, start: datetime, note: str = "", now: datetime | None = None
) -> Booking:
    """The visit needs another one: ``in_progress -> needs_follow_up`` and a new visit at ``start``
    (a slot of the same provider and service) on the same order and ticket, already accepted (paid by
    the first visit's order). Raises ``NotFound``, ``Forbidden``, ``InvalidTransition``, the
    availability errors, ``SlotUnavailable``."""
    now = now or datetime.now(UTC)
    provider_id = await session.scalar(select(Booking.provider_id).where(Booking.id == booking_id))
    if provider_id is not None:
        await lock_provider_if_any(session, provider_id)  # first: see domain/bookings/locks.py for the order
    booking = await lock_booking(session, booking_id)
    actor_type = await actor_type_for(session, booking, actor)
    await transition(session, booking, "needs_follow_up", actor_type=actor_type, actor_user_id=actor.id,
                     note=(note or "").strip()[:MAX_NOTE], now=now)
    offered = await availability.offered_slot(
        session, provider_id=booking.provider_id, service_id=booking.service_id, start=start, now=now
    )
    slot = offered.slot
    follow_up = Booking(
        provider_id=booking.provider_id, service_id=booking.service_id, tier_id=booking.tier_id,
        customer_user_id=booking.customer_user_id, ticket_id=booking.ticket_id,
        service_request_id=booking.service_request_id, parent_booking_id=booking.id, currency=booking.currency,
        status="accepted", starts_at=slot.start, ends_at=slot.end,
        blocked_until=offered.blocked_until, time_zone=booking.time_zone,
        customer_note=booking.customer_note, reference=new_reference(),
    )
    await _insert(session, follow_up)
    change = await _record(session, follow_up, None, "accepted", actor_type=actor_type, actor_user_id=actor.id,
                           note=f"Follow-up visit of {booking.reference}")
    await contract.ensure_contract(session, booking=follow_up, now=now)  # the follow-up's own terms
    await _emails(session, follow_up, change)
    await feed.booking_status_changed(session, follow_up, to_status="accepted", status_label=STATUS_LABELS["accepted"],
                                      actor_user_id=actor.id)
    return follow_up


class SubstitutionTaken(DomainError):
    code = BookingsErrorCode.SUBSTITUTION_TAKEN
    field = "bookingId"


async def take_over(
    session: AsyncSession, booking_id: int, *, actor: User, provider_id: int | None = None, now: datetime | None = None
) -> Booking:
    """A visit whose provider cannot make it gets a new provider: ``cannot_make_it -> accepted``.
    A provider takes it by accepting its substitution offer (the first to accept wins: the booking is
    row-locked and must still be ``cannot_make_it``); an admin assigns ``provider_id`` directly. The
    exclusion constraint refuses a substitute whose own time is taken. Raises ``NotFound``,
    ``Forbidden`` (no offer to this provider), ``SubstitutionTaken``, ``ProviderNotBookable``,
    ``SlotUnavailable``."""
    if actor.role == "admin":
        if provider_id is None:
            raise DomainError("Choose the provider who takes the visit", field="providerId", code=CommonErrorCode.REQUIRED)
        actor_type = "admin"
    else:
        provider_id = await session.scalar(select(Provider.id).where(Provider.user_id == actor.id))
        actor_type = "provider"
    provider = await lock_provider_if_any(session, provider_id) if provider_id is not None else None
    standing.ensure_not_suspended(provider)  # PROVIDER_SUSPENDED: says why (two strikes or an admin)
    if provider is None or not provider.verified or provider.suspended:
        raise ProviderNotBookable("This provider cannot take visits")
    booking = await lock_booking(session, booking_id)
    offer = await session.scalar(
        select(SubstitutionOffer).where(SubstitutionOffer.booking_id == booking.id, SubstitutionOffer.provider_id == provider.id)
    )
    if actor_type == "provider" and offer is None:
        raise Forbidden("This visit was not offered to you", field="bookingId")
    if booking.status != "cannot_make_it" or (offer is not None and offer.status != "offered" and actor_type == "provider"):
        raise SubstitutionTaken("Another provider has already taken this visit")
    previous_provider = booking.provider_id
    booking.provider_id = provider.id
    try:
        await transition(session, booking, "accepted", actor_type=actor_type, actor_user_id=actor.id, now=now,
                         note=f"Taken over from provider {previous_provider}")
    except IntegrityError as exc:
        if is_exclusion_violation(exc):
            raise SlotUnavailable("You already have a visit at this time", field="bookingId") from exc
        raise
    if offer is not None:  # the other offers were closed by the transition's effect
        offer.status = "accepted"
    return booking


async def open_dispute(session: AsyncSession, booking_id: int, *, actor: User, reason: str) -> Booking:
    """``completed -> disputed``: opens a dispute on the booking's order (domain/orders/dispute.py rules:
    the customer within the dispute window, or an admin); its money is held until resolved. Raises
    ``NotFound``, ``Forbidden``, ``InvalidTransition``, the dispute's errors."""
    booking = await lock_booking(session, booking_id)
    actor_type = await actor_type_for(session, booking, actor)
    if actor_type == "provider":
        raise Forbidden("Only the customer or an admin can open a dispute")
    if booking.service_request_id is None:
        raise InvalidTransition("This booking was never paid")
    await transition(session, booking, "disputed", actor_type=actor_type, actor_user_id=actor.id, note=reason.strip()[:MAX_NOTE])
    await dispute.open_dispute(session, booking.service_request_id, actor=actor, reason=reason)
    return booking


async def dispute_resolved(session: AsyncSession, order_id: int, *, actor_user_id: int | None, note: str) -> None:
    """Called when a dispute on a booking's order is settled: its disputed visits -> ``resolved``."""
    disputed = (await session.scalars(
        select(Booking).where(Booking.service_request_id == order_id, Booking.status == "disputed")
        .order_by(Booking.id).with_for_update(key_share=True)
    )).all()
    for booking in disputed:
        await transition(session, booking, "resolved", actor_type="admin" if actor_user_id else "system",
                         actor_user_id=actor_user_id, note=note)


async def review(
    session: AsyncSession, booking_id: int, *, actor: User, rating: int, comment: str = "", now: datetime | None = None,
) -> Booking:
    """``completed -> reviewed`` by the booking's customer with 1-5 stars and an optional comment
    (at most 2,000 characters), and its customer review (domain/reviews/review.py ``record``: paid, within the
    review window, once; blind until the provider reviews too or the window closes). Raises ``NotFound``,
    ``Forbidden``, ``InvalidTransition``, ``review_domain.ReviewWindowClosed``/``AlreadyReviewed``/``NotReviewable``,
    DomainError ``INVALID_RATING``/``TOO_LONG``."""
    comment = review_domain.validate(rating, comment, text_field="comment")
    subject = await review_domain.lock_subject(session, booking_id=booking_id)  # provider -> order -> booking
    booking = subject.booking
    actor_type = await actor_type_for(session, booking, actor)
    if actor_type != "customer":
        raise Forbidden("Only the booking's customer can review it")
    await transition(session, booking, "reviewed", actor_type="customer", actor_user_id=actor.id, now=now)
    booking.review_rating = rating
    booking.review_comment = comment or None
    await review_domain.record(session, subject, side="customer", author=actor, rating=rating, text_=comment, now=now)
    return booking


# --- timers (the scheduler runs them) ----------------------------------------------------------


async def _timer(
    status: str, due_column, due_before: datetime, to_status: str, note: str, *, now: datetime, limit: int
) -> int:
    """Move bookings in ``status`` whose ``due_column`` is at or before ``due_before`` to
    ``to_status`` as the system, each in its own transaction: row-locked (order first, see
    ``lock``) and re-checked, so a user's action that got there first wins. Returns how many moved."""
    async with session_scope() as session:
        ids = list((await session.scalars(
            select(Booking.id).where(Booking.status == status, due_column <= due_before).order_by(Booking.id).limit(limit)
        )).all())
    moved = 0
    for booking_id in ids:
        async with session_scope() as session:
            booking = await lock_booking(session, booking_id)
            due = getattr(booking, due_column.key)
            if booking.status != status or due is None or due > due_before:
                continue
            await transition(session, booking, to_status, actor_type="system", note=note, now=now)
            moved += 1
    return moved


async def expire_holds(*, now: datetime | None = None, limit: int = 500) -> int:
    """Held bookings whose hold is over -> ``payment_expired`` (frees the slot). Returns how many."""
    now = now or datetime.now(UTC)
    return await _timer("held", Booking.hold_expires_at, now, "payment_expired", "Hold expired", now=now, limit=limit)


async def expire_unanswered(*, now: datetime | None = None, limit: int = 500) -> int:
    """Paid bookings the provider has not accepted by the response deadline -> ``expired`` (full refund)."""
    now = now or datetime.now(UTC)
    return await _timer("paid", Booking.response_due_at, now, "expired", "The provider did not answer in time",
                        now=now, limit=limit)


async def auto_complete(*, now: datetime | None = None, limit: int = 500) -> int:
    """Visits still in progress settings.booking_auto_complete_seconds after their slot ended ->
    ``completed`` by the system (escrow then follows the usual grace period)."""
    now = now or datetime.now(UTC)
    grace = timedelta(seconds=get_settings().booking_auto_complete_seconds)
    return await _timer("in_progress", Booking.ends_at, now - grace, "completed", "Completed automatically",
                        now=now, limit=limit)


# --- reading -----------------------------------------------------------------------------------


async def can_see(session: AsyncSession, booking: Booking, viewer: User | None) -> bool:
    """The booking's customer, its provider, or an admin."""
    if viewer is None:
        return False
    try:
        await actor_type_for(session, booking, viewer)
    except Forbidden:
        return False
    return True


async def histories(session: AsyncSession, booking_ids: list[int]) -> dict[int, list[BookingStatusChange]]:
    """Status history per booking, oldest first, in one statement."""
    rows = (await session.scalars(
        select(BookingStatusChange).where(BookingStatusChange.booking_id.in_(booking_ids)).order_by(BookingStatusChange.id)
    )).all()
    out: dict[int, list[BookingStatusChange]] = {i: [] for i in booking_ids}
    for row in rows:
        out[row.booking_id].append(row)
    return out


async def list_bookings(
    session: AsyncSession, viewer: User, *, status: str | None = None, first: int = 20, after: str | None = None,
) -> tuple[list[Booking], bool]:
    """Bookings visible to ``viewer`` (admin: all; customer: its own; provider: its visits), newest
    id first, keyset-paginated on id (``domain.pagination`` cursors). Returns ``(rows, has_next)``."""
    stmt = select(Booking).order_by(Booking.id.desc()).limit(first + 1)
    if viewer.role == "customer":
        stmt = stmt.where(Booking.customer_user_id == viewer.id)
    elif viewer.role == "provider":
        stmt = stmt.where(or_(
            Booking.customer_user_id == viewer.id,
            Booking.provider_id.in_(select(Provider.id).where(Provider.user_id == viewer.id)),
        ))
    if status is not None:
        stmt = stmt.where(Booking.status == status)
    if after:
        stmt = stmt.where(Booking.id < pagination.decode("Booking", after))
    rows = list((await session.scalars(stmt)).all())
    return rows[:first], len(rows) > first



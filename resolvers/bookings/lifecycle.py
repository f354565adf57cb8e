"""A booking's life: the transition table, reading bookings (customers, providers, admins), holds,
checkout, status changes, follow-up visits, disputes and reviews of a visit, and the authorisation of
its live status events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.bookings import booking as booking_domain
from domain.shared import pagination
from domain.shared.errors import CommonErrorCode, DomainError, Forbidden, NotFound
from models import Booking
from models.db import session_scope
from resolvers import loaders, ratelimit
from resolvers.context import Context, forbidden
from resolvers.errors import PayloadError, bad_input, write
from resolvers.ids import decode_id
from resolvers.pagination import page_size

# The keyset cursor kind of domain.bookings.booking.list_bookings.
BOOKING_CURSOR = "Booking"


def state_machine() -> list[tuple[str, str, list[str], str]]:
    """The transition table as ``(from, to, actors sorted, description)``, in the table's order."""
    order = ["customer", "provider", "admin", "system"]
    return [
        (frm, to, sorted(rule.actors, key=order.index), rule.why)
        for (frm, to), rule in booking_domain.TRANSITIONS.items()
    ]


# --- reading bookings -----------------------------------------------------------------------------


async def viewer_actor_type(ctx: Context, booking: Booking) -> str | None:
    """``customer``, ``provider`` or ``admin`` as ``booking.actor_type_for`` decides it for the
    caller, without a statement per booking (the caller's provider profile comes through a loader);
    None for anyone else."""
    viewer = await ctx.viewer()
    if viewer is None:
        return None
    if viewer.role == "admin":
        return "admin"
    if booking.customer_user_id == viewer.id:
        return "customer"
    if viewer.role == "provider" and await loaders.provider_ids_by_user(ctx).load(viewer.id) == booking.provider_id:
        return "provider"
    return None


async def allowed_transitions(ctx: Context, booking: Booking) -> list[str]:
    """The statuses the caller may move ``booking`` to now per the transition table and its actor
    type (guards such as the no-show wait are checked when it tries)."""
    actor = await viewer_actor_type(ctx, booking)
    if actor is None:
        return []
    return [to for (frm, to) in booking_domain.TRANSITIONS if frm == booking.status
            and booking_domain.allowed(frm, to, actor)]


async def booking(ctx: Context, *, booking_id: str) -> Booking | None:
    """A booking by global id: null unless the caller is its customer, its provider or an admin."""
    try:
        ident = decode_id(booking_id, "Booking", field="id")
    except DomainError as exc:
        raise bad_input(exc) from exc
    return (await booking_nodes(ctx, [ident]))[0]


async def booking_nodes(ctx: Context, ids: list[int]) -> list[Booking | None]:
    """Bookings by id (one statement), each only for callers ``viewer_actor_type`` recognises."""
    viewer = await ctx.viewer()
    if viewer is None:
        return [None] * len(ids)
    found = await loaders.bookings(ctx).load_many(ids)
    return [b if b is not None and await viewer_actor_type(ctx, b) else None for b in found]


@dataclass
class BookingPage:
    items: list[tuple[Booking, str]]
    has_next_page: bool


async def my_bookings(ctx: Context, *, status: str | None, first: int | None, after: str | None) -> BookingPage:
    """The caller's bookings, newest first (``booking.list_bookings``: admins all, customers their
    own, providers their visits and their own), keyset on id in one statement."""
    viewer = await ctx.require_user()
    try:
        size = page_size(first)
        async with ctx.db() as session:
            rows, has_next = await booking_domain.list_bookings(session, viewer, status=status, first=size, after=after)
    except DomainError as exc:
        raise bad_input(exc) from exc
    return BookingPage([(b, pagination.encode(BOOKING_CURSOR, b.id)) for b in rows], has_next)


# --- writing bookings -----------------------------------------------------------------------------


@dataclass
class BookingResult:
    booking: Booking | None
    errors: list[PayloadError]


def _key(idempotency_key: str | None) -> str | None:
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 120:
        raise DomainError("Idempotency keys are 1 to 120 characters", field="idempotencyKey", code=CommonErrorCode.INVALID)
    return idempotency_key


async def hold_slot(
    ctx: Context, *, provider_id: str, service_id: str, start: datetime, tier_id: str | None, currency: str | None,
    ticket_id: str | None, note: str | None, idempotency_key: str | None,
) -> BookingResult:
    """A logged-in customer (or a provider booking someone else's time) holds a slot for
    settings.booking_hold_seconds. Guests: UNAUTHENTICATED (guests cannot book yet); admins:
    FORBIDDEN. Taken slots come back as ``SLOT_UNAVAILABLE`` (the exclusion constraint decided)."""
    user = await ctx.require_user()
    if user.role == "admin":
        raise forbidden("Operators do not book slots; log in as a customer")
    wait = await ratelimit.limit(ctx, "purchase", f"user:{user.id}")  # rate_limit_purchase; nothing written over it
    if wait is not None:
        return BookingResult(None, [ratelimit.rate_limited_error(wait, "bookings")])

    async def op(session: AsyncSession) -> Booking:
        return await booking_domain.hold_slot(
            session, customer=user, provider_id=decode_id(provider_id, "Provider", field="providerId"),
            service_id=decode_id(service_id, "Service", field="serviceId"), start=start,
            tier_id=decode_id(tier_id, "ServiceTier", field="tierId") if tier_id else None,
            currency=currency, ticket_id=decode_id(ticket_id, "Ticket", field="ticketId") if ticket_id else None,
            note=note or "", idempotency_key=_key(idempotency_key),
        )

    held, errors = await write(op)
    return BookingResult(held, errors)


@dataclass
class CheckoutResult:
    booking: Booking | None
    checkout_url: str | None
    fee_breakdown: Any | None
    errors: list[PayloadError]


async def checkout_booking(ctx: Context, *, booking_id: str) -> CheckoutResult:
    """The booking's customer opens (or re-opens, during the hold) its order and checkout."""
    user = await ctx.require_user()

    async def op(session: AsyncSession) -> booking_domain.Checkout:
        return await booking_domain.checkout(session, decode_id(booking_id, "Booking", field="bookingId"), customer=user)

    out, errors = await write(op)
    if out is None:
        return CheckoutResult(None, None, None, errors)
    return CheckoutResult(out.booking, out.checkout_url, out.fee_breakdown, [])


async def change_status(ctx: Context, *, booking_id: str, status: str, note: str | None) -> BookingResult:
    """Move a booking on along the table (``booking.change_status``): its customer, provider or an
    admin, each only along its own rows (``INVALID_TRANSITION`` otherwise, nothing written)."""
    user = await ctx.require_user()

    async def op(session: AsyncSession) -> Booking:
        ident = decode_id(booking_id, "Booking", field="bookingId")
        return await booking_domain.change_status(session, ident, status, actor=user, note=note or "")

    changed, errors = await write(op)
    return BookingResult(changed, errors)


@dataclass
class FollowUpResult:
    booking: Booking | None
    follow_up: Booking | None
    errors: list[PayloadError]


async def book_follow_up(ctx: Context, *, booking_id: str, start: datetime, note: str | None) -> FollowUpResult:
    """The provider (or an admin) books another visit at ``start``: the visit -> needs_follow_up."""
    user = await ctx.require_user()
    ident: list[int] = []

    async def op(session: AsyncSession) -> Booking:
        ident.append(decode_id(booking_id, "Booking", field="bookingId"))
        return await booking_domain.book_follow_up(session, ident[0], actor=user, start=start, note=note or "")

    follow_up, errors = await write(op)
    if follow_up is None:
        return FollowUpResult(None, None, errors)
    parent = await loaders.bookings(ctx).load(ident[0])
    return FollowUpResult(parent, follow_up, [])


async def open_dispute(ctx: Context, *, booking_id: str, reason: str) -> BookingResult:
    """The customer (within the dispute window) or an admin disputes a completed visit."""
    user = await ctx.require_user()

    async def op(session: AsyncSession) -> Booking:
        ident = decode_id(booking_id, "Booking", field="bookingId")
        return await booking_domain.open_dispute(session, ident, actor=user, reason=reason)

    disputed, errors = await write(op)
    return BookingResult(disputed, errors)


async def review(ctx: Context, *, booking_id: str, rating: int, comment: str | None) -> BookingResult:
    """The customer reviews a completed visit (1-5 stars)."""
    user = await ctx.require_user()

    async def op(session: AsyncSession) -> Booking:
        ident = decode_id(booking_id, "Booking", field="bookingId")
        return await booking_domain.review(session, ident, actor=user, rating=rating, comment=comment or "")

    reviewed, errors = await write(op)
    return BookingResult(reviewed, errors)


# --- live status --------------------------------------------------------------------------------


async def authorise_subscription(ctx: Context, booking_id: str) -> int:
    """The booking id when the connection's user is its customer, its provider or an admin.
    UNAUTHENTICATED when anonymous; FORBIDDEN otherwise (also for an unknown id: no probing)."""
    viewer = await ctx.require_user()
    try:
        ident = decode_id(booking_id, "Booking", field="bookingId")
        async with session_scope() as session:
            found = await session.get(Booking, ident)
            if found is None:
                raise NotFound("No such booking", field="bookingId")
            await booking_domain.actor_type_for(session, found, viewer)
    except (Forbidden, NotFound) as exc:
        raise forbidden("Only the booking's customer, its provider or an operator can follow it") from exc
    except DomainError as exc:
        raise bad_input(exc) from exc
    finally:
        await ctx.close()  # never keep a session open for the life of a WebSocket
    return ident

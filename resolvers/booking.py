"""Booking resolvers: slots and availability search (public), holds, checkout and the booking state
machine (customers, providers, admins), a provider's own availability, tickets and their slot
suggestions, substitution offers, escalations (admin) and the live status events.

Thin on purpose: authorise the caller, decode global ids and local times, call ``domain/``, map
``DomainError`` to payload errors (mutations) or typed top-level errors (queries, ``bad_input``).
Writes run in their own ``session_scope`` transaction (rolled back on any error: nothing written)
and relay the outbox after commit; reads use the request's session and DataLoaders.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from domain.bookings import booking as booking_domain
from domain.bookings import substitution, ticket
from domain.orders import escalation
from domain.providers import availability, discovery
from domain.providers.provider import GeoPoint
from domain.shared import outbox, pagination
from domain.shared.errors import CommonErrorCode, DomainError, Forbidden, NotFound
from models import Booking, Escalation, Ticket
from models.db import session_scope
from resolvers import loaders, ratelimit
from resolvers.context import Context, forbidden
from resolvers.errors import PayloadError, to_payload_error
from resolvers.ids import decode_id
from resolvers.provider import bad_input, page_size

T = TypeVar("T")

# The keyset cursor kinds of domain.booking.list_bookings and domain.escalation.list_escalations.
BOOKING_CURSOR = "Booking"
ESCALATION_CURSOR = "Escalation"
TICKET_CURSOR = "Ticket"


async def _write(op: Callable[[AsyncSession], Awaitable[T]]) -> tuple[T | None, list[PayloadError]]:
    """Run ``op`` in its own transaction. A ``DomainError`` rolls everything back and becomes the
    payload's error (``Forbidden``: a top-level FORBIDDEN); on success the outbox is relayed after
    commit (status events, emails)."""
    try:
        async with session_scope() as session:
            out = await op(session)
    except DomainError as exc:
        return None, [to_payload_error(exc)]
    await outbox.relay_quietly()
    return out, []


def _zone(name: str | None) -> str | None:
    """``name`` validated as an IANA zone (``INVALID_TIME_ZONE`` on field timeZone), or None."""
    return availability.validate_time_zone(name) if name is not None else None


# --- slots and search (public) --------------------------------------------------------------------


@dataclass(frozen=True)
class LocalSlot:
    """A free slot in UTC with the zone its local times are shown in."""

    start: datetime
    end: datetime
    time_zone: str

    def local(self, instant: datetime) -> str:
        """ISO 8601 with the zone's offset at that instant, e.g. ``2027-03-01T13:30:00+05:30``."""
        return instant.astimezone(ZoneInfo(self.time_zone)).isoformat()


async def available_slots(
    ctx: Context, *, provider_id: str, service_id: str, window_start: datetime, window_end: datetime,
    time_zone: str | None,
) -> list[LocalSlot]:
    """Free slots of a provider for a service in ``[from, to)`` (``availability.available_slots``),
    shown in ``time_zone`` (the asker's) or else the provider's zone. Bad input (ids, window, zone,
    unknown provider, a service the provider does not take bookings for) is a top-level error with
    the domain's code and field."""
    try:
        zone = _zone(time_zone)
        pid = decode_id(provider_id, "Provider", field="providerId")
        sid = decode_id(service_id, "Service", field="serviceId")
        async with ctx.db() as session:
            slots = await availability.available_slots(
                session, provider_id=pid, service_id=sid, window_start=window_start, window_end=window_end
            )
        if zone is None:
            view = await loaders.provider_views(ctx).load(pid)
            zone = view.time_zone if view else "UTC"
    except DomainError as exc:
        raise bad_input(exc) from exc
    return [LocalSlot(s.start, s.end, zone) for s in slots]


@dataclass(frozen=True)
class AvailableHit:
    """A provider near the search point with its earliest free slot (in the asker's zone)."""

    hit: availability.AvailableProvider
    first_slot: LocalSlot


async def providers_available(
    ctx: Context, *, latitude: float, longitude: float, radius_km: float, category: str | None,
    service_id: str | None, window_start: datetime, window_end: datetime, first: int | None, time_zone: str | None,
) -> list[AvailableHit]:
    """Geosearch combined with availability (``availability.providers_available``), nearest first;
    each first slot is shown in ``time_zone`` or else its provider's zone (one more statement)."""
    try:
        zone = _zone(time_zone)
        point = GeoPoint(latitude, longitude)
        sid = decode_id(service_id, "Service", field="serviceId") if service_id else None
        size = page_size(first)
        async with ctx.db() as session:
            found = await availability.providers_available(
                session, point=point, radius_km=radius_km, category=category or None, service_id=sid,
                window_start=window_start, window_end=window_end, first=size,
            )
    except DomainError as exc:
        raise bad_input(exc) from exc
    if zone is None:
        views = await loaders.provider_views(ctx).load_many([f.provider.id for f in found])
        zones = [v.time_zone if v else "UTC" for v in views]
    else:
        zones = [zone] * len(found)
    return [AvailableHit(f, LocalSlot(f.first_slot.start, f.first_slot.end, z)) for f, z in zip(found, zones, strict=True)]


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
    settings.booking_hold_seconds. Guests: UNAUTHENTICATED (guest bookings are issue 6); admins:
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

    held, errors = await _write(op)
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

    out, errors = await _write(op)
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

    changed, errors = await _write(op)
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

    follow_up, errors = await _write(op)
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

    disputed, errors = await _write(op)
    return BookingResult(disputed, errors)


async def review(ctx: Context, *, booking_id: str, rating: int, comment: str | None) -> BookingResult:
    """The customer reviews a completed visit (1-5 stars)."""
    user = await ctx.require_user()

    async def op(session: AsyncSession) -> Booking:
        ident = decode_id(booking_id, "Booking", field="bookingId")
        return await booking_domain.review(session, ident, actor=user, rating=rating, comment=comment or "")

    reviewed, errors = await _write(op)
    return BookingResult(reviewed, errors)


async def take_over(ctx: Context, *, booking_id: str, provider_id: str | None) -> BookingResult:
    """A provider accepts a substitution offer (first wins), or an admin assigns ``providerId``."""
    user = await ctx.require_user()
    if user.role not in ("provider", "admin"):
        raise forbidden("Only providers (with an offer) and operators can take over a visit")

    async def op(session: AsyncSession) -> Booking:
        ident = decode_id(booking_id, "Booking", field="bookingId")
        pid = decode_id(provider_id, "Provider", field="providerId") if provider_id else None
        return await booking_domain.take_over(session, ident, actor=user, provider_id=pid)

    taken, errors = await _write(op)
    return BookingResult(taken, errors)


# --- a provider's own availability ----------------------------------------------------------------


async def my_provider_id(ctx: Context) -> int:
    """The calling provider account's profile id. UNAUTHENTICATED when anonymous; FORBIDDEN for
    other roles and for a provider account without a profile."""
    user = await ctx.require_user()
    if user.role != "provider":
        raise forbidden("Only provider accounts have availability")
    provider_id = await loaders.provider_ids_by_user(ctx).load(user.id)
    if provider_id is None:
        raise forbidden("This account has no provider profile")
    return provider_id


@dataclass(frozen=True)
class AvailabilityView:
    """A provider's booking setup: zone, weekly plan, exceptions from today (its local date) for
    ``EXCEPTION_DAYS`` days, rules and bookable services with their slot lengths."""

    provider_id: int
    time_zone: str
    weekly_plan: list[availability.WeeklyRange]
    exceptions: list[availability.DateException]
    rules: availability.Rules
    services: list[availability.ServiceSlot]


EXCEPTION_DAYS = 60


async def availability_of(ctx: Context, provider_id: int) -> AvailabilityView:
    """Five statements: zone, plan, exceptions, rules, services."""
    view = await loaders.provider_views(ctx).load(provider_id)
    if view is None:
        raise forbidden("This account has no provider profile")
    today = datetime.now(UTC).astimezone(ZoneInfo(view.time_zone)).date()
    async with ctx.db() as session:
        plan = await availability.weekly_plan(session, provider_id)
        exceptions = await availability.date_exceptions(
            session, provider_id, today, today + timedelta(days=EXCEPTION_DAYS)
        )
        rules = await availability.booking_rules(session, provider_id)
    services = await loaders.service_slots_by_provider(ctx).load(provider_id)
    return AvailabilityView(provider_id, view.time_zone, plan, exceptions, rules, services)


async def my_availability(ctx: Context) -> AvailabilityView:
    """The calling provider's booking setup (provider accounts only)."""
    return await availability_of(ctx, await my_provider_id(ctx))


_HHMM = re.compile(r"^(\d{2}):(\d{2})$")


def minute_of(value: str, *, field: str, end: bool) -> int:
    """Minutes after local midnight of ``"HH:MM"`` (00:00-23:59; ``24:00`` only as an end).
    Raises ``InvalidRange`` on ``field``."""
    match = _HHMM.match(value.strip()) if isinstance(value, str) else None
    if match:
        hours, minutes = int(match[1]), int(match[2])
        if (hours < 24 and minutes < 60) or (end and hours == 24 and minutes == 0):
            return hours * 60 + minutes
    allowed = "00:00 to 24:00" if end else "00:00 to 23:59"
    raise availability.InvalidRange(f"Give a time as HH:MM, {allowed}", field=field)


def hhmm(minute: int) -> str:
    """``"HH:MM"`` of a local minute 0..1440 (1440 is ``"24:00"``)."""
    return f"{minute // 60:02d}:{minute % 60:02d}"


@dataclass
class AvailabilityResult:
    availability: AvailabilityView | None
    errors: list[PayloadError]
    changed: bool = True


async def _edit_availability(
    ctx: Context, edit: Callable[[AsyncSession, int], Awaitable[Any]]
) -> AvailabilityResult:
    provider_id = await my_provider_id(ctx)
    out, errors = await _write(lambda session: edit(session, provider_id))
    if errors:
        return AvailabilityResult(None, errors, False)
    await discovery.invalidate_provider(provider_id)  # committed: cached searches with a window must miss
    return AvailabilityResult(await availability_of(ctx, provider_id), [], out is not False)


async def set_weekly_plan(ctx: Context, *, ranges: list[tuple[int, str, str]]) -> AvailabilityResult:
    """Replace the caller's weekly plan with ``(weekday 0 = Monday, "HH:MM", "HH:MM")`` ranges."""

    async def edit(session: AsyncSession, provider_id: int) -> Any:
        parsed = [
            (weekday, minute_of(start, field=f"ranges.{i}.start", end=False),
             minute_of(end, field=f"ranges.{i}.end", end=True))
            for i, (weekday, start, end) in enumerate(ranges)
        ]
        return await availability.set_weekly_plan(session, provider_id, parsed)

    return await _edit_availability(ctx, edit)


async def set_date_exception(ctx: Context, *, on_date: date, ranges: list[tuple[str, str]]) -> AvailabilityResult:
    """Replace the caller's plan on one local date (``[]``: a day off)."""

    async def edit(session: AsyncSession, provider_id: int) -> Any:
        parsed = [
            (minute_of(start, field=f"ranges.{i}.start", end=False), minute_of(end, field=f"ranges.{i}.end", end=True))
            for i, (start, end) in enumerate(ranges)
        ]
        return await availability.set_date_exception(session, provider_id, on_date, parsed)

    return await _edit_availability(ctx, edit)


async def clear_date_exception(ctx: Context, *, on_date: date) -> AvailabilityResult:
    """Remove the caller's exception on ``on_date``; ``changed`` is False when there was none."""
    return await _edit_availability(
        ctx, lambda session, provider_id: availability.clear_date_exception(session, provider_id, on_date)
    )


async def set_booking_rules(
    ctx: Context, *, min_notice_minutes: int, buffer_minutes: int, horizon_days: int
) -> AvailabilityResult:
    return await _edit_availability(ctx, lambda session, provider_id: availability.set_booking_rules(
        session, provider_id, min_notice_minutes=min_notice_minutes, buffer_minutes=buffer_minutes,
        horizon_days=horizon_days,
    ))


async def set_service_slot(
    ctx: Context, *, service_id: str, slot_minutes: int | None, active: bool
) -> AvailabilityResult:
    async def edit(session: AsyncSession, provider_id: int) -> Any:
        sid = decode_id(service_id, "Service", field="serviceId")
        return await availability.set_service_slot(session, provider_id, sid, slot_minutes, active)

    return await _edit_availability(ctx, edit)


async def set_time_zone(ctx: Context, *, time_zone: str) -> AvailabilityResult:
    return await _edit_availability(
        ctx, lambda session, provider_id: availability.set_time_zone(session, provider_id, time_zone)
    )


# --- tickets --------------------------------------------------------------------------------------


@dataclass
class TicketResult:
    ticket: Ticket | None
    errors: list[PayloadError]


async def create_ticket(
    ctx: Context, *, category: str, service_id: str | None, appliance: str, brand: str | None, model: str | None,
    description: str | None, preferred_windows: list[tuple[datetime, datetime]], urgent: bool,
    latitude: float, longitude: float, address: str | None,
) -> TicketResult:
    """A logged-in customer opens a ticket (guests: UNAUTHENTICATED; admins: FORBIDDEN)."""
    user = await ctx.require_user()
    if user.role == "admin":
        raise forbidden("Operators do not open tickets; log in as a customer")

    async def op(session: AsyncSession) -> Ticket:
        return await ticket.create_ticket(
            session, user, category=category, service_id=decode_id(service_id, "Service", field="serviceId")
            if service_id else None, appliance=appliance, brand=brand, model=model, description=description or "",
            preferred_windows=preferred_windows, urgent=urgent, point=GeoPoint(latitude, longitude),
            address=address or "",
        )

    made, errors = await _write(op)
    return TicketResult(made, errors)


async def cancel_ticket(ctx: Context, *, ticket_id: str) -> TicketResult:
    """The ticket's customer or an admin cancels it (refused while a visit is live)."""
    user = await ctx.require_user()

    async def op(session: AsyncSession) -> Ticket:
        return await ticket.cancel_ticket(session, decode_id(ticket_id, "Ticket", field="ticketId"), actor=user)

    cancelled, errors = await _write(op)
    return TicketResult(cancelled, errors)


async def ticket_nodes(ctx: Context, ids: list[int]) -> list[Ticket | None]:
    """Tickets by id: only for their customer, an admin, or the provider of one of their visits
    (``ticket.can_see``'s rule, batched through loaders)."""
    viewer = await ctx.viewer()
    if viewer is None:
        return [None] * len(ids)
    found = await loaders.tickets(ctx).load_many(ids)
    out: list[Ticket | None] = []
    for t in found:
        out.append(t if t is not None and await can_see_ticket(ctx, t) else None)
    return out


async def can_see_ticket(ctx: Context, t: Ticket) -> bool:
    """Its customer, an admin, or the provider of one of its visits (loaders: no statement per ticket)."""
    viewer = await ctx.viewer()
    if viewer is None:
        return False
    if viewer.role == "admin" or t.customer_user_id == viewer.id:
        return True
    if viewer.role != "provider":
        return False
    provider_id = await loaders.provider_ids_by_user(ctx).load(viewer.id)
    visits = await loaders.visits_by_ticket(ctx).load(t.id)
    return provider_id is not None and any(v.provider_id == provider_id for v in visits)


async def get_ticket(ctx: Context, *, ticket_id: str) -> Ticket | None:
    try:
        ident = decode_id(ticket_id, "Ticket", field="id")
    except DomainError as exc:
        raise bad_input(exc) from exc
    return (await ticket_nodes(ctx, [ident]))[0]


@dataclass
class TicketPage:
    items: list[tuple[Ticket, str]]
    has_next_page: bool


async def my_tickets(ctx: Context, *, first: int | None, after: str | None) -> TicketPage:
    """The caller's tickets newest first (admins: all), keyset on id."""
    viewer = await ctx.require_user()
    try:
        size = page_size(first)
        async with ctx.db() as session:
            rows, has_next = await ticket.list_tickets(session, viewer, first=size, after=after)
    except DomainError as exc:
        raise bad_input(exc) from exc
    return TicketPage([(t, pagination.encode(TICKET_CURSOR, t.id)) for t in rows], has_next)


@dataclass(frozen=True)
class SuggestionsView:
    matched_preferred: bool
    slots: list[tuple[Any, int, LocalSlot]]  # (NearbyProvider, service id, slot)


async def ticket_slot_suggestions(
    ctx: Context, *, ticket_id: str, first: int | None, time_zone: str | None
) -> SuggestionsView:
    """Free slots for a ticket (``ticket.suggest_slots``): inside its preferred windows, else the
    nearest free slots of matching providers (``matchedPreferred`` false). Its customer or an admin."""
    viewer = await ctx.require_user()
    size = page_size(first, 5)
    try:
        zone = _zone(time_zone)
        ident = decode_id(ticket_id, "Ticket", field="ticketId")
        async with ctx.db() as session:
            found = await ticket.suggest_slots(session, ident, viewer=viewer, first=size)
    except Forbidden as exc:
        raise forbidden(exc.message) from exc
    except DomainError as exc:
        raise bad_input(exc) from exc
    if zone is None:
        views = await loaders.provider_views(ctx).load_many([s.provider.id for s in found.slots])
        zones = [v.time_zone if v else "UTC" for v in views]
    else:
        zones = [zone] * len(found.slots)
    return SuggestionsView(found.matched_preferred, [
        (s.provider, s.service_id, LocalSlot(s.slot.start, s.slot.end, z)) for s, z in zip(found.slots, zones, strict=True)
    ])


# --- substitution offers and escalations ----------------------------------------------------------


async def my_substitution_offers(ctx: Context) -> list[tuple[Any, Booking]]:
    """Open substitution offers to the calling provider, as ``(offer, booking)``."""
    provider_id = await my_provider_id(ctx)
    async with ctx.db() as session:
        return list(await substitution.offers_for_provider(session, provider_id))


async def escalations(
    ctx: Context, *, open_only: bool, kind: str | None, first: int | None, after: str | None
) -> tuple[list[tuple[Escalation, str]], bool]:
    """Admin: escalations newest first, keyset on id (one statement)."""
    await ctx.require_admin()
    try:
        size = page_size(first)
        async with ctx.db() as session:
            rows, has_next = await escalation.list_escalations(
                session, open_only=open_only, kind=kind, first=size, after=after
            )
    except DomainError as exc:
        raise bad_input(exc) from exc
    return [(e, pagination.encode(ESCALATION_CURSOR, e.id)) for e in rows], has_next


async def escalation_nodes(ctx: Context, ids: list[int]) -> list[Escalation | None]:
    """Escalations by id: admins only (null for anyone else)."""
    viewer = await ctx.viewer()
    if viewer is None or viewer.role != "admin":
        return [None] * len(ids)
    return await loaders.escalations(ctx).load_many(ids)


@dataclass
class EscalationResult:
    escalation: Escalation | None
    errors: list[PayloadError]


async def resolve_escalation(ctx: Context, *, escalation_id: str) -> EscalationResult:
    """Admin: mark an escalation handled (idempotent)."""
    admin = await ctx.require_admin()

    async def op(session: AsyncSession) -> Escalation:
        ident = decode_id(escalation_id, "Escalation", field="escalationId")
        return await escalation.resolve(session, ident, admin_user_id=admin.id)

    resolved, errors = await _write(op)
    return EscalationResult(resolved, errors)


@dataclass
class ApplianceModelResult:
    model: Any | None
    errors: list[PayloadError]


async def add_appliance_model(ctx: Context, *, category: str, brand: str, model: str) -> ApplianceModelResult:
    """Admin: add a model to the list (idempotent); tickets naming it stop being flagged."""
    admin = await ctx.require_admin()
    added, errors = await _write(lambda session: ticket.add_appliance_model(
        session, category=category, brand=brand, model=model, admin_user_id=admin.id
    ))
    return ApplianceModelResult(added, errors)


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


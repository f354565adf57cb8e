"""Tickets: the customer's job (an appliance or a problem, its brand and model, a description,
preferred time windows, an urgent flag) that one or more visits (bookings, domain/bookings/booking.py) work on.

Rules ("Tickets, visits and the field"):

- brand and model are free-form; when the model is not in ``appliance_models`` for the ticket's
  category (compared case-insensitively) the ticket is kept, flagged ``model_unlisted`` and an
  escalation ``model_unlisted`` asks an admin to add it (``add_appliance_model`` clears both);
- an urgent ticket's visits are priced with settings.ticket_urgent_surcharge_bps on top (applied at
  checkout by domain/bookings/booking.py);
- "When preferred windows match no provider, the customer is shown the nearest free slots of matching
  providers instead" (``suggest_slots``);
- "a ticket pending longer than a configurable time is escalated to admins" (``escalate_stale_tickets``,
  settings.ticket_escalation_seconds; the list is ``escalation.list_escalations(kind="ticket_unassigned")``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from geoalchemy2 import Geometry
from sqlalchemy import cast, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.bookings.errors import BookingsErrorCode
from domain.orders import escalation
from domain.providers import availability
from domain.providers.provider import GeoPoint, NearbyProvider, providers_nearby
from domain.shared import pagination
from domain.shared.errors import CommonErrorCode, DomainError, Forbidden, NotFound
from models import ApplianceModel, Booking, Escalation, Provider, ProviderService, Service, Ticket, User
from models.bookings import BOOKING_STATUSES, LIVE_STATUSES
from models.db import session_scope
from settings import get_settings

REFERENCE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
MAX_WINDOWS = 10
MAX_CATEGORY = 40  # tickets.category
MAX_APPLIANCE = 120  # tickets.appliance
MAX_BRAND = 80  # tickets.brand, appliance_models.brand
MAX_MODEL = 120  # tickets.model, appliance_models.model
MAX_DESCRIPTION = 5000
MAX_ADDRESS = 500
# A visit in one of these means somebody took the ticket (paid, or further along): no escalation.
# The others (held, payment_expired, declined, expired, cancelled_*) leave it unassigned.
ASSIGNED_STATUSES = tuple(
    s for s in BOOKING_STATUSES
    if s not in ("held", "payment_expired", "declined", "expired",
                 "cancelled_by_customer", "cancelled_by_provider", "cancelled_by_admin")
)
# Visits that still occupy or wait for a provider: a ticket with one cannot be cancelled.
OPEN_VISIT_STATUSES = LIVE_STATUSES + ("cannot_make_it",)


class UnknownCategory(DomainError):
    """No catalogue service has this category."""

    code = BookingsErrorCode.UNKNOWN_CATEGORY
    field = "category"


class ServiceNotInCategory(DomainError):
    code = BookingsErrorCode.SERVICE_NOT_IN_CATEGORY
    field = "serviceId"


class InvalidWindow(DomainError):
    """A preferred window is naive, empty, in the past or too wide (field ``preferredWindows.<i>.<start|end>``)."""

    code = CommonErrorCode.INVALID_WINDOW
    field = "preferredWindows"


class TooManyWindows(DomainError):
    code = BookingsErrorCode.TOO_MANY_WINDOWS
    field = "preferredWindows"


class TicketClosed(DomainError):
    code = BookingsErrorCode.TICKET_CLOSED
    field = "ticketId"


class TicketHasOpenVisit(DomainError):
    """The ticket has a visit that is held, paid, under way or waiting for a substitute: cancel it first."""

    code = BookingsErrorCode.TICKET_HAS_OPEN_VISIT
    field = "ticketId"


@dataclass(frozen=True)
class SuggestedSlot:
    """A free slot (UTC) of a provider near the ticket, for ``service_id`` (what ``holdSlot`` takes)."""

    provider: NearbyProvider
    service_id: int
    slot: availability.Slot


@dataclass(frozen=True)
class Suggestions:
    """``matched_preferred``: the slots lie in the ticket's preferred windows; False when none did and
    these are the nearest free slots after now instead."""

    matched_preferred: bool
    slots: list[SuggestedSlot]


def new_reference() -> str:
    """``TKT-XXXX-XXXX`` (Crockford base32, 40 random bits)."""
    chars = "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(8))
    return f"TKT-{chars[:4]}-{chars[4:]}"


def windows_of(ticket: Ticket) -> list[tuple[datetime, datetime]]:
    """The ticket's preferred windows as aware UTC ``(start, end)`` pairs, in the order given."""
    return [(datetime.fromisoformat(w["start"]), datetime.fromisoformat(w["end"])) for w in ticket.preferred_windows]


def _text(value: str | None, field: str, limit: int, *, required: bool = False) -> str:
    value = (value or "").strip()
    if required and not value:
        raise DomainError(f"{field} is required", field=field, code=CommonErrorCode.REQUIRED)
    if len(value) > limit:
        raise DomainError(f"{field} is limited to {limit} characters", field=field, code=CommonErrorCode.TOO_LONG)
    return value


def _check_windows(windows: list[tuple[datetime, datetime]], now: datetime) -> list[dict[str, str]]:
    if len(windows) > MAX_WINDOWS:
        raise TooManyWindows(f"Give at most {MAX_WINDOWS} preferred windows")
    max_days = get_settings().booking_max_window_days
    out = []
    for i, (start, end) in enumerate(windows):
        for name, value in (("start", start), ("end", end)):
            if value.tzinfo is None or value.utcoffset() is None:
                raise InvalidWindow("Give times with their UTC offset", field=f"preferredWindows.{i}.{name}")
        if end <= start:
            raise InvalidWindow("A window must end after it starts", field=f"preferredWindows.{i}.end")
        if start < now:
            raise InvalidWindow("A window must start in the future", field=f"preferredWindows.{i}.start")
        if end - start > timedelta(days=max_days):
            raise InvalidWindow(f"A window may span at most {max_days} days", field=f"preferredWindows.{i}.end")
        out.append({"start": start.astimezone(UTC).isoformat(), "end": end.astimezone(UTC).isoformat()})
    return out


async def _listed(session: AsyncSession, category: str, brand: str, model: str) -> bool:
    return bool(await session.scalar(select(exists().where(
        ApplianceModel.category == category, func.lower(ApplianceModel.brand) == brand.lower(),
        func.lower(ApplianceModel.model) == model.lower(),
    ))))


async def create_ticket(
    session: AsyncSession,
    customer: User,
    *,
    category: str,
    service_id: int | None,
    appliance: str,
    brand: str | None,
    model: str | None,
    description: str,
    preferred_windows: list[tuple[datetime, datetime]],
    urgent: bool,
    point: GeoPoint,
    address: str,
    now: datetime | None = None,
) -> Ticket:
    """Open a ticket (status ``open``, reference ``TKT-XXXX-XXXX``) for ``customer`` at ``point``.

    Texts are stripped; limits: category 40, appliance 1..120 (required), brand 80, model 120 (a
    model needs its brand), description 5,000, address 500 characters. ``preferred_windows``: at
    most 10 ``(start, end)`` aware datetimes, ``now <= start < end``, each at most
    settings.booking_max_window_days long; stored in UTC. ``category`` must be the category of an
    active catalogue service; ``service_id``, when given, a service of that category.
    When ``brand`` + ``model`` are not in ``appliance_models`` for the category (case-insensitive)
    the ticket is kept with ``model_unlisted = True`` and an escalation ``model_unlisted`` (the
    operator is emailed).
    Raises DomainError ``REQUIRED`` / ``TOO_LONG`` (field = the input's name), ``TooManyWindows``,
    ``InvalidWindow`` (field ``preferredWindows.<i>.start|end``), ``UnknownCategory``,
    ``NotFound`` (field serviceId), ``ServiceNotInCategory``; nothing is written on error."""
    now = now or datetime.now(UTC)
    category = _text(category, "category", MAX_CATEGORY, required=True)
    appliance = _text(appliance, "appliance", MAX_APPLIANCE, required=True)
    brand = _text(brand, "brand", MAX_BRAND)
    model = _text(model, "model", MAX_MODEL)
    if model and not brand:
        raise DomainError("Give the brand with the model", field="brand", code=CommonErrorCode.REQUIRED)
    description = _text(description, "description", MAX_DESCRIPTION)
    address = _text(address, "address", MAX_ADDRESS)
    windows = _check_windows(list(preferred_windows), now)
    if not await session.scalar(select(exists().where(Service.category == category, Service.active.is_(True)))):
        raise UnknownCategory(f"No service is offered in category {category!r}")
    if service_id is not None:
        service = await session.get(Service, service_id)
        if service is None or not service.active:
            raise NotFound("No such service", field="serviceId")
        if service.category != category:
            raise ServiceNotInCategory(f"This service belongs to {service.category}, not {category}")
    unlisted = bool(model) and not await _listed(session, category, brand, model)
    ticket = Ticket(
        customer_user_id=customer.id, category=category, service_id=service_id, appliance=appliance,
        brand=brand or None, model=model or None, model_unlisted=unlisted, description=description,
        preferred_windows=windows, urgent=bool(urgent), location=point.ewkt(), address=address, status="open",
        flagged_reason=f"Model not listed: {brand} {model}" if unlisted else None,
    )
    await _insert_with_reference(session, ticket)
    if unlisted:
        await escalation.escalate(
            session, "model_unlisted", ticket=ticket,
            note=f"{brand} {model} ({category}) is not in the appliance list: add it so tickets can name it",
        )
    return ticket


async def _insert_with_reference(session: AsyncSession, ticket: Ticket) -> None:
    """Insert under a fresh reference (a collision, 1 in 10^12, draws again)."""
    for _ in range(5):
        ticket.reference = new_reference()
        try:
            async with session.begin_nested():
                session.add(ticket)
                await session.flush()
            return
        except IntegrityError as exc:
            if "reference" not in str(exc.orig):
                raise
    raise RuntimeError("could not draw a free ticket reference")


async def add_appliance_model(
    session: AsyncSession, *, category: str, brand: str, model: str, admin_user_id: int | None = None
) -> ApplianceModel:
    """Add ``brand`` ``model`` to the appliance list of ``category`` (admin). Idempotent: a model
    already listed (case-insensitively) is returned as it is. Tickets of that category naming it
    lose their ``model_unlisted`` flag and their open ``model_unlisted`` escalations are resolved
    (by ``admin_user_id`` when given). Returns the list's row.
    Raises DomainError ``REQUIRED`` / ``TOO_LONG``, ``UnknownCategory``."""
    category = _text(category, "category", MAX_CATEGORY, required=True)
    brand = _text(brand, "brand", MAX_BRAND, required=True)
    model = _text(model, "model", MAX_MODEL, required=True)
    if not await session.scalar(select(exists().where(Service.category == category))):
        raise UnknownCategory(f"No service is offered in category {category!r}")
    await session.execute(
        insert(ApplianceModel).values(category=category, brand=brand, model=model).on_conflict_do_nothing()
    )
    row = await session.scalar(select(ApplianceModel).where(
        ApplianceModel.category == category, func.lower(ApplianceModel.brand) == brand.lower(),
        func.lower(ApplianceModel.model) == model.lower(),
    ))
    cleared = list((await session.scalars(
        update(Ticket)
        .where(Ticket.category == category, Ticket.model_unlisted.is_(True),
               func.lower(Ticket.brand) == brand.lower(), func.lower(Ticket.model) == model.lower())
        .values(model_unlisted=False, flagged_reason=None)
        .returning(Ticket.id)
        .execution_options(synchronize_session=False)
    )).all())
    if cleared:
        await session.execute(
            update(Escalation)
            .where(Escalation.kind == "model_unlisted", Escalation.ticket_id.in_(cleared), Escalation.resolved_at.is_(None))
            .values(resolved_at=datetime.now(UTC), resolved_by_user_id=admin_user_id)
            .execution_options(synchronize_session=False)
        )
        for loaded in list(session.identity_map.values()):
            if isinstance(loaded, Ticket) and loaded.id in cleared:
                await session.refresh(loaded)
    return row


async def can_see(session: AsyncSession, ticket: Ticket, viewer: User | None) -> bool:
    """The ticket's customer, an admin, or a provider with a visit on it."""
    if viewer is None:
        return False
    if viewer.role == "admin" or ticket.customer_user_id == viewer.id:
        return True
    if viewer.role != "provider":
        return False
    return bool(await session.scalar(select(exists().where(
        Booking.ticket_id == ticket.id, Booking.provider_id == Provider.id, Provider.user_id == viewer.id,
    ))))


async def get_ticket(session: AsyncSession, ticket_id: int, *, viewer: User) -> Ticket:
    """The ticket if ``viewer`` may see it (``can_see``). Raises ``NotFound``, ``Forbidden``."""
    ticket = await session.get(Ticket, ticket_id)
    if ticket is None:
        raise NotFound("No such ticket", field="ticketId")
    if not await can_see(session, ticket, viewer):
        raise Forbidden("This ticket is not yours", field="ticketId")
    return ticket


async def cancel_ticket(session: AsyncSession, ticket_id: int, *, actor: User) -> Ticket:
    """The ticket's customer or an admin cancels it (idempotent on a cancelled ticket); its open
    ``ticket_unassigned`` escalation is resolved. Refused while a visit is held, paid, under way or
    waiting for a substitute (cancel the visit first). Raises ``NotFound``, ``Forbidden``,
    ``TicketClosed`` (already done), ``TicketHasOpenVisit``."""
    ticket = await session.scalar(select(Ticket).where(Ticket.id == ticket_id).with_for_update(key_share=True))
    if ticket is None:
        raise NotFound("No such ticket", field="ticketId")
    if actor.role != "admin" and ticket.customer_user_id != actor.id:
        raise Forbidden("Only the ticket's customer or an admin can cancel it", field="ticketId")
    if ticket.status == "cancelled":
        return ticket
    if ticket.status == "closed":
        raise TicketClosed("This ticket is already done")
    if await session.scalar(select(exists().where(
        Booking.ticket_id == ticket.id, Booking.status.in_(OPEN_VISIT_STATUSES)
    ))):
        raise TicketHasOpenVisit("This ticket has a visit in progress or booked: cancel the visit first")
    ticket.status = "cancelled"
    await session.execute(
        update(Escalation)
        .where(Escalation.kind == "ticket_unassigned", Escalation.ticket_id == ticket.id, Escalation.resolved_at.is_(None))
        .values(resolved_at=datetime.now(UTC), resolved_by_user_id=actor.id)
        .execution_options(synchronize_session=False)
    )
    await session.flush()
    return ticket


async def list_tickets(
    session: AsyncSession, viewer: User, *, first: int = 20, after: str | None = None, status: str | None = None
) -> tuple[list[Ticket], bool]:
    """Tickets visible to ``viewer`` (admin: all; anyone else: their own), newest id first,
    keyset-paginated on id (``domain.pagination`` cursors of kind ``Ticket``), optionally of one
    status. Returns ``(rows, has_next)``. Raises ``InvalidCursor``."""
    stmt = select(Ticket).order_by(Ticket.id.desc()).limit(first + 1)
    if viewer.role != "admin":
        stmt = stmt.where(Ticket.customer_user_id == viewer.id)
    if status is not None:
        stmt = stmt.where(Ticket.status == status)
    if after:
        stmt = stmt.where(Ticket.id < pagination.decode("Ticket", after))
    rows = list((await session.scalars(stmt)).all())
    return rows[:first], len(rows) > first


async def visits(session: AsyncSession, ticket_ids: list[int]) -> dict[int, list[Booking]]:
    """The visits (bookings) of each ticket, by start time, in one statement."""
    out: dict[int, list[Booking]] = {i: [] for i in ticket_ids}
    if not ticket_ids:
        return out
    rows = (await session.scalars(
        select(Booking).where(Booking.ticket_id.in_(ticket_ids)).order_by(Booking.starts_at, Booking.id)
    )).all()
    for row in rows:
        out[row.ticket_id].append(row)
    return out


async def locations(session: AsyncSession, ticket_ids: list[int]) -> dict[int, GeoPoint]:
    """Each ticket's location as a ``GeoPoint`` (WGS84 degrees), in one statement."""
    if not ticket_ids:
        return {}
    geometry = cast(Ticket.location, Geometry)
    rows = (await session.execute(
        select(Ticket.id, func.ST_Y(geometry), func.ST_X(geometry)).where(Ticket.id.in_(ticket_ids))
    )).all()
    return {tid: GeoPoint(lat, lon) for tid, lat, lon in rows}


async def suggest_slots(
    session: AsyncSession, ticket_id: int, *, viewer: User, first: int = 5, now: datetime | None = None
) -> Suggestions:
    """Slots to book for a ticket, at most ``first``, by start time then distance.

    Providers within settings.booking_substitution_radius_km of the ticket offering its category (its
    service when set) with a free slot inside a preferred window (the part of it after ``now``):
    each window gives the earliest free slot of each of the nearest ``first`` such providers
    (``availability.providers_available``); ``matched_preferred = True``. When none is found (or the
    ticket has no window), the nearest free slots of those providers after ``now``
    (``availability.nearest_free_slots``, for the ticket's service, else for each service of the
    category they take) with ``matched_preferred = False``; ``slots`` is empty when nobody near
    takes the category. Raises ``NotFound``, ``Forbidden`` (only the ticket's customer or an admin),
    ``TicketClosed`` (closed or cancelled)."""
    now = now or datetime.now(UTC)
    ticket = await session.get(Ticket, ticket_id)
    if ticket is None:
        raise NotFound("No such ticket", field="ticketId")
    if viewer.role != "admin" and ticket.customer_user_id != viewer.id:
        raise Forbidden("This ticket is not yours", field="ticketId")
    if ticket.status in ("closed", "cancelled"):
        raise TicketClosed(f"This ticket is {ticket.status}")
    if first <= 0:
        return Suggestions(False, [])
    point = (await locations(session, [ticket.id]))[ticket.id]
    radius_km = get_settings().booking_substitution_radius_km
    found: dict[tuple[int, int, datetime], SuggestedSlot] = {}
    for start, end in windows_of(ticket):
        start = max(start, now)
        if end <= start:
            continue
        for hit in await availability.providers_available(
            session, point=point, radius_km=radius_km, category=ticket.category, service_id=ticket.service_id,
            window_start=start, window_end=end, first=first, now=now,
        ):
            found.setdefault((hit.provider.id, hit.service_id, hit.first_slot.start),
                             SuggestedSlot(hit.provider, hit.service_id, hit.first_slot))
    if found:
        return Suggestions(True, _ordered(found.values(), first))
    hits, _ = await providers_nearby(session, point, radius_km * 1000.0, category=ticket.category,
                                     first=availability.MAX_CANDIDATES)
    if not hits:
        return Suggestions(False, [])
    by_id = {h.id: h for h in hits}
    if ticket.service_id is not None:
        service_ids = [ticket.service_id]
    else:
        service_ids = list((await session.scalars(
            select(ProviderService.service_id)
            .join(Service, Service.id == ProviderService.service_id)
            .where(ProviderService.provider_id.in_(list(by_id)), ProviderService.active.is_(True),
                   Service.active.is_(True), Service.category == ticket.category)
            .distinct()
            .order_by(ProviderService.service_id)
        )).all())
    # nearest_free_slots breaks ties by provider id; asking for ``first + len(by_id)`` keeps every
    # provider free at the cut-off start, so the cut below is by start, then distance.
    for service_id in service_ids:
        for provider_id, slot in await availability.nearest_free_slots(
            session, provider_ids=list(by_id), service_id=service_id, after=now, limit=first + len(by_id), now=now,
        ):
            found.setdefault((provider_id, service_id, slot.start), SuggestedSlot(by_id[provider_id], service_id, slot))
    return Suggestions(False, _ordered(found.values(), first))


def _ordered(slots, first: int) -> list[SuggestedSlot]:
    return sorted(slots, key=lambda s: (s.slot.start, s.provider.distance_m, s.provider.id, s.service_id))[:first]


async def escalate_stale_tickets(*, now: datetime | None = None, limit: int = 500) -> int:
    """Tickets ``open`` for longer than settings.ticket_escalation_seconds with no visit paid or
    further along (``ASSIGNED_STATUSES``) and not escalated yet get an escalation
    ``ticket_unassigned`` (the operator is emailed) and ``escalated_at = now``. Idempotent: a ticket
    is escalated once; concurrent sweeps skip each other's rows. Own transaction. Returns how many
    tickets were escalated."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(seconds=get_settings().ticket_escalation_seconds)
    async with session_scope() as session:
        stale = (await session.scalars(
            select(Ticket)
            .where(
                Ticket.status == "open", Ticket.created_at <= cutoff, Ticket.escalated_at.is_(None),
                ~exists().where(Booking.ticket_id == Ticket.id, Booking.status.in_(ASSIGNED_STATUSES)),
            )
            .order_by(Ticket.id)
            .limit(limit)
            .with_for_update(key_share=True, skip_locked=True)
        )).all()
        for ticket in stale:
            waited = int((now - ticket.created_at).total_seconds() // 60)
            await escalation.escalate(
                session, "ticket_unassigned", ticket=ticket,
                note=f"Ticket {ticket.reference} ({ticket.category}{', urgent' if ticket.urgent else ''}) "
                     f"has had no provider for {waited} minutes",
            )
            ticket.escalated_at = now
        return len(stale)

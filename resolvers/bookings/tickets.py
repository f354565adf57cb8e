"""Tickets (the customer's job; each visit for it is a booking): opening and cancelling them, who may
see them, their slot suggestions, and the admins' list of appliance models."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.bookings import ticket
from domain.providers.provider import GeoPoint
from domain.shared import pagination
from domain.shared.errors import DomainError, Forbidden
from models import Ticket
from resolvers import loaders
from resolvers.bookings.availability import LocalSlot, zone_or_none
from resolvers.context import Context, forbidden
from resolvers.errors import PayloadError, bad_input, write
from resolvers.ids import decode_id
from resolvers.pagination import page_size

# The keyset cursor kind of domain.bookings.ticket.list_tickets.
TICKET_CURSOR = "Ticket"


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

    made, errors = await write(op)
    return TicketResult(made, errors)


async def cancel_ticket(ctx: Context, *, ticket_id: str) -> TicketResult:
    """The ticket's customer or an admin cancels it (refused while a visit is live)."""
    user = await ctx.require_user()

    async def op(session: AsyncSession) -> Ticket:
        return await ticket.cancel_ticket(session, decode_id(ticket_id, "Ticket", field="ticketId"), actor=user)

    cancelled, errors = await write(op)
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
        zone = zone_or_none(time_zone)
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


@dataclass
class ApplianceModelResult:
    model: Any | None
    errors: list[PayloadError]


async def add_appliance_model(ctx: Context, *, category: str, brand: str, model: str) -> ApplianceModelResult:
    """Admin: add a model to the list (idempotent); tickets naming it stop being flagged."""
    admin = await ctx.require_admin()
    added, errors = await write(lambda session: ticket.add_appliance_model(
        session, category=category, brand=brand, model=model, admin_user_id=admin.id
    ))
    return ApplianceModelResult(added, errors)

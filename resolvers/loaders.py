"""Per-request DataLoaders: related objects load in one statement per kind, whatever the page size."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import distinct_on
from strawberry.dataloader import DataLoader

from domain.bookings import booking as booking_domain
from domain.bookings import ticket as ticket_domain
from domain.catalogue import services as catalogue
from domain.money import refund
from domain.orders import dispute, reconciliation
from domain.orders import service_request as sr_domain
from domain.providers import availability
from domain.providers import provider as provider_domain
from models import (
    Booking,
    Conversation,
    Escalation,
    Payment,
    Provider,
    ServiceRequest,
    ServiceTier,
    Ticket,
)
from resolvers.context import Context


def _loader(ctx: Context, name: str, batch: Callable[[list[Any]], Any]) -> DataLoader:
    loader = ctx.loaders.get(name)
    if loader is None:
        loader = DataLoader(load_fn=batch)
        ctx.loaders[name] = loader
    return loader


def _grouped(ctx: Context, name: str, fetch: Callable[[Any, list[int]], Any]) -> DataLoader:
    """A loader over a domain function ``fetch(session, ids) -> {id: value}`` (one statement per batch)."""

    async def batch(ids: list[int]) -> list[Any]:
        async with ctx.db() as session:
            found = await fetch(session, ids)
        return [found.get(i) for i in ids]

    return _loader(ctx, name, batch)


def _by_id(ctx: Context, name: str, model: type) -> DataLoader:
    async def batch(ids: list[int]) -> list[Any]:
        async with ctx.db() as session:
            rows = (await session.scalars(select(model).where(model.id.in_(ids)))).all()
        found = {row.id: row for row in rows}
        return [found.get(i) for i in ids]

    return _loader(ctx, name, batch)


def services(ctx: Context) -> DataLoader:
    """Services with their tiers and prices loaded."""

    async def batch(ids: list[int]) -> list[Any]:
        async with ctx.db() as session:
            found = {s.id: s for s in await catalogue.get_services(session, ids)}
        return [found.get(i) for i in ids]

    return _loader(ctx, "services", batch)


def tiers(ctx: Context) -> DataLoader:
    return _by_id(ctx, "tiers", ServiceTier)


def provider_views(ctx: Context) -> DataLoader:
    return _grouped(ctx, "provider_views", provider_domain.provider_views)


def timelines(ctx: Context) -> DataLoader:
    """Status history of each request, oldest first."""
    return _grouped(ctx, "timelines", sr_domain.timelines)


def conversations_by_request(ctx: Context) -> DataLoader:
    async def batch(ids: list[int]) -> list[Any]:
        async with ctx.db() as session:
            rows = (await session.scalars(select(Conversation).where(Conversation.service_request_id.in_(ids)))).all()
        found = {row.service_request_id: row for row in rows}
        return [found.get(i) for i in ids]

    return _loader(ctx, "conversations_by_request", batch)


def service_requests(ctx: Context) -> DataLoader:
    """Service requests by id (callers authorise: the object that led here was authorised already)."""
    return _by_id(ctx, "service_requests", ServiceRequest)


def completed_payments_by_request(ctx: Context) -> DataLoader:
    """The latest completed payment of each request (None while unpaid), one statement per batch."""

    async def batch(ids: list[int]) -> list[Any]:
        async with ctx.db() as session:
            rows = (
                await session.scalars(
                    select(Payment)
                    .where(Payment.service_request_id.in_(ids), Payment.status == "completed")
                    .order_by(Payment.service_request_id, Payment.id.desc())
                    .ext(distinct_on(Payment.service_request_id))
                )
            ).all()
        found = {row.service_request_id: row for row in rows}
        return [found.get(i) for i in ids]

    return _loader(ctx, "completed_payments_by_request", batch)


def refunds_by_request(ctx: Context) -> DataLoader:
    """Refunds of each request, oldest first."""
    return _grouped(ctx, "refunds_by_request", refund.refunds_for_requests)


def disputes_by_request(ctx: Context) -> DataLoader:
    """Disputes of each request, oldest first."""
    return _grouped(ctx, "disputes_by_request", dispute.disputes_for_requests)


def reconciliation_items(ctx: Context) -> DataLoader:
    """Items of each reconciliation run, mismatches and errors first."""
    return _grouped(ctx, "reconciliation_items", reconciliation.run_items)


def provider_ids_by_user(ctx: Context) -> DataLoader:
    """The provider profile id (``providers.id``) of each user id, or None."""

    async def batch(ids: list[int]) -> list[Any]:
        async with ctx.db() as session:
            rows = (await session.execute(select(Provider.user_id, Provider.id).where(Provider.user_id.in_(ids)))).all()
        found = dict(rows)
        return [found.get(i) for i in ids]

    return _loader(ctx, "provider_ids_by_user", batch)


# --- bookings --------------------------------------------------------------------------------------


def bookings(ctx: Context) -> DataLoader:
    """Bookings by id (callers authorise each one)."""
    return _by_id(ctx, "bookings", Booking)


def booking_histories(ctx: Context) -> DataLoader:
    """Status history of each booking, oldest first."""
    return _grouped(ctx, "booking_histories", booking_domain.histories)


def tickets(ctx: Context) -> DataLoader:
    """Tickets by id (callers authorise each one)."""
    return _by_id(ctx, "tickets", Ticket)


def ticket_locations(ctx: Context) -> DataLoader:
    """Each ticket's location as a ``GeoPoint`` (WGS84 degrees)."""
    return _grouped(ctx, "ticket_locations", ticket_domain.locations)


def visits_by_ticket(ctx: Context) -> DataLoader:
    """The visits (bookings) of each ticket, by start time (callers authorise the ticket)."""
    return _grouped(ctx, "visits_by_ticket", ticket_domain.visits)


def escalations(ctx: Context) -> DataLoader:
    """Escalations by id (admins only: callers check)."""
    return _by_id(ctx, "escalations", Escalation)


def service_slots_by_provider(ctx: Context) -> DataLoader:
    """Each provider's bookable services as ``availability.ServiceSlot``, by service id."""
    return _grouped(ctx, "service_slots_by_provider", availability.service_slots)

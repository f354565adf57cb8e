"""Substitution: a visit whose provider cannot make it is offered to other providers; the first to
accept takes it over (or an admin gives it to one)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.bookings import booking as booking_domain
from domain.bookings import substitution
from models import Booking
from resolvers.bookings.availability import my_provider_id
from resolvers.bookings.lifecycle import BookingResult
from resolvers.context import Context, forbidden
from resolvers.errors import write
from resolvers.ids import decode_id


async def my_substitution_offers(ctx: Context) -> list[tuple[Any, Booking]]:
    """Open substitution offers to the calling provider, as ``(offer, booking)``."""
    provider_id = await my_provider_id(ctx)
    async with ctx.db() as session:
        return list(await substitution.offers_for_provider(session, provider_id))


async def take_over(ctx: Context, *, booking_id: str, provider_id: str | None) -> BookingResult:
    """A provider accepts a substitution offer (first wins), or an admin assigns ``providerId``."""
    user = await ctx.require_user()
    if user.role not in ("provider", "admin"):
        raise forbidden("Only providers (with an offer) and operators can take over a visit")

    async def op(session: AsyncSession) -> Booking:
        ident = decode_id(booking_id, "Booking", field="bookingId")
        pid = decode_id(provider_id, "Provider", field="providerId") if provider_id else None
        return await booking_domain.take_over(session, ident, actor=user, provider_id=pid)

    taken, errors = await write(op)
    return BookingResult(taken, errors)

"""Review, rating and two-strike resolvers (issue 7): authorise, decode ids, call domain/reviews/review.py.

Mutations run in their own transaction (``_write``); after commit the outbox is relayed (emails)
and, when a provider's suspension changed, discovery's cache cells of that provider are
invalidated (``domain.discovery.invalidate_provider``) so a suspended provider never comes back
from a cached search.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from domain.providers import discovery, standing
from domain.reviews import review as review_domain
from domain.shared import outbox
from domain.shared.errors import DomainError
from models import Provider, ProviderStrike, Review
from models.db import session_scope
from resolvers.context import Context
from resolvers.errors import PayloadError, to_payload_error
from resolvers.ids import decode_id
from resolvers.provider import bad_input, page_size

T = TypeVar("T")


async def _write(op: Callable[[AsyncSession], Awaitable[T]]) -> tuple[T | None, list[PayloadError]]:
    """Run ``op`` in its own transaction; a DomainError rolls it back and becomes the payload's error."""
    try:
        async with session_scope() as session:
            out = await op(session)
    except DomainError as exc:
        return None, [to_payload_error(exc)]
    await outbox.relay_quietly()
    return out, []


def _optional_id(value: str | None, type_name: str, field: str) -> int | None:
    return decode_id(value, type_name, field=field) if value else None


# --- reviews -----------------------------------------------------------------------------------------


@dataclass
class ReviewResult:
    review: Review | None
    errors: list[PayloadError]


async def submit_review(
    ctx: Context, *, service_request_id: str | None, booking_id: str | None, rating: int, text: str | None,
) -> ReviewResult:
    """The caller (customer or provider of the order or visit) reviews it; see domain/reviews/review.py."""
    user = await ctx.require_user()

    async def op(session: AsyncSession) -> Review:
        return await review_domain.submit_review(
            session, actor=user, rating=rating, text_=text or "",
            service_request_id=_optional_id(service_request_id, "ServiceRequest", "serviceRequestId"),
            booking_id=_optional_id(booking_id, "Booking", "bookingId"),
        )

    review, errors = await _write(op)
    return ReviewResult(review, errors)


async def provider_reviews(
    ctx: Context, provider_id: int, *, first: int | None, after: str | None
) -> tuple[list[tuple[Review, str]], bool]:
    """Published customer reviews of a provider (public), one statement per page."""
    try:
        size = page_size(first)
        async with ctx.db() as session:
            return await review_domain.provider_reviews(session, provider_id, first=size, after=after)
    except DomainError as exc:
        raise bad_input(exc) from exc


async def rating_summary(ctx: Context, provider_id: int) -> review_domain.RatingSummary | None:
    async with ctx.db() as session:
        return await review_domain.rating_summary(session, provider_id)


async def my_reviews(
    ctx: Context, *, received: bool, first: int | None, after: str | None
) -> tuple[list[tuple[Review, str]], bool]:
    """The caller's reviews (written: published or not; received: published only)."""
    user = await ctx.require_user()
    try:
        size = page_size(first)
        async with ctx.db() as session:
            return await review_domain.my_reviews(session, user, received=received, first=size, after=after)
    except DomainError as exc:
        raise bad_input(exc) from exc


# --- strikes, suspension (admins) --------------------------------------------------------------------


@dataclass
class StandingResult:
    provider: Provider | None
    strike: ProviderStrike | None
    errors: list[PayloadError]


async def record_strike(
    ctx: Context, *, provider_id: str, reason: str, service_request_id: str | None, booking_id: str | None,
    dispute_id: str | None,
) -> StandingResult:
    admin = await ctx.require_admin()

    async def op(session: AsyncSession) -> standing.StrikeOutcome:
        return await standing.record_strike(
            session, decode_id(provider_id, "Provider", field="providerId"), actor=admin, reason=reason,
            service_request_id=_optional_id(service_request_id, "ServiceRequest", "serviceRequestId"),
            booking_id=_optional_id(booking_id, "Booking", "bookingId"),
            dispute_id=_optional_id(dispute_id, "Dispute", "disputeId"),
        )

    out, errors = await _write(op)
    if out is None:
        return StandingResult(None, None, errors)
    if out.suspended_now:
        await discovery.invalidate_provider(out.provider.id)  # after commit: it leaves cached searches
    return StandingResult(out.provider, out.strike, [])


async def suspend_provider(ctx: Context, *, provider_id: str, reason: str) -> StandingResult:
    admin = await ctx.require_admin()

    async def op(session: AsyncSession) -> Provider:
        return await standing.suspend(session, decode_id(provider_id, "Provider", field="providerId"),
                                           actor=admin, reason=reason)

    provider, errors = await _write(op)
    if provider is not None:
        await discovery.invalidate_provider(provider.id)
    return StandingResult(provider, None, errors)


async def reinstate_provider(ctx: Context, *, provider_id: str, note: str, reset_strikes: bool) -> StandingResult:
    admin = await ctx.require_admin()

    async def op(session: AsyncSession) -> Provider:
        return await standing.reinstate(session, decode_id(provider_id, "Provider", field="providerId"),
                                             actor=admin, note=note, reset_strikes=reset_strikes)

    provider, errors = await _write(op)
    if provider is not None:
        await discovery.invalidate_provider(provider.id)
    return StandingResult(provider, None, errors)


async def flagged_providers(ctx: Context, *, first: int | None, after: str | None) -> tuple[list[tuple[Provider, str]], bool]:
    await ctx.require_admin()
    try:
        size = page_size(first)
        async with ctx.db() as session:
            return await standing.flagged_providers(session, first=size, after=after)
    except DomainError as exc:
        raise bad_input(exc) from exc


async def provider_standing(ctx: Context, *, provider_id: str) -> tuple[Provider | None, list[ProviderStrike]]:
    """Admins: the provider's standing and its strikes (newest first); (None, []) for an unknown id."""
    await ctx.require_admin()
    try:
        ident = decode_id(provider_id, "Provider", field="providerId")
    except DomainError as exc:
        raise bad_input(exc) from exc
    async with ctx.db() as session:
        provider = await session.get(Provider, ident)
        if provider is None:
            return None, []
        return provider, await standing.strikes_of(session, ident)

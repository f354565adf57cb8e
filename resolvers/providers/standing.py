"""Provider standing resolvers (admins): strikes, suspension, reinstatement, the flagged providers and
one provider's standing under the two-strike policy (domain/providers/standing.py).

Mutations run in their own transaction (``resolvers.errors.write``); after commit the outbox is
relayed (emails) and, when a provider's suspension changed, discovery's cache cells of that provider
are invalidated (``domain.providers.discovery.invalidate_provider``) so a suspended provider never
comes back from a cached search.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from domain.providers import discovery, standing
from domain.shared.errors import DomainError
from models import Provider, ProviderStrike
from resolvers.context import Context
from resolvers.errors import PayloadError, bad_input, write
from resolvers.ids import decode_id, optional_id
from resolvers.pagination import page_size


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
            service_request_id=optional_id(service_request_id, "ServiceRequest", field="serviceRequestId"),
            booking_id=optional_id(booking_id, "Booking", field="bookingId"),
            dispute_id=optional_id(dispute_id, "Dispute", field="disputeId"),
        )

    out, errors = await write(op)
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

    provider, errors = await write(op)
    if provider is not None:
        await discovery.invalidate_provider(provider.id)
    return StandingResult(provider, None, errors)


async def reinstate_provider(ctx: Context, *, provider_id: str, note: str, reset_strikes: bool) -> StandingResult:
    admin = await ctx.require_admin()

    async def op(session: AsyncSession) -> Provider:
        return await standing.reinstate(session, decode_id(provider_id, "Provider", field="providerId"),
                                             actor=admin, note=note, reset_strikes=reset_strikes)

    provider, errors = await write(op)
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

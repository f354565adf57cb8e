"""Financial reports for admins (domain/operations/reports.py): figures from the ledger. Every field is admin
only (FORBIDDEN otherwise); a bad period is a top-level ``INVALID_PERIOD`` error."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from domain.operations import reports
from domain.shared.errors import DomainError
from resolvers.context import Context
from resolvers.errors import bad_input
from resolvers.ids import decode_id

T = TypeVar("T")


async def _report(ctx: Context, run: Callable[[AsyncSession], Awaitable[T]]) -> T:
    await ctx.require_admin()
    try:
        async with ctx.db() as session:
            return await run(session)
    except DomainError as exc:
        raise bad_input(exc) from exc


async def daily_revenue(ctx: Context, start: datetime, end: datetime) -> list[reports.RevenueDay]:
    """Platform revenue per UTC day and currency in ``[start, end)``."""
    return await _report(ctx, lambda s: reports.daily_revenue(s, start, end))


async def payout_report(ctx: Context, start: datetime, end: datetime) -> reports.PayoutReport:
    """Payouts per currency and status, with the ledger's payout movements, in ``[start, end)``."""
    return await _report(ctx, lambda s: reports.payout_report(s, start, end))


async def dispute_report(ctx: Context, start: datetime, end: datetime) -> list[reports.DisputeLine]:
    """Disputes opened in ``[start, end)`` by currency, status and resolution."""
    return await _report(ctx, lambda s: reports.dispute_report(s, start, end))


async def provider_earnings(
    ctx: Context, start: datetime, end: datetime, provider_id: str | None,
) -> list[reports.ProviderEarningsLine]:
    """Earnings per provider (or one, by Provider global id) and currency in ``[start, end)``."""
    try:
        ident = decode_id(provider_id, "Provider", field="providerId") if provider_id is not None else None
    except DomainError as exc:
        raise bad_input(exc) from exc
    return await _report(ctx, lambda s: reports.provider_earnings(s, start, end, provider_id=ident))


async def affiliate_commissions(ctx: Context, start: datetime, end: datetime) -> list[reports.AffiliateCommissionLine]:
    """Affiliate commissions per affiliate and currency in ``[start, end)``."""
    return await _report(ctx, lambda s: reports.affiliate_commissions(s, start, end))

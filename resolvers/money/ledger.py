"""The ledger's trial balance (admins) and the affiliate dashboard (admins and the affiliate)."""

from __future__ import annotations

from dataclasses import dataclass

from domain.money import affiliate, ledger
from domain.shared.errors import DomainError, Forbidden
from resolvers.context import Context, forbidden
from resolvers.errors import bad_input


@dataclass(frozen=True)
class TrialBalance:
    lines: list[ledger.TrialBalanceLine]
    check: ledger.LedgerCheck


async def trial_balance(ctx: Context) -> TrialBalance:
    """Admin: balances by account kind and currency, and the ledger audit (``ledger.verify``)."""
    await ctx.require_admin()
    async with ctx.db() as session:
        lines = await ledger.trial_balance(session)
        check = await ledger.verify(session)
    return TrialBalance(lines, check)


async def affiliate_dashboard(ctx: Context, *, code: str) -> list[affiliate.AffiliateTotals]:
    """Totals per currency for the affiliate with ``code``: admins and the affiliate's own account
    only (FORBIDDEN otherwise, NOT_FOUND for an unknown code)."""
    viewer = await ctx.require_user()
    try:
        async with ctx.db() as session:
            found = await affiliate.get_for_viewer(session, code, viewer)
            return await affiliate.dashboard(session, found.id)
    except Forbidden as exc:
        raise forbidden(exc.message) from exc
    except DomainError as exc:
        raise bad_input(exc) from exc

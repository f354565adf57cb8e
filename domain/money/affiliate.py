"""Affiliates: the dashboard of what a referral code earned, read from the ledger.

Attribution is by code at purchase (``service_requests.affiliate_code``, the rate snapshotted in
``affiliate_commission_bps``); the commission is earned when the order's escrow is released and
reversed in proportion on a later refund (domain/money/escrow.py). Clicks are not tracked (out
of scope). Paying affiliates out is done outside Odim today: ``payable`` is what is owed.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.shared.errors import Forbidden, NotFound
from models import Affiliate, AffiliateAttribution, LedgerAccount, LedgerEntry, LedgerTransaction, User


@dataclass(frozen=True)
class AffiliateTotals:
    """Per currency, minor units: ``earned`` (commission on released orders), ``reversed`` (taken
    back by refunds), ``payable`` (earned - reversed - paid: the account's balance)."""

    currency: str
    purchases: int
    earned: int
    reversed: int
    payable: int


async def get_for_viewer(session: AsyncSession, code: str, viewer: User) -> Affiliate:
    """The affiliate with ``code``, if ``viewer`` is an admin or the affiliate's own user.
    Raises ``NotFound``, ``Forbidden``."""
    affiliate = await session.scalar(select(Affiliate).where(Affiliate.code == code.strip().upper()))
    if affiliate is None:
        raise NotFound("No such affiliate code", field="code")
    if viewer.role != "admin" and affiliate.user_id != viewer.id:
        raise Forbidden("Only the affiliate and admins can read this dashboard")
    return affiliate


async def dashboard(session: AsyncSession, affiliate_id: int) -> list[AffiliateTotals]:
    """Totals per currency in two statements (paid purchases; ledger sums by transaction kind)."""
    purchases = dict(
        (
            await session.execute(
                select(AffiliateAttribution.currency, func.count())
                .where(AffiliateAttribution.affiliate_id == affiliate_id)
                .group_by(AffiliateAttribution.currency)
            )
        ).all()
    )
    rows = (
        await session.execute(
            select(LedgerAccount.currency, LedgerTransaction.kind, func.sum(LedgerEntry.amount_minor))
            .join(LedgerEntry, LedgerEntry.account_id == LedgerAccount.id)
            .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
            .where(LedgerAccount.kind == "affiliate_payable", LedgerAccount.owner_id == affiliate_id)
            .group_by(LedgerAccount.currency, LedgerTransaction.kind)
        )
    ).all()
    sums: dict[str, dict[str, int]] = {}
    for currency, kind, total in rows:
        sums.setdefault(currency, {})[kind] = int(total)
    currencies = sorted(set(purchases) | set(sums))
    out = []
    for currency in currencies:
        by_kind = sums.get(currency, {})
        earned = by_kind.get("affiliate_commission_earned", 0)
        reversed_ = -by_kind.get("affiliate_commission_reversed", 0)
        out.append(AffiliateTotals(
            currency=currency, purchases=int(purchases.get(currency, 0)), earned=earned, reversed=reversed_,
            payable=sum(by_kind.values()),
        ))
    return out

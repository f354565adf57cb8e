"""Money locks (positions 6 and 7 of the lock order in domain/shared/locks.py): an order's earning row,
then the ledger accounts its money can touch, in id order (``ledger.lock``). Every entry point of
domain/money/escrow.py takes them first, with the order's row already held by the caller.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.money import ledger
from models import Affiliate, Payment, ProviderEarning, ServiceRequest


async def lock_order_money(session: AsyncSession, request: ServiceRequest) -> None:
    """Lock, in the order every money path follows (rows, then ledger accounts by id), everything
    an operation on this order's money can touch: its earning row, its escrow, the provider's
    payable, the affiliate's payable, platform revenue, refunds payable, dispute losses and the
    clearing account of each gateway it was paid through. Called first by every entry point
    below, so a transaction that posts several times (a dispute resolved by a partial refund then
    a release) never takes a lock out of order. The caller already holds the order's row lock."""
    await session.execute(
        select(ProviderEarning.id).where(ProviderEarning.service_request_id == request.id).with_for_update(key_share=True)
    )
    currency = request.currency
    accounts = [
        ledger.escrow(request.id, currency), ledger.platform_revenue(currency, stripe=request.ledger_stripe),
        ledger.refunds_payable(currency, stripe=request.ledger_stripe), ledger.dispute_losses(currency, stripe=request.ledger_stripe),
    ]
    gateways = (
        await session.scalars(select(Payment.gateway).where(Payment.service_request_id == request.id).distinct())
    ).all()
    accounts += [ledger.gateway_clearing(g, currency, stripe=request.ledger_stripe) for g in gateways]
    if request.assigned_provider_id is not None:
        accounts.append(ledger.provider_payable(request.assigned_provider_id, currency))
    affiliate = await order_affiliate(session, request)
    if affiliate is not None:
        accounts.append(ledger.affiliate_payable(affiliate.id, currency))
    await ledger.lock(session, accounts)


async def order_affiliate(session: AsyncSession, request: ServiceRequest) -> Affiliate | None:
    """The affiliate the order's code names (None without a code or for an unknown one)."""
    if not request.affiliate_code:
        return None
    return await session.scalar(select(Affiliate).where(Affiliate.code == request.affiliate_code))

"""Escrow per order: capture into it, release it on completion, and take refunds out of it.

Money flows (domain/money/ledger.py has the accounts):

* ``capture``: a completed payment moves ``gateway_clearing -> escrow(order)``.
* ``release``: on completion, what is left in escrow splits by the fee snapshot taken at purchase
  (domain/catalogue/fees.py) into the provider's payable (one ``provider_earnings`` row per order, which
  payouts pick up) and platform revenue; the affiliate's commission then moves from platform revenue
  to the affiliate's payable. After a partial refund the shares shrink in proportion.
* ``reserve_refund``: before release the refund comes out of escrow; after release it comes back
  from each share in proportion (largest remainder), the affiliate's commission is reversed, and the
  provider's part comes from its unpaid earning for this order, or, if that was paid out already,
  from ``dispute_losses`` (the platform absorbs it). The money waits in ``refunds_payable`` until
  the gateway confirms the refund.

Every function runs in the caller's transaction, with the order row locked by the caller
(``service_request.lock_request``), and writes its ledger transactions with the business change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.catalogue import fees
from domain.money import ledger, locks
from domain.money.errors import MoneyErrorCode
from domain.shared.errors import CommonErrorCode, DomainError
from models import Dispute, Payment, ProviderEarning, ServiceRequest
from models.db import session_scope


class DisputeOpen(DomainError):
    code = MoneyErrorCode.DISPUTE_OPEN


class NothingToRelease(DomainError):
    code = MoneyErrorCode.NOTHING_TO_RELEASE


class RefundTooLarge(DomainError):
    code = MoneyErrorCode.REFUND_EXCEEDS_CAPTURED
    field = "amount"


def order_breakdown(request: ServiceRequest) -> fees.FeeBreakdown:
    """The order's fee breakdown from its snapshot (never from today's settings)."""
    return fees.breakdown(
        request.price_minor, request.currency, commission_bps=request.commission_bps,
        guest_surcharge_bps=request.guest_surcharge_bps, affiliate_commission_bps=request.affiliate_commission_bps,
        urgent_surcharge_minor=request.urgent_surcharge_minor,
    )


async def capture(session: AsyncSession, request: ServiceRequest, payment: Payment, *, more_to_post: bool = False) -> None:
    """Post ``payment`` (just completed) into the order's escrow: idempotent per payment.

    A capture alone is one posting, which locks just its two accounts (in id order) — every
    capture in a currency shares the gateway's clearing account, so locking the order's whole set
    here would serialise captures on platform revenue and refunds payable too. A caller that posts
    again in the same transaction passes ``more_to_post=True`` to lock the whole set first."""
    if more_to_post:
        await locks.lock_order_money(session, request)
    posted = await ledger.post(
        session, "payment_captured", f"payment_captured:{payment.reference}",
        [
            (ledger.gateway_clearing(payment.gateway, payment.currency, stripe=request.ledger_stripe), -payment.amount_minor),
            (ledger.escrow(request.id, payment.currency), payment.amount_minor),
        ],
        service_request_id=request.id, memo=f"payment {payment.reference} captured",
    )
    if posted is not None:
        request.captured_minor += payment.amount_minor


def refundable(request: ServiceRequest) -> int:
    """Minor units still refundable: captured minus refunds already requested."""
    return request.captured_minor - request.refunded_minor


async def has_open_dispute(session: AsyncSession, request_id: int) -> bool:
    return bool(
        await session.scalar(
            select(exists().where(Dispute.service_request_id == request_id, Dispute.status == "open"))
        )
    )


async def release(session: AsyncSession, request: ServiceRequest) -> ProviderEarning | None:
    """Split the order's escrow (order completed). Returns the provider's earning row, or ``None``
    when escrow was released already (idempotent). Raises ``DisputeOpen`` while a dispute is open,
    ``NothingToRelease`` when no provider is assigned."""
    if request.released_at is not None:
        return None
    if await has_open_dispute(session, request.id):
        raise DisputeOpen("A dispute is open on this order: resolve it to release the money")
    if request.assigned_provider_id is None:
        raise NothingToRelease("No provider is assigned to this order")
    await locks.lock_order_money(session, request)
    held = refundable(request)
    breakdown = order_breakdown(request)
    # Shares of the full order, scaled down to what is left after refunds (never above it).
    base = breakdown.total
    held_for_split = min(held, base)
    parts = fees.allocate(
        held_for_split, {"provider": breakdown.provider_share, "platform": breakdown.commission + breakdown.guest_surcharge}
    )
    parts["platform"] += held - held_for_split  # an overpayment (never refunded) stays with the platform
    affiliate_part = breakdown.affiliate_commission * held_for_split // base if base else 0
    currency = request.currency
    await ledger.post(
        session, "escrow_released", f"escrow_released:{request.id}",
        [
            (ledger.escrow(request.id, currency), -held),
            (ledger.provider_payable(request.assigned_provider_id, currency), parts["provider"]),
            (ledger.platform_revenue(currency, stripe=request.ledger_stripe), parts["platform"]),
        ],
        service_request_id=request.id, memo=f"order {request.reference} completed",
    )
    affiliate = await locks.order_affiliate(session, request)
    if affiliate is None:
        affiliate_part = 0
    if affiliate_part:
        await ledger.post(
            session, "affiliate_commission_earned", f"affiliate_commission_earned:{request.id}",
            [(ledger.platform_revenue(currency, stripe=request.ledger_stripe), -affiliate_part),
             (ledger.affiliate_payable(affiliate.id, currency), affiliate_part)],
            service_request_id=request.id, memo=f"affiliate {affiliate.code} on {request.reference}",
        )
    request.released_at = datetime.now(UTC)
    request.settled_provider_minor = parts["provider"]
    request.settled_platform_minor = parts["platform"] - affiliate_part
    request.settled_affiliate_minor = affiliate_part
    earning = None
    if parts["provider"] > 0:
        earning = ProviderEarning(
            provider_id=request.assigned_provider_id, service_request_id=request.id, currency=currency,
            released_minor=parts["provider"], amount_minor=parts["provider"], status="available",
        )
        session.add(earning)
        await session.flush()
    return earning


async def reserve_refund(
    session: AsyncSession, request: ServiceRequest, amount_minor: int, refund_reference: str, *,
    from_escrow: bool = False,
) -> None:
    """Move ``amount_minor`` of the order's money to ``refunds_payable`` for refund
    ``refund_reference`` (see the module docstring for where it comes from). ``from_escrow``
    takes it from the escrow account even after release: for money captured after the split (a
    second payment for an order already paid), which never joined the shares. Raises
    ``RefundTooLarge`` when it exceeds what is refundable, DomainError for a non-positive amount."""
    if amount_minor <= 0:
        raise DomainError("A refund must be a positive amount", field="amount", code=CommonErrorCode.INVALID_AMOUNT)
    if amount_minor > refundable(request):
        raise RefundTooLarge(
            f"At most {refundable(request)} {request.currency} (minor units) can be refunded on this order"
        )
    await locks.lock_order_money(session, request)
    currency = request.currency
    key = f"refund_requested:{refund_reference}"
    memo = f"refund {refund_reference} on {request.reference}"
    if request.released_at is None or from_escrow:
        await ledger.post(
            session, "refund_requested", key,
            [(ledger.escrow(request.id, currency), -amount_minor), (ledger.refunds_payable(currency, stripe=request.ledger_stripe), amount_minor)],
            service_request_id=request.id, memo=memo,
        )
    else:
        await _refund_after_release(session, request, amount_minor, key, memo)
    request.refunded_minor += amount_minor


async def _refund_after_release(
    session: AsyncSession, request: ServiceRequest, amount_minor: int, key: str, memo: str
) -> None:
    currency = request.currency
    parts = fees.allocate(amount_minor, {
        "provider": request.settled_provider_minor, "platform": request.settled_platform_minor,
        "affiliate": request.settled_affiliate_minor,
    })
    # Rows first (the earning), then ledger accounts: the lock order every money path follows.
    earning = await session.scalar(
        select(ProviderEarning).where(ProviderEarning.service_request_id == request.id).with_for_update(key_share=True)
    )
    if parts["affiliate"]:
        affiliate = await locks.order_affiliate(session, request)
        assert affiliate is not None
        await ledger.post(
            session, "affiliate_commission_reversed", f"affiliate_commission_reversed:{key}",
            [(ledger.affiliate_payable(affiliate.id, currency), -parts["affiliate"]),
             (ledger.platform_revenue(currency, stripe=request.ledger_stripe), parts["affiliate"])],
            service_request_id=request.id, memo=memo,
        )
    from_payable = 0
    if earning is not None and earning.status == "available":
        from_payable = min(parts["provider"], earning.amount_minor)
        earning.amount_minor -= from_payable
    loss = parts["provider"] - from_payable
    assert request.assigned_provider_id is not None
    await ledger.post(
        session, "refund_requested", key,
        [
            (ledger.provider_payable(request.assigned_provider_id, currency), -from_payable),
            (ledger.dispute_losses(currency, stripe=request.ledger_stripe), -loss),
            (ledger.platform_revenue(currency, stripe=request.ledger_stripe), -(parts["platform"] + parts["affiliate"])),
            (ledger.refunds_payable(currency, stripe=request.ledger_stripe), amount_minor),
        ],
        service_request_id=request.id, memo=memo,
    )
    request.settled_provider_minor -= parts["provider"]
    request.settled_platform_minor -= parts["platform"]
    request.settled_affiliate_minor -= parts["affiliate"]


async def release_due_orders(*, limit: int = 200) -> int:
    """Release the escrow of orders whose grace period after completion has passed with no open
    dispute (the scheduler calls this). One transaction per order; returns how many were released."""
    now = datetime.now(UTC)
    async with session_scope() as session:
        ids = (
            await session.scalars(
                select(ServiceRequest.id)
                .where(ServiceRequest.released_at.is_(None), ServiceRequest.release_due_at <= now)
                .order_by(ServiceRequest.release_due_at)
                .limit(limit)
            )
        ).all()
    released = 0
    for request_id in ids:
        async with session_scope() as session:
            request = await session.scalar(
                select(ServiceRequest).where(ServiceRequest.id == request_id).with_for_update(skip_locked=True, key_share=True)
            )
            if request is None or request.released_at is not None or await has_open_dispute(session, request_id):
                continue
            if await release(session, request) is not None or request.released_at is not None:
                released += 1
    return released


def receipt_lines(request: ServiceRequest) -> list[fees.ReceiptLine]:
    """The customer's receipt: the fee lines snapshotted at purchase, then refunds and net paid."""
    lines = fees.customer_lines(order_breakdown(request))
    if request.refunded_minor:
        lines.append(fees.ReceiptLine("refunded", "Refunded", -request.refunded_minor))
        lines.append(fees.ReceiptLine("net_paid", "Net paid", request.captured_minor - request.refunded_minor))
    return lines


@dataclass(frozen=True)
class Settlement:
    """How an order's money splits, minor units of ``currency``. Before release: the split the fee
    snapshot plans for the whole order (``escrow.order_breakdown``); after release: what each party
    got, less later refunds (``settled_*``). ``platform_take`` is the commission plus the guest
    surcharge minus the affiliate's commission. ``escrow_held`` is captured minus refunded until
    release, then 0."""

    currency: str
    released: bool
    released_at: datetime | None
    release_due_at: datetime | None
    commission_bps: int
    guest_surcharge_bps: int
    affiliate_commission_bps: int
    commission_minor: int
    guest_surcharge_minor: int
    provider_share_minor: int
    affiliate_commission_minor: int
    platform_take_minor: int
    escrow_held_minor: int


def settlement(request: ServiceRequest) -> Settlement:
    """How this order's money splits now (see ``Settlement``)."""
    b = order_breakdown(request)
    released = request.released_at is not None
    if released:
        provider_share = request.settled_provider_minor
        affiliate_part = request.settled_affiliate_minor
        platform_take = request.settled_platform_minor
    else:
        provider_share = b.provider_share
        affiliate_part = b.affiliate_commission if request.affiliate_code else 0
        platform_take = b.commission + b.guest_surcharge - affiliate_part
    return Settlement(
        currency=request.currency, released=released, released_at=request.released_at,
        release_due_at=request.release_due_at, commission_bps=request.commission_bps,
        guest_surcharge_bps=request.guest_surcharge_bps, affiliate_commission_bps=request.affiliate_commission_bps,
        commission_minor=b.commission, guest_surcharge_minor=b.guest_surcharge, provider_share_minor=provider_share,
        affiliate_commission_minor=affiliate_part, platform_take_minor=platform_take,
        escrow_held_minor=0 if released else refundable(request),
    )

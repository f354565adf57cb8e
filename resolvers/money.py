"""Money resolvers: the fee preview, an order's receipt and settlement, admin refunds, the ledger's
trial balance and the affiliate dashboard."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.catalogue import fees, offers
from domain.money import affiliate, escrow, ledger
from domain.orders import refunds
from domain.orders import service_request as sr_domain
from domain.shared import outbox
from domain.shared.errors import DomainError, Forbidden, NotFound
from models import Payment, Refund, ServiceRequest
from models.db import session_scope
from resolvers import loaders
from resolvers.context import Context, forbidden
from resolvers.errors import PayloadError, to_payload_error
from resolvers.ids import decode_id
from resolvers.provider import bad_input
from resolvers.service_request import ServiceRequestView

# --- fee preview ----------------------------------------------------------------------------------


@dataclass
class QuoteResult:
    breakdown: fees.FeeBreakdown | None
    errors: list[PayloadError]


async def fee_quote(
    ctx: Context, *, service_id: str, tier_id: str | None, currency: str | None, affiliate_code: str | None
) -> QuoteResult:
    """What buying this tier would cost now (``service_request.fee_quote``). Anonymous callers are
    quoted as guests (guest surcharge), logged-in callers without it. Bad input (unknown service,
    tier, currency or affiliate code) comes back as typed errors, like ``purchaseService``'s."""
    viewer = await ctx.viewer()
    try:
        sid = decode_id(service_id, "Service", field="serviceId")
        tid = decode_id(tier_id, "ServiceTier", field="tierId") if tier_id else None
        async with ctx.db() as session:
            breakdown = await offers.fee_quote(
                session, service_id=sid, tier_id=tid, currency=currency, guest=viewer is None,
                affiliate_code=affiliate_code,
            )
    except DomainError as exc:
        return QuoteResult(None, [to_payload_error(exc)])
    return QuoteResult(breakdown, [])


# --- receipt and settlement of an order -----------------------------------------------------------


@dataclass(frozen=True)
class ReceiptView:
    """The customer's receipt: ``lines`` from ``escrow.receipt_lines``; amounts in minor units."""

    request_id: int
    currency: str
    payment_reference: str | None
    paid_at: datetime | None
    lines: list[fees.ReceiptLine]
    total_minor: int
    refunded_minor: int
    net_paid_minor: int


async def receipt(ctx: Context, request: ServiceRequest) -> ReceiptView | None:
    """The receipt of a paid order (None while nothing was captured). The caller checked the
    private view. One statement per batch of requests (the completed-payment loader)."""
    if request.captured_minor == 0:
        return None
    payment: Payment | None = await loaders.completed_payments_by_request(ctx).load(request.id)
    return ReceiptView(
        request_id=request.id, currency=request.currency, payment_reference=payment.reference if payment else None,
        paid_at=request.paid_at, lines=escrow.receipt_lines(request), total_minor=request.amount_minor,
        refunded_minor=request.refunded_minor, net_paid_minor=request.captured_minor - request.refunded_minor,
    )


async def refunds_of(ctx: Context, request_id: int) -> list[Refund]:
    return await loaders.refunds_by_request(ctx).load(request_id)


async def settlement(ctx: Context, request: ServiceRequest) -> escrow.Settlement | None:
    """The settlement of an order for admins and the order's assigned provider (None for anyone
    else, the customer included: the commission is between the platform and the provider)."""
    viewer = await ctx.viewer()
    if viewer is None:
        return None
    if viewer.role != "admin":
        if viewer.role != "provider" or request.assigned_provider_id is None:
            return None
        if await loaders.provider_ids_by_user(ctx).load(viewer.id) != request.assigned_provider_id:
            return None
    return escrow.settlement(request)


# --- refunds --------------------------------------------------------------------------------------


@dataclass
class RefundResult:
    refund: Refund | None
    request: ServiceRequestView | None
    errors: list[PayloadError]


async def refund_service_request(
    ctx: Context, *, service_request_id: str, amount: int | None, reason: str, idempotency_key: str | None
) -> RefundResult:
    """Admin: refund ``amount`` minor units of an order (None: all that is still refundable) through
    ``refunds.refund_order``; the gateway call happens after commit (the ``send_refund`` job)."""
    admin = await ctx.require_admin()
    try:
        rid = decode_id(service_request_id, "ServiceRequest", field="serviceRequestId")
        async with session_scope() as session:
            created = await refunds.refund_order(
                session, rid, actor_user_id=admin.id, amount_minor=amount, reason=reason,
                idempotency_key=idempotency_key,
            )
            request = await session.get(ServiceRequest, created.service_request_id)
    except NotFound as exc:
        exc.field = "serviceRequestId"
        return RefundResult(None, None, [to_payload_error(exc)])
    except DomainError as exc:
        return RefundResult(None, None, [to_payload_error(exc)])
    await outbox.relay_quietly()
    assert request is not None
    return RefundResult(created, ServiceRequestView(request, True), [])


async def refund_nodes(ctx: Context, ids: list[int]) -> list[Refund | None]:
    """Refunds by global id: only for callers who may see their order's private view."""

    viewer = await ctx.viewer()
    if viewer is None:
        return [None] * len(ids)
    out: list[Refund | None] = []
    async with ctx.db() as session:
        for ident in ids:
            found = await session.get(Refund, ident)
            request = await session.get(ServiceRequest, found.service_request_id) if found else None
            visible = request is not None and await sr_domain.can_see_private(session, request, viewer)
            out.append(found if visible else None)
    return out


# --- ledger and affiliates ------------------------------------------------------------------------


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


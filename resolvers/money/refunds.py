"""An order's money after purchase: the customer's receipt, the settlement (admins and the assigned
provider), refunds by admins, and refunds read by id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.catalogue import fees
from domain.money import escrow
from domain.orders import refunds
from domain.orders import service_request as sr_domain
from domain.shared import outbox
from domain.shared.errors import DomainError, NotFound
from models import Payment, Refund, ServiceRequest
from models.db import session_scope
from resolvers import loaders
from resolvers.context import Context
from resolvers.errors import PayloadError, to_payload_error
from resolvers.ids import decode_id
from resolvers.orders.service_request import ServiceRequestView

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

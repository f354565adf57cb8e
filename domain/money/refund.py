"""Refunds: requested by an admin, by a dispute's resolution or by a cancellation's refund policy;
sent through the gateway the payment came from; settled from the gateway's answer, its webhook or
reconciliation.

Life of a refund: ``MACHINE`` below (docs/state-machines.md). On ``succeeded`` the ledger moves it
from ``refunds_payable`` to the gateway's clearing account and the customer is emailed; on ``failed``
the money stays in ``refunds_payable`` (still owed) and operations are alerted. A late success wins;
a late failure never undoes a success.

``create_refund`` writes the refund row, its ledger reservation (domain/money/escrow.py) and the
``send_refund`` job in the caller's transaction. ``send_refund`` then calls the gateway outside any
database transaction, idempotently: the refund's reference is the idempotency key, and a retry asks
the gateway for the refund's status by that reference before creating it again.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.messaging import notification
from domain.money import escrow, ledger
from domain.money.errors import MoneyErrorCode
from domain.shared import outbox, statemachine
from domain.shared.errors import DomainError
from domain.shared.money import Money
from domain.shared.statemachine import rule
from gateways import registry
from gateways.base import GatewayError, RefundResult
from models import Payment, Refund, ServiceRequest
from models.db import session_scope
from models.orders.payment import RefundStatus
from settings import get_settings

log = structlog.get_logger(__name__)

R = RefundStatus
MACHINE = statemachine.Machine("refund", RefundStatus, {
    (R.PENDING, R.SUCCEEDED): rule("system", why="the gateway sent it: settled in the ledger, customer emailed"),
    (R.PENDING, R.FAILED): rule("system", why="the gateway refused it: still owed, operations alerted"),
    # A success is final whatever came before (a "failed" that arrived first was stale or premature).
    (R.FAILED, R.SUCCEEDED): rule("system", why="a late success wins"),
}, initial=R.PENDING)


class NotRefundable(DomainError):
    code = MoneyErrorCode.NOT_REFUNDABLE


def refund_percent_for_cancellation(hours_before_start: float | None) -> int:
    """Percent of the paid amount refunded when an order is cancelled ``hours_before_start`` hours
    before its scheduled start, from settings.refund_policy (rows ``(hours, percent)``: the first
    row whose ``hours`` the notice meets wins; less notice than every row refunds 0 %). Orders
    without a scheduled start (catalogue purchases) are refunded in full: pass ``None``."""
    if hours_before_start is None:
        return 100
    for hours, percent in sorted(get_settings().refund_policy, key=lambda row: -row[0]):
        if hours_before_start >= hours:
            return percent
    return 0


async def create_refund(
    session: AsyncSession, request: ServiceRequest, amount_minor: int, *, reason: str, requested_by_user_id: int | None,
    from_escrow: bool = False,
) -> Refund:
    """Refund ``amount_minor`` of the (row-locked) order to the customer. ``from_escrow``: see
    ``escrow.reserve_refund``. Raises ``NotRefundable`` when nothing was captured,
    ``escrow.RefundTooLarge``, DomainError ``INVALID_AMOUNT``."""
    payment = await session.scalar(
        select(Payment)
        .where(Payment.service_request_id == request.id, Payment.status == "completed")
        .order_by(Payment.id.desc())
        .limit(1)
    )
    if payment is None or request.captured_minor == 0:
        raise NotRefundable("Nothing was paid on this order", field="serviceRequestId")
    reference = f"re_{secrets.token_hex(12)}"
    await escrow.reserve_refund(session, request, amount_minor, reference, from_escrow=from_escrow)
    refund = Refund(
        reference=reference, service_request_id=request.id, payment_id=payment.id, gateway=payment.gateway,
        amount_minor=amount_minor, currency=request.currency, status="pending", reason=reason[:2000],
        requested_by_user_id=requested_by_user_id,
    )
    session.add(refund)
    await session.flush()
    outbox.enqueue_actor(session, "send_refund", queue="payments", refund_id=refund.id)
    return refund


async def send_refund(refund_id: int) -> str:
    """Send refund ``refund_id`` to its gateway and apply the answer (the ``send_refund`` actor).
    Returns the refund's status afterwards (``pending``, ``succeeded``, ``failed``), or
    ``already_settled`` when there was nothing to send.
    Raises ``GatewayError`` when the gateway cannot be reached (the actor retries; a retry first
    asks for the refund's status by reference)."""
    async with session_scope() as session:
        refund = await session.scalar(select(Refund).where(Refund.id == refund_id).with_for_update(key_share=True))
        if refund is None or refund.status != "pending":
            return "already_settled"
        refund.attempts += 1
        first_attempt = refund.attempts == 1
        payment = await session.get(Payment, refund.payment_id)
        assert payment is not None
        args = dict(
            payment_reference=payment.reference, refund_reference=refund.reference,
            amount_minor=refund.amount_minor, currency=refund.currency, payment_gateway_id=payment.gateway_id,
        )
        gateway_name = refund.gateway
    gateway = registry.get_gateway(gateway_name)
    result: RefundResult | None = None
    if not first_attempt:
        try:
            result = await gateway.fetch_refund(args["refund_reference"], payment_reference=args["payment_reference"])
        except GatewayError as exc:
            if exc.retryable:
                raise
            result = None  # the gateway never saw it: create it now
    if result is None:
        result = await gateway.refund(**args)
    async with session_scope() as session:
        status = await apply_refund_status(session, refund_id, result.status, gateway_id=result.gateway_id)
    await outbox.relay_quietly()
    return status


async def apply_refund_status(
    session: AsyncSession, refund_id: int, status: str, *, gateway_id: str | None = None, failure_reason: str | None = None
) -> str:
    """Apply the gateway's view of a refund (from ``send_refund``, a webhook or reconciliation):
    ``pending`` changes nothing; ``succeeded`` settles it in the ledger and emails the customer;
    ``failed`` records it and alerts the operator. Out-of-order or repeated news never moves a
    settled refund. Returns the refund's status afterwards."""
    refund = await session.scalar(select(Refund).where(Refund.id == refund_id).with_for_update(key_share=True))
    if refund is None:
        return "unknown"
    if gateway_id and not refund.gateway_id:
        refund.gateway_id = gateway_id
    if status == "pending" or not MACHINE.allowed(refund.status, status, "system"):
        return refund.status
    request = await session.get(ServiceRequest, refund.service_request_id)
    assert request is not None
    amount = Money(refund.amount_minor, refund.currency).formatted()
    if status == "succeeded":
        await ledger.post(
            session, "refund_sent", f"refund_sent:{refund.reference}",
            [(ledger.refunds_payable(refund.currency, stripe=request.ledger_stripe), -refund.amount_minor),
             (ledger.gateway_clearing(refund.gateway, refund.currency, stripe=request.ledger_stripe),
              refund.amount_minor)],
            service_request_id=refund.service_request_id, memo=f"refund {refund.reference} settled",
        )
        MACHINE.move(refund, "succeeded", actor="system", history=None)
        refund.settled_at = datetime.now(UTC)
        await notification.queue_email(
            session, dedupe_key=f"refund:{refund.reference}", kind="refund", to=request.customer_email,
            template="refund_issued",
            context={"name": request.customer_name, "reference": request.reference, "amount": amount,
                     "reason": refund.reason},
        )
    else:
        MACHINE.move(refund, "failed", actor="system", history=None)
        refund.failure_reason = failure_reason or "refused by the gateway"
        log.error("refund.failed", refund_id=refund.id, gateway=refund.gateway)
        await notification.queue_email(
            session, dedupe_key=f"refund_failed:{refund.reference}", kind="operator_alert",
            to=get_settings().operator_email, template="operator_alert",
            context={"subject": f"Refund {refund.reference} failed",
                     "body": f"The refund of {amount} on {request.reference} failed at {refund.gateway}: "
                             f"{refund.failure_reason}. The money is still owed to the customer."},
        )
    return refund.status


async def refund_by_reference(session: AsyncSession, reference: str) -> Refund | None:
    return await session.scalar(select(Refund).where(Refund.reference == reference))


async def pending_refund_for_payment(session: AsyncSession, payment_reference: str, amount_minor: int | None) -> Refund | None:
    """The oldest pending refund of payment ``payment_reference`` (for ``amount_minor`` when given)."""
    stmt = (
        select(Refund).join(Payment, Payment.id == Refund.payment_id)
        .where(Payment.reference == payment_reference, Refund.status == "pending").order_by(Refund.id).limit(1)
    )
    if amount_minor is not None:
        stmt = stmt.where(Refund.amount_minor == amount_minor)
    return await session.scalar(stmt)


async def refunds_for_requests(session: AsyncSession, request_ids: list[int]) -> dict[int, list[Refund]]:
    """Refunds of many orders in one statement, oldest first."""
    rows = (
        await session.scalars(select(Refund).where(Refund.service_request_id.in_(request_ids)).order_by(Refund.id))
    ).all()
    out: dict[int, list[Refund]] = {i: [] for i in request_ids}
    for row in rows:
        out[row.service_request_id].append(row)
    return out

"""Payments: the webhook inbox, the processing of gateway events (at-least-once, idempotent) and
the payment state machine.

``receive_webhook`` runs in the HTTP handler: verify over the raw body, store in the inbox
(unique on ``(gateway, event_id)``: a redelivery is acknowledged and ignored), queue the
``process_webhook`` actor through the outbox, answer 200. ``process_webhook`` runs in the worker:
one transaction applies the event, so a crash anywhere rolls everything back and the retry
starts clean; the inbox row's ``processed_at`` and the payment's status make replays no-ops.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import structlog
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.messaging import notification
from domain.money import escrow, payout, refund
from domain.orders import kinds, locks
from domain.shared import metrics, outbox, statemachine
from domain.shared.money import Money
from domain.shared.statemachine import rule
from gateways.base import GatewayEvent, PaymentGateway
from models import (
    Payment,
    PaymentStatusChange,
    ServiceRequest,
    WebhookEvent,
)
from models.orders.payment import PaymentStatus
from settings import get_settings

log = structlog.get_logger(__name__)


async def receive_webhook(
    session: AsyncSession, gateway: PaymentGateway, headers: Mapping[str, str], raw_body: bytes
) -> tuple[GatewayEvent, bool]:
    """Verify and store one webhook; returns ``(event, stored)`` where ``stored`` is False for a
    duplicate. Raises ``gateways.base.InvalidSignature`` (nothing is stored). The caller commits.
    Events Odim does not act on (type ``ignored``) are stored for the record but not processed."""
    event = gateway.verify_webhook(headers, raw_body)
    kept_headers = {k.lower(): v for k, v in headers.items() if k.lower() not in ("cookie", "authorization")}
    inbox_id = await session.scalar(
        insert(WebhookEvent)
        .values(
            gateway=gateway.name, event_id=event.event_id, event_type=event.type, reference=event.reference or None,
            amount_minor=event.amount_minor, currency=event.currency, payload=event.payload, headers=kept_headers,
        )
        .on_conflict_do_nothing(index_elements=["gateway", "event_id"])
        .returning(WebhookEvent.id)
    )
    if inbox_id is None:
        return event, False
    if event.type != "ignored":
        outbox.enqueue_actor(session, "process_webhook", queue="payments", inbox_id=inbox_id)
    return event, True


P = PaymentStatus
MACHINE = statemachine.Machine("payment", PaymentStatus, {
    (P.PENDING, P.COMPLETED): rule("system", why="the gateway confirms it: captured into escrow"),
    (P.PENDING, P.FAILED): rule("system", why="declined at the gateway"),
    (P.FAILED, P.COMPLETED): rule("system", why="the customer tried again and paid"),
}, initial=P.PENDING)
# Nothing leaves completed: a late "failed" after "succeeded" (out of order) is ignored by the callers.


def _payment_transition(session: AsyncSession, payment: Payment, to_status: str, event_id: str, note: str = "") -> None:
    MACHINE.move(payment, to_status, actor="system", session=session, history=lambda frm, to: PaymentStatusChange(
        payment_id=payment.id, from_status=frm, to_status=to, gateway_event_id=event_id, note=note))
    payment.gateway_event_id = event_id
    payment.updated_at = datetime.now(UTC)


async def request_reference_for_payment(session: AsyncSession, payment_reference: str) -> str | None:
    """The public ``ODM-...`` reference of the order a payment belongs to."""
    return await session.scalar(
        select(ServiceRequest.reference)
        .join(Payment, Payment.service_request_id == ServiceRequest.id)
        .where(Payment.reference == payment_reference)
    )


async def process_webhook(session: AsyncSession, inbox_id: int) -> str:
    """Apply stored webhook ``inbox_id`` once, in the caller's transaction. Returns what happened:
    ``completed``, ``failed``, ``already_processed``, ``duplicate_payment_event``,
    ``unknown_payment``, ``amount_mismatch``, ``ignored_event_type``, or for refund and payout
    events the refund's / payout's status afterwards (``refund:succeeded``, ``payout:paid`` ...)."""
    inbox = await session.scalar(select(WebhookEvent).where(WebhookEvent.id == inbox_id).with_for_update(key_share=True))
    if inbox is None:
        return "unknown_inbox"
    if inbox.processed_at is not None:
        return "already_processed"
    inbox.attempts += 1
    result = await _apply(session, inbox)
    inbox.result = result
    inbox.processed_at = datetime.now(UTC)
    metrics.webhook_processed(session, inbox.gateway, inbox.received_at)
    log.info("webhook.processed", inbox_id=inbox.id, event_id=inbox.event_id, result=result)
    return result


async def _apply(session: AsyncSession, inbox: WebhookEvent) -> str:
    kind, _, outcome = inbox.event_type.partition(".")
    reference = inbox.reference or ""
    if kind == "refund":
        found = await refund.refund_by_reference(session, reference)
        if found is None and reference.startswith("pay_"):
            # Paystack's refund events echo the payment's reference, not the refund's: take the
            # oldest unsettled refund of that payment for that amount.
            found = await refund.pending_refund_for_payment(session, reference, inbox.amount_minor)
        if found is None:
            return "unknown_refund"
        status = "succeeded" if outcome == "succeeded" else "failed"
        return "refund:" + await refund.apply_refund_status(session, found.id, status, failure_reason=outcome)
    if kind == "payout":
        return "payout:" + await payout.apply_payout_status(
            session, reference, "paid" if outcome == "paid" else "failed", failure_reason=f"gateway event {outcome}"
        )
    if kind != "payment":
        return "ignored_event_type"
    payment = await session.scalar(select(Payment).where(Payment.reference == reference).with_for_update(key_share=True))
    if payment is None:
        log.warning("webhook.unknown_payment", event_id=inbox.event_id)
        return "unknown_payment"
    status = "succeeded" if outcome == "succeeded" else "failed"
    return await apply_payment_status(
        session, payment, status, amount_minor=inbox.amount_minor, currency=inbox.currency, event_id=inbox.event_id
    )


async def apply_payment_status(
    session: AsyncSession, payment: Payment, status: str, *, amount_minor: int | None, currency: str | None,
    event_id: str,
) -> str:
    """The one idempotent transition both webhooks and reconciliation use: the gateway says payment
    ``payment`` (row-locked) is ``succeeded``, ``failed`` or ``pending``. Returns ``completed``,
    ``failed``, ``duplicate_payment_event`` (already there, or a late failure after success),
    ``unchanged`` (pending) or ``amount_mismatch`` (the gateway's amount or currency differs from
    ours: nothing is captured, the payment is flagged for review and the operator alerted)."""
    if status == "pending":
        return "unchanged"
    if payment.status == "completed":
        return "duplicate_payment_event"
    if status == "failed":
        if payment.status == "failed":
            return "duplicate_payment_event"
        request = await locks.lock_request(session, payment.service_request_id)
        _payment_transition(session, payment, "failed", event_id, "declined at the gateway")
        payment.failure_reason = "declined"
        metrics.payment_outcome(session, payment.gateway, "failed")
        await notification.queue_email(
            session, dedupe_key=f"payment_failed:{event_id}", kind="payment_failed", to=request.customer_email,
            template="payment_failed",
            context={"name": request.customer_name, "reference": request.reference,
                     "checkout_hint": payment.checkout_url or "open the checkout link from your purchase again"},
        )
        return "failed"
    if amount_minor != payment.amount_minor or (currency or "").upper() != payment.currency:
        # Never capture a different amount than the order's: an operator must look.
        log.error("payment.amount_mismatch", event_id=event_id, payment_id=payment.id)
        got = f"{amount_minor} {currency}"
        payment.review_reason = f"gateway reported {got}, expected {payment.amount_minor} {payment.currency}"
        await notification.queue_email(
            session, dedupe_key=f"amount_mismatch:{payment.reference}:{got}", kind="operator_alert",
            to=get_settings().operator_email, template="operator_alert",
            context={"subject": f"Amount mismatch on payment {payment.reference} — do not deliver",
                     "body": f"Payment {payment.reference}: {payment.review_reason} (event {event_id}). "
                             "Nothing was captured; check it at the gateway."},
        )
        metrics.payment_outcome(session, payment.gateway, "amount_mismatch")
        return "amount_mismatch"
    request = await locks.lock_request(session, payment.service_request_id)
    await confirm_payment(session, payment, request, event_id)
    metrics.payment_outcome(session, payment.gateway, "completed")
    return "completed"


async def _refund_on_arrival(session: AsyncSession, request: ServiceRequest, payment: Payment, why: str) -> None:
    """Money nobody should keep: capture it into the order's escrow and refund it at once."""
    log.warning("payment.refunded_on_arrival", request_id=request.id, reason=why)
    await escrow.capture(session, request, payment, more_to_post=True)
    await refund.create_refund(session, request, payment.amount_minor, reason=f"Refunded: {why}",
                               requested_by_user_id=None, from_escrow=True)


async def confirm_payment(session: AsyncSession, payment: Payment, request: ServiceRequest, event_id: str) -> None:
    """Payment completed: payment -> completed and captured into the order's escrow (ledger), request
    awaiting_payment -> payment_confirmed -> pending_contact (history rows and live events),
    affiliate attribution, confirmation email to the customer and notification to the operator —
    all in the caller's transaction. Money that arrives for an order that is already paid (a second
    payment) or cancelled is captured and refunded at once, never kept silently."""
    _payment_transition(session, payment, "completed", event_id)
    now = datetime.now(UTC)
    payment.completed_at = now
    already_paid = request.paid_at is not None
    amount = Money(payment.amount_minor, payment.currency).formatted()
    if already_paid or request.status == "cancelled":
        why = "a second payment for an order already paid" if already_paid else "the order was cancelled"
        await _refund_on_arrival(session, request, payment, why)
        return
    refused = await kinds.of(request).on_paid(session, request, payment, amount=amount)
    if refused is not None:
        await _refund_on_arrival(session, request, payment, refused)
        return
    # Last, so the per-currency accounts every capture shares (the gateway's clearing account) are
    # locked only for the posting and the commit, not for the rest of the work above.
    await escrow.capture(session, request, payment)

"""Payments: the webhook inbox and the processing of gateway events (at-least-once, idempotent).

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

from domain import notification, outbox, service_request
from domain.errors import DomainError
from domain.money import Money
from gateways.base import GatewayEvent, PaymentGateway
from models import (
    Affiliate,
    AffiliateAttribution,
    Payment,
    PaymentStatusChange,
    Service,
    ServiceRequest,
    ServiceTier,
    WebhookEvent,
)
from settings import get_settings

log = structlog.get_logger(__name__)

PAYMENT_TRANSITIONS = {("pending", "completed"), ("pending", "failed"), ("failed", "completed")}


async def receive_webhook(
    session: AsyncSession, gateway: PaymentGateway, headers: Mapping[str, str], raw_body: bytes
) -> tuple[GatewayEvent, bool]:
    """Verify and store one webhook; returns ``(event, stored)`` where ``stored`` is False for a
    duplicate. Raises ``gateways.base.InvalidSignature`` (nothing is stored). The caller commits."""
    event = gateway.verify_webhook(headers, raw_body)
    inbox_id = await session.scalar(
        insert(WebhookEvent)
        .values(gateway=gateway.name, event_id=event.event_id, event_type=event.type, payload=event.payload)
        .on_conflict_do_nothing(index_elements=["gateway", "event_id"])
        .returning(WebhookEvent.id)
    )
    if inbox_id is None:
        return event, False
    outbox.enqueue_actor(session, "process_webhook", queue="payments", inbox_id=inbox_id)
    return event, True


def _payment_transition(session: AsyncSession, payment: Payment, to_status: str, event_id: str, note: str = "") -> None:
    if (payment.status, to_status) not in PAYMENT_TRANSITIONS:
        raise DomainError(f"payment cannot go from {payment.status} to {to_status}", code="INVALID_TRANSITION")
    session.add(PaymentStatusChange(
        payment_id=payment.id, from_status=payment.status, to_status=to_status, gateway_event_id=event_id, note=note,
    ))
    payment.status = to_status
    payment.gateway_event_id = event_id
    payment.updated_at = datetime.now(UTC)


async def process_webhook(session: AsyncSession, inbox_id: int) -> str:
    """Apply stored webhook ``inbox_id`` once, in the caller's transaction. Returns what happened:
    ``completed``, ``failed``, ``already_processed``, ``duplicate_payment_event``,
    ``unknown_payment``, ``amount_mismatch`` or ``ignored_event_type``."""
    inbox = await session.scalar(select(WebhookEvent).where(WebhookEvent.id == inbox_id).with_for_update())
    if inbox is None:
        return "unknown_inbox"
    if inbox.processed_at is not None:
        return "already_processed"
    inbox.attempts += 1
    result = await _apply(session, inbox)
    inbox.result = result
    inbox.processed_at = datetime.now(UTC)
    log.info("webhook.processed", inbox_id=inbox.id, event_id=inbox.event_id, result=result)
    return result


async def _apply(session: AsyncSession, inbox: WebhookEvent) -> str:
    data = inbox.payload.get("data", {})
    reference = str(data.get("reference", ""))
    payment = await session.scalar(select(Payment).where(Payment.reference == reference).with_for_update())
    if payment is None:
        log.warning("webhook.unknown_payment", event_id=inbox.event_id)
        return "unknown_payment"
    if inbox.event_type not in ("payment.succeeded", "payment.failed"):
        return "ignored_event_type"
    if payment.status == "completed":
        return "duplicate_payment_event"
    request = await service_request.lock_request(session, payment.service_request_id)
    if inbox.event_type == "payment.failed":
        if payment.status == "failed":
            return "duplicate_payment_event"
        _payment_transition(session, payment, "failed", inbox.event_id, "declined at the gateway")
        payment.failure_reason = "declined"
        await notification.queue_email(
            session, dedupe_key=f"payment_failed:{inbox.event_id}", kind="payment_failed", to=request.customer_email,
            template="payment_failed",
            context={"name": request.customer_name, "reference": request.reference,
                     "checkout_hint": "open the checkout link from your purchase again"},
        )
        return "failed"
    if int(data.get("amount_minor", -1)) != payment.amount_minor or data.get("currency") != payment.currency:
        # Never confirm a request for a different amount; an operator must look (inbox result ``amount_mismatch``).
        log.error("webhook.amount_mismatch", event_id=inbox.event_id, payment_id=payment.id)
        await notification.queue_email(
            session, dedupe_key=f"amount_mismatch:{inbox.event_id}", kind="operator_alert",
            to=get_settings().operator_email, template="operator_new_request",
            context={"reference": request.reference, "service": "AMOUNT MISMATCH — do not deliver",
                     "tier": inbox.event_id, "amount": f"{data.get('amount_minor')} {data.get('currency')}",
                     "affiliate": None},
        )
        return "amount_mismatch"
    await confirm_payment(session, payment, request, inbox.event_id)
    return "completed"


async def confirm_payment(session: AsyncSession, payment: Payment, request: ServiceRequest, event_id: str) -> None:
    """Payment completed: payment -> completed, request awaiting_payment -> payment_confirmed ->
    pending_contact (history rows and live events), affiliate attribution, confirmation email to the
    customer and notification to the operator — all in the caller's transaction."""
    _payment_transition(session, payment, "completed", event_id)
    now = datetime.now(UTC)
    payment.completed_at = now
    request.paid_at = now
    amount = Money(payment.amount_minor, payment.currency).formatted()
    if request.status == "awaiting_payment":
        await service_request.transition(
            session, request, "payment_confirmed", actor_type="system", note=f"Paid {amount}"
        )
        await service_request.transition(session, request, "pending_contact", actor_type="system")
    else:  # e.g. cancelled while the customer was paying: keep the money visible to operators
        log.warning("payment.after_close", request_id=request.id, status=request.status)
    affiliate = None
    if request.affiliate_code:
        affiliate = await session.scalar(select(Affiliate).where(Affiliate.code == request.affiliate_code))
        if affiliate is not None:
            await session.execute(
                insert(AffiliateAttribution)
                .values(
                    affiliate_id=affiliate.id, service_request_id=request.id, payment_id=payment.id,
                    base_amount_minor=payment.amount_minor, currency=payment.currency,
                    commission_bps=affiliate.commission_bps,
                )
                .on_conflict_do_nothing(index_elements=["service_request_id"])
            )
    service = await session.get(Service, request.service_id)
    tier = await session.get(ServiceTier, request.tier_id)
    context = {
        "name": request.customer_name, "reference": request.reference, "amount": amount,
        "service": service.name if service else "", "tier": tier.name if tier else "",
        "status_label": service_request.STATUS_LABELS[request.status],
        "next_step": service_request.NEXT_STEPS[request.status],
        "tracking_url": service_request.tracking_url(request.reference),
        "affiliate": affiliate.code if affiliate else None,
    }
    await notification.queue_email(
        session, dedupe_key=f"payment_confirmed:{request.id}", kind="payment_confirmed",
        to=request.customer_email, template="payment_confirmed", context=context,
    )
    await notification.queue_email(
        session, dedupe_key=f"operator_new_request:{request.id}", kind="operator_new_request",
        to=get_settings().operator_email, template="operator_new_request", context=context,
    )

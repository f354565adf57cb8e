"""The catalogue purchase as an order kind (``purchase``): a tier bought outright, then moved by
operators and its provider through the request state machine (domain/orders/service_request.py).
Registered with domain/orders/kinds.py when the orders package is imported."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.messaging import notification
from domain.orders import guest_access, kinds, service_request
from models import Affiliate, AffiliateAttribution, Payment, Service, ServiceRequest, ServiceTier
from settings import get_settings


class PurchaseKind:
    """``kinds.OrderKind`` of catalogue purchases."""

    name = "purchase"
    moved_by_operators = True
    has_own_conversation = True
    has_own_contract = True
    notifies_status = True

    async def on_paid(
        self, session: AsyncSession, request: ServiceRequest, payment: Payment, *, amount: str
    ) -> str | None:
        """``awaiting_payment -> payment_confirmed -> pending_contact`` (history rows and live events),
        the affiliate's attribution, the confirmation email to the customer and the new-request email
        to operations."""
        request.paid_at = payment.completed_at or datetime.now(UTC)
        await service_request.transition(session, request, "payment_confirmed", actor_type="system", note=f"Paid {amount}")
        await service_request.transition(session, request, "pending_contact", actor_type="system")
        affiliate = None
        if request.affiliate_code:
            affiliate = await session.scalar(select(Affiliate).where(Affiliate.code == request.affiliate_code))
            if affiliate is not None:
                await session.execute(
                    insert(AffiliateAttribution)
                    .values(
                        affiliate_id=affiliate.id, service_request_id=request.id, payment_id=payment.id,
                        base_amount_minor=request.price_minor, currency=payment.currency,
                        commission_bps=request.affiliate_commission_bps,
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
            "tracking_url": guest_access.tracking_url(request.reference),
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
        return None

    async def on_dispute_resolved(
        self, session: AsyncSession, request: ServiceRequest, *, actor_user_id: int | None, resolution: str, note: str,
    ) -> None:
        """Nothing more: the dispute's refund and release are the order's whole outcome."""

    async def on_cancelled(
        self, session: AsyncSession, request: ServiceRequest, *, actor_user_id: int | None, note: str,
    ) -> None:
        """The order moves to ``cancelled`` as the admin who settled the dispute."""
        await service_request.transition(
            session, request, "cancelled", actor_type="admin", actor_user_id=actor_user_id, note=note,
        )


PURCHASE = PurchaseKind()
kinds.register(PURCHASE)

"""The operator's refund of an order (``refundServiceRequest``): any amount still refundable, before
or after escrow was released, made safe to retry by an idempotency key. The refund itself (ledger
reservation, gateway call, settlement) is ``domain.money.refund``'s."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from domain.money import escrow, refund
from domain.orders import locks
from domain.shared import idempotency
from domain.shared.errors import CommonErrorCode, DomainError
from models import Refund


async def refund_order(
    session: AsyncSession, request_id: int, *, actor_user_id: int, amount_minor: int | None, reason: str,
    idempotency_key: str | None = None,
) -> Refund:
    """An admin refunds an order: ``amount_minor`` (None: everything still refundable). With an
    ``idempotency_key`` the same key and input return the first refund, another input raises
    ``IdempotencyKeyReused``. Raises ``NotFound``, ``refund.NotRefundable``, ``escrow.RefundTooLarge``,
    DomainError ``INVALID_AMOUNT`` / ``REQUIRED`` (reason). The caller checks the actor is an admin."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("Give a reason for the refund (it is sent to the customer)", field="reason", code=CommonErrorCode.REQUIRED)
    scope = f"refund:user:{actor_user_id}"
    if idempotency_key is not None:
        earlier = await idempotency.claim(
            session, scope, idempotency_key, idempotency.fingerprint(request_id, amount_minor, reason)
        )
        if earlier is not None and "refund_id" in earlier:
            found = await session.get(Refund, earlier["refund_id"])
            assert found is not None
            return found
    request = await locks.lock_request(session, request_id)
    amount = escrow.refundable(request) if amount_minor is None else amount_minor
    if amount_minor is None and amount == 0:
        raise refund.NotRefundable("Nothing is left to refund on this order", field="serviceRequestId")
    created = await refund.create_refund(session, request, amount, reason=reason, requested_by_user_id=actor_user_id)
    if idempotency_key is not None:
        await idempotency.remember(session, scope, idempotency_key, {"refund_id": created.id})
    return created

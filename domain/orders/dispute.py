"""Disputes on orders: opened by the customer (or an admin), settled by an admin.

While a dispute is open on an order, none of that order's money moves to the provider: escrow is
not released (``escrow.release`` refuses) and, if it was released already, the order's earning is
left out of payouts (domain/money/payout.py) — other orders of the same provider are paid as usual.

Resolutions: ``release`` (the provider gets the money: escrow is released if the order
is completed), ``refund_full`` (everything still refundable goes back to the customer; an order not
yet completed is cancelled), ``refund_partial`` (an amount goes back; the rest is released when the
order is completed). One open dispute per order (a partial unique index).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.messaging import feed, notification
from domain.money import escrow, refund
from domain.orders import kinds, locks
from domain.orders.errors import OrdersErrorCode
from domain.shared import pagination
from domain.shared.errors import CommonErrorCode, DomainError, Forbidden, NotFound
from models import Dispute, ProviderEarning, ServiceRequest, User
from settings import get_settings

RESOLUTIONS = ("release", "refund_full", "refund_partial")
MAX_REASON = 2000


class DisputeAlreadyOpen(DomainError):
    code = OrdersErrorCode.DISPUTE_ALREADY_OPEN
    field = "serviceRequestId"


class NotDisputable(DomainError):
    code = OrdersErrorCode.NOT_DISPUTABLE
    field = "serviceRequestId"


class DisputeNotOpen(DomainError):
    code = OrdersErrorCode.DISPUTE_NOT_OPEN
    field = "disputeId"


async def open_dispute(session: AsyncSession, request_id: int, *, actor: User, reason: str) -> Dispute:
    """Open a dispute on a paid order. The customer who owns it may, until
    settings.dispute_window_seconds after completion; an admin may at any time.
    Raises ``NotFound``, ``Forbidden``, ``NotDisputable`` (not paid, fully refunded, window
    closed), ``DisputeAlreadyOpen``, DomainError ``REQUIRED``/``TOO_LONG`` for the reason."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("Say what went wrong", field="reason", code=CommonErrorCode.REQUIRED)
    if len(reason) > MAX_REASON:
        raise DomainError(f"The reason is limited to {MAX_REASON} characters", field="reason", code=CommonErrorCode.TOO_LONG)
    request = await locks.lock_request(session, request_id)
    if actor.role != "admin" and request.customer_user_id != actor.id:
        raise Forbidden("Only the customer of this order or an admin can open a dispute")
    if request.captured_minor == 0:
        raise NotDisputable("This order was not paid")
    if escrow.refundable(request) == 0:
        raise NotDisputable("This order was refunded in full")
    window = timedelta(seconds=get_settings().dispute_window_seconds)
    if actor.role != "admin" and request.completed_at is not None and datetime.now(UTC) - request.completed_at > window:
        raise NotDisputable("The dispute window for this order has closed; contact support")
    # Serialise with payout runs on this order's earning (domain/money/payout.py re-checks disputes after
    # locking earnings): a run holding it finishes first; a run arriving later sees this dispute.
    await session.execute(
        select(ProviderEarning.id).where(ProviderEarning.service_request_id == request.id)
        .with_for_update(key_share=True)
    )
    dispute = Dispute(
        service_request_id=request.id, opened_by_user_id=actor.id, opened_by_role=actor.role, reason=reason,
        status="open",
        # The instant it opens, after any payout run ahead of it: not the transaction's start.
        created_at=datetime.now(UTC),
    )
    try:
        async with session.begin_nested():
            session.add(dispute)
            await session.flush()
    except IntegrityError as exc:
        raise DisputeAlreadyOpen("A dispute is already open on this order") from exc
    await _tell_customer(session, request, dispute, "opened", "Our team will look at it and get back to you.")
    await feed.dispute_changed(session, dispute, request, state="opened", actor_user_id=actor.id,
                               customer_detail="Our team will look at it and get back to you.")
    await notification.queue_email(
        session, dedupe_key=f"dispute_opened_operator:{dispute.id}", kind="operator_alert",
        to=get_settings().operator_email, template="operator_alert",
        context={"subject": f"Dispute opened on {request.reference}",
                 "body": f"Dispute {dispute.id} on {request.reference}: {reason}\nPayouts for this order are held."},
    )
    return dispute


async def resolve_dispute(
    session: AsyncSession, dispute_id: int, *, actor: User, resolution: str, refund_minor: int | None = None,
    note: str = "",
) -> Dispute:
    """Admin settles an open dispute (see the module docstring). ``refund_minor`` is required for
    ``refund_partial`` and must be below what is refundable. Raises ``NotFound``, ``Forbidden``,
    ``DisputeNotOpen``, DomainError ``INVALID``/``INVALID_AMOUNT``, ``escrow.RefundTooLarge``."""
    if actor.role != "admin":
        raise Forbidden("Only admins resolve disputes")
    if resolution not in RESOLUTIONS:
        raise DomainError(f"resolution must be one of {', '.join(RESOLUTIONS)}", field="resolution")
    dispute = await session.scalar(select(Dispute).where(Dispute.id == dispute_id).with_for_update(key_share=True))
    if dispute is None:
        raise NotFound("No such dispute", field="disputeId")
    if dispute.status != "open":
        raise DisputeNotOpen("This dispute is already resolved")
    request = await locks.lock_request(session, dispute.service_request_id)
    amount = 0
    if resolution == "refund_full":
        amount = escrow.refundable(request)
    elif resolution == "refund_partial":
        if refund_minor is None or refund_minor <= 0:
            raise DomainError("A partial refund needs a positive amount", field="refundAmount", code=CommonErrorCode.INVALID_AMOUNT)
        if refund_minor >= escrow.refundable(request):
            raise escrow.RefundTooLarge(
                f"A partial refund must be below {escrow.refundable(request)}; use REFUND_FULL", field="refundAmount"
            )
        amount = refund_minor
    dispute.status = "resolved"
    dispute.resolution = resolution
    dispute.refund_minor = amount or None
    dispute.resolution_note = note.strip()[:2000] or None
    dispute.resolved_by_user_id = actor.id
    dispute.resolved_at = datetime.now(UTC)
    await session.flush()  # the dispute no longer counts as open for release below
    if amount:
        await refund.create_refund(
            session, request, amount, reason=f"Dispute {dispute.id}: {dispute.resolution_note or resolution}",
            requested_by_user_id=actor.id,
        )
    kind = kinds.of(request)
    if resolution == "refund_full" and request.status not in ("completed", "cancelled"):
        await kind.on_cancelled(session, request, actor_user_id=actor.id, note="Refunded in full after a dispute")
    elif request.status == "completed" and request.released_at is None and escrow.refundable(request) > 0:
        await escrow.release(session, request)
    await kind.on_dispute_resolved(
        session, request, actor_user_id=actor.id, resolution=resolution, note=f"Dispute {dispute.id}: {resolution}",
    )
    detail = {
        "release": "The payment goes to the provider.",
        "refund_full": "Your payment is refunded in full.",
        "refund_partial": "Part of your payment is refunded.",
    }[resolution]
    await _tell_customer(session, request, dispute, "resolved", detail)
    await feed.dispute_changed(session, dispute, request, state="resolved", actor_user_id=actor.id, customer_detail=detail)
    return dispute


async def _tell_customer(session: AsyncSession, request: ServiceRequest, dispute: Dispute, state: str, detail: str) -> None:
    await notification.queue_email(
        session, dedupe_key=f"dispute_{state}:{dispute.id}", kind="dispute", to=request.customer_email,
        template="dispute_update",
        context={"name": request.customer_name, "reference": request.reference, "state": state, "detail": detail},
    )


async def disputes_for_requests(session: AsyncSession, request_ids: list[int]) -> dict[int, list[Dispute]]:
    """Disputes of many orders in one statement, oldest first."""
    rows = (
        await session.scalars(select(Dispute).where(Dispute.service_request_id.in_(request_ids)).order_by(Dispute.id))
    ).all()
    out: dict[int, list[Dispute]] = {i: [] for i in request_ids}
    for row in rows:
        out[row.service_request_id].append(row)
    return out


async def list_disputes(
    session: AsyncSession, *, status: str | None, first: int, after: str | None
) -> tuple[list[tuple[Dispute, str]], bool]:
    """Disputes newest first (optionally of one ``status``), keyset-paginated on id in one
    statement. Returns ``([(dispute, cursor)], has_next_page)``. Raises ``InvalidCursor``."""
    stmt = select(Dispute).order_by(Dispute.id.desc()).limit(first + 1)
    if status is not None:
        stmt = stmt.where(Dispute.status == status)
    if after:
        stmt = stmt.where(Dispute.id < pagination.decode("dispute", after))
    rows = (await session.scalars(stmt)).all()
    return [(d, pagination.encode("dispute", d.id)) for d in rows[:first]], len(rows) > first

"""Reconciliation: ask the gateways about everything still pending, and apply what they say.

Every gateway's docs say the same (docs/pitfalls.md): after a webhook, or when none came, fetch the
payment by reference. ``run`` (hourly by default, from the scheduler; an admin can start one)
takes every payment, refund and payout still pending for longer than
settings.reconcile_after_seconds, fetches it from its gateway by our reference, and pushes the
answer through the same idempotent transition the webhook uses
(``payment.apply_payment_status``, ``refund.apply_refund_status``, ``payout.apply_payout_status``).
A payment whose amount or currency differs at the gateway is never accepted: it is flagged
(``payments.review_reason``) and reported as a ``mismatch`` for an admin. Each object is applied
in its own transaction; the gateway is called outside any transaction. Every object asked about
is a ``reconciliation_items`` row of the run: the report an admin reads.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.money import payout, refund
from domain.orders import payment as payment_domain
from domain.shared import outbox
from gateways import registry
from gateways.base import GatewayError
from models import Payment, Payout, ReconciliationItem, ReconciliationRun, Refund
from models.db import session_scope
from settings import get_settings

log = structlog.get_logger(__name__)


async def run(*, older_than_seconds: int | None = None, limit: int = 500) -> int:
    """One reconciliation run; returns its id. Gateway failures become ``error`` items (the next
    run asks again); they never stop the run."""
    after = get_settings().reconcile_after_seconds if older_than_seconds is None else older_than_seconds
    cutoff = datetime.now(UTC) - timedelta(seconds=after)
    async with session_scope() as session:
        rec = ReconciliationRun()
        session.add(rec)
        await session.flush()
        run_id = rec.id
        payments = (
            await session.execute(
                select(Payment.id, Payment.gateway, Payment.reference)
                .where(Payment.status == "pending", Payment.review_reason.is_(None), Payment.created_at < cutoff)
                .order_by(Payment.id).limit(limit)
            )
        ).all()
        refunds = (
            await session.execute(
                select(Refund.id, Refund.gateway, Refund.reference, Refund.amount_minor, Refund.currency)
                .where(Refund.status == "pending", Refund.created_at < cutoff).order_by(Refund.id).limit(limit)
            )
        ).all()
        payouts = (
            await session.execute(
                select(Payout.id, Payout.gateway, Payout.reference, Payout.amount_minor, Payout.currency, Payout.status)
                .where(Payout.status.in_(("pending", "sent")), Payout.created_at < cutoff).order_by(Payout.id).limit(limit)
            )
        ).all()
    items: list[ReconciliationItem] = []
    for pid, gateway_name, reference in payments:
        items.append(await _payment(run_id, pid, gateway_name, reference))
    for rid, gateway_name, reference, amount, currency in refunds:
        items.append(await _refund(run_id, rid, gateway_name, reference, amount, currency))
    for poid, gateway_name, reference, amount, currency, status in payouts:
        items.append(await _payout(run_id, poid, gateway_name, reference, amount, currency, status))
    async with session_scope() as session:
        session.add_all(items)
        rec = await session.get(ReconciliationRun, run_id)
        assert rec is not None
        rec.checked = len(items)
        rec.updated = sum(i.outcome == "updated" for i in items)
        rec.mismatches = sum(i.outcome == "mismatch" for i in items)
        rec.errors = sum(i.outcome == "error" for i in items)
        rec.finished_at = datetime.now(UTC)
    log.info("reconciliation.finished", run_id=run_id, checked=len(items))
    return run_id


def _item(run_id: int, object_type: str, object_id: int, reference: str, gateway: str, **fields: object) -> ReconciliationItem:
    return ReconciliationItem(
        run_id=run_id, object_type=object_type, object_id=object_id, reference=reference, gateway=gateway, **fields
    )


async def check_payment(reference: str) -> str:
    """Ask the gateway about one pending payment now and apply the answer (the customer came back
    from the checkout page: every gateway says to verify by reference then). Returns the payment's
    status afterwards; gateway errors leave it as it is (webhooks and the hourly run follow up)."""
    async with session_scope() as session:
        found = await session.scalar(select(Payment).where(Payment.reference == reference))
        if found is None:
            return "unknown"
        if found.status != "pending" or found.review_reason is not None:
            return found.status
        payment_id, gateway_name = found.id, found.gateway
    item = await _payment(0, payment_id, gateway_name, reference)
    return {"completed": "completed", "failed": "failed"}.get(item.detail, "pending")


async def _payment(run_id: int, payment_id: int, gateway_name: str, reference: str) -> ReconciliationItem:
    try:
        seen = await registry.get_gateway(gateway_name).fetch_payment(reference)
    except (GatewayError, KeyError) as exc:
        if isinstance(exc, GatewayError) and exc.status_code == 404:
            # Stripe creates the PaymentIntent only when the customer submits the form: not yet known
            # there means not paid yet. The payment stays pending (the checkout expires at the gateway).
            return _item(run_id, "payment", payment_id, reference, gateway_name, our_status="pending",
                         gateway_status="pending", outcome="unchanged", detail="not known at the gateway yet")
        return _item(run_id, "payment", payment_id, reference, gateway_name, our_status="pending",
                     outcome="error", detail=str(exc)[:2000])
    async with session_scope() as session:
        payment = await session.scalar(select(Payment).where(Payment.id == payment_id).with_for_update(key_share=True))
        assert payment is not None
        before = payment.status
        result = await payment_domain.apply_payment_status(
            session, payment, seen.status, amount_minor=seen.amount_minor, currency=seen.currency,
            event_id=f"reconciliation:{run_id}",
        )
    outcome = {"completed": "updated", "failed": "updated", "amount_mismatch": "mismatch"}.get(result, "unchanged")
    return _item(
        run_id, "payment", payment_id, reference, gateway_name, our_status=before, gateway_status=seen.status,
        our_amount_minor=payment.amount_minor, gateway_amount_minor=seen.amount_minor, our_currency=payment.currency,
        gateway_currency=seen.currency, outcome=outcome, detail=result,
    )


async def _refund(run_id: int, refund_id: int, gateway_name: str, reference: str, amount: int, currency: str) -> ReconciliationItem:
    fields = dict(our_status="pending", our_amount_minor=amount, our_currency=currency)
    try:
        seen = await registry.get_gateway(gateway_name).fetch_refund(reference)
    except GatewayError as exc:
        if exc.retryable:
            return _item(run_id, "refund", refund_id, reference, gateway_name, outcome="error",
                         detail=str(exc)[:2000], **fields)
        # The gateway never saw it (the send job was lost): send it again; send_refund is idempotent.
        async with session_scope() as session:
            outbox.enqueue_actor(session, "send_refund", queue="payments", refund_id=refund_id)
        return _item(run_id, "refund", refund_id, reference, gateway_name, outcome="updated",
                     detail="unknown at the gateway: sent again", **fields)
    async with session_scope() as session:
        after = await refund.apply_refund_status(session, refund_id, seen.status, gateway_id=seen.gateway_id)
    return _item(run_id, "refund", refund_id, reference, gateway_name, gateway_status=seen.status,
                 outcome="updated" if after != "pending" else "unchanged", detail=after, **fields)


async def _payout(
    run_id: int, payout_id: int, gateway_name: str, reference: str, amount: int, currency: str, status: str
) -> ReconciliationItem:
    fields = dict(our_status=status, our_amount_minor=amount, our_currency=currency)
    try:
        seen = await registry.get_gateway(gateway_name).fetch_payout(reference)
    except GatewayError as exc:
        if exc.retryable:
            return _item(run_id, "payout", payout_id, reference, gateway_name, outcome="error",
                         detail=str(exc)[:2000], **fields)
        async with session_scope() as session:
            outbox.enqueue_actor(session, "send_payout", queue="payments", payout_id=payout_id)
        return _item(run_id, "payout", payout_id, reference, gateway_name, outcome="updated",
                     detail="unknown at the gateway: sent again", **fields)
    async with session_scope() as session:
        after = await payout.apply_payout_status(
            session, reference, seen.status, gateway_id=seen.gateway_id, failure_reason=seen.failure_reason
        )
    outcome = "mismatch" if after == "conflict" else ("updated" if after != status else "unchanged")
    return _item(run_id, "payout", payout_id, reference, gateway_name, gateway_status=seen.status,
                 outcome=outcome, detail=after, **fields)


async def list_runs(session: AsyncSession, *, first: int) -> list[ReconciliationRun]:
    """The latest runs, newest first."""
    return list((await session.scalars(select(ReconciliationRun).order_by(ReconciliationRun.id.desc()).limit(first))).all())


async def run_items(session: AsyncSession, run_ids: list[int]) -> dict[int, list[ReconciliationItem]]:
    """Items of many runs in one statement (mismatches and errors first)."""
    rows = (
        await session.scalars(
            select(ReconciliationItem).where(ReconciliationItem.run_id.in_(run_ids)).order_by(ReconciliationItem.id)
        )
    ).all()
    out: dict[int, list[ReconciliationItem]] = {i: [] for i in run_ids}
    for row in rows:
        out[row.run_id].append(row)
    order = {"mismatch": 0, "error": 1, "updated": 2, "unchanged": 3}
    for items in out.values():
        items.sort(key=lambda i: order[i.outcome])
    return out


async def flagged_payments(session: AsyncSession) -> list[Payment]:
    """Payments waiting for an admin because the gateway reported another amount or currency."""
    return list((await session.scalars(select(Payment).where(Payment.review_reason.is_not(None)).order_by(Payment.id))).all())

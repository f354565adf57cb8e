"""Housekeeping run by the scheduler: re-queue work whose job may have been lost with Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, exists, select

from domain.messaging import notification
from domain.shared import outbox
from models import DeadLetter, Email, OutboxMessage, Refund, WebhookEvent
from models.db import session_scope


def _dead_lettered(source_type: str, source_id):
    """An open dead letter holds this job: an admin replays or discards it, the sweeper does not."""
    return exists().where(
        DeadLetter.source_type == source_type, DeadLetter.source_id == source_id, DeadLetter.status == "open"
    )


async def requeue_stalled_work(*, older_than_seconds: int = 120, limit: int = 500) -> dict[str, int]:
    """Add outbox jobs for webhooks unprocessed, emails unsent and refunds unsettled for longer than
    ``older_than_seconds``, except those an open dead letter holds. Returns ``{"webhooks": n, "emails": n,
    "refunds": n}``. Safe to repeat: every handler is idempotent."""
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
    async with session_scope() as session:
        inbox_ids = (
            await session.scalars(
                select(WebhookEvent.id)
                .where(
                    WebhookEvent.processed_at.is_(None), WebhookEvent.dead_lettered_at.is_(None),
                    WebhookEvent.event_type != "ignored", WebhookEvent.received_at < cutoff,
                )
                .limit(limit)
            )
        ).all()
        for inbox_id in inbox_ids:
            outbox.enqueue_actor(session, "process_webhook", queue="payments", inbox_id=inbox_id)
        email_ids = (
            await session.scalars(
                select(Email.id)
                .where(notification.stalled(cutoff), ~_dead_lettered("email", Email.id))
                .limit(limit)
            )
        ).all()
        for email_id in email_ids:
            outbox.enqueue_actor(session, "send_email", queue="notifications", email_id=email_id)
        refund_ids = (
            await session.scalars(
                select(Refund.id)
                .where(Refund.status == "pending", Refund.updated_at < cutoff, ~_dead_lettered("refund", Refund.id))
                .limit(limit)
            )
        ).all()
        for refund_id in refund_ids:
            outbox.enqueue_actor(session, "send_refund", queue="payments", refund_id=refund_id)
    return {"webhooks": len(inbox_ids), "emails": len(email_ids), "refunds": len(refund_ids)}


async def purge_dispatched_outbox(*, older_than_seconds: int = 7 * 24 * 3600, limit: int = 10_000) -> int:
    """Delete outbox rows dispatched more than ``older_than_seconds`` ago (at most ``limit`` per
    call); pending rows are never touched. Returns how many were deleted."""
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
    async with session_scope() as session:
        ids = select(OutboxMessage.id).where(OutboxMessage.dispatched_at < cutoff).limit(limit).scalar_subquery()
        result = await session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(ids)))
    return result.rowcount or 0

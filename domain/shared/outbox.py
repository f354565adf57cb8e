"""Transactional outbox (docs/architecture.md: jobs are enqueued after the transaction that caused them commits).

Inside a business transaction, call ``enqueue_actor`` / ``publish_event``: they only add rows to the
``outbox`` table, so the job or event exists if and only if the change committed. After commit the
caller runs ``relay()`` (fast path); the scheduler also runs it every ``outbox_sweep_seconds`` so
rows left behind by a crash or a Redis outage are dispatched later (delayed, never lost).
Dispatch is at-least-once: every consumer is idempotent.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import dramatiq
import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.shared import events, live
from domain.shared.events import LiveEvent
from models import OutboxMessage
from models.db import session_scope

log = structlog.get_logger(__name__)


def enqueue_actor(session: AsyncSession, actor_name: str, *, queue: str = "default", **kwargs: object) -> None:
    """Record a Dramatiq message ``actor_name(**kwargs)`` (JSON-serialisable kwargs) on ``queue``."""
    session.add(OutboxMessage(kind="actor", queue=queue, target=actor_name, payload=kwargs))


def publish_event(session: AsyncSession, channel: str, event: LiveEvent) -> None:
    """Record live ``event`` for pub/sub ``channel``; published after commit (at-most-once delivery).
    Raises ``TypeError`` unless ``event`` is the ``LiveEvent`` model registered for ``channel``
    (domain/shared/events.py)."""
    if not isinstance(event, events.model_for(channel)):
        raise TypeError(f"{type(event).__name__} is not the event model of channel {channel!r}")
    session.add(OutboxMessage(kind="event", target=channel, payload=event.payload()))


async def _dispatch(row: OutboxMessage) -> None:
    if row.kind == "actor":
        message = dramatiq.Message(
            queue_name=row.queue or "default", actor_name=row.target, args=(), kwargs=row.payload,
            options={}, message_id=f"outbox-{row.id}",
        )
        broker = dramatiq.get_broker()
        await asyncio.to_thread(broker.enqueue, message)
    else:
        await live.publish(row.target, row.payload)


async def relay(*, limit: int = 200) -> int:
    """Dispatch up to ``limit`` pending outbox rows, oldest first; returns how many were dispatched.
    Rows are locked with SKIP LOCKED so concurrent relays never send the same row twice at once;
    a row whose dispatch fails stays pending with ``attempts`` and ``last_error`` updated."""
    sent = 0
    async with session_scope() as session:
        rows = (
            await session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.dispatched_at.is_(None))
                .order_by(OutboxMessage.id)
                .limit(limit)
                .with_for_update(skip_locked=True, key_share=True)
            )
        ).all()
        for row in rows:
            try:
                await _dispatch(row)
            except Exception as exc:  # Redis down: keep the row, try again on the next sweep
                row.attempts += 1
                row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
                log.warning("outbox.dispatch_failed", outbox_id=row.id, target=row.target, error=row.last_error)
                break
            row.dispatched_at = datetime.now(UTC)
            row.attempts += 1
            sent += 1
    return sent


async def relay_quietly() -> None:
    """``relay()`` for the fast path right after a commit: never raises (the sweeper retries)."""
    try:
        await relay()
    except Exception as exc:  # pragma: no cover - logged, swept later
        log.warning("outbox.relay_failed", error=str(exc))

"""Payment actors: apply stored gateway webhooks, send refunds. Failures past the last retry go to
the dead-letter table (workers/deadletter.py)."""

from __future__ import annotations

import dramatiq

from domain.money import refund
from domain.orders import payment
from domain.shared import outbox
from models.db import session_scope
from workers.broker import retry_options
from workers.deadletter import guarded


@dramatiq.actor(queue_name="payments", **retry_options())
async def process_webhook(inbox_id: int) -> None:
    """Apply webhook inbox row ``inbox_id`` in one transaction (idempotent), then relay the
    jobs and events it produced."""

    async def body() -> None:
        async with session_scope() as session:
            await payment.process_webhook(session, inbox_id)

    await guarded("process_webhook", "payments", {"inbox_id": inbox_id}, body)
    await outbox.relay_quietly()


@dramatiq.actor(queue_name="payments", **retry_options())
async def send_refund(refund_id: int) -> None:
    """Send refund ``refund_id`` through its gateway (idempotent on the refund's reference)."""
    await guarded("send_refund", "payments", {"refund_id": refund_id}, lambda: refund.send_refund(refund_id))

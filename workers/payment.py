"""Payment actors: apply stored gateway webhooks."""

from __future__ import annotations

import dramatiq

from domain import outbox, payment
from models.db import session_scope
from workers.broker import retry_options


@dramatiq.actor(queue_name="payments", **retry_options())
async def process_webhook(inbox_id: int) -> None:
    """Apply webhook inbox row ``inbox_id`` in one transaction (idempotent), then relay the
    jobs and events it produced."""
    async with session_scope() as session:
        await payment.process_webhook(session, inbox_id)
    await outbox.relay_quietly()

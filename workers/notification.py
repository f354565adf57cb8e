"""Notification actors: send stored emails."""

from __future__ import annotations

import dramatiq

from domain import notification
from gateways.email import SmtpMailer
from models.db import session_scope
from workers.broker import retry_options
from workers.deadletter import guarded


@dramatiq.actor(queue_name="notifications", **retry_options())
async def send_email(email_id: int) -> None:
    """Send stored email ``email_id`` once (skipped if already sent); SMTP failures are retried, and
    past the last retry the job goes to the dead-letter table (workers/deadletter.py)."""

    async def body() -> None:
        async with session_scope() as session:
            await notification.send_email(session, SmtpMailer(), email_id)

    await guarded("send_email", "notifications", {"email_id": email_id}, body)

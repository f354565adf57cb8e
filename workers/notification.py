"""Notification actors: send stored emails."""

from __future__ import annotations

import dramatiq

from domain import notification
from gateways.email import SmtpMailer
from models.db import session_scope
from workers.broker import retry_options


@dramatiq.actor(queue_name="notifications", **retry_options())
async def send_email(email_id: int) -> None:
    """Send stored email ``email_id`` once (skipped if already sent); SMTP failures are retried."""
    async with session_scope() as session:
        await notification.send_email(session, SmtpMailer(), email_id)

"""Notification actors: send stored emails.

``send_email`` runs once plus ``settings.email_max_retries`` retries (3: four SMTP attempts in all),
``email_min_backoff_ms`` doubling up to ``email_max_backoff_ms`` apart (Dramatiq's Retries
middleware, with jitter). Each attempt is logged in ``email_deliveries`` in the attempt's own
transaction (domain/messaging/notification.py); past the last one the job is dead-lettered in PostgreSQL
(workers/deadletter.guarded -> ``dead_letters``) and the email's status is ``dead``.
"""

from __future__ import annotations

import dramatiq
from dramatiq.middleware import CurrentMessage

from domain.messaging import notification
from gateways.email import SmtpMailer
from models.db import session_scope
from settings import get_settings
from workers.deadletter import guarded


class EmailNotDelivered(Exception):
    """An SMTP attempt failed (already logged): raised so that Dramatiq retries the job."""


def _email_retry_options() -> dict:
    settings = get_settings()
    return {
        "max_retries": settings.email_max_retries,
        "min_backoff": settings.email_min_backoff_ms,
        "max_backoff": settings.email_max_backoff_ms,
    }


@dramatiq.actor(queue_name="notifications", **_email_retry_options())
async def send_email(email_id: int) -> None:
    """Send stored email ``email_id`` once (skipped if already sent or suppressed). A failed attempt
    raises ``EmailNotDelivered`` so Dramatiq retries it; the last one is dead-lettered."""
    message = CurrentMessage.get_current_message()
    max_retries = int(send_email.options["max_retries"])
    if message is not None:
        # guarded() reads the retry budget from the message; pin this actor's own (Dramatiq's
        # Retries middleware reads the same key first, so both agree on which attempt is the last).
        message.options.setdefault("max_retries", max_retries)
        max_retries = int(message.options["max_retries"])
    final = message is None or int(message.options.get("retries", 0)) >= max_retries

    async def body() -> None:
        try:
            async with session_scope() as session:
                result = await notification.send_email(session, SmtpMailer(), email_id, final_attempt=final)
        except Exception as exc:  # not an SMTP failure (those are returned): log it as an attempt too
            await notification.record_crashed_attempt(email_id, f"{type(exc).__name__}: {exc}", final_attempt=final)
            raise
        if result.outcome in ("failed", "dead_lettered"):
            raise EmailNotDelivered(result.error)

    await guarded("send_email", "notifications", {"email_id": email_id}, body)

"""Email notifications: rendered from Jinja2 text templates, stored in ``emails`` in the business
transaction, sent by the ``send_email`` actor after commit (retried; never dropped)."""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from jinja2 import DictLoader, Environment, StrictUndefined
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain import outbox
from gateways.email import Mailer
from models import Email

log = structlog.get_logger(__name__)

TEMPLATES = {
    "payment_confirmed.subject": "Odim: payment received for {{ reference }}",
    "payment_confirmed.body": """Hello {{ name }},

Thank you: we received your payment of {{ amount }} for "{{ service }} — {{ tier }}".

Reference number: {{ reference }}
Current status:   {{ status_label }}

Next steps: {{ next_step }}

Track your request at any time (keep this link private, it shows your details):
{{ tracking_url }}

— The Odim team
""",
    "operator_new_request.subject": "New paid request {{ reference }}: {{ service }}",
    "operator_new_request.body": """A new request was paid and is waiting for contact.

Reference: {{ reference }}
Service:   {{ service }} — {{ tier }}
Amount:    {{ amount }}
Affiliate: {{ affiliate or "none" }}

Assign a provider with the assignProvider mutation.
""",
    "status_changed.subject": "Odim: your request {{ reference }} is now \"{{ status_label }}\"",
    "status_changed.body": """Hello {{ name }},

Your request {{ reference }} is now: {{ status_label }}.
{% if note %}
Note from our team: {{ note }}
{% endif %}
Next steps: {{ next_step }}

Track it here: {{ tracking_url }}

— The Odim team
""",
    "payment_failed.subject": "Odim: payment for {{ reference }} did not go through",
    "payment_failed.body": """Hello {{ name }},

The payment for your request {{ reference }} was declined. No money was taken.
You can try again from the checkout page: {{ checkout_hint }}

— The Odim team
""",
    "refund_issued.subject": "Odim: {{ amount }} refunded on {{ reference }}",
    "refund_issued.body": """Hello {{ name }},

We refunded {{ amount }} on your request {{ reference }}.
{% if reason %}Reason: {{ reason }}
{% endif %}
Depending on your bank or mobile-money operator, it can take a few days to appear.

— The Odim team
""",
    "payout_sent.subject": "Odim: payout {{ payout_reference }} of {{ amount }}",
    "payout_sent.body": """Hello {{ name }},

Your payout {{ payout_reference }} of {{ amount }} is {{ outcome }}.
Destination: {{ destination }}
{% if outcome == "failed" %}
The money is back in your available balance and will be sent again with the next payout run.
Check that your payout destination is correct.
{% endif %}
— The Odim team
""",
    "dispute_update.subject": "Odim: dispute on {{ reference }} {{ state }}",
    "dispute_update.body": """Hello {{ name }},

The dispute on request {{ reference }} is {{ state }}.
{% if detail %}{{ detail }}
{% endif %}
— The Odim team
""",
    "booking_update.subject": "Odim: booking {{ reference }} — {{ status_label }}",
    "booking_update.body": """Hello {{ name }},

Booking {{ reference }} ({{ service }}, {{ when }}) is now: {{ status_label }}.
{{ next_step }}
{% if note %}
Note: {{ note }}
{% endif %}
— The Odim team
""",
    "substitution_offer.subject": "Odim: can you take visit {{ reference }} on {{ when }}?",
    "substitution_offer.body": """Hello {{ name }},

A provider {{ distance_km }} km from you cannot make a visit: {{ service }}, {{ when }}.
You are free then and can take it over. The first provider to accept gets the visit.

Accept it in the app (your substitution offers) before {{ due }}.

— The Odim team
""",
    "operator_alert.subject": "[Odim operations] {{ subject }}",
    "operator_alert.body": """{{ body }}
""",
}

_env = Environment(loader=DictLoader(TEMPLATES), undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


def render(template: str, context: dict) -> tuple[str, str]:
    """``(subject, body)`` of plain-text template ``template`` (keys in TEMPLATES) with ``context``."""
    subject = _env.get_template(f"{template}.subject").render(context).strip()
    body = _env.get_template(f"{template}.body").render(context)
    return subject, body


async def queue_email(
    session: AsyncSession, *, dedupe_key: str, kind: str, to: str, template: str, context: dict
) -> int | None:
    """Store one email (at most one per ``dedupe_key``, e.g. ``payment_confirmed:<request id>``) and
    an outbox job to send it after commit. Returns the email id, or None for a duplicate key."""
    subject, body = render(template, context)
    email_id = await session.scalar(
        insert(Email)
        .values(dedupe_key=dedupe_key, kind=kind, to_address=to, subject=subject, body_text=body)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(Email.id)
    )
    if email_id is not None:
        outbox.enqueue_actor(session, "send_email", queue="notifications", email_id=email_id)
    return email_id


async def send_email(session: AsyncSession, mailer: Mailer, email_id: int) -> bool:
    """Send stored email ``email_id`` once: locks the row, skips it if already sent, sends through
    ``mailer`` and marks it sent. Returns True when this call sent it. SMTP errors propagate (the
    actor retries); a crash after the SMTP accept and before commit can send it twice
    (at-least-once, like every email system)."""
    email = await session.scalar(select(Email).where(Email.id == email_id).with_for_update(key_share=True))
    if email is None:
        log.warning("email.missing", email_id=email_id)
        return False
    if email.sent_at is not None:
        return False
    email.attempts += 1
    await mailer.send(to=email.to_address, subject=email.subject, body=email.body_text)
    email.sent_at = datetime.now(UTC)
    return True

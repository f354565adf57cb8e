"""Email notifications: rendered from Jinja2 templates (plain text and HTML), stored in ``emails`` in
the business transaction, sent by the ``send_email`` actor after commit (retried; never dropped).

Lifecycle of one email (``emails.status``)::

    queued --attempt fails--> failed --attempt fails--> ... --last attempt fails--> dead
       \\                          \\--attempt succeeds--> sent
        \\--recipient opted out (when queued or when sent)--> suppressed

Every SMTP attempt writes one ``email_deliveries`` row (``attempt`` 1, 2 ...; ``outcome`` sent,
failed, or dead_lettered for the last one); a suppressed email gets one row with ``attempt`` 0 and
``outcome`` suppressed and is never handed to SMTP. The actor is retried
``settings.email_max_retries`` times with exponential backoff (workers/notification.py); then the
job is dead-lettered in PostgreSQL (domain/shared/dead_letter.py) and an admin may replay it.

Transactional or not (the rule, after the usual CAN-SPAM / GDPR notion of a "transactional or
relationship message"): an email is *transactional* when it confirms or completes a transaction
the recipient made or money that moved for them, or concerns their rights or their account's
security: payment confirmation (the receipt), a failed payment, a refund, a payout, a dispute and
any future security mail. Those are always sent; preferences cannot turn them off
(``TransactionalEmailRequired``). Everything else is *non-transactional*: request status updates,
provider-assignment notices, booking updates, substitution offers. Each such kind can be turned off
per account, any address (a guest's too) can opt out of all of them at once, and each carries a
signed one-click unsubscribe link and the ``List-Unsubscribe`` / ``List-Unsubscribe-Post`` headers
of RFC 8058. Operator mail (to settings.operator_email) is internal: always sent, in nobody's
preferences.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import structlog
from jinja2 import DictLoader, Environment, StrictUndefined, select_autoescape
from sqlalchemy import ColumnElement, and_, delete, exists, func, literal, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.messaging.errors import MessagingErrorCode
from domain.shared import outbox, pagination
from domain.shared.errors import CommonErrorCode, DomainError
from gateways.email import MailDeliveryError, Mailer, OutgoingEmail
from models import Email, EmailDelivery, EmailSuppression, NotificationPreference, User
from models.crypto import blind_index
from models.db import session_scope
from models.identity import email_matches
from models.messaging.notification import EMAIL_STATUSES
from settings import get_settings

log = structlog.get_logger(__name__)

# --- kinds ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmailKind:
    """One kind of email (``emails.kind``): ``description`` shown in the preferences,
    ``transactional`` (never turned off; see the module docstring), ``internal`` (to the operators:
    always sent, not listed in anyone's preferences)."""

    name: str
    description: str
    transactional: bool
    internal: bool = False


KINDS: dict[str, EmailKind] = {k.name: k for k in (
    EmailKind("payment_confirmed", "Receipt when your payment is confirmed", transactional=True),
    EmailKind("payment_failed", "When a payment of yours did not go through", transactional=True),
    EmailKind("refund", "When money is refunded to you", transactional=True),
    EmailKind("payout", "Providers: when a payout to you is sent or fails", transactional=True),
    EmailKind("dispute", "Updates on a dispute about one of your orders", transactional=True),
    EmailKind("status_changed", "When your request's status changes", transactional=False),
    EmailKind("provider_assigned", "When a provider is assigned to your request", transactional=False),
    EmailKind("request_assigned", "Providers: when a request is assigned to you", transactional=False),
    EmailKind("booking_update", "When a booking of yours changes status", transactional=False),
    EmailKind("substitution_offer", "Providers: visits nearby you could take over", transactional=False),
    EmailKind("account", "Account security: email verification, password resets, sign-in links for guests",
              transactional=True),
    # An admin's decision on your provider application (it concerns your account: always sent).
    EmailKind("provider_application", "Decisions on your application to become a provider", transactional=True),
    # Strikes, suspension and reinstatement of your provider account (always sent).
    EmailKind("provider_standing", "Providers: strikes, suspension and reinstatement of your account",
              transactional=True),
    # A contract version that needs your acceptance before work starts (terms: always sent).
    EmailKind("contract", "A contract for your order or visit to read and accept before work starts",
              transactional=True),
    EmailKind("operator_new_request", "Operators: a new paid request", transactional=True, internal=True),
    EmailKind("operator_alert", "Operators: something needs a human", transactional=True, internal=True),
)}
# The kinds an account has preferences for, in display order.
USER_KINDS: tuple[str, ...] = tuple(k.name for k in KINDS.values() if not k.internal)


def kind_of(kind: str) -> EmailKind:
    """The registered kind ``kind``. Raises ``ValueError`` for an unregistered one (a programming
    error: register every new kind in ``KINDS`` and classify it)."""
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f"email kind {kind!r} is not registered in domain.notification.KINDS") from None


class UnknownEmailKind(DomainError):
    code = MessagingErrorCode.UNKNOWN_KIND
    field = "kind"


class TransactionalEmailRequired(DomainError):
    """Transactional email (receipts, refunds, payouts, disputes) cannot be turned off."""

    code = MessagingErrorCode.TRANSACTIONAL_KIND
    field = "kind"


class InvalidUnsubscribeToken(DomainError):
    code = CommonErrorCode.INVALID_TOKEN
    field = "token"


# --- templates -----------------------------------------------------------------------------------
# Per template name T: "T.subject" (one line), "T.txt" (text/plain), "T.html" (text/html, extends
# "base.html", autoescaped: every value from the context is HTML-escaped).

_TEXT = {
    "payment_confirmed.subject": "Odim: payment received for {{ reference }}",
    "payment_confirmed.txt": """Hello {{ name }},

Thank you: we received your payment of {{ amount }} for "{{ service }} — {{ tier }}".

Reference number: {{ reference }}
Current status:   {{ status_label }}

Next steps: {{ next_step }}

Track your request at any time (keep this link private, it shows your details):
{{ tracking_url }}

— The Odim team
""",
    "operator_new_request.subject": "New paid request {{ reference }}: {{ service }}",
    "operator_new_request.txt": """A new request was paid and is waiting for contact.

Reference: {{ reference }}
Service:   {{ service }} — {{ tier }}
Amount:    {{ amount }}
Affiliate: {{ affiliate or "none" }}

Assign a provider with the assignProvider mutation.
""",
    "status_changed.subject": "Odim: your request {{ reference }} is now \"{{ status_label }}\"",
    "status_changed.txt": """Hello {{ name }},

Your request {{ reference }} is now: {{ status_label }}.
{% if note %}
Note from our team: {{ note }}
{% endif %}
Next steps: {{ next_step }}

Track it here: {{ tracking_url }}

— The Odim team
""",
    "provider_assigned.subject": "Odim: {{ provider }} will take care of your request {{ reference }}",
    "provider_assigned.txt": """Hello {{ name }},

A provider was assigned to your request {{ reference }} ("{{ service }} — {{ tier }}"): {{ provider }}.
They will contact you to agree on the details.

Track your request here: {{ tracking_url }}

— The Odim team
""",
    "request_assigned.subject": "Odim: you were assigned request {{ reference }}",
    "request_assigned.txt": """Hello {{ name }},

You were assigned request {{ reference }}: {{ service }} — {{ tier }}.
Customer: {{ customer }}
{% if requirements %}
What the customer wrote: {{ requirements }}
{% endif %}
Open the request in the app for the contact details and to start the work.

— The Odim team
""",
    "payment_failed.subject": "Odim: payment for {{ reference }} did not go through",
    "payment_failed.txt": """Hello {{ name }},

The payment for your request {{ reference }} was declined. No money was taken.
You can try again from the checkout page: {{ checkout_hint }}

— The Odim team
""",
    "refund_issued.subject": "Odim: {{ amount }} refunded on {{ reference }}",
    "refund_issued.txt": """Hello {{ name }},

We refunded {{ amount }} on your request {{ reference }}.
{% if reason %}Reason: {{ reason }}
{% endif %}
Depending on your bank or mobile-money operator, it can take a few days to appear.

— The Odim team
""",
    "payout_sent.subject": "Odim: payout {{ payout_reference }} of {{ amount }}",
    "payout_sent.txt": """Hello {{ name }},

Your payout {{ payout_reference }} of {{ amount }} is {{ outcome }}.
Destination: {{ destination }}
{% if outcome == "failed" %}
The money is back in your available balance and will be sent again with the next payout run.
Check that your payout destination is correct.
{% endif %}
— The Odim team
""",
    "dispute_update.subject": "Odim: dispute on {{ reference }} {{ state }}",
    "dispute_update.txt": """Hello {{ name }},

The dispute on request {{ reference }} is {{ state }}.
{% if detail %}{{ detail }}
{% endif %}
— The Odim team
""",
    "booking_update.subject": "Odim: booking {{ reference }} — {{ status_label }}",
    "booking_update.txt": """Hello {{ name }},

Booking {{ reference }} ({{ service }}, {{ when }}) is now: {{ status_label }}.
{{ next_step }}
{% if note %}
Note: {{ note }}
{% endif %}
— The Odim team
""",
    "substitution_offer.subject": "Odim: can you take visit {{ reference }} on {{ when }}?",
    "substitution_offer.txt": """Hello {{ name }},

A provider {{ distance_km }} km from you cannot make a visit: {{ service }}, {{ when }}.
You are free then and can take it over. The first provider to accept gets the visit.

Accept it in the app (your substitution offers) before {{ due }}.

— The Odim team
""",
    "password_reset.subject": "Odim: reset your password",
    "password_reset.txt": """Hello {{ name }},

Someone (we hope you) asked to reset the password of your Odim account.
Choose a new password here within {{ minutes }} minutes (the link works once):
{{ url }}

If it was not you, ignore this email: your password stays as it is.

— The Odim team
""",
    "verify_email.subject": "Odim: confirm your email address",
    "verify_email.txt": """Hello {{ name }},

Please confirm that this is your email address (the link works once):
{{ url }}

— The Odim team
""",
    "guest_links.subject": "Odim: your requests",
    "guest_links.txt": """Hello,

Here are the links to the requests made with this email address without an account
(keep them private: they show your details):
{% for item in items %}
- {{ item.reference }} ({{ item.service }}): {{ item.url }}
{% endfor %}
To keep them in one place, create an account with this email address, confirm it, and claim them.

— The Odim team
""",
    # --- contracts ---
    "contract_ready.subject": "Odim: {{ 'new terms' if change else 'the contract' }} for {{ subject }} to accept",
    "contract_ready.txt": """Hello {{ name }},

{% if change %}The terms of {{ subject }} changed ({{ change }}), so there is a new contract, version {{ version }}.
{% else %}{{ subject }} has its contract: the scope of work, the price and its fees, the schedule and the cancellation terms.
{% endif %}
Work starts once both you and the other party accept it. Read it and accept it in the app.

Total: {{ total }}
Contract fingerprint (SHA-256): {{ sha256 }}

— The Odim team
""",
    "contract_ready.html": """{% extends "base.html" %}
{% block content %}
<p>Hello {{ name }},</p>
{% if change %}<p>The terms of <strong>{{ subject }}</strong> changed ({{ change }}), so there is a new contract,
version {{ version }}.</p>
{% else %}<p><strong>{{ subject }}</strong> has its contract: the scope of work, the price and its fees, the
schedule and the cancellation terms.</p>
{% endif %}
<p>Work starts once both you and the other party accept it. Read it and accept it in the app.</p>
<p>Total: <strong>{{ total }}</strong><br>Contract fingerprint (SHA-256): <code>{{ sha256 }}</code></p>
{% endblock %}""",
    # --- provider applications ---
    "application_approved.subject": "Odim: your provider application for {{ business_name }} is approved",
    "application_approved.txt": """Hello {{ name }},

Good news: your application to offer services on Odim as "{{ business_name }}" is approved.
Your account is now a provider account. Customers near you can find you in search as soon as you
set yourself available in the app.

— The Odim team
""",
    "application_rejected.subject": "Odim: your provider application for {{ business_name }}",
    "application_rejected.txt": """Hello {{ name }},

We reviewed your application to offer services on Odim as "{{ business_name }}" and cannot approve it.

Reason: {{ reason }}

You may start a new application in the app once you can address this.

— The Odim team
""",
    "application_documents_requested.subject": "Odim: more documents needed for {{ business_name }}",
    "application_documents_requested.txt": """Hello {{ name }},

To finish reviewing your application as "{{ business_name }}", we need more documents:
{% for kind in kinds %}
- {{ kind }}
{% endfor %}
{{ message }}

Upload them in the app (your provider application) and submit it again.

— The Odim team
""",
    # --- the two-strike policy (domain/reviews/review.py) ---
    "provider_strike.subject": "Odim: a strike was recorded against {{ business_name }}",
    "provider_strike.txt": """Hello {{ name }},

After a serious complaint, our team recorded a strike against "{{ business_name }}".

Reason: {{ reason }}
Strikes on record: {{ strike_count }}

A second strike suspends your account: you would receive no new work until an operator reinstates you.

— The Odim team
""",
    "provider_suspended.subject": "Odim: {{ business_name }} is suspended",
    "provider_suspended.txt": """Hello {{ name }},

Your provider account "{{ business_name }}" is suspended: you are hidden from search and receive no
new requests, bookings or take-over offers. Work already done is still paid out (money under an open
dispute stays held until the dispute is settled).

Reason: {{ reason }}

Reply to this email to talk to our team.

— The Odim team
""",
    "provider_reinstated.subject": "Odim: {{ business_name }} is reinstated",
    "provider_reinstated.txt": """Hello {{ name }},

Your provider account "{{ business_name }}" is reinstated: customers can find and book you again.

Note from our team: {{ note }}

— The Odim team
""",
    "operator_alert.subject": "[Odim operations] {{ subject }}",
    "operator_alert.txt": """{{ body }}
""",
}

_P = '<p style="margin:0 0 16px">'
_MUTED = "color:#71717a"

_HTML = {
    "base.html": """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ email_subject }}</title>
</head>
<body style="margin:0;padding:0;background:#f4f4f5;font-family:Helvetica,Arial,sans-serif;color:#18181b">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="background:#f4f4f5">
<tr><td align="center" style="padding:24px 12px">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0"
 style="max-width:560px;background:#ffffff;border-radius:8px">
<tr><td style="padding:24px 32px 8px;font-size:20px;font-weight:bold;color:#0f766e">Odim</td></tr>
<tr><td style="padding:8px 32px 24px;font-size:15px;line-height:1.5">
{% block content %}{% endblock %}
{% block signoff %}<p style="margin:24px 0 0">— The Odim team</p>{% endblock %}
</td></tr>
</table>
{% if unsubscribe_url %}
<p style="max-width:560px;font-size:12px;line-height:1.5;COLOR">You receive this update because of your
activity on Odim. <a href="{{ unsubscribe_url }}" style="COLOR">Unsubscribe</a> from updates like this
(receipts, refunds, payouts and disputes are still sent).</p>
{% endif %}
</td></tr>
</table>
</body>
</html>
""".replace("COLOR", _MUTED),
    "_macros.html": """{% macro button(url, label) -%}
<p style="margin:24px 0"><a href="{{ url }}" style="display:inline-block;padding:12px 20px;background:#0f766e;
color:#ffffff;text-decoration:none;border-radius:6px;font-weight:bold">{{ label }}</a></p>
{%- endmacro %}
{% macro facts(rows) -%}
<table role="presentation" cellpadding="0" cellspacing="0" style="margin:0 0 16px">
{% for label, value in rows %}<tr><td style="padding:2px 16px 2px 0;COLOR">{{ label }}</td>
<td style="padding:2px 0"><strong>{{ value }}</strong></td></tr>
{% endfor %}</table>
{%- endmacro %}
""".replace("COLOR", _MUTED),
    "payment_confirmed.html": """{% extends "base.html" %}{% from "_macros.html" import button, facts %}
{% block content %}
<p>Hello {{ name }},</p>
<p>Thank you: we received your payment of <strong>{{ amount }}</strong> for “{{ service }} — {{ tier }}”.</p>
{{ facts([("Reference number", reference), ("Current status", status_label)]) }}
<p><strong>Next steps:</strong> {{ next_step }}</p>
{{ button(tracking_url, "Track your request") }}
<p style="margin:0 0 16px;font-size:13px;COLOR">Keep this link private: it shows your details.</p>
{% endblock %}""",
    "password_reset.html": """{% extends "base.html" %}{% from "_macros.html" import button %}
{% block content %}
<p>Hello {{ name }},</p>
<p>Someone (we hope you) asked to reset the password of your Odim account. The link works once, within
{{ minutes }} minutes.</p>
{{ button(url, "Choose a new password") }}
<p>If it was not you, ignore this email: your password stays as it is.</p>
{% endblock %}""",
    "verify_email.html": """{% extends "base.html" %}{% from "_macros.html" import button %}
{% block content %}
<p>Hello {{ name }},</p>
<p>Please confirm that this is your email address (the link works once).</p>
{{ button(url, "Confirm my email") }}
{% endblock %}""",
    "guest_links.html": """{% extends "base.html" %}
{% block content %}
<p>Hello,</p>
<p>Here are the links to the requests made with this email address without an account
(keep them private: they show your details):</p>
<ul>{% for item in items %}<li><a href="{{ item.url }}">{{ item.reference }}</a> ({{ item.service }})</li>{% endfor %}</ul>
<p>To keep them in one place, create an account with this email address, confirm it, and claim them.</p>
{% endblock %}""",
    "operator_new_request.html": """{% extends "base.html" %}{% from "_macros.html" import facts %}
{% block content %}
<p>A new request was paid and is waiting for contact.</p>
{{ facts([("Reference", reference), ("Service", service ~ " — " ~ tier), ("Amount", amount),
          ("Affiliate", affiliate or "none")]) }}
<p>Assign a provider with the assignProvider mutation.</p>
{% endblock %}{% block signoff %}{% endblock %}""",
    "status_changed.html": """{% extends "base.html" %}{% from "_macros.html" import button %}
{% block content %}
<p>Hello {{ name }},</p>
<p>Your request <strong>{{ reference }}</strong> is now: <strong>{{ status_label }}</strong>.</p>
{% if note %}<p>Note from our team: {{ note }}</p>{% endif %}
<p><strong>Next steps:</strong> {{ next_step }}</p>
{{ button(tracking_url, "Track your request") }}
{% endblock %}""",
    "provider_assigned.html": """{% extends "base.html" %}{% from "_macros.html" import button %}
{% block content %}
<p>Hello {{ name }},</p>
<p>A provider was assigned to your request <strong>{{ reference }}</strong> (“{{ service }} — {{ tier }}”):
<strong>{{ provider }}</strong>. They will contact you to agree on the details.</p>
{{ button(tracking_url, "Track your request") }}
{% endblock %}""",
    "request_assigned.html": """{% extends "base.html" %}
{% block content %}
<p>Hello {{ name }},</p>
<p>You were assigned request <strong>{{ reference }}</strong>: {{ service }} — {{ tier }}.</p>
<p>Customer: {{ customer }}</p>
{% if requirements %}<p>What the customer wrote:</p>
<blockquote style="margin:0 0 16px;padding:8px 12px;border-left:3px solid #d4d4d8;white-space:pre-wrap">
{{- requirements -}}</blockquote>{% endif %}
<p>Open the request in the app for the contact details and to start the work.</p>
{% endblock %}""",
    "payment_failed.html": """{% extends "base.html" %}
{% block content %}
<p>Hello {{ name }},</p>
<p>The payment for your request <strong>{{ reference }}</strong> was declined. No money was taken.</p>
<p>You can try again from the checkout page: {{ checkout_hint }}</p>
{% endblock %}""",
    "refund_issued.html": """{% extends "base.html" %}
{% block content %}
<p>Hello {{ name }},</p>
<p>We refunded <strong>{{ amount }}</strong> on your request <strong>{{ reference }}</strong>.</p>
{% if reason %}<p>Reason: {{ reason }}</p>{% endif %}
<p>Depending on your bank or mobile-money operator, it can take a few days to appear.</p>
{% endblock %}""",
    "payout_sent.html": """{% extends "base.html" %}{% from "_macros.html" import facts %}
{% block content %}
<p>Hello {{ name }},</p>
<p>Your payout <strong>{{ payout_reference }}</strong> of <strong>{{ amount }}</strong> is {{ outcome }}.</p>
{{ facts([("Destination", destination)]) }}
{% if outcome == "failed" %}<p>The money is back in your available balance and will be sent again with the next
payout run. Check that your payout destination is correct.</p>{% endif %}
{% endblock %}""",
    "dispute_update.html": """{% extends "base.html" %}
{% block content %}
<p>Hello {{ name }},</p>
<p>The dispute on request <strong>{{ reference }}</strong> is {{ state }}.</p>
{% if detail %}<p>{{ detail }}</p>{% endif %}
{% endblock %}""",
    "booking_update.html": """{% extends "base.html" %}
{% block content %}
<p>Hello {{ name }},</p>
<p>Booking <strong>{{ reference }}</strong> ({{ service }}, {{ when }}) is now: <strong>{{ status_label }}</strong>.</p>
<p>{{ next_step }}</p>
{% if note %}<p>Note: {{ note }}</p>{% endif %}
{% endblock %}""",
    "substitution_offer.html": """{% extends "base.html" %}
{% block content %}
<p>Hello {{ name }},</p>
<p>A provider {{ distance_km }} km from you cannot make a visit: <strong>{{ service }}</strong>, {{ when }}.
You are free then and can take it over. The first provider to accept gets the visit.</p>
<p>Accept it in the app (your substitution offers) before <strong>{{ due }}</strong>.</p>
{% endblock %}""",
    "application_approved.html": """{% extends "base.html" %}
{% block content %}
<p>Hello {{ name }},</p>
<p>Good news: your application to offer services on Odim as <strong>{{ business_name }}</strong> is approved.
Your account is now a provider account. Customers near you can find you in search as soon as you set
yourself available in the app.</p>
{% endblock %}""",
    "application_rejected.html": """{% extends "base.html" %}
{% block content %}
<p>Hello {{ name }},</p>
<p>We reviewed your application to offer services on Odim as <strong>{{ business_name }}</strong> and cannot
approve it.</p>
<p>Reason: {{ reason }}</p>
<p>You may start a new application in the app once you can address this.</p>
{% endblock %}""",
    "application_documents_requested.html": """{% extends "base.html" %}
{% block content %}
<p>Hello {{ name }},</p>
<p>To finish reviewing your application as <strong>{{ business_name }}</strong>, we need more documents:</p>
<ul>{% for kind in kinds %}<li>{{ kind }}</li>{% endfor %}</ul>
<p>{{ message }}</p>
<p>Upload them in the app (your provider application) and submit it again.</p>
{% endblock %}""",
    "provider_strike.html": """{% extends "base.html" %}
{% block content %}
<p>Hello {{ name }},</p>
<p>After a serious complaint, our team recorded a strike against <strong>{{ business_name }}</strong>.</p>
<p>Reason: {{ reason }}<br>Strikes on record: {{ strike_count }}</p>
<p>A second strike suspends your account: you would receive no new work until an operator reinstates you.</p>
{% endblock %}""",
    "provider_suspended.html": """{% extends "base.html" %}
{% block content %}
<p>Hello {{ name }},</p>
<p>Your provider account <strong>{{ business_name }}</strong> is suspended: you are hidden from search and
receive no new requests, bookings or take-over offers. Work already done is still paid out (money under an
open dispute stays held until the dispute is settled).</p>
<p>Reason: {{ reason }}</p>
<p>Reply to this email to talk to our team.</p>
{% endblock %}""",
    "provider_reinstated.html": """{% extends "base.html" %}
{% block content %}
<p>Hello {{ name }},</p>
<p>Your provider account <strong>{{ business_name }}</strong> is reinstated: customers can find and book you
again.</p>
<p>Note from our team: {{ note }}</p>
{% endblock %}""",
    "operator_alert.html": """{% extends "base.html" %}
{% block content %}
<p style="margin:0 0 16px;white-space:pre-wrap">{{ body }}</p>
{% endblock %}{% block signoff %}{% endblock %}""",
}
# Paragraphs get their spacing inline (mail clients drop <style> blocks).
_HTML = {name: body.replace("<p>", _P).replace("COLOR", _MUTED) for name, body in _HTML.items()}

TEMPLATES: dict[str, str] = {**_TEXT, **_HTML}
TEMPLATE_NAMES: tuple[str, ...] = tuple(k.removesuffix(".subject") for k in _TEXT if k.endswith(".subject"))

# Autoescape is on for every ".html" template (and off for subjects and text bodies): a value from
# the context (a customer's note, a name) can never become markup in the HTML part.
_env = Environment(
    loader=DictLoader(TEMPLATES), undefined=StrictUndefined, keep_trailing_newline=True,
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
)

_TEXT_FOOTER = """
--
You receive this update because of your activity on Odim. To stop updates like this (receipts,
refunds, payouts and disputes are still sent), open: {url}
"""


@dataclass(frozen=True)
class RenderedEmail:
    """A rendered email: one-line ``subject``, ``text`` (text/plain) and ``html`` (text/html)."""

    subject: str
    text: str
    html: str


def render(template: str, context: dict, *, unsubscribe_url: str | None = None) -> RenderedEmail:
    """Render template ``template`` (a name in TEMPLATE_NAMES) with ``context``; every variable the
    template uses must be in ``context`` (StrictUndefined). With ``unsubscribe_url`` both bodies end
    with the unsubscribe link. Raises ``jinja2.TemplateNotFound`` / ``jinja2.UndefinedError``."""
    subject = " ".join(_env.get_template(f"{template}.subject").render(context).split())
    text = _env.get_template(f"{template}.txt").render(context)
    if unsubscribe_url:
        text = text.rstrip("\n") + "\n" + _TEXT_FOOTER.format(url=unsubscribe_url)
    html = _env.get_template(f"{template}.html").render(
        {**context, "email_subject": subject, "unsubscribe_url": unsubscribe_url}
    )
    return RenderedEmail(subject=subject, text=text, html=html)


# --- one-click unsubscribe (RFC 8058) ------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unsubscribe_sig(address: str) -> str:
    # Keyed by settings.guest_link_secret; the "email-unsubscribe:" prefix keeps these MACs apart
    # from the guest tracking links' (which sign "<reference>.<exp>").
    key = get_settings().guest_link_secret.get_secret_value().encode()
    return _b64(hmac.new(key, f"email-unsubscribe:{address}".encode(), hashlib.sha256).digest())


def normalise_address(address: str) -> str:
    """The form addresses are compared and suppressed in: stripped, lower-cased."""
    return address.strip().lower()


def unsubscribe_token(address: str) -> str:
    """A token that opts ``address`` out of non-transactional email: ``<base64url(address)>.<HMAC-SHA256>``.
    It does not expire (an unsubscribe link must keep working; RFC 8058 section 3.2)."""
    address = normalise_address(address)
    return f"{_b64(address.encode())}.{_unsubscribe_sig(address)}"


def address_of_unsubscribe_token(token: str | None) -> str | None:
    """The address ``token`` was issued for, or None when it is malformed or forged (constant-time check)."""
    if not token or token.count(".") != 1:
        return None
    encoded, sig = token.split(".")
    try:
        address = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not address or address != normalise_address(address):
        return None
    return address if hmac.compare_digest(sig, _unsubscribe_sig(address)) else None


def unsubscribe_url(address: str) -> str:
    """``<public_base_url>/email/unsubscribe?token=...``: GET shows a confirmation page, POST
    (``List-Unsubscribe=One-Click``) unsubscribes at once."""
    base = get_settings().public_base_url.rstrip("/")
    return f"{base}/email/unsubscribe?token={quote(unsubscribe_token(address))}"


async def unsubscribe(session: AsyncSession, token: str | None) -> str:
    """One-click unsubscribe: the token's address opts out of all non-transactional email (a
    suppression row; idempotent). Returns the address. Raises ``InvalidUnsubscribeToken`` (nothing written)."""
    address = address_of_unsubscribe_token(token)
    if address is None:
        raise InvalidUnsubscribeToken("This unsubscribe link is not valid")
    await session.execute(
        insert(EmailSuppression).values(address=address, source="one_click").on_conflict_do_nothing()
    )
    log.info("email.unsubscribed", source="one_click")
    return address


# --- queueing ------------------------------------------------------------------------------------


def _suppressed(address: str):
    """SQL clause: the suppression row of ``address`` (keyed by its blind index; the address is encrypted)."""
    return EmailSuppression.address_bidx == blind_index(address, "email")


async def _suppression(session: AsyncSession, kind: str, to: str, user_id: int | None) -> tuple[int | None, str | None]:
    """For non-transactional ``kind`` to ``to``: ``(account id or None, why it is suppressed or None)``.
    One statement: the account by address (unless ``user_id`` is given), the address's opt-out, the
    account's preference for ``kind``."""
    address = normalise_address(to)
    account = (
        literal(user_id) if user_id is not None
        else select(User.id).where(email_matches(address)).scalar_subquery()
    )
    row = (await session.execute(select(
        account.label("user_id"),
        exists().where(_suppressed(address)).label("opted_out"),
        select(NotificationPreference.email)
        .where(NotificationPreference.user_id == account, NotificationPreference.kind == kind)
        .scalar_subquery().label("wanted"),
    ))).one()
    if row.opted_out:
        return row.user_id, "the address opted out of non-transactional email"
    if row.wanted is False:
        return row.user_id, f"the recipient turned {kind} email off"
    return row.user_id, None


async def queue_email(
    session: AsyncSession, *, dedupe_key: str, kind: str, to: str, template: str, context: dict,
    user_id: int | None = None,
) -> int | None:
    """Store one email (at most one per ``dedupe_key``, e.g. ``payment_confirmed:<request id>``),
    rendered now (subject, text, HTML), and an outbox job to send it after commit. ``kind`` must be
    in ``KINDS``; ``user_id`` names the recipient's account when the caller knows it (else it is
    looked up by address for non-transactional kinds). A non-transactional email the recipient
    turned off (or opted out of) is stored with status ``suppressed`` and a ``suppressed``
    delivery row, and no job. Returns the email id, or None for a duplicate key. Raises
    ``ValueError`` for an unregistered kind, Jinja2 errors for a bad template or context."""
    spec = kind_of(kind)
    link = None if spec.transactional else unsubscribe_url(to)
    rendered = render(template, context, unsubscribe_url=link)
    reason = None
    if not spec.transactional:
        user_id, reason = await _suppression(session, kind, to, user_id)
    email_id = await session.scalar(
        insert(Email)
        .values(dedupe_key=dedupe_key, kind=kind, to_address=to, user_id=user_id, subject=rendered.subject[:300],
                body_text=rendered.text, body_html=rendered.html, list_unsubscribe=link,
                status="suppressed" if reason else "queued")
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(Email.id)
    )
    if email_id is None:
        return None
    if reason:
        session.add(EmailDelivery(email_id=email_id, attempt=0, outcome="suppressed", error=reason))
        log.info("email.suppressed", email_id=email_id, kind=kind)
    else:
        outbox.enqueue_actor(session, "send_email", queue="notifications", email_id=email_id)
    return email_id


# --- sending -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendResult:
    """What one ``send_email`` call did: ``outcome`` is ``sent``, ``failed`` (retry it),
    ``dead_lettered`` (the last attempt failed), ``suppressed`` or ``skipped`` (missing, already
    sent or suppressed); ``error`` says why an attempt failed."""

    outcome: str
    error: str | None = None


def _headers(email: Email) -> dict[str, str]:
    if not email.list_unsubscribe:
        return {}
    # RFC 8058 section 3.1: both headers; the POST body is "List-Unsubscribe=One-Click".
    return {"List-Unsubscribe": f"<{email.list_unsubscribe}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


async def send_email(session: AsyncSession, mailer: Mailer, email_id: int, *, final_attempt: bool = False) -> SendResult:
    """Send stored email ``email_id`` once: locks the row; skips it when missing, sent or
    suppressed; suppresses it (no SMTP) when the recipient opted out since it was queued; else
    hands it to ``mailer`` and records the attempt in ``email_deliveries`` and on the row (status
    ``sent`` with the Message-ID, or ``failed`` / ``dead`` when ``final_attempt``, with the
    relay's reply and the error). SMTP failures are returned, not raised, so the caller commits
    the log and then retries (workers/notification.py). A crash after the relay accepted and
    before commit can send it twice (at-least-once, like every email system)."""
    email = await session.scalar(select(Email).where(Email.id == email_id).with_for_update(key_share=True))
    if email is None:
        log.warning("email.missing", email_id=email_id)
        return SendResult("skipped")
    if email.status in ("sent", "suppressed"):
        return SendResult("skipped")
    now = datetime.now(UTC)
    if not kind_of(email.kind).transactional:
        account, reason = await _suppression(session, email.kind, email.to_address, email.user_id)
        if reason:
            email.status, email.updated_at, email.user_id = "suppressed", now, account
            session.add(EmailDelivery(email_id=email.id, attempt=0, outcome="suppressed", error=reason))
            return SendResult("suppressed")
    email.attempts += 1
    email.updated_at = now
    outgoing = OutgoingEmail(to=email.to_address, subject=email.subject, text=email.body_text, html=email.body_html,
                             headers=_headers(email))
    try:
        receipt = await mailer.send(outgoing)
    except MailDeliveryError as exc:
        outcome = "dead_lettered" if final_attempt else "failed"
        email.status = "dead" if final_attempt else "failed"
        email.last_error = exc.message[:4000]
        session.add(EmailDelivery(email_id=email.id, attempt=email.attempts, outcome=outcome,
                                  smtp_response=exc.smtp_response, error=email.last_error))
        log.warning("email.attempt_failed", email_id=email.id, attempt=email.attempts, final=final_attempt,
                    error=email.last_error)
        return SendResult(outcome, email.last_error)
    email.status, email.sent_at, email.message_id = "sent", datetime.now(UTC), receipt.message_id
    session.add(EmailDelivery(email_id=email.id, attempt=email.attempts, outcome="sent",
                              smtp_message_id=receipt.message_id, smtp_response=receipt.response))
    return SendResult("sent")


async def record_crashed_attempt(email_id: int, error: str, *, final_attempt: bool) -> None:
    """An attempt that failed outside SMTP (its transaction rolled back): log it in its own
    transaction as a failed (or, when ``final_attempt``, dead-lettered) delivery, so the email's
    status and log stay true. Sent or suppressed emails are left alone."""
    async with session_scope() as session:
        email = await session.scalar(select(Email).where(Email.id == email_id).with_for_update(key_share=True))
        if email is None or email.status in ("sent", "suppressed"):
            return
        email.attempts += 1
        email.status = "dead" if final_attempt else "failed"
        email.last_error = error[:4000]
        email.updated_at = datetime.now(UTC)
        session.add(EmailDelivery(email_id=email.id, attempt=email.attempts,
                                  outcome="dead_lettered" if final_attempt else "failed", error=email.last_error))


def stalled(cutoff: datetime) -> ColumnElement[bool]:
    """SQL condition for emails whose job may be lost (for the stalled-work sweeper): ``queued``
    and created before ``cutoff``, or ``failed`` and untouched for longer than the longest retry
    backoff (settings.email_max_backoff_ms) before ``cutoff``. Sent, suppressed and dead ones
    (a dead letter holds those) never match."""
    longest = timedelta(milliseconds=get_settings().email_max_backoff_ms)
    return or_(
        and_(Email.status == "queued", Email.created_at < cutoff),
        and_(Email.status == "failed", Email.updated_at < cutoff - longest),
    )


# --- preferences ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class KindPreference:
    """One kind in an account's preferences: ``email`` is the account's choice (always True for a
    transactional kind)."""

    kind: str
    description: str
    transactional: bool
    email: bool


@dataclass(frozen=True)
class EmailPreferences:
    """An account's email preferences: ``opted_out`` of every non-transactional kind (whatever
    ``kinds`` say), and every kind of USER_KINDS in order. A non-transactional kind is mailed
    only when its ``email`` is True and ``opted_out`` is False."""

    opted_out: bool
    kinds: list[KindPreference]


async def preferences(session: AsyncSession, user: User) -> EmailPreferences:
    """``user``'s email preferences (1 statement; defaults: every kind on, not opted out)."""
    address = normalise_address(user.email)
    choices = (
        select(func.coalesce(func.jsonb_object_agg(NotificationPreference.kind, NotificationPreference.email),
                             func.jsonb_build_object()))
        .where(NotificationPreference.user_id == user.id)
        .scalar_subquery()
    )
    row = (await session.execute(
        select(exists().where(_suppressed(address)).label("opted_out"), choices.label("choices"))
    )).one()
    chosen: dict = row.choices or {}
    return EmailPreferences(
        opted_out=bool(row.opted_out),
        kinds=[
            KindPreference(kind=name, description=KINDS[name].description, transactional=KINDS[name].transactional,
                           email=True if KINDS[name].transactional else bool(chosen.get(name, True)))
            for name in USER_KINDS
        ],
    )


async def set_preference(session: AsyncSession, user: User, kind: str, email: bool) -> EmailPreferences:
    """Turn email of ``kind`` on or off for ``user`` (upsert; idempotent); returns the preferences.
    Turning a transactional kind on is a no-op. Raises ``UnknownEmailKind`` (not in USER_KINDS),
    ``TransactionalEmailRequired`` (turning a transactional kind off): nothing written then."""
    if kind not in USER_KINDS:
        raise UnknownEmailKind(f"Unknown email kind {kind!r}")
    if KINDS[kind].transactional:
        if not email:
            raise TransactionalEmailRequired(
                f"{KINDS[kind].description}: transactional email (receipts, refunds, payouts, disputes) "
                "cannot be turned off"
            )
        return await preferences(session, user)
    await session.execute(
        insert(NotificationPreference).values(user_id=user.id, kind=kind, email=email)
        .on_conflict_do_update(index_elements=["user_id", "kind"], set_={"email": email, "updated_at": func.now()})
    )
    return await preferences(session, user)


async def set_opt_out(session: AsyncSession, user: User, opt_out: bool) -> EmailPreferences:
    """Opt ``user``'s address out of (or back into) all non-transactional email; idempotent. Opting
    back in also lifts an opt-out made with a one-click link for the same address. Returns the preferences."""
    address = normalise_address(user.email)
    if opt_out:
        await session.execute(
            insert(EmailSuppression).values(address=address, source="account").on_conflict_do_nothing()
        )
    else:
        await session.execute(delete(EmailSuppression).where(_suppressed(address)))
    return await preferences(session, user)


# --- reading (admins) ----------------------------------------------------------------------------


async def list_emails(
    session: AsyncSession, *, status: str | None, first: int, after: str | None
) -> tuple[list[tuple[Email, str]], bool]:
    """Emails newest first, optionally of one ``status`` (EMAIL_STATUSES), keyset-paginated on id
    (index ``ix_emails_status_id``), one statement. Returns ``([(email, cursor)], has_next_page)``.
    Raises ``InvalidCursor``, DomainError ``INVALID`` for an unknown status."""
    if status is not None and status not in EMAIL_STATUSES:
        raise DomainError(f"status must be one of {', '.join(EMAIL_STATUSES)}", field="status")
    stmt = select(Email).order_by(Email.id.desc()).limit(first + 1)
    if status is not None:
        stmt = stmt.where(Email.status == status)
    if after:
        stmt = stmt.where(Email.id < pagination.decode("email", after))
    rows = (await session.scalars(stmt)).all()
    return [(r, pagination.encode("email", r.id)) for r in rows[:first]], len(rows) > first


async def deliveries_for(session: AsyncSession, email_ids: list[int]) -> dict[int, list[EmailDelivery]]:
    """Delivery log rows of many emails in one statement: ``{email_id: [rows, oldest first]}``."""
    rows = (await session.scalars(
        select(EmailDelivery).where(EmailDelivery.email_id.in_(email_ids)).order_by(EmailDelivery.id)
    )).all()
    out: dict[int, list[EmailDelivery]] = {i: [] for i in email_ids}
    for row in rows:
        out[row.email_id].append(row)
    return out

"""Email in GraphQL: an account's email preferences and opt-out, and the admins' email log with
each email's delivery attempts (types, inputs, payloads; the root fields: schema/messaging/root.py)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import Enum

import strawberry
from strawberry import relay

from domain.messaging import notification as notification_domain
from domain.messaging.errors import MessagingErrorCode
from domain.shared.errors import CommonErrorCode
from models import Email as EmailModel
from models import EmailDelivery as EmailDeliveryModel
from resolvers.messaging import email as email_resolvers
from schema.shared.common import coded_errors, error_code_enum

# --- enums ----------------------------------------------------------------------------------------

EmailKind = strawberry.enum(
    Enum("EmailKind", {k.upper(): k for k in notification_domain.USER_KINDS}),
    description="A kind of email an account can receive. Transactional kinds (payment confirmations, failed "
    "payments, refunds, payouts, disputes) are always sent; the others can be turned off.",
)


@strawberry.enum(description="Where an email is: QUEUED (first attempt pending), FAILED (a retry is scheduled), "
                 "SENT, DEAD (retries ran out: a dead letter holds the job), SUPPRESSED (the recipient opted out; "
                 "never sent).")
class EmailStatus(Enum):
    QUEUED = "queued"
    FAILED = "failed"
    SENT = "sent"
    DEAD = "dead"
    SUPPRESSED = "suppressed"


@strawberry.enum(description="What one delivery attempt did.")
class EmailDeliveryOutcome(Enum):
    SENT = "sent"
    FAILED = "failed"
    DEAD_LETTERED = "dead_lettered"
    SUPPRESSED = "suppressed"


# --- preferences ----------------------------------------------------------------------------------


@strawberry.type(description="One kind of email in your preferences.")
class EmailKindPreference:
    kind: EmailKind  # type: ignore[valid-type]
    description: str
    transactional: bool = strawberry.field(description="Always sent: cannot be turned off.")
    email: bool = strawberry.field(description="Your choice (always true for transactional kinds). A "
                                   "non-transactional kind is mailed when this is true and `emailOptOut` is false.")

    @classmethod
    def of(cls, p: notification_domain.KindPreference) -> "EmailKindPreference":
        return cls(kind=EmailKind(p.kind), description=p.description, transactional=p.transactional, email=p.email)


@strawberry.type(description="Your email preferences.")
class EmailPreferences:
    email_opt_out: bool = strawberry.field(description="You opted out of all non-transactional email (here or "
                                           "with an unsubscribe link).")
    kinds: list[EmailKindPreference]

    @classmethod
    def of(cls, p: notification_domain.EmailPreferences) -> "EmailPreferences":
        return cls(email_opt_out=p.opted_out, kinds=[EmailKindPreference.of(k) for k in p.kinds])


EmailPreferenceErrorCode = error_code_enum("EmailPreferenceErrorCode", [
    MessagingErrorCode.TRANSACTIONAL_KIND, MessagingErrorCode.UNKNOWN_KIND, CommonErrorCode.INVALID,
])


@strawberry.type
class EmailPreferenceError:
    field: str | None
    code: EmailPreferenceErrorCode
    message: str


@strawberry.input
class SetNotificationPreferenceInput:
    kind: EmailKind  # type: ignore[valid-type]
    email: bool = strawberry.field(description="Whether to receive this kind by email.")


@strawberry.type
class SetNotificationPreferencePayload:
    preferences: EmailPreferences | None
    errors: list[EmailPreferenceError]


@strawberry.input
class SetEmailOptOutInput:
    opt_out: bool = strawberry.field(description="True: no non-transactional email at all; false: back to your "
                                     "per-kind choices.")


@strawberry.type
class SetEmailOptOutPayload:
    preferences: EmailPreferences | None
    errors: list[EmailPreferenceError]


def preferences_or_none(found: notification_domain.EmailPreferences | None) -> EmailPreferences | None:
    return EmailPreferences.of(found) if found else None


def email_preference_errors(errors) -> list[EmailPreferenceError]:
    return coded_errors(EmailPreferenceErrorCode, EmailPreferenceError, errors)


# --- the email log (admins) -----------------------------------------------------------------------


@strawberry.type(description="One delivery attempt of an email (attempt 0: suppressed, never handed to SMTP).")
class EmailDelivery:
    attempt: int
    outcome: EmailDeliveryOutcome
    smtp_message_id: str | None = strawberry.field(description="The Message-ID header of the accepted message.")
    smtp_response: str | None = strawberry.field(description="The relay's reply, e.g. `250 OK` or `421 ...`.")
    error: str | None
    created_at: datetime

    @classmethod
    def of(cls, d: EmailDeliveryModel) -> "EmailDelivery":
        return cls(attempt=d.attempt, outcome=EmailDeliveryOutcome(d.outcome), smtp_message_id=d.smtp_message_id,
                   smtp_response=d.smtp_response, error=d.error, created_at=d.created_at)


@strawberry.type(description="An email Odim sent or tried to send (admins only).")
class Email(relay.Node):
    id: relay.NodeID[int]
    kind: str = strawberry.field(description="e.g. payment_confirmed, status_changed, operator_alert.")
    transactional: bool
    to: str
    subject: str
    status: EmailStatus
    attempts: int = strawberry.field(description="SMTP attempts made so far.")
    message_id: str | None = strawberry.field(description="Message-ID of the accepted message.")
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    body_text: str
    body_html: str

    @classmethod
    def of(cls, e: EmailModel) -> "Email":
        kind = notification_domain.KINDS.get(e.kind)
        return cls(
            id=e.id, kind=e.kind, transactional=kind.transactional if kind else True, to=e.to_address,
            subject=e.subject, status=EmailStatus(e.status), attempts=e.attempts, message_id=e.message_id,
            last_error=e.last_error, created_at=e.created_at, sent_at=e.sent_at, body_text=e.body_text,
            body_html=e.body_html,
        )

    @strawberry.field(description="Its delivery log, oldest first.")
    async def deliveries(self, info: strawberry.Info) -> list[EmailDelivery]:
        return [EmailDelivery.of(d) for d in await email_resolvers.deliveries(info.context).load(int(self.id))]

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False):
        found = await email_resolvers.email_nodes(info.context, [int(i) for i in node_ids])
        return [cls.of(e) if e else None for e in found]


@strawberry.type
class EmailEdge:
    cursor: str
    node: Email


@strawberry.type
class EmailConnection:
    edges: list[EmailEdge]
    page_info: relay.PageInfo

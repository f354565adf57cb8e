"""Outgoing email, stored before it is sent so that none is ever dropped; its delivery log; the
email preferences of accounts and the addresses that opted out of non-transactional mail."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created_at, pk, sql_in, updated_at
from models.crypto import BIDX_LENGTH, EncryptedText, blind_index_column, blind_index_default, keep_blind_index


# queued: waiting for its first attempt; failed: an attempt failed, a retry is scheduled;
# sent: the SMTP relay accepted it; dead: retries ran out (a dead letter holds the job);
# suppressed: never sent because the recipient turned this kind of email off.
class EmailStatus(StrEnum):
    """An outgoing email: queued, sent, failed (to retry), dead (given up) or suppressed."""

    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"
    DEAD = "dead"
    SUPPRESSED = "suppressed"


EMAIL_STATUSES = tuple(EmailStatus)
DELIVERY_OUTCOMES = ("sent", "failed", "dead_lettered", "suppressed")
SUPPRESSION_SOURCES = ("one_click", "account")


class Email(Base):
    """One email: rendered once (subject, plain text, HTML), sent by the ``send_email`` actor."""

    __tablename__ = "emails"
    __table_args__ = (
        CheckConstraint(f"status IN {sql_in(EmailStatus)}", name="status"),
        # The admin list (newest first, optionally of one status) and the stalled-work sweeper.
        Index("ix_emails_status_id", "status", "id"),
    )

    id: Mapped[int] = pk()
    # e.g. "payment_confirmed:42": one email per business event, however often the event is processed.
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(60), nullable=False)
    # Encrypted at rest (models/crypto.py); ``to_address_bidx`` finds a person's mail (data export).
    to_address: Mapped[str] = mapped_column(EncryptedText("emails.to_address", blind_index="email"), nullable=False)
    to_address_bidx: Mapped[str] = blind_index_column("to_address", "email")
    # The recipient's account when the address belongs to one (preferences apply), else NULL (a guest).
    user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    subject: Mapped[str] = mapped_column(String(300), nullable=False)
    body_text: Mapped[str] = mapped_column(Text, nullable=False)
    body_html: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    # Signed one-click unsubscribe URL (RFC 8058) of non-transactional mail, NULL for transactional.
    list_unsubscribe: Mapped[str | None] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="queued")
    message_id: Mapped[str | None] = mapped_column(String(300))  # the Message-ID header of the accepted send
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)


class EmailDelivery(Base):
    """The delivery log: one row per SMTP attempt of an email (``attempt`` 1, 2, ...), or one row
    with ``attempt`` 0 when the email was suppressed instead of sent."""

    __tablename__ = "email_deliveries"
    __table_args__ = (
        CheckConstraint(f"outcome IN {DELIVERY_OUTCOMES}", name="outcome"),
        UniqueConstraint("email_id", "attempt"),
    )

    id: Mapped[int] = pk()
    email_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("emails.id", ondelete="CASCADE"), nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)
    smtp_message_id: Mapped[str | None] = mapped_column(String(300))
    smtp_response: Mapped[str | None] = mapped_column(Text)  # the relay's reply, e.g. "250 OK" or "421 ..."
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at()


class NotificationPreference(Base):
    """An account's choice for one kind of email; no row means the default (on)."""

    __tablename__ = "notification_preferences"
    __table_args__ = (PrimaryKeyConstraint("user_id", "kind"),)

    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    kind: Mapped[str] = mapped_column(String(60), nullable=False)
    email: Mapped[bool] = mapped_column(Boolean, nullable=False)
    updated_at: Mapped[datetime] = updated_at()


class EmailSuppression(Base):
    """An address that opted out of all non-transactional email, by a one-click unsubscribe link
    (guests included) or from its account. Keyed by the blind index of the lower-cased address
    (``address_bidx``, models/crypto.py); ``address`` is kept encrypted for operators and is set to
    NULL when its owner's account is deleted, the opt-out still holding by its blind index."""

    __tablename__ = "email_suppressions"
    __table_args__ = (CheckConstraint(f"source IN {SUPPRESSION_SOURCES}", name="source"),)

    address_bidx: Mapped[str] = mapped_column(
        String(BIDX_LENGTH), primary_key=True, default=blind_index_default("address", "email")
    )
    address: Mapped[str | None] = mapped_column(EncryptedText("email_suppressions.address", blind_index="email"))
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = created_at()


keep_blind_index(Email.to_address, "email")
# EmailSuppression rows are written by Core inserts (blind_index_default fills the key).

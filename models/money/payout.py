"""Provider payouts: where a provider is paid, what it earned per order, and the payouts sent."""

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
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created_at, pk, sql_in, updated_at
from models.crypto import EncryptedJSON, EncryptedText

DESTINATION_KINDS = ("mobile_money", "bank_account")
class EarningStatus(StrEnum):
    """A provider earning: available, in a payout, or paid."""

    AVAILABLE = "available"
    IN_PAYOUT = "in_payout"
    PAID = "paid"


EARNING_STATUSES = tuple(EarningStatus)
class PayoutStatus(StrEnum):
    """A payout: pending (to send), sent to the gateway, paid, or failed (its earnings available again)."""

    PENDING = "pending"
    SENT = "sent"
    PAID = "paid"
    FAILED = "failed"


PAYOUT_STATUSES = tuple(PayoutStatus)


class PayoutDestination(Base):
    __tablename__ = "payout_destinations"
    __table_args__ = (
        CheckConstraint(f"kind IN {DESTINATION_KINDS}", name="kind"),
        Index("uq_payout_destinations_default", "provider_id", "currency", unique=True,
              postgresql_where=text("is_default AND NOT disabled")),
    )

    id: Mapped[int] = pk()
    provider_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("providers.id"), nullable=False, index=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    country_code: Mapped[str] = mapped_column(String(2), nullable=False)
    holder_name: Mapped[str] = mapped_column(String(200), nullable=False)
    # Encrypted at rest (models/crypto.py): the mobile-money number and the bank account number.
    phone: Mapped[str | None] = mapped_column(EncryptedText("payout_destinations.phone"))
    operator: Mapped[str | None] = mapped_column(String(32))
    bank_code: Mapped[str | None] = mapped_column(String(32))
    account_number: Mapped[str | None] = mapped_column(EncryptedText("payout_destinations.account_number"))
    is_default: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    disabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    created_at: Mapped[datetime] = created_at()


class ProviderEarning(Base):
    """A provider's share of one released order. ``amount_minor`` is what is still owed for it
    (reduced by refunds after release); ``released_minor`` what was released at first."""

    __tablename__ = "provider_earnings"
    __table_args__ = (
        CheckConstraint(f"status IN {sql_in(EarningStatus)}", name="status"),
        CheckConstraint("amount_minor >= 0", name="amount_non_negative"),
        Index("ix_provider_earnings_available", "provider_id", "currency",
              postgresql_where=text("status = 'available'")),
    )

    id: Mapped[int] = pk()
    provider_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("providers.id"), nullable=False)
    service_request_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("service_requests.id"), nullable=False, unique=True
    )
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    released_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="available")
    payout_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("payouts.id"), index=True)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class Payout(Base):
    """Money sent to a provider's destination. ``reference`` (``po_...``) is unique and is the
    idempotency key at the gateway: the same payout is never created twice there."""

    __tablename__ = "payouts"
    __table_args__ = (
        CheckConstraint(f"status IN {sql_in(PayoutStatus)}", name="status"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
    )

    id: Mapped[int] = pk()
    reference: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    provider_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("providers.id"), nullable=False, index=True)
    destination_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("payout_destinations.id"), nullable=False)
    # Snapshot sent to the gateway (holds the account number): an encrypted JSON document.
    destination: Mapped[dict] = mapped_column(EncryptedJSON("payouts.destination"), nullable=False)
    gateway: Mapped[str] = mapped_column(String(32), nullable=False)
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="pending")
    gateway_id: Mapped[str | None] = mapped_column(String(120))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    idempotency_key: Mapped[str | None] = mapped_column(String(120))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class PayoutStatusChange(Base):
    __tablename__ = "payout_status_history"

    id: Mapped[int] = pk()
    payout_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("payouts.id"), nullable=False, index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16), nullable=False)
    note: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    created_at: Mapped[datetime] = created_at()

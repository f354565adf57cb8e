"""Payments against service requests, their history, and the webhook inbox."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created_at, pk, sql_in, updated_at


class PaymentStatus(StrEnum):
    """A payment: pending at the gateway, completed (captured into escrow) or failed."""

    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"


PAYMENT_STATUSES = tuple(PaymentStatus)


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint(f"status IN {sql_in(PaymentStatus)}", name="status"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
    )

    id: Mapped[int] = pk()
    service_request_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("service_requests.id"), nullable=False, index=True
    )
    gateway: Mapped[str] = mapped_column(String(32), nullable=False)
    reference: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="pending")
    gateway_event_id: Mapped[str | None] = mapped_column(String(120))
    # The gateway's own id (Checkout Session, access code, order id) and the page the customer pays on.
    gateway_id: Mapped[str | None] = mapped_column(String(120))
    checkout_url: Mapped[str | None] = mapped_column(Text)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    # Set when a gateway reported something we refuse to accept silently (amount or currency
    # mismatch); an admin must look. The payment is not captured into the ledger meanwhile.
    review_reason: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class RefundStatus(StrEnum):
    """A refund: pending at the gateway, succeeded or failed (still owed)."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


REFUND_STATUSES = tuple(RefundStatus)


class Refund(Base):
    """Money going back to a customer through the gateway the payment came from. The ledger moves it
    to ``refunds_payable`` when requested and out to the gateway when the gateway confirms."""

    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint(f"status IN {sql_in(RefundStatus)}", name="status"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
    )

    id: Mapped[int] = pk()
    reference: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    service_request_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("service_requests.id"), nullable=False, index=True
    )
    payment_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("payments.id"), nullable=False)
    gateway: Mapped[str] = mapped_column(String(32), nullable=False)
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="pending")
    reason: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    requested_by_user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    gateway_id: Mapped[str | None] = mapped_column(String(120))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class PaymentStatusChange(Base):
    __tablename__ = "payment_status_history"

    id: Mapped[int] = pk()
    payment_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("payments.id"), nullable=False, index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16), nullable=False)
    gateway_event_id: Mapped[str | None] = mapped_column(String(120))
    note: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    created_at: Mapped[datetime] = created_at()


class WebhookEvent(Base):
    """Inbox of verified gateway webhooks; unique on (gateway, event_id) so duplicates are dropped."""

    __tablename__ = "webhook_inbox"
    __table_args__ = (UniqueConstraint("gateway", "event_id"),)

    id: Mapped[int] = pk()
    gateway: Mapped[str] = mapped_column(String(32), nullable=False)
    event_id: Mapped[str] = mapped_column(String(120), nullable=False)
    event_type: Mapped[str] = mapped_column(String(80), nullable=False)
    # The normalised event (gateways.base.GatewayEvent): our reference, and what moved.
    reference: Mapped[str | None] = mapped_column(String(64))
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    payload: Mapped[dict] = mapped_column(JSONB, nullable=False)
    headers: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default="{}")
    received_at: Mapped[datetime] = created_at()
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    result: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Set when retries ran out (a dead_letters row holds the details); the sweeper leaves it alone.
    dead_lettered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

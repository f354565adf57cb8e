"""Service requests (a purchase of one catalogue tier) and their status history."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created_at, pk, sql_in, updated_at
from models.crypto import EncryptedText, blind_index_column, keep_blind_index


class ServiceRequestStatus(StrEnum):
    """Where an order is in the request state machine (domain/orders/service_request.py)."""

    AWAITING_PAYMENT = "awaiting_payment"
    PAYMENT_CONFIRMED = "payment_confirmed"
    PENDING_CONTACT = "pending_contact"
    TEAM_ASSIGNED = "team_assigned"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


SERVICE_REQUEST_STATUSES = tuple(ServiceRequestStatus)
ACTOR_TYPES = ("customer", "provider", "admin", "system")


class ServiceRequest(Base):
    __tablename__ = "service_requests"
    __table_args__ = (
        CheckConstraint(f"status IN {sql_in(ServiceRequestStatus)}", name="status"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("kind IN ('purchase', 'booking')", name="kind"),
        CheckConstraint("refunded_minor <= captured_minor", name="refund_within_captured"),
        Index("ix_service_requests_release_due", "release_due_at",
              postgresql_where=text("released_at IS NULL AND release_due_at IS NOT NULL")),
        UniqueConstraint("idempotency_scope", "idempotency_key"),
        Index("ix_service_requests_created_at_id", "created_at", "id"),
        # keyset orders of the operator's request table (domain/orders/service_request.py REQUEST_SORTS)
        Index("ix_service_requests_updated_at_id", "updated_at", "id"),
        Index("ix_service_requests_amount_minor_id", "amount_minor", "id"),
        Index("ix_service_requests_status_id", "status", "id"),
    )

    id: Mapped[int] = pk()
    reference: Mapped[str] = mapped_column(String(16), unique=True, nullable=False)
    # purchase: a catalogue tier bought outright; booking: the order of a booking's visits (domain/bookings/booking.py).
    kind: Mapped[str] = mapped_column(String(16), nullable=False, server_default="purchase")
    service_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("services.id"), nullable=False, index=True)
    tier_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("service_tiers.id"), nullable=False)
    customer_user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    customer_name: Mapped[str] = mapped_column(String(200), nullable=False)
    # Encrypted at rest (models/crypto.py); exact lookups by email go through customer_email_bidx.
    customer_email: Mapped[str] = mapped_column(
        EncryptedText("service_requests.customer_email", blind_index="email"), nullable=False
    )
    customer_email_bidx: Mapped[str] = blind_index_column("customer_email", "email")
    customer_phone: Mapped[str | None] = mapped_column(EncryptedText("service_requests.customer_phone"))
    requirements: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    status: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    assigned_provider_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("providers.id"), index=True)
    affiliate_code: Mapped[str | None] = mapped_column(String(40))
    # What the customer pays: price + guest surcharge (minor units of ``currency``).
    amount_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    # Fee snapshot taken at purchase (domain.fees): later fee changes never alter this order.
    price_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    guest_surcharge_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    # Part of price_minor (the provider's side): the urgent-ticket surcharge on a booking's price.
    urgent_surcharge_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    commission_bps: Mapped[int] = mapped_column(Integer, nullable=False)
    guest_surcharge_bps: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    affiliate_commission_bps: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    # Escrow: captured -> (refunds) -> released on completion. ``settled_*`` are what is left of
    # each share after release and later refunds (provider, platform incl. surcharge, affiliate).
    captured_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    refunded_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    # The stripe of the ledger's hot accounts every posting about this order uses (domain/money/ledger.py);
    # drawn at creation, 0 for orders from before striping.
    ledger_stripe: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="0")
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    release_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    settled_provider_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    settled_platform_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    settled_affiliate_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    notes: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    idempotency_scope: Mapped[str | None] = mapped_column(String(340))
    idempotency_key: Mapped[str | None] = mapped_column(String(120))
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class ServiceRequestStatusChange(Base):
    """One row per transition, written in the same transaction as the change (never updated)."""

    __tablename__ = "service_request_status_history"
    __table_args__ = (CheckConstraint(f"actor_type IN {ACTOR_TYPES}", name="actor_type"),)

    id: Mapped[int] = pk()
    service_request_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("service_requests.id"), nullable=False, index=True
    )
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str] = mapped_column(String(32), nullable=False)
    actor_type: Mapped[str] = mapped_column(String(16), nullable=False)
    actor_user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    note: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    created_at: Mapped[datetime] = created_at()


keep_blind_index(ServiceRequest.customer_email, "email")

"""Contracts of orders and bookings: versions and the parties' acceptances.

A contract belongs to exactly one subject: a catalogue order (``service_request_id``) or a booking's
visit (``booking_id``). Each change of its terms makes a new version (1, 2 ...); the previous one
gets ``superseded_at``. Rows are never deleted; the body is the exact text both parties saw and
``sha256`` is the hex SHA-256 of its UTF-8 bytes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created_at, pk

CONTRACT_PARTIES = ("customer", "provider")


class Contract(Base):
    """One version of the contract of an order or a booking. ``terms`` (JSON) is what the body was
    rendered from: ``{"kind", "reference", "scope", "parties", "price", "schedule", "cancellation"}``
    with money in minor units plus the currency (domain/orders/contract.py ``terms_of``)."""

    __tablename__ = "contracts"
    __table_args__ = (
        CheckConstraint("(service_request_id IS NULL) <> (booking_id IS NULL)", name="one_subject"),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="sha256_hex"),
        UniqueConstraint("service_request_id", "version"),
        UniqueConstraint("booking_id", "version"),
        # At most one current (not superseded) version per subject.
        Index("uq_contracts_current_request", "service_request_id", unique=True,
              postgresql_where=text("superseded_at IS NULL AND service_request_id IS NOT NULL")),
        Index("uq_contracts_current_booking", "booking_id", unique=True,
              postgresql_where=text("superseded_at IS NULL AND booking_id IS NOT NULL")),
    )

    id: Mapped[int] = pk()
    service_request_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("service_requests.id"))
    booking_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("bookings.id"))
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    # The provider named in this version (its account accepts as the provider party).
    provider_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("providers.id"), nullable=False, index=True)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    terms: Mapped[dict] = mapped_column(JSONB, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = created_at()
    superseded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ContractAcceptance(Base):
    """A party's acceptance of one contract version: who (``user_id``; NULL for a guest customer who
    accepted through the order's signed link), when, from which IP address and user agent."""

    __tablename__ = "contract_acceptances"
    __table_args__ = (
        CheckConstraint(f"party IN {CONTRACT_PARTIES}", name="party"),
        UniqueConstraint("contract_id", "party"),
    )

    id: Mapped[int] = pk()
    contract_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("contracts.id"), nullable=False, index=True)
    party: Mapped[str] = mapped_column(String(16), nullable=False)
    user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(400))

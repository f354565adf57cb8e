"""Disputes on orders: while one is open, no payout touches that order's money."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created_at, pk, sql_in


class DisputeStatus(StrEnum):
    """A dispute: open (the order's money held) or resolved."""

    OPEN = "open"
    RESOLVED = "resolved"


DISPUTE_STATUSES = tuple(DisputeStatus)
DISPUTE_RESOLUTIONS = ("release", "refund_full", "refund_partial")


class Dispute(Base):
    __tablename__ = "disputes"
    __table_args__ = (
        CheckConstraint(f"status IN {sql_in(DisputeStatus)}", name="status"),
        CheckConstraint(f"resolution IS NULL OR resolution IN {DISPUTE_RESOLUTIONS}", name="resolution"),
        # At most one open dispute per order.
        Index("uq_disputes_open", "service_request_id", unique=True, postgresql_where=text("status = 'open'")),
    )

    id: Mapped[int] = pk()
    service_request_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("service_requests.id"), nullable=False, index=True
    )
    opened_by_user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    opened_by_role: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="open")
    resolution: Mapped[str | None] = mapped_column(String(16))
    refund_minor: Mapped[int | None] = mapped_column(BigInteger)
    resolution_note: Mapped[str | None] = mapped_column(Text)
    resolved_by_user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    created_at: Mapped[datetime] = created_at()
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

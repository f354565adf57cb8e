"""Transactional outbox: jobs and live events written with the change that caused them,
dispatched to Dramatiq / pub-sub only after that transaction commits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created_at, pk

OUTBOX_KINDS = ("actor", "event")


class OutboxMessage(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(f"kind IN {OUTBOX_KINDS}", name="kind"),
        Index("ix_outbox_pending", "id", postgresql_where=text("dispatched_at IS NULL")),
    )

    id: Mapped[int] = pk()
    kind: Mapped[str] = mapped_column(String(8), nullable=False)
    # actor: Dramatiq queue + actor name; event: pub/sub channel in ``target``.
    queue: Mapped[str | None] = mapped_column(String(80))
    target: Mapped[str] = mapped_column(String(200), nullable=False)
    payload: Mapped[dict] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = created_at()
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)

"""In-app notifications: each user's feed, a stream of rows with increasing ids."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created_at, pk

# What a notification is about (``kind``); domain/messaging/feed.py documents who gets which.
NOTIFICATION_KINDS = (
    "service_request_status", "booking_status", "chat_message", "payout", "dispute", "escalation",
)
# The related object (``subject_type``): a GraphQL type name, so clients get a global id to link to.
SUBJECT_TYPES = ("ServiceRequest", "Booking", "Payout", "Dispute", "Escalation", "Conversation")


class Notification(Base):
    """One entry of one user's feed. Per user, ids increase in commit order (domain/messaging/feed.py inserts
    them under a per-user advisory lock at commit time). ``body`` is plain text, never markup."""

    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint(f"kind IN {NOTIFICATION_KINDS}", name="kind"),
        CheckConstraint(
            f"(subject_type IS NULL AND subject_id IS NULL) OR (subject_type IN {SUBJECT_TYPES} AND subject_id IS NOT NULL)",
            name="subject",
        ),
        Index("ix_notifications_user_id_id", "user_id", "id"),
        # The unread count and "unread only" pages read only this (small) part of the feed.
        Index("ix_notifications_unread", "user_id", "id", postgresql_where=text("read_at IS NULL")),
    )

    id: Mapped[int] = pk()
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    subject_type: Mapped[str | None] = mapped_column(String(40))
    subject_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = created_at()
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

"""Conversations (one per service request, booking or ticket), their messages (monotonic ids, each
pointing at the previous message of its conversation) and per-participant read receipts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created_at, pk


class Conversation(Base):
    """The chat about exactly one service request, booking or ticket (CHECK ``subject``).

    ``last_message_id`` and ``last_activity_at`` are written under the row's ``FOR NO KEY UPDATE``
    lock by every send (domain/messaging/chat.py), so they give the ``prev`` of the next message and the
    order of ``myConversations`` (most recent activity first; creation time until a message)."""

    __tablename__ = "conversations"
    __table_args__ = (
        CheckConstraint("num_nonnulls(service_request_id, booking_id, ticket_id) = 1", name="subject"),
        Index("ix_conversations_activity", text("last_activity_at DESC"), text("id DESC")),
    )

    id: Mapped[int] = pk()
    service_request_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("service_requests.id"), unique=True
    )
    booking_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("bookings.id"), unique=True)
    ticket_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("tickets.id"), unique=True)
    last_message_id: Mapped[int | None] = mapped_column(BigInteger)
    last_activity_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    created_at: Mapped[datetime] = created_at()


class ChatMessage(Base):
    """A message; ``prev_id`` is the id of the conversation's previous message (0 for the first),
    read under the conversation's lock when it was inserted."""

    __tablename__ = "chat_messages"
    __table_args__ = (Index("ix_chat_messages_conversation_id_id", "conversation_id", "id"),)

    id: Mapped[int] = pk()
    conversation_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("conversations.id"), nullable=False)
    sender_user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    prev_id: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    created_at: Mapped[datetime] = created_at()


class ChatRead(Base):
    """How far one participant has read one conversation: the id of the last message read (never
    moves backwards) and when it was marked."""

    __tablename__ = "chat_reads"

    conversation_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), primary_key=True, index=True)
    last_read_message_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    read_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

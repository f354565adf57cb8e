"""Conversations (one per service request) and their messages (monotonic ids)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created_at, pk


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[int] = pk()
    service_request_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("service_requests.id"), nullable=False, unique=True
    )
    created_at: Mapped[datetime] = created_at()


class ChatMessage(Base):
    __tablename__ = "chat_messages"
    __table_args__ = (Index("ix_chat_messages_conversation_id_id", "conversation_id", "id"),)

    id: Mapped[int] = pk()
    conversation_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("conversations.id"), nullable=False)
    sender_user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = created_at()

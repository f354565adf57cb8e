"""Live events of messaging (domain/shared/events.py)."""

from __future__ import annotations

from domain.shared.events import LiveEvent, register


@register
class ChatMessageEvent(LiveEvent):
    """A new chat message, on ``odim:conversation:<id>``. ``created_at``: ISO 8601 UTC; ``prev_id`` =
    ``prev`` (the conversation's previous message, 0 for the first)."""

    channel_prefix = "odim:conversation:"

    conversation_id: int
    sender_user_id: int
    sender_name: str
    body: str
    created_at: str
    prev_id: int


@register
class NotificationEvent(LiveEvent):
    """A new in-app notification, on ``odim:notifications:<user id>``. Times: ISO 8601 UTC."""

    channel_prefix = "odim:notifications:"

    userId: int
    kind: str
    title: str
    body: str
    subjectType: str | None
    subjectId: int | None
    createdAt: str | None
    readAt: str | None

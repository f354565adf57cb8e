"""Chat in a service request's conversation between its customer, its assigned provider and admins."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain import live, outbox
from domain.errors import DomainError, Forbidden, NotFound
from models import ChatMessage, Conversation, Provider, ServiceRequest, User

MAX_BODY = 4000


class EmptyMessage(DomainError):
    code = "EMPTY"
    field = "body"


class MessageTooLong(DomainError):
    code = "TOO_LONG"
    field = "body"


@dataclass(frozen=True)
class MessageView:
    id: int
    conversation_id: int
    sender_user_id: int
    sender_name: str
    body: str
    created_at: str  # ISO 8601 UTC


async def can_access(session: AsyncSession, conversation: Conversation, user: User | None) -> bool:
    """Participants: the request's customer account, the assigned provider's account, and admins."""
    if user is None:
        return False
    if user.role == "admin":
        return True
    request = await session.get(ServiceRequest, conversation.service_request_id)
    if request is None:
        return False
    if request.customer_user_id == user.id:
        return True
    if request.assigned_provider_id is not None:
        owner = await session.scalar(select(Provider.user_id).where(Provider.id == request.assigned_provider_id))
        return owner == user.id
    return False


async def get_conversation(session: AsyncSession, conversation_id: int, user: User | None) -> Conversation:
    """Raises ``NotFound`` or ``Forbidden`` (not a participant)."""
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFound("No such conversation", field="conversationId")
    if not await can_access(session, conversation, user):
        raise Forbidden("You are not a participant of this conversation")
    return conversation


async def send_message(session: AsyncSession, user: User, conversation_id: int, body: str) -> MessageView:
    """Store a message (1-4000 characters after trimming, kept as plain text) and publish it to the
    conversation's subscribers after commit. Raises ``NotFound``, ``Forbidden``, ``EmptyMessage``,
    ``MessageTooLong``; on any error nothing is stored."""
    text = body.strip()
    if not text:
        raise EmptyMessage("Message is empty")
    if len(text) > MAX_BODY:
        raise MessageTooLong(f"Messages are limited to {MAX_BODY} characters")
    await get_conversation(session, conversation_id, user)
    message = ChatMessage(conversation_id=conversation_id, sender_user_id=user.id, body=text)
    session.add(message)
    await session.flush()
    view = MessageView(message.id, conversation_id, user.id, user.full_name, text, message.created_at.isoformat())
    outbox.publish_event(session, live.conversation_channel(conversation_id), view.__dict__)
    return view


def encode_cursor(message_id: int) -> str:
    return base64.urlsafe_b64encode(f"m{message_id}".encode()).decode()


def decode_cursor(cursor: str, field: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode()).decode()
        if not raw.startswith("m"):
            raise ValueError(raw)
        return int(raw[1:])
    except (ValueError, UnicodeDecodeError) as exc:
        raise DomainError("Malformed cursor", field=field, code="INVALID_CURSOR") from exc


async def list_messages(
    session: AsyncSession, conversation_id: int, *, first: int = 50, after: str | None = None, before: str | None = None
) -> tuple[list[MessageView], bool, bool]:
    """A page of messages, oldest first in the page. With ``after``: the ``first`` messages after that
    cursor; with ``before``: the ``first`` messages just before it; with neither: the latest ``first``.
    Returns ``(messages, has_next_page, has_previous_page)``; keyset on the message id, 1 statement
    (plus one for sender names)."""
    stmt = select(ChatMessage, User.full_name).join(User, User.id == ChatMessage.sender_user_id).where(
        ChatMessage.conversation_id == conversation_id
    )
    if after:
        stmt = stmt.where(ChatMessage.id > decode_cursor(after, "after")).order_by(ChatMessage.id.asc())
    else:
        if before:
            stmt = stmt.where(ChatMessage.id < decode_cursor(before, "before"))
        stmt = stmt.order_by(ChatMessage.id.desc())
    rows = (await session.execute(stmt.limit(first + 1))).all()
    more = len(rows) > first
    rows = rows[:first]
    views = [
        MessageView(m.id, m.conversation_id, m.sender_user_id, name, m.body, m.created_at.isoformat()) for m, name in rows
    ]
    if after:
        return views, more, True
    views.reverse()
    return views, before is not None, more

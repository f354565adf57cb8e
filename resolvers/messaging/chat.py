"""Chat resolvers: send, page history, poll, mark read, list the viewer's conversations, the
conversation of a booking or ticket, and authorise subscriptions.

Message cursors everywhere (edges, ``before``/``after``, ``since``, ``upTo``, the subscription's
``after``) are ChatMessage global ids; raw integers are accepted too (resolvers/ids.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from strawberry.dataloader import DataLoader

from domain.messaging import chat
from domain.shared import outbox
from domain.shared.errors import DomainError, Forbidden, NotFound
from models import Conversation
from models.db import session_scope
from resolvers.context import Context, forbidden
from resolvers.errors import PayloadError, bad_input, to_payload_error
from resolvers.ids import decode_id
from resolvers.pagination import page_size


@dataclass(frozen=True)
class ChatPayloadError(PayloadError):
    """A payload error; ``retry_after_seconds`` is set for RATE_LIMITED."""

    retry_after_seconds: int | None = None


def _payload_error(exc: DomainError) -> ChatPayloadError:
    e = to_payload_error(exc)  # FORBIDDEN becomes a top-level error
    return ChatPayloadError(e.field, e.code, e.message, getattr(exc, "retry_after_seconds", None))


def message_id(value: str | None, field: str) -> int | None:
    """The database id of ChatMessage global id ``value`` (None stays None). Raises ``InvalidId``."""
    return None if value is None else decode_id(value, "ChatMessage", field=field)


@dataclass
class SendResult:
    message: chat.MessageView | None
    errors: list[ChatPayloadError]


async def send_message(ctx: Context, *, conversation_id: str, body: str) -> SendResult:
    """sendChatMessage: UNAUTHENTICATED when anonymous, FORBIDDEN for non-participants; the domain's
    other errors (EMPTY, TOO_LONG, RATE_LIMITED with its seconds, NOT_FOUND, INVALID_ID) as payload
    errors. Relays the outbox after commit (the event reaches subscribers at once)."""
    user = await ctx.require_user()
    try:
        cid = decode_id(conversation_id, "Conversation", field="conversationId")
        async with session_scope() as session:
            message = await chat.send_message(session, user, cid, body)
    except DomainError as exc:
        return SendResult(None, [_payload_error(exc)])
    await outbox.relay_quietly()
    return SendResult(message, [])


async def messages(
    ctx: Context, conversation_id: int, *, first: int | None, after: str | None, before: str | None
) -> tuple[list[chat.MessageView], bool, bool]:
    """A page of history (``chat.list_messages``); ``after``/``before`` are ChatMessage ids. Top-level
    errors: UNAUTHENTICATED, FORBIDDEN, INVALID_ID, INVALID_PAGE_SIZE."""
    viewer = await ctx.require_user()  # anonymous: UNAUTHENTICATED (only participants may read)
    try:
        size = page_size(first, 50)
        after_id, before_id = message_id(after, "after"), message_id(before, "before")
        async with ctx.db() as session:
            await chat.get_conversation(session, conversation_id, viewer)
            return await chat.list_messages(session, conversation_id, first=size, after=after_id, before=before_id)
    except Forbidden as exc:
        raise forbidden(exc.message) from exc
    except DomainError as exc:
        raise bad_input(exc) from exc


async def messages_since(
    ctx: Context, *, conversation_id: str, since: str | None, first: int | None
) -> list[chat.MessageView]:
    """Polling: messages with id > ``since`` (all when null), oldest first, at most ``first``
    (default 100, at most 100). Participants only: FORBIDDEN for anyone else and for unknown
    conversations (their existence is not revealed)."""
    viewer = await ctx.require_user()
    try:
        size = page_size(first, 100)
        cid = decode_id(conversation_id, "Conversation", field="conversationId")
        after = message_id(since, "since") or 0
        async with ctx.db() as session:
            await chat.get_conversation(session, cid, viewer)
            return await chat.messages_after(session, cid, after, size)
    except (Forbidden, NotFound) as exc:
        raise forbidden("You are not a participant of this conversation") from exc
    except DomainError as exc:
        raise bad_input(exc) from exc


@dataclass
class MarkReadResult:
    conversation: Conversation | None
    receipt: chat.ReadReceipt | None
    errors: list[ChatPayloadError]


async def mark_read(ctx: Context, *, conversation_id: str, up_to: str | None) -> MarkReadResult:
    """markConversationRead: ``up_to`` a ChatMessage id (None: the latest). UNAUTHENTICATED /
    FORBIDDEN top-level; NOT_FOUND and INVALID_ID (conversationId, upTo) as payload errors."""
    user = await ctx.require_user()
    try:
        cid = decode_id(conversation_id, "Conversation", field="conversationId")
        up_to_id = message_id(up_to, "upTo")
        async with session_scope() as session:
            receipt = await chat.mark_read(session, user, cid, up_to=up_to_id)
            conversation = await session.get(Conversation, cid)
    except DomainError as exc:
        return MarkReadResult(None, None, [_payload_error(exc)])
    ctx.loaders.pop("chat_unread_counts", None)  # the payload's unreadCount must see the new receipt
    ctx.loaders.pop("chat_read_receipts", None)
    return MarkReadResult(conversation, receipt, [])


async def my_conversations(
    ctx: Context, *, first: int | None, after: str | None
) -> tuple[list[tuple[Conversation, str]], bool]:
    """myConversations for the logged-in viewer (UNAUTHENTICATED otherwise); INVALID_CURSOR,
    INVALID_PAGE_SIZE as top-level errors."""
    viewer = await ctx.require_user()
    try:
        size = page_size(first, 20)
        async with ctx.db() as session:
            return await chat.my_conversations(session, viewer, first=size, after=after)
    except DomainError as exc:
        raise bad_input(exc) from exc


async def conversation_nodes(ctx: Context, ids: list[int]) -> list[Conversation | None]:
    """``node(id:)``: each conversation if the viewer may access it, else None."""
    viewer = await ctx.viewer()
    out: list[Conversation | None] = []
    async with ctx.db() as session:
        for ident in ids:
            conversation = await session.get(Conversation, ident)
            out.append(conversation if conversation and await chat.can_access(session, conversation, viewer) else None)
    return out


# --- per-request loaders ------------------------------------------------------------------------------


def _loader(ctx: Context, name: str, batch: Callable[[list[Any]], Any]) -> DataLoader:
    loader = ctx.loaders.get(name)
    if loader is None:
        loader = DataLoader(load_fn=batch)
        ctx.loaders[name] = loader
    return loader


def _subject_loader(ctx: Context, kind: str) -> DataLoader:
    """Conversations by subject id, created when missing (in their own committed transaction)."""

    async def batch(ids: list[int]) -> list[Conversation]:
        async with session_scope() as session:
            found = await chat.conversations_for(session, kind, ids)
        return [found[i] for i in ids]

    return _loader(ctx, f"chat_conversations_{kind}", batch)


async def booking_conversation(ctx: Context, booking_id: int) -> Conversation | None:
    """The conversation of a booking the viewer may see (its customer, its provider, an admin: the
    booking's participants exactly); created on first access. Null for anonymous callers."""
    if await ctx.viewer() is None:
        return None
    return await _subject_loader(ctx, "booking").load(booking_id)


async def ticket_conversation(ctx: Context, ticket_id: int) -> Conversation | None:
    """The conversation of a ticket the viewer may see, or null when the viewer is not one of its
    participants (a provider whose visits on it never went past a hold, say); created on first access."""
    viewer = await ctx.viewer()
    if viewer is None:
        return None
    if viewer.role != "admin":
        async def batch(ids: list[int]) -> list[set[int]]:
            async with ctx.db() as session:
                found = await chat.ticket_participants(session, ids)
            return [found[i] for i in ids]

        if viewer.id not in await _loader(ctx, "chat_ticket_participants", batch).load(ticket_id):
            return None
    return await _subject_loader(ctx, "ticket").load(ticket_id)


def unread_counts(ctx: Context) -> DataLoader:
    """The viewer's unread count per conversation id: one statement per batch."""

    async def batch(ids: list[int]) -> list[int]:
        viewer = await ctx.require_user()
        async with ctx.db() as session:
            found = await chat.unread_counts(session, viewer.id, ids)
        return [found[i] for i in ids]

    return _loader(ctx, "chat_unread_counts", batch)


def read_receipts(ctx: Context) -> DataLoader:
    """Read receipts per conversation id: one statement per batch."""

    async def batch(ids: list[int]) -> list[list[chat.ReadReceipt]]:
        async with ctx.db() as session:
            found = await chat.read_receipts(session, ids)
        return [found[i] for i in ids]

    return _loader(ctx, "chat_read_receipts", batch)


def messages_by_id(ctx: Context) -> DataLoader:
    """Messages by id (conversations' last messages): one statement per batch."""

    async def batch(ids: list[int]) -> list[chat.MessageView | None]:
        async with ctx.db() as session:
            found = await chat.messages_by_id(session, ids)
        return [found.get(i) for i in ids]

    return _loader(ctx, "chat_messages_by_id", batch)


# --- subscriptions ------------------------------------------------------------------------------------


async def authorise_subscription(ctx: Context, conversation_id: str) -> int:
    """The conversation id when the connection's user is a participant; FORBIDDEN otherwise."""
    viewer = await ctx.require_user()
    try:
        cid = decode_id(conversation_id, "Conversation", field="conversationId")
        async with session_scope() as session:
            await chat.get_conversation(session, cid, viewer)
    except (Forbidden, NotFound) as exc:
        raise forbidden("You are not a participant of this conversation") from exc
    except DomainError as exc:
        raise bad_input(exc) from exc
    finally:
        await ctx.close()  # never keep a session open for the life of a WebSocket
    return cid


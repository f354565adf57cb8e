"""Chat resolvers: send, page history, authorise subscriptions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from domain import chat, live, outbox
from domain.errors import DomainError, Forbidden, NotFound
from models import Conversation
from models.db import session_scope
from resolvers.context import Context, forbidden
from resolvers.errors import PayloadError, to_payload_error
from resolvers.ids import decode_id
from resolvers.provider import bad_input, page_size
from resolvers.service_request import live_events


@dataclass
class SendResult:
    message: chat.MessageView | None
    errors: list[PayloadError]


async def send_message(ctx: Context, *, conversation_id: str, body: str) -> SendResult:
    user = await ctx.require_user()
    try:
        cid = decode_id(conversation_id, "Conversation", field="conversationId")
        async with session_scope() as session:
            message = await chat.send_message(session, user, cid, body)
    except DomainError as exc:
        return SendResult(None, [to_payload_error(exc)])
    await outbox.relay_quietly()
    return SendResult(message, [])


async def messages(
    ctx: Context, conversation_id: int, *, first: int | None, after: str | None, before: str | None
) -> tuple[list[chat.MessageView], bool, bool]:
    viewer = await ctx.require_user()  # anonymous: UNAUTHENTICATED (only participants may read)
    try:
        size = page_size(first, 50)
        async with ctx.db() as session:
            await chat.get_conversation(session, conversation_id, viewer)
            return await chat.list_messages(session, conversation_id, first=size, after=after, before=before)
    except Forbidden as exc:
        raise forbidden(exc.message) from exc
    except DomainError as exc:
        raise bad_input(exc) from exc


async def conversation_nodes(ctx: Context, ids: list[int]) -> list[Conversation | None]:
    viewer = await ctx.viewer()
    out: list[Conversation | None] = []
    async with ctx.db() as session:
        for ident in ids:
            conversation = await session.get(Conversation, ident)
            out.append(conversation if conversation and await chat.can_access(session, conversation, viewer) else None)
    return out


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


async def message_events(ctx: Context, conversation_id: str) -> AsyncIterator[dict]:
    """Live messages of a conversation the connection's user takes part in (FORBIDDEN otherwise)."""
    cid = await authorise_subscription(ctx, conversation_id)
    async for event in live_events(live.conversation_channel(cid)):
        yield event

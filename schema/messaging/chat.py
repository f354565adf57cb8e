"""Conversations and chat messages in GraphQL: their types, inputs, payloads and ChatError codes.
The root fields (``myConversations``, ``chatMessagesSince``, ``sendChatMessage``,
``markConversationRead``, ``chatMessageAdded``) are in schema/messaging/root.py. Every message
cursor is a ChatMessage global id.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from enum import Enum

import strawberry
from strawberry import relay

from domain.messaging import chat as chat_domain
from domain.messaging.chat import MessageView
from domain.messaging.errors import MessagingErrorCode
from domain.shared.errors import CommonErrorCode
from models import Conversation as ConversationModel
from resolvers.ids import encode_id
from resolvers.messaging import chat as chat_resolvers
from schema.shared.common import coded_errors, error_code_enum, page_info

SUBJECT_TYPE_NAMES = {"service_request": "ServiceRequest", "booking": "Booking", "ticket": "Ticket"}
_MESSAGE_FIELDS = tuple(f.name for f in dataclasses.fields(MessageView))


def message_gid(message_id: int) -> strawberry.ID:
    return strawberry.ID(encode_id("ChatMessage", message_id))


@strawberry.type(description="A message. Its `id` is the cursor everywhere: `messages(before/after)`, "
                 "`chatMessagesSince(since)`, `markConversationRead(upTo)` and `chatMessageAdded(after)`.")
class ChatMessage(relay.Node):
    id: relay.NodeID[int]
    conversation_id: strawberry.ID
    sender_id: strawberry.ID = strawberry.field(description="Global id of the sending User.")
    sender_name: str
    body: str = strawberry.field(description="Plain text, as sent; render it as text, never as markup.")
    created_at: str = strawberry.field(description="ISO 8601, UTC.")

    @classmethod
    def of(cls, m: MessageView) -> "ChatMessage":
        return cls(
            id=m.id, conversation_id=strawberry.ID(encode_id("Conversation", m.conversation_id)),
            sender_id=strawberry.ID(encode_id("User", m.sender_user_id)), sender_name=m.sender_name,
            body=m.body, created_at=m.created_at,
        )

    @classmethod
    def from_payload(cls, e: dict) -> "ChatMessage":
        """From a stream payload (domain/messaging/chat.py ``send_message``)."""
        return cls.of(MessageView(**{name: e[name] for name in _MESSAGE_FIELDS}))

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False):
        return [None for _ in node_ids]  # messages are read through their conversation


@strawberry.type
class ChatMessageEdge:
    cursor: str = strawberry.field(description="The message's global id (the same value as ChatMessage `id`).")
    node: ChatMessage


@strawberry.type
class ChatMessageConnection:
    edges: list[ChatMessageEdge]
    page_info: relay.PageInfo


@strawberry.enum(description="What a conversation is about.")
class ConversationSubjectType(Enum):
    SERVICE_REQUEST = "service_request"
    BOOKING = "booking"
    TICKET = "ticket"


@strawberry.type(description="How far a participant has read a conversation (never moves backwards).")
class ReadReceipt:
    user_id: strawberry.ID = strawberry.field(description="Global id of the User.")
    last_read_message_id: strawberry.ID = strawberry.field(description="Global id of the last ChatMessage read.")
    read_at: datetime = strawberry.field(description="When it was marked read (UTC).")

    @classmethod
    def of(cls, r: chat_domain.ReadReceipt) -> "ReadReceipt":
        return cls(user_id=strawberry.ID(encode_id("User", r.user_id)),
                   last_read_message_id=message_gid(r.last_read_message_id), read_at=r.read_at)


@strawberry.type(description="The chat about one service request, booking or ticket. Participants: its customer, "
                 "its provider (a ticket: the providers of its paid or accepted visits) and admins; nobody else "
                 "can read it, post in it or subscribe to it.")
class Conversation(relay.Node):
    id: relay.NodeID[int]
    subject_type: ConversationSubjectType
    subject_id: strawberry.ID = strawberry.field(description="Global id of the ServiceRequest, Booking or Ticket.")
    last_activity_at: datetime = strawberry.field(description="The last message's time, else the creation time (UTC).")
    _last_message_id: strawberry.Private[int | None]

    @classmethod
    def of(cls, c: ConversationModel) -> "Conversation":
        kind, subject_id = chat_domain.subject_of(c)
        return cls(id=c.id, subject_type=ConversationSubjectType(kind),
                   subject_id=strawberry.ID(encode_id(SUBJECT_TYPE_NAMES[kind], subject_id)),
                   last_activity_at=c.last_activity_at, _last_message_id=c.last_message_id)

    @strawberry.field(description="The latest message, if any.")
    async def last_message(self, info: strawberry.Info) -> ChatMessage | None:
        if self._last_message_id is None:
            return None
        view = await chat_resolvers.messages_by_id(info.context).load(self._last_message_id)
        return ChatMessage.of(view) if view else None

    @strawberry.field(description="Messages by others after the last one you marked read.")
    async def unread_count(self, info: strawberry.Info) -> int:
        return await chat_resolvers.unread_counts(info.context).load(int(self.id))

    @strawberry.field(description="Each participant's read receipt (those who ever marked it read), by user.")
    async def read_receipts(self, info: strawberry.Info) -> list[ReadReceipt]:
        return [ReadReceipt.of(r) for r in await chat_resolvers.read_receipts(info.context).load(int(self.id))]

    @strawberry.field(description="Messages oldest first within the page. No cursor: the latest `first`; "
                      "`before`: older messages; `after`: newer messages. Cursors are ChatMessage ids "
                      "(edges' `cursor` = the message's `id`), as in `chatMessagesSince` and `chatMessageAdded`. "
                      "`first` is at most 100.")
    async def messages(
        self, info: strawberry.Info, first: int | None = 50, after: str | None = None, before: str | None = None,
    ) -> ChatMessageConnection:
        views, has_next, has_previous = await chat_resolvers.messages(
            info.context, int(self.id), first=first, after=after, before=before
        )
        edges = [ChatMessageEdge(cursor=message_gid(v.id), node=ChatMessage.of(v)) for v in views]
        return ChatMessageConnection(
            edges=edges,
            page_info=page_info(edges, has_next=has_next, has_previous=has_previous),
        )

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False):
        found = await chat_resolvers.conversation_nodes(info.context, [int(i) for i in node_ids])
        return [cls.of(c) if c else None for c in found]


@strawberry.type
class ConversationEdge:
    cursor: str
    node: Conversation


@strawberry.type
class ConversationConnection:
    edges: list[ConversationEdge]
    page_info: relay.PageInfo


ChatErrorCode = error_code_enum("ChatErrorCode", [
    MessagingErrorCode.EMPTY, CommonErrorCode.TOO_LONG, CommonErrorCode.RATE_LIMITED,
    CommonErrorCode.NOT_FOUND, CommonErrorCode.INVALID_ID, CommonErrorCode.INVALID,
], description="RATE_LIMITED: too many messages from your account; wait the payload's "
                 "`retryAfterSeconds`.")


@strawberry.type
class ChatError:
    field: str | None
    code: ChatErrorCode
    message: str


def chat_errors(errors) -> list[ChatError]:
    return coded_errors(ChatErrorCode, ChatError, errors)


def retry_after(errors) -> int | None:
    """The seconds to wait of a RATE_LIMITED error among ``errors`` (None without one)."""
    return next((e.retry_after_seconds for e in errors if getattr(e, "retry_after_seconds", None)), None)


@strawberry.input
class SendChatMessageInput:
    conversation_id: strawberry.ID
    body: str = strawberry.field(description="1 to 4000 characters of plain text.")


@strawberry.type
class SendChatMessagePayload:
    message: ChatMessage | None
    errors: list[ChatError]
    retry_after_seconds: int | None = strawberry.field(
        default=None, description="With a RATE_LIMITED error: seconds until a message is accepted again; else null."
    )


@strawberry.input
class MarkConversationReadInput:
    conversation_id: strawberry.ID
    up_to: strawberry.ID | None = strawberry.field(
        default=None, description="The last ChatMessage read; default: the conversation's latest message."
    )


@strawberry.type
class MarkConversationReadPayload:
    conversation: Conversation | None
    read_receipt: ReadReceipt | None = strawberry.field(
        description="Your receipt as it is now (null when the conversation has no message yet)."
    )
    errors: list[ChatError]

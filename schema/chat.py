"""Conversations and chat messages in GraphQL."""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

import strawberry
from strawberry import relay

from domain.chat import MessageView, encode_cursor
from resolvers import chat as chat_resolvers
from resolvers.ids import encode_id
from schema.common import coded_errors, page_info


@strawberry.type
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
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False):
        return [None for _ in node_ids]  # messages are read through their conversation


@strawberry.type
class ChatMessageEdge:
    cursor: str
    node: ChatMessage


@strawberry.type
class ChatMessageConnection:
    edges: list[ChatMessageEdge]
    page_info: relay.PageInfo


@strawberry.type
class Conversation(relay.Node):
    id: relay.NodeID[int]

    @strawberry.field(description="Messages oldest first within the page. No cursor: the latest `first`; "
                      "`before`: older messages; `after`: newer messages. `first` is at most 100.")
    async def messages(
        self, info: strawberry.Info, first: int | None = 50, after: str | None = None, before: str | None = None
    ) -> ChatMessageConnection:
        views, has_next, has_previous = await chat_resolvers.messages(
            info.context, int(self.id), first=first, after=after, before=before
        )
        edges = [ChatMessageEdge(cursor=encode_cursor(v.id), node=ChatMessage.of(v)) for v in views]
        return ChatMessageConnection(
            edges=edges,
            page_info=page_info(edges, has_next=has_next, has_previous=has_previous),
        )

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False):
        found = await chat_resolvers.conversation_nodes(info.context, [int(i) for i in node_ids])
        return [cls(id=c.id) if c else None for c in found]


@strawberry.enum
class ChatErrorCode(Enum):
    EMPTY = "EMPTY"
    TOO_LONG = "TOO_LONG"
    NOT_FOUND = "NOT_FOUND"
    INVALID_ID = "INVALID_ID"
    INVALID = "INVALID"


@strawberry.type
class ChatError:
    field: str | None
    code: ChatErrorCode
    message: str


def chat_errors(errors) -> list[ChatError]:
    return coded_errors(ChatErrorCode, ChatError, errors)


@strawberry.input
class SendChatMessageInput:
    conversation_id: strawberry.ID
    body: str = strawberry.field(description="1 to 4000 characters of plain text.")


@strawberry.type
class SendChatMessagePayload:
    message: ChatMessage | None
    errors: list[ChatError]

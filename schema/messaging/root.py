"""Root fields of messaging: conversations and their messages, the in-app notification feed, email
preferences and the admins' email log, and the live ``chatMessageAdded`` and ``notificationAdded``
(served by shared fan-out too, schema/shared/live.py)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry

from resolvers import live as live_resolvers
from resolvers.messaging import chat as chat_resolvers
from resolvers.messaging import email as email_resolvers
from resolvers.messaging import feed as feed_resolvers
from schema.messaging.chat import (
    ChatMessage,
    Conversation,
    ConversationConnection,
    ConversationEdge,
    MarkConversationReadInput,
    MarkConversationReadPayload,
    ReadReceipt,
    SendChatMessageInput,
    SendChatMessagePayload,
    chat_errors,
    retry_after,
)
from schema.messaging.email import (
    Email,
    EmailConnection,
    EmailEdge,
    EmailPreferences,
    EmailStatus,
    SetEmailOptOutInput,
    SetEmailOptOutPayload,
    SetNotificationPreferenceInput,
    SetNotificationPreferencePayload,
    email_preference_errors,
    preferences_or_none,
)
from schema.messaging.feed import (
    MarkNotificationsReadInput,
    MarkNotificationsReadPayload,
    Notification,
    NotificationConnection,
    NotificationEdge,
    notification_errors,
)
from schema.shared.common import page_info
from schema.shared.live import events, shared_field


@strawberry.type
class Query:
    @strawberry.field(description="The conversations you take part in (admins: all), most recent activity first, "
                      "with your unread counts; `first` at most 100 (default 20).")
    async def my_conversations(
        self, info: strawberry.Info, first: int | None = 20, after: str | None = None
    ) -> ConversationConnection:
        rows, has_next = await chat_resolvers.my_conversations(info.context, first=first, after=after)
        edges = [ConversationEdge(cursor=cursor, node=Conversation.of(c)) for c, cursor in rows]
        return ConversationConnection(edges=edges, page_info=page_info(edges, has_next=has_next,
                                                                       has_previous=after is not None))

    @strawberry.field(description="Polling fallback of `chatMessageAdded`: the conversation's messages after "
                      "ChatMessage `since` (from the first when null), oldest first, at most `first` (at most 100). "
                      "Participants only.")
    async def chat_messages_since(
        self, info: strawberry.Info, conversation_id: strawberry.ID, since: strawberry.ID | None = None,
        first: int | None = 100,
    ) -> list[ChatMessage]:
        views = await chat_resolvers.messages_since(
            info.context, conversation_id=conversation_id, since=since, first=first
        )
        return [ChatMessage.of(v) for v in views]

    @strawberry.field(description="Your in-app notifications, newest first (keyset pagination: pass "
                      "`pageInfo.endCursor` as `after`), optionally unread only. Log in first (UNAUTHENTICATED "
                      "otherwise).")
    async def notifications(
        self, info: strawberry.Info,
        first: Annotated[int | None, strawberry.argument(description="At most 100.")] = 20,
        after: str | None = None,
        unread_only: bool = False,
    ) -> NotificationConnection:
        rows, has_next = await feed_resolvers.notifications(
            info.context, first=first, after=after, unread_only=unread_only
        )
        edges = [NotificationEdge(cursor=c, node=Notification.of(n)) for n, c in rows]
        return NotificationConnection(edges=edges, page_info=page_info(edges, has_next=has_next,
                                                                       has_previous=after is not None))

    @strawberry.field(description="How many of your notifications are unread. Log in first.")
    async def unread_notification_count(self, info: strawberry.Info) -> int:
        return await feed_resolvers.unread_count(info.context)

    @strawberry.field(description="Your notifications after `since`, oldest first, at most `first`: for clients "
                      "that poll instead of subscribing to `notificationAdded`. Ask again with the last id while a "
                      "full page comes back.")
    async def notifications_since(
        self, info: strawberry.Info,
        since: Annotated[strawberry.ID | None, strawberry.argument(
            description="The newest Notification id you have; null: from your first notification.")] = None,
        first: Annotated[int | None, strawberry.argument(description="At most 100.")] = 100,
    ) -> list[Notification]:
        payloads = await feed_resolvers.since(info.context, since=since, first=first)
        return [Notification.from_payload(p) for p in payloads]

    @strawberry.field(description="Your email preferences: every kind with its description, whether it is "
                      "transactional (always sent) and whether you receive it, and whether you opted out of all "
                      "non-transactional email. Log in first.")
    async def my_notification_preferences(self, info: strawberry.Info) -> EmailPreferences:
        return EmailPreferences.of(await email_resolvers.my_preferences(info.context))

    @strawberry.field(description="Admin: emails newest first, optionally of one status (e.g. DEAD), each with its "
                      "delivery attempts; `first` at most 100.")
    async def emails(
        self, info: strawberry.Info, status: EmailStatus | None = None, first: int | None = 20, after: str | None = None
    ) -> EmailConnection:
        rows, has_next = await email_resolvers.emails(
            info.context, status=status.value if status else None, first=first, after=after
        )
        edges = [EmailEdge(cursor=c, node=Email.of(e)) for e, c in rows]
        return EmailConnection(edges=edges, page_info=page_info(edges, has_next=has_next,
                                                                has_previous=after is not None))


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Post a message in a conversation you take part in.")
    async def send_chat_message(self, info: strawberry.Info, input: SendChatMessageInput) -> SendChatMessagePayload:
        r = await chat_resolvers.send_message(info.context, conversation_id=input.conversation_id, body=input.body)
        return SendChatMessagePayload(message=ChatMessage.of(r.message) if r.message else None,
                                      errors=chat_errors(r.errors), retry_after_seconds=retry_after(r.errors))

    @strawberry.mutation(description="Record that you read a conversation up to a message (default: its latest); a "
                         "receipt never moves backwards. Participants only.")
    async def mark_conversation_read(
        self, info: strawberry.Info, input: MarkConversationReadInput
    ) -> MarkConversationReadPayload:
        r = await chat_resolvers.mark_read(info.context, conversation_id=input.conversation_id, up_to=input.up_to)
        return MarkConversationReadPayload(
            conversation=Conversation.of(r.conversation) if r.conversation else None,
            read_receipt=ReadReceipt.of(r.receipt) if r.receipt else None, errors=chat_errors(r.errors),
        )

    @strawberry.mutation(description="Mark your notifications read: those in `ids`, and/or all up to `upTo`. Only "
                         "your own are changed; ids of others' notifications are ignored like unknown ids. Errors "
                         "(nothing changed): REQUIRED, TOO_MANY, INVALID_ID.")
    async def mark_notifications_read(
        self, info: strawberry.Info, input: MarkNotificationsReadInput
    ) -> MarkNotificationsReadPayload:
        r = await feed_resolvers.mark_read(info.context, ids=[str(i) for i in input.ids] if input.ids else None,
                                           up_to=str(input.up_to) if input.up_to is not None else None)
        return MarkNotificationsReadPayload(
            marked_count=r.marked_count, unread_count=r.unread_count,
            errors=notification_errors(r.errors),
        )

    @strawberry.mutation(description="Turn one kind of email on or off for your account. Transactional kinds cannot "
                         "be turned off (TRANSACTIONAL_KIND). Log in first.")
    async def set_notification_preference(
        self, info: strawberry.Info, input: SetNotificationPreferenceInput
    ) -> SetNotificationPreferencePayload:
        r = await email_resolvers.set_preference(info.context, kind=input.kind.value, email=input.email)
        return SetNotificationPreferencePayload(
            preferences=preferences_or_none(r.preferences),
            errors=email_preference_errors(r.errors),
        )

    @strawberry.mutation(description="Opt out of (or back into) all non-transactional email at once; receipts, "
                         "refunds, payouts and disputes are still sent. Log in first.")
    async def set_email_opt_out(self, info: strawberry.Info, input: SetEmailOptOutInput) -> SetEmailOptOutPayload:
        r = await email_resolvers.set_opt_out(info.context, opt_out=input.opt_out)
        return SetEmailOptOutPayload(
            preferences=preferences_or_none(r.preferences),
            errors=email_preference_errors(r.errors),
        )


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Messages of a conversation you take part in (its customer, its provider, "
                             "admins; FORBIDDEN for anyone else). `after`: the `id` of the last message you have.")
    async def chat_message_added(
        self, info: strawberry.Info, conversation_id: strawberry.ID, after: strawberry.ID | None = None
    ) -> AsyncGenerator[ChatMessage, None]:
        opened = await live_resolvers.open_chat(info.context, conversation_id, after)
        async for event in events(opened, ChatMessage.from_payload):
            yield event

    @strawberry.subscription(description="Your in-app notifications as they are created (UNAUTHENTICATED without a "
                             "token). `after`: the `id` of the last notification you have.")
    async def notification_added(
        self, info: strawberry.Info, after: strawberry.ID | None = None
    ) -> AsyncGenerator[Notification, None]:
        opened = await live_resolvers.open_notifications(info.context, after)
        async for event in events(opened, Notification.from_payload):
            yield event


shared_field("chatMessageAdded", lambda ctx, a: live_resolvers.open_chat(ctx, a["conversationId"], a.get("after")),
             ChatMessage.from_payload)
shared_field("notificationAdded", lambda ctx, a: live_resolvers.open_notifications(ctx, a.get("after")),
             Notification.from_payload)

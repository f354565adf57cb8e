"""Root Subscription (graphql-transport-ws only; token in `connection_init`).

Every field resumes without gaps: pass `after` = the id of the last event you saw and you receive
every later event exactly once and in order, then live ones (domain/shared/live.py). Without `after`,
events from the moment you subscribe. The same events are available by query for polling clients
(`serviceRequestStatusEventsSince`, `bookingStatusEventsSince`, `chatMessagesSince`,
`notificationsSince`). With `ODIM_LIVE_FANOUT=shared` (the default) subscribers with the same
selection share one execution per event (schema/fanout.py); the fields below are then only called
for other documents.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import datetime
from typing import Any

import strawberry

from domain.messaging.chat import MessageView
from domain.orders import service_request as sr_domain
from resolvers import live as live_resolvers
from resolvers.ids import encode_id
from schema.booking import BookingStatusEvent
from schema.chat import ChatMessage
from schema.fanout import SHARED, SharedField
from schema.feed import Notification
from schema.service_request import ServiceRequestStatus, ServiceRequestStatusEvent

_MESSAGE_FIELDS = tuple(f.name for f in dataclasses.fields(MessageView))


def service_request_event(e: dict) -> ServiceRequestStatusEvent:
    """A ServiceRequestStatusEvent from a payload of domain.service_request.status_event."""
    return ServiceRequestStatusEvent(
        id=strawberry.ID(encode_id("ServiceRequestStatusEvent", e["id"])),
        reference=e["reference"], status=ServiceRequestStatus(e["status"]),
        previous_status=ServiceRequestStatus(e["previousStatus"]) if e.get("previousStatus") else None,
        status_label=sr_domain.STATUS_LABELS[e["status"]], next_step=sr_domain.NEXT_STEPS[e["status"]],
        note=e.get("note", ""), at=datetime.fromisoformat(e["at"]),
    )


def chat_message(e: dict) -> ChatMessage:
    """A ChatMessage from a payload of domain.chat.send_message."""
    return ChatMessage.of(MessageView(**{name: e[name] for name in _MESSAGE_FIELDS}))


def _shared(name: str, open_: Callable[[Any, dict[str, Any]], Awaitable[live_resolvers.Opened]],
            to_root: Callable[[dict], Any]) -> None:
    SHARED[name] = SharedField(open=open_, to_root=to_root)


async def _events(opened: live_resolvers.Opened, to_root: Callable[[dict], Any]) -> AsyncGenerator[Any, None]:
    async for e in live_resolvers.events(opened):
        yield to_root(e)


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Status changes of the request with this reference: public (anyone with "
                             "the reference), no personal data. `after`: the `id` of the last event you saw. "
                             "NOT_FOUND for an unknown reference.")
    async def service_request_status_changed(
        self, info: strawberry.Info, reference: str, after: strawberry.ID | None = None
    ) -> AsyncGenerator[ServiceRequestStatusEvent, None]:
        opened = await live_resolvers.open_service_request(info.context, reference, after)
        async for event in _events(opened, service_request_event):
            yield event

    @strawberry.subscription(description="Messages of a conversation you take part in (its customer, its provider, "
                             "admins; FORBIDDEN for anyone else). `after`: the `id` of the last message you have.")
    async def chat_message_added(
        self, info: strawberry.Info, conversation_id: strawberry.ID, after: strawberry.ID | None = None
    ) -> AsyncGenerator[ChatMessage, None]:
        opened = await live_resolvers.open_chat(info.context, conversation_id, after)
        async for event in _events(opened, chat_message):
            yield event

    @strawberry.subscription(description="Status changes of a booking: its customer, its provider and admins only "
                             "(FORBIDDEN for anyone else, UNAUTHENTICATED without a token in `connection_init`). "
                             "`after`: the `id` of the last event you saw.")
    async def booking_status_changed(
        self, info: strawberry.Info, booking_id: strawberry.ID, after: strawberry.ID | None = None
    ) -> AsyncGenerator[BookingStatusEvent, None]:
        opened = await live_resolvers.open_booking(info.context, booking_id, after)
        async for event in _events(opened, BookingStatusEvent.of):
            yield event

    @strawberry.subscription(description="Your in-app notifications as they are created (UNAUTHENTICATED without a "
                             "token). `after`: the `id` of the last notification you have.")
    async def notification_added(
        self, info: strawberry.Info, after: strawberry.ID | None = None
    ) -> AsyncGenerator[Notification, None]:
        opened = await live_resolvers.open_notifications(info.context, after)
        async for event in _events(opened, Notification.from_payload):
            yield event


_shared("serviceRequestStatusChanged",
        lambda ctx, a: live_resolvers.open_service_request(ctx, a["reference"], a.get("after")), service_request_event)
_shared("chatMessageAdded",
        lambda ctx, a: live_resolvers.open_chat(ctx, a["conversationId"], a.get("after")), chat_message)
_shared("bookingStatusChanged",
        lambda ctx, a: live_resolvers.open_booking(ctx, a["bookingId"], a.get("after")), BookingStatusEvent.of)
_shared("notificationAdded", lambda ctx, a: live_resolvers.open_notifications(ctx, a.get("after")),
        Notification.from_payload)

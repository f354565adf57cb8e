"""Root Subscription (graphql-transport-ws only; token in `connection_init`)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry

from domain import service_request as sr_domain
from domain.chat import MessageView
from resolvers import chat as chat_resolvers
from resolvers import service_request as sr_resolvers
from schema import booking as bookings
from schema.chat import ChatMessage
from schema.service_request import ServiceRequestStatus, ServiceRequestStatusEvent


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Each status change of the request with this reference, live.")
    async def service_request_status_changed(
        self, info: strawberry.Info, reference: str
    ) -> AsyncGenerator[ServiceRequestStatusEvent, None]:
        async for e in sr_resolvers.status_events(info.context, reference):
            yield ServiceRequestStatusEvent(
                reference=e["reference"], status=ServiceRequestStatus(e["status"]),
                previous_status=ServiceRequestStatus(e["previousStatus"]) if e.get("previousStatus") else None,
                status_label=sr_domain.STATUS_LABELS[e["status"]], next_step=sr_domain.NEXT_STEPS[e["status"]],
                note=e.get("note", ""), at=datetime.fromisoformat(e["at"]),
            )

    @strawberry.subscription(description="New messages of a conversation you take part in, live.")
    async def chat_message_added(
        self, info: strawberry.Info, conversation_id: strawberry.ID
    ) -> AsyncGenerator[ChatMessage, None]:
        async for e in chat_resolvers.message_events(info.context, conversation_id):
            yield ChatMessage.of(MessageView(**e))

    booking_status_changed = bookings.subscription(bookings.booking_status_changed)

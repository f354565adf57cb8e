"""Polling fallbacks of the live subscriptions: the same events, by query, after a cursor.

A client that cannot keep a WebSocket open asks every few seconds for what came after the last
event id it has, and gets exactly what the subscription would have sent (same ids, same order).
"""

from __future__ import annotations

import strawberry

from resolvers import live as live_resolvers
from resolvers.pagination import page_size
from schema.booking import BookingStatusEvent
from schema.service_request import ServiceRequestStatusEvent
from schema.subscription import service_request_event


@strawberry.type
class PollingQuery:
    @strawberry.field(description="Status changes of a request after the event id `since` (from its creation when "
                      "null), oldest first, at most `first` (<= 100). Public, like `serviceRequestStatusChanged`.")
    async def service_request_status_events_since(
        self, info: strawberry.Info, reference: str, since: strawberry.ID | None = None, first: int | None = 100
    ) -> list[ServiceRequestStatusEvent]:
        size = page_size(first, 100)
        opened = await live_resolvers.open_service_request(info.context, reference, since, field="since")
        return [service_request_event(e) for e in await live_resolvers.since(opened, size)]

    @strawberry.field(description="Status changes of a booking after the event id `since` (from the hold when null), "
                      "oldest first, at most `first` (<= 100). Its customer, its provider and admins only.")
    async def booking_status_events_since(
        self, info: strawberry.Info, booking_id: strawberry.ID, since: strawberry.ID | None = None,
        first: int | None = 100,
    ) -> list[BookingStatusEvent]:
        size = page_size(first, 100)
        opened = await live_resolvers.open_booking(info.context, booking_id, since, field="since")
        return [BookingStatusEvent.of(e) for e in await live_resolvers.since(opened, size)]

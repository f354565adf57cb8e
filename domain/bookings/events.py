"""Live events of bookings (domain/shared/events.py)."""

from __future__ import annotations

from domain.shared.events import LiveEvent, register


@register
class BookingStatusEvent(LiveEvent):
    """One status change of a visit, on ``odim:booking:<id>``. ``at``: ISO 8601 UTC."""

    channel_prefix = "odim:booking:"

    historyId: int
    bookingId: int
    reference: str
    status: str
    previousStatus: str | None
    note: str
    actorType: str
    at: str

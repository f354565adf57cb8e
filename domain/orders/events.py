"""Live events of orders (domain/shared/events.py)."""

from __future__ import annotations

from domain.shared.events import LiveEvent, register


@register
class ServiceRequestStatusEvent(LiveEvent):
    """One status change of an order, on ``odim:service_request:<reference>``. Public (anyone with the
    reference may track the order): no personal data. ``at``: ISO 8601 UTC."""

    channel_prefix = "odim:service_request:"

    historyId: int
    reference: str
    status: str
    previousStatus: str | None
    note: str
    at: str

"""Booking timers: the sweeper actor the scheduler sends every settings.booking_sweep_seconds.

Each timer is a state-machine transition made by the ``system`` actor, one booking per database
transaction (row-locked, state re-read), so a timer racing a user's action never both win and a
crash mid-sweep loses nothing (the next sweep picks up what is left):
* holds past ``hold_expires_at`` -> ``payment_expired`` (the slot is free again; a new hold on the
  same time also expires them lazily, in its own transaction);
* paid visits not accepted by ``response_due_at`` -> ``expired`` (full refund);
* visits in progress settings.booking_auto_complete_seconds after their end -> ``completed``;
* visits nobody took over by ``substitution_due_at`` -> escalated to admins;
* tickets open longer than settings.ticket_escalation_seconds with no visit -> escalated.
"""

from __future__ import annotations

from datetime import UTC, datetime

import dramatiq
import structlog

from domain.bookings import booking, substitution, ticket
from domain.shared import outbox
from workers.broker import retry_options

log = structlog.get_logger(__name__)


async def run_timers(*, now: datetime | None = None) -> dict[str, int]:
    """Run every booking timer once; returns how many bookings or tickets each one moved."""
    now = now or datetime.now(UTC)
    counts = {
        "holds_expired": await booking.expire_holds(now=now),
        "unanswered_expired": await booking.expire_unanswered(now=now),
        "auto_completed": await booking.auto_complete(now=now),
        "substitutions_escalated": await substitution.escalate_unanswered(now=now),
        "tickets_escalated": await ticket.escalate_stale_tickets(now=now),
    }
    if any(counts.values()):
        log.info("bookings.swept", **counts)
    return counts


@dramatiq.actor(queue_name="default", **retry_options())
async def sweep_bookings() -> None:
    """The sweeper: run the booking timers, then relay the events and emails they queued."""
    await run_timers()
    await outbox.relay_quietly()

"""Payout actors: send a payout to its gateway; the scheduled payout run (domain/money/payout.py)."""

from __future__ import annotations

import dramatiq

from domain.money import payout
from domain.shared import outbox
from workers.broker import retry_options
from workers.deadletter import guarded


@dramatiq.actor(queue_name="payments", **retry_options())
async def send_payout(payout_id: int) -> None:
    """Send payout ``payout_id`` and apply the gateway's answer (idempotent: a redelivery asks the
    gateway by reference before creating anything), then relay the emails it queued. A retryable
    gateway error raises, and Dramatiq retries with backoff; past the last retry the job goes to
    the dead-letter table (workers/deadletter.py)."""
    await guarded("send_payout", "payments", {"payout_id": payout_id}, lambda: payout.send_payout(payout_id))
    await outbox.relay_quietly()


async def run_payouts_job() -> int:
    """The scheduler's payout job (every settings.payout_interval_seconds): batch payable earnings
    into payouts, then relay their ``send_payout`` jobs. Returns how many payouts were created."""
    made = await payout.run_payouts()
    await outbox.relay_quietly()
    return made

"""The review publisher: the scheduler sends ``publish_due_reviews`` every
settings.review_publish_sweep_seconds; it publishes the blind reviews whose review window closed
(domain/reviews/review.py ``publish_due``: rating aggregates and flags updated in the same transactions)
and relays the emails those queued (operator alerts for flagged providers)."""

from __future__ import annotations

import dramatiq

from domain.reviews import review as review_domain
from domain.shared import outbox
from workers.broker import retry_options


@dramatiq.actor(queue_name="default", **retry_options())
async def publish_due_reviews() -> None:
    """Publish every review whose window closed (in batches of 500 until none is left), then relay."""
    while await review_domain.publish_due() >= 500:
        pass
    await outbox.relay_quietly()

"""Business metrics the domain counts (Prometheus, prometheus_client), counted only once the
transaction that caused them commits: a rolled-back or retried transaction counts nothing.

- ``odim_payment_outcomes_total{gateway, outcome}``: payments settled by a webhook or by
  reconciliation; outcome ``completed``, ``failed`` or ``amount_mismatch`` (held for review).
- ``odim_webhook_lag_seconds{gateway}``: from a webhook's storage in the inbox (``received_at``)
  to the commit of its processing, seconds.

Counters live in the process that counts them (the API for reconciliation on the return page, the
worker for webhooks); the API's ``/metrics`` also samples database-wide figures at scrape time
(domain/operations/health.py ``backlog``), which hold across processes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_client import Counter, Histogram
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

PAYMENT_OUTCOMES = Counter(
    "odim_payment_outcomes_total", "Payments settled (committed), by gateway and outcome", ["gateway", "outcome"]
)
WEBHOOK_LAG = Histogram(
    "odim_webhook_lag_seconds", "Seconds from a webhook's storage in the inbox to its processing commit",
    ["gateway"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
PAYMENT_OUTCOME_LABELS = frozenset({"completed", "failed", "amount_mismatch"})

_KEY = "odim_metrics_on_commit"


def on_commit(session: AsyncSession | Session, count: Callable[[], None]) -> None:
    """Run ``count()`` (a metric update; must not raise) after ``session``'s outermost transaction
    commits; dropped if it rolls back."""
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    sync.info.setdefault(_KEY, []).append(count)


def payment_outcome(session: AsyncSession, gateway: str, outcome: str) -> None:
    """Count one payment settling as ``outcome`` at ``gateway`` when ``session`` commits; outcomes
    outside ``PAYMENT_OUTCOME_LABELS`` (duplicates, unchanged) are not counted."""
    if outcome in PAYMENT_OUTCOME_LABELS:
        on_commit(session, PAYMENT_OUTCOMES.labels(gateway, outcome).inc)


def webhook_processed(session: AsyncSession, gateway: str, received_at: datetime) -> None:
    """Observe the lag of one webhook whose processing commits with ``session``."""

    def observe() -> None:
        WEBHOOK_LAG.labels(gateway).observe(max(0.0, (datetime.now(UTC) - received_at).total_seconds()))

    on_commit(session, observe)


@event.listens_for(Session, "after_commit")
def _count_committed(session: Session) -> None:
    for count in session.info.pop(_KEY, ()):
        count()


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    if previous_transaction.parent is None:  # the outermost transaction: nothing of it committed
        session.info.pop(_KEY, None)

"""The one scheduler process (APScheduler): sweeps the outbox and re-queues stalled work.

Periodic jobs:
* every ``outbox_sweep_seconds``: dispatch outbox rows not yet sent (crash or Redis outage);
* every 60 s: webhooks stored but unprocessed for 2 minutes and emails unsent for 2 minutes get a
  new job (their handlers are idempotent), so a message lost with Redis is only delayed;
* every hour: outbox rows dispatched more than 7 days ago are deleted (pending rows never are),
  and client idempotency keys older than settings.idempotency_key_ttl_seconds;
* every 60 s: escrow of orders whose grace period after completion passed with no dispute is
  released (domain/money/escrow.py);
* every settings.reconcile_interval_seconds (hourly): reconciliation with the gateways;
* every settings.payout_interval_seconds (hourly): payable earnings batched into payouts (domain/money/payout.py);
* every settings.booking_sweep_seconds (30 s): the booking sweeper actor (workers/booking.py: hold
  expiry, provider response deadline, auto-complete, substitution and ticket escalations);
* every settings.discovery_stats_refresh_seconds (15 min): providers' ranking statistics (completed
  jobs, cancellations, median response time) recomputed from the status histories (domain/providers/discovery.py);
* every settings.review_publish_sweep_seconds (5 min): blind reviews whose window closed are published
  (workers/review.py; rating aggregates and flags follow, domain/reviews/review.py).
"""

from __future__ import annotations

import asyncio
import signal

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

import workers  # noqa: F401  (configures the broker the outbox dispatches to)
from domain.money import escrow
from domain.operations import maintenance
from domain.orders import reconciliation
from domain.providers import discovery
from domain.shared import idempotency, outbox
from models.db import session_scope
from settings import get_settings
from workers import booking as booking_worker
from workers import payout as payout_worker
from workers import review as review_worker

log = structlog.get_logger(__name__)


async def sweep_outbox() -> None:
    while await outbox.relay() > 0:
        pass


async def requeue_stalled() -> None:
    counts = await maintenance.requeue_stalled_work(older_than_seconds=120)
    if any(counts.values()):
        log.info("scheduler.requeued", **counts)
    await sweep_outbox()


async def purge_outbox() -> None:
    deleted = await maintenance.purge_dispatched_outbox()
    if deleted:
        log.info("scheduler.outbox_purged", rows=deleted)


async def purge_idempotency_keys() -> None:
    async with session_scope() as session:
        deleted = await idempotency.purge_expired(session)
    if deleted:
        log.info("scheduler.idempotency_keys_purged", rows=deleted)


async def release_due_escrow() -> None:
    released = await escrow.release_due_orders()
    if released:
        log.info("scheduler.escrow_released", orders=released)
        await sweep_outbox()


async def reconcile() -> None:
    run_id = await reconciliation.run()
    await sweep_outbox()
    log.info("scheduler.reconciled", run_id=run_id)


async def refresh_discovery_stats() -> None:
    async with session_scope() as session:
        changed = await discovery.refresh_stats(session)
    if changed:
        log.info("scheduler.discovery_stats_refreshed", providers=changed)


def sweep_bookings() -> None:
    booking_worker.sweep_bookings.send()


def publish_due_reviews() -> None:
    review_worker.publish_due_reviews.send()


async def run() -> None:
    settings = get_settings()
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(sweep_outbox, "interval", seconds=settings.outbox_sweep_seconds, max_instances=1, coalesce=True)
    scheduler.add_job(requeue_stalled, "interval", seconds=60, max_instances=1, coalesce=True)
    scheduler.add_job(purge_outbox, "interval", hours=1, max_instances=1, coalesce=True)
    scheduler.add_job(purge_idempotency_keys, "interval", hours=1, max_instances=1, coalesce=True)
    scheduler.add_job(release_due_escrow, "interval", seconds=60, max_instances=1, coalesce=True)
    scheduler.add_job(
        reconcile, "interval", seconds=settings.reconcile_interval_seconds, max_instances=1, coalesce=True
    )
    scheduler.add_job(
        payout_worker.run_payouts_job, "interval", seconds=settings.payout_interval_seconds, max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(
        sweep_bookings, "interval", seconds=settings.booking_sweep_seconds, max_instances=1, coalesce=True
    )
    scheduler.add_job(
        publish_due_reviews, "interval", seconds=settings.review_publish_sweep_seconds, max_instances=1, coalesce=True
    )
    scheduler.add_job(
        refresh_discovery_stats, "interval", seconds=settings.discovery_stats_refresh_seconds, max_instances=1,
        coalesce=True,
    )
    scheduler.start()
    log.info("scheduler.started")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    scheduler.shutdown(wait=False)


def main() -> None:
    asyncio.run(run())

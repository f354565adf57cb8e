"""The one scheduler process (APScheduler): sweeps the outbox and re-queues stalled work.

Periodic jobs:
* every ``outbox_sweep_seconds``: dispatch outbox rows not yet sent (crash or Redis outage);
* every 60 s: webhooks stored but unprocessed for 2 minutes and emails unsent for 2 minutes get a
  new job (their handlers are idempotent), so a message lost with Redis is only delayed;
* every hour: outbox rows dispatched more than 7 days ago are deleted (pending rows never are).
"""

from __future__ import annotations

import asyncio
import signal

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

import workers  # noqa: F401  (configures the broker the outbox dispatches to)
from domain import maintenance, outbox
from settings import get_settings

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


async def run() -> None:
    settings = get_settings()
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(sweep_outbox, "interval", seconds=settings.outbox_sweep_seconds, max_instances=1, coalesce=True)
    scheduler.add_job(requeue_stalled, "interval", seconds=60, max_instances=1, coalesce=True)
    scheduler.add_job(purge_outbox, "interval", hours=1, max_instances=1, coalesce=True)
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

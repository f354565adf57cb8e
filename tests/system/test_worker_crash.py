"""A worker process killed (SIGKILL) in the middle of a payment: nothing is lost, nothing is doubled.

Given a paid webhook stored in the inbox and queued, a real Dramatiq worker process picks it up and
is stopped inside ``process_webhook`` (the test holds a row lock the actor needs), then killed with
SIGKILL. PostgreSQL rolls the dead worker's transaction back; a second worker process finds the
dead worker's unacknowledged message through broker maintenance (heartbeat timeout shortened to
2 s for the test) and completes the payment exactly once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select, text

from domain.money import ledger
from gateways.sandbox import build_event, parse_checkout
from models import LedgerTransaction
from models.db import get_engine, session_scope
from tests.orders.test_payment_webhooks import CUSTOMER, OPERATOR, checkout_token, http, post_webhook, purchase, state

ROOT = Path(__file__).resolve().parents[2]


def start_worker() -> subprocess.Popen:
    env = {**os.environ, "ODIM_BROKER_HEARTBEAT_TIMEOUT_MS": "2000", "ODIM_BROKER_MAINTENANCE_CHANCE": "1000000"}
    return subprocess.Popen(
        [sys.executable, "-m", "dramatiq", "workers", "--processes", "1", "--threads", "2"],
        cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


async def wait_until(predicate, *, seconds: float, what: str) -> None:
    for _ in range(int(seconds * 10)):
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_worker_killed_mid_payment_loses_nothing_and_the_payment_completes_once(mailbox):
    # given: a purchase, and its "paid" webhook stored, queued and dispatched to Redis
    bought = await purchase()
    async with get_engine().connect() as blocker:
        await blocker.execute(text("BEGIN"))
        await blocker.execute(text("SELECT id FROM payments WHERE id = :id FOR UPDATE"), {"id": bought.payment.id})
        async with http() as client:
            response = await post_webhook(client, *build_event(parse_checkout(checkout_token(bought)), "paid"))
        assert response.status_code == 200

        # when: a worker takes the message and blocks inside the actor's transaction ...
        first = start_worker()
        try:
            async def worker_is_blocked() -> bool:
                async with get_engine().connect() as probe:
                    waiting = await probe.scalar(text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND query ILIKE '%FROM payments%FOR NO KEY UPDATE%'"))
                return waiting == 1

            await wait_until(worker_is_blocked, seconds=30, what="the worker to block on the payment row")
            # ... and is killed there (master and worker processes), mid-transaction
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
        finally:
            if first.poll() is None:
                os.killpg(first.pid, signal.SIGKILL)
        await blocker.execute(text("ROLLBACK"))

    # then: the dead worker's transaction left nothing behind, in the ledger either
    halfway = await state(bought)
    assert (halfway["payment"], halfway["request"], halfway["emails"]) == ("pending", "awaiting_payment", [])
    assert halfway["inbox"] == [(None, False)]
    assert await captures() == []

    # when: another worker starts
    second = start_worker()
    try:
        async def completed() -> bool:
            return (await state(bought))["inbox"] == [("completed", True)]

        await wait_until(completed, seconds=60, what="the requeued message to be processed")
        await wait_until(lambda: asyncio.sleep(0, result=len(mailbox()) == 2), seconds=30, what="both emails")
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(second.pid, signal.SIGKILL)

    # then: the payment completed exactly once
    after = await state(bought)
    assert after["payment_history"] == [(None, "pending"), ("pending", "completed")]
    assert after["request_history"] == [
        (None, "awaiting_payment"), ("awaiting_payment", "payment_confirmed"), ("payment_confirmed", "pending_contact"),
    ]
    assert after["emails"] == [("payment_confirmed", CUSTOMER.email), ("operator_new_request", OPERATOR)]
    assert sorted(m["To"] for m in mailbox()) == sorted([CUSTOMER.email, OPERATOR])
    # and captured into escrow exactly once, the ledger balanced
    assert await captures() == [f"payment_captured:{bought.payment.reference}"]
    async with session_scope() as s:
        assert (await ledger.verify(s)).ok
        assert await ledger.balance(s, ledger.escrow(bought.service_request.id, "XAF")) == bought.payment.amount_minor


async def captures() -> list[str]:
    async with session_scope() as s:
        return list((await s.scalars(select(LedgerTransaction.idempotency_key)
                                     .where(LedgerTransaction.kind == "payment_captured"))).all())

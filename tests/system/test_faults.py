"""Fault tests with real processes ("Resilience"): a real uvicorn server (tests/support/live_harness.py),
real Dramatiq worker and scheduler processes, and the test stack's own PostgreSQL and Redis, stopped
and started for real (devstack/services.py).

- PostgreSQL restarted during a stream of purchases: requests during the outage fail with a typed,
  retryable ``SERVICE_UNAVAILABLE`` error (HTTP 503 + Retry-After), none is half-applied, the same
  server process serves again once PostgreSQL is back (the pool recovers by itself), and retrying
  each failed request with its idempotency key yields exactly one order per key.
- Redis stopped: the API still serves queries and accepts purchases and webhooks; the jobs wait in
  the PostgreSQL outbox and run when Redis returns (the scheduler flushes the outbox, the worker
  processes every job); nothing is lost, nothing doubled.
- A worker killed with SIGKILL mid-job is redelivered and processed once: proved by
  tests/system/test_worker_crash.py (a real ``dramatiq`` process killed inside ``process_webhook`` while it
  holds the transaction; a second worker completes the payment exactly once).

Run with ``-s`` to see the figures each test prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import func, select

from devstack import services
from domain.money import ledger
from gateways import sandbox
from models import (
    Conversation,
    Email,
    LedgerTransaction,
    OutboxMessage,
    Payment,
    PaymentStatusChange,
    ServiceRequest,
    ServiceRequestStatusChange,
    WebhookEvent,
)
from models.db import session_scope
from resolvers.ids import encode_id
from settings import get_settings
from tests.support.factories import make_service
from tests.support.live_harness import Server

ROOT = Path(__file__).resolve().parents[2]
# Many purchases from one IP in a few seconds: the abuse limits are not what these tests are about.
SERVER_ENV = {
    "ODIM_RATE_LIMIT_PUBLIC": "1000000/minute",
    "ODIM_RATE_LIMIT_PURCHASE": "1000000/minute",
    "ODIM_UNAVAILABLE_RETRY_AFTER_SECONDS": "2",
}
PURCHASE = """
mutation Purchase($input: PurchaseServiceInput!) {
  purchaseService(input: $input) { serviceRequest { reference status } checkoutUrl errors { field code message } }
}"""
TRACK = "query Track($reference: String!) { serviceRequest(reference: $reference) { reference status } }"
CATALOGUE = "query Catalogue { __typename }"


async def start_server(**env: str) -> Server:
    """``Server(**env)`` started; waits longer than the harness on a loaded machine (2 shared cores)."""
    server = Server(**env)
    try:
        await server.start()
    except RuntimeError:
        async with httpx.AsyncClient() as client:
            for _ in range(600):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{server.base}/healthz")).status_code == 200:
                        return server
                await asyncio.sleep(0.1)
        server.stop()
        raise
    return server


def pg_down() -> None:
    settings = get_settings()
    services._pg_down(settings, services._paths(settings))


def pg_up() -> None:
    settings = get_settings()
    services._pg_up(settings, services._paths(settings), fast=True)


def redis_down() -> None:
    settings = get_settings()
    services._redis_down(settings, services._paths(settings))
    for _ in range(100):
        if not services.status(settings)["redis"]:
            return
        time.sleep(0.1)
    raise AssertionError("Redis did not stop")


def redis_up() -> None:
    settings = get_settings()
    services._redis_up(settings, services._paths(settings))


@dataclass
class Attempt:
    """One purchaseService call: its idempotency key and input, and what came back."""

    key: str
    variables: dict
    started: float
    ended: float
    status: int
    body: dict | None
    text: str
    retry_after: str | None

    @property
    def ok(self) -> bool:
        return (self.status == 200 and self.body is not None and not self.body.get("errors")
                and (self.body.get("data") or {}).get("purchaseService", {}).get("errors") == [])

    @property
    def codes(self) -> list[str]:
        return [e.get("extensions", {}).get("code") for e in (self.body or {}).get("errors") or []]

    @property
    def reference(self) -> str:
        return self.body["data"]["purchaseService"]["serviceRequest"]["reference"]


def purchase_variables(service_id: int, tier_id: int, n: int) -> dict:
    return {"input": {
        "serviceId": encode_id("Service", service_id), "tierId": encode_id("ServiceTier", tier_id),
        "customer": {"fullName": "Ada Nkem", "email": f"ada{n}@example.cm", "phone": "+237671234567"},
        "idempotencyKey": f"fault-{n}-{uuid.uuid4().hex[:8]}",
    }}


async def call_purchase(client: httpx.AsyncClient, base: str, variables: dict) -> Attempt:
    started = time.monotonic()
    try:
        response = await client.post(f"{base}/graphql", json={"query": PURCHASE, "variables": variables})
    except httpx.HTTPError as exc:  # the server itself did not answer: recorded, and fails the test
        return Attempt(variables["input"]["idempotencyKey"], variables, started, time.monotonic(), 0, None,
                       f"{type(exc).__name__}: {exc}", None)
    try:
        body = response.json()
    except ValueError:
        body = None
    return Attempt(variables["input"]["idempotencyKey"], variables, started, time.monotonic(), response.status_code,
                   body, response.text, response.headers.get("retry-after"))


async def wait_for(predicate, *, seconds: float, what: str, detail=lambda: "") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}: {detail()}")


async def test_postgresql_restart_during_a_stream_of_purchases_fails_retryably_loses_nothing_and_recovers():
    # given: a real server, and a stream of guest purchases, one after the other
    service, tiers = await make_service(name="Leak repair", tiers=1, prices={"XAF": 10000})
    server = await start_server(**SERVER_ENV)
    pid = server.proc.pid
    attempts: list[Attempt] = []
    stop = asyncio.Event()

    async def stream(client: httpx.AsyncClient) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            attempts.append(await call_purchase(client, server.base, purchase_variables(service.id, tiers[0].id, n)))

    try:
        async with httpx.AsyncClient(timeout=60) as client:
            streaming = asyncio.create_task(stream(client))
            try:
                await wait_for(lambda: sum(a.ok for a in attempts) >= 5, seconds=60, what="5 purchases before",
                               detail=lambda: [(a.status, a.text[:300]) for a in attempts[-2:]])
                # when: PostgreSQL stops (fast shutdown: open transactions are aborted) ...
                stopping = time.monotonic()
                await asyncio.to_thread(pg_down)
                stopped = time.monotonic()
                # ... stays down until at least 5 requests failed while it was down ...
                await wait_for(lambda: sum(not a.ok and a.started >= stopped for a in attempts) >= 5,
                               seconds=60, what="5 requests during the outage")
                # ... and starts again
                await asyncio.to_thread(pg_up)
                up = time.monotonic()
                await wait_for(lambda: sum(a.ok and a.started >= up for a in attempts) >= 5,
                               seconds=60, what="5 purchases after the restart",
                               detail=lambda: [(a.status, a.text[:300]) for a in attempts[-2:]])
            finally:
                stop.set()
                await streaming

            # then: the same server process served before, during and after, never restarted
            assert server.proc.poll() is None and server.proc.pid == pid
            failed = [a for a in attempts if not a.ok]
            first_after = min(a.ended for a in attempts if a.ok and a.started >= up)
            # every failure is the typed, retryable one: HTTP 503 + Retry-After, SERVICE_UNAVAILABLE, no internals
            shapes = sorted({(a.status, a.retry_after, tuple(a.codes)) for a in failed})
            assert shapes == [(503, "2", ("SERVICE_UNAVAILABLE",))], [a.text for a in failed][:3]
            for a in failed:
                [error] = a.body["errors"]
                assert error["extensions"]["retryable"] is True
                assert error["extensions"]["retryAfterSeconds"] == 2
                assert error["message"].startswith("Service temporarily unavailable; retry in 2 seconds (request id ")
                assert "Traceback" not in a.text and "asyncpg" not in a.text and "sqlalchemy" not in a.text
            # and only the outage failed: nothing before the stop began, nothing after the first success after it
            assert all(stopping <= a.ended and a.started <= first_after for a in failed)

            # when: each failed purchase is retried with its own idempotency key
            retried = [await call_purchase(client, server.base, a.variables) for a in failed]
            # then: every retry succeeds
            assert [r.ok for r in retried] == [True] * len(retried), [r.text for r in retried if not r.ok][:3]
            # and a query is served by the same process too
            tracked = await client.post(f"{server.base}/graphql",
                                        json={"query": TRACK, "variables": {"reference": retried[0].reference
                                                                            if retried else attempts[0].reference}})
            assert tracked.status_code == 200 and tracked.json().get("errors") is None
    finally:
        server.stop()

    # then: exactly one order per idempotency key, each whole (history, payment and its history,
    # conversation), nothing queued for it, the ledger untouched and balanced
    keys = {a.key for a in attempts}
    references = {a.reference for a in attempts if a.ok} | {r.reference for r in retried}
    async with session_scope() as s:
        orders = (await s.execute(select(ServiceRequest.id, ServiceRequest.reference, ServiceRequest.idempotency_key)
                                  .order_by(ServiceRequest.id))).all()
        history = dict((await s.execute(select(ServiceRequestStatusChange.service_request_id, func.count())
                                        .group_by(ServiceRequestStatusChange.service_request_id))).all())
        payments = dict((await s.execute(select(Payment.service_request_id, func.count())
                                         .group_by(Payment.service_request_id))).all())
        payment_history = (await s.execute(select(PaymentStatusChange.from_status, PaymentStatusChange.to_status,
                                                  func.count()).group_by(PaymentStatusChange.from_status,
                                                                         PaymentStatusChange.to_status))).all()
        conversations = dict((await s.execute(select(Conversation.service_request_id, func.count())
                                              .group_by(Conversation.service_request_id))).all())
        outbox_rows = await s.scalar(select(func.count()).select_from(OutboxMessage))
        ledger_rows = await s.scalar(select(func.count()).select_from(LedgerTransaction))
        balanced = (await ledger.verify(s)).ok
    assert sorted(k for _, _, k in orders) == sorted(keys)
    assert {ref for _, ref, _ in orders} == references
    ids = [i for i, _, _ in orders]
    assert (history, payments, conversations) == ({i: 1 for i in ids}, {i: 1 for i in ids}, {i: 1 for i in ids})
    assert [tuple(r) for r in payment_history] == [(None, "pending", len(ids))]
    assert (outbox_rows, ledger_rows, balanced) == (0, 0, True)

    during = [a for a in attempts if a.started >= stopping and a.started <= first_after]
    print(
        f"\n[fault: postgresql restart] {len(attempts)} purchases streamed; {len(during)} started during the outage, "
        f"{len(failed)} failed, all with HTTP 503 + Retry-After: 2 and code SERVICE_UNAVAILABLE (retryable); "
        f"0 generic 500s; PostgreSQL down {up - stopped:.2f} s (stop took {stopped - stopping:.2f} s); "
        f"first purchase served {first_after - up:.2f} s after PostgreSQL was back, by the same server process "
        f"(pid {pid}); {len(retried)} retries with the same idempotency keys all succeeded; {len(orders)} orders "
        f"for {len(keys)} keys, none half-applied"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def remote_gateway_store():
    """A Redis of its own for the sandbox gateway's records: the sandbox stands for a remote payment
    gateway, which an outage of Odim's Redis does not take down. Yields its URL."""
    port = free_port()
    directory = Path(get_settings().data_dir) / f"sandbox-redis-{port}"
    directory.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory), "--save", "",
         "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        for _ in range(100):
            if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True).stdout.strip() == "PONG":
                break
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(directory, ignore_errors=True)


def start_process(*args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env={**os.environ, **env}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


async def test_redis_stopped_the_api_serves_and_accepts_purchases_and_the_outbox_runs_every_job_when_it_returns(
    monkeypatch, mailbox,
):
    purchases = 5
    service, tiers = await make_service(name="Leak repair", tiers=1, prices={"XAF": 10000})
    with remote_gateway_store() as gateway_url:
        monkeypatch.setattr(get_settings(), "sandbox_redis_url", gateway_url)
        env = {**SERVER_ENV, "ODIM_SANDBOX_REDIS_URL": gateway_url}
        # given: the API, a worker and the scheduler running, then Odim's Redis stopped
        server = await start_server(**env)
        worker = start_process("-m", "dramatiq", "workers", "--processes", "1", "--threads", "2", **env)
        scheduler = start_process("-m", "cli", "scheduler", **env)
        try:
            await asyncio.to_thread(redis_down)
            outage = time.monotonic()
            async with httpx.AsyncClient(timeout=60) as client:
                # when: customers buy, look their orders up, and pay (the gateway's webhooks arrive)
                bought = [await call_purchase(client, server.base, purchase_variables(service.id, tiers[0].id, n))
                          for n in range(purchases)]
                # then: every purchase was accepted
                assert [(b.status, b.ok) for b in bought] == [(200, True)] * purchases, [b.text for b in bought][:2]
                tracked = [await client.post(f"{server.base}/graphql", json={
                    "query": TRACK, "variables": {"reference": b.reference}}) for b in bought]
                assert [(t.status_code, t.json()) for t in tracked] == [
                    (200, {"data": {"serviceRequest": {"reference": b.reference, "status": "AWAITING_PAYMENT"}}})
                    for b in bought
                ]
                webhooks = []
                for b in bought:
                    details = sandbox.parse_checkout(b.body["data"]["purchaseService"]["checkoutUrl"].rsplit("/", 1)[1])
                    assert await sandbox.record_checkout_outcome(details, "paid") == "succeeded"
                    raw, headers = sandbox.build_event(details, "paid")
                    webhooks.append(await client.post(f"{server.base}/webhooks/sandbox", content=raw, headers=headers))
                assert [w.status_code for w in webhooks] == [200] * purchases
                # and readiness says which dependency is missing, while /metrics still answers
                ready = await client.get(f"{server.base}/readyz")
                metrics = await client.get(f"{server.base}/metrics")
            assert ready.status_code == 503
            checks = ready.json()
            assert sorted(checks) == ["live", "migrations", "postgresql", "redis"]  # live: the bus may not know yet
            assert (checks["postgresql"], checks["migrations"], checks["redis"] != "ok") == ("ok", "ok", True)
            assert metrics.status_code == 200
            assert f"odim_outbox_pending {float(purchases)}" in metrics.text
            assert "odim_queue_depth{" not in metrics.text  # Redis did not answer: left out, not zero

            # and the jobs wait in the outbox, nothing processed yet
            async with session_scope() as s:
                held = (await s.execute(select(OutboxMessage.target, OutboxMessage.dispatched_at.is_(None))
                                        .order_by(OutboxMessage.id))).all()
                statuses = (await s.scalars(select(Payment.status))).all()
            assert [tuple(r) for r in held] == [("process_webhook", True)] * purchases
            assert statuses == ["pending"] * purchases
            assert mailbox() == []

            # when: Redis comes back
            await asyncio.to_thread(redis_up)
            back = time.monotonic()

            # then: the scheduler flushes the outbox and the worker runs every job
            async def settled() -> bool:
                async with session_scope() as s:
                    pending = await s.scalar(select(func.count()).select_from(OutboxMessage)
                                             .where(OutboxMessage.dispatched_at.is_(None)))
                    sent = await s.scalar(select(func.count()).select_from(Email).where(Email.status == "sent"))
                return pending == 0 and sent == 2 * purchases and len(mailbox()) == 2 * purchases

            for _ in range(1200):
                if await settled():
                    break
                await asyncio.sleep(0.1)
            flushed = time.monotonic()
            assert await settled(), "the outbox was not flushed and processed within 120 s of Redis returning"
        finally:
            stop_process(scheduler)
            stop_process(worker)
            server.stop()
            if not services.status()["redis"]:
                await asyncio.to_thread(redis_up)

    # then: every payment completed exactly once, every job ran once, nothing lost
    async with session_scope() as s:
        payment_history = (await s.execute(select(PaymentStatusChange.from_status, PaymentStatusChange.to_status,
                                                  func.count()).group_by(PaymentStatusChange.from_status,
                                                                         PaymentStatusChange.to_status)
                                           .order_by(PaymentStatusChange.to_status))).all()
        inbox = (await s.execute(select(WebhookEvent.result, func.count()).group_by(WebhookEvent.result))).all()
        emails = (await s.execute(select(Email.kind, Email.status, func.count()).group_by(Email.kind, Email.status)
                                  .order_by(Email.kind))).all()
        captures = await s.scalar(select(func.count()).select_from(LedgerTransaction)
                                  .where(LedgerTransaction.kind == "payment_captured"))
        balanced = (await ledger.verify(s)).ok
        dispatched = (await s.execute(select(OutboxMessage.target, func.count())
                                      .where(OutboxMessage.dispatched_at.is_not(None))
                                      .group_by(OutboxMessage.target).order_by(OutboxMessage.target))).all()
    assert {(f, t): n for f, t, n in payment_history} == {(None, "pending"): purchases, ("pending", "completed"): purchases}
    assert [tuple(r) for r in inbox] == [("completed", purchases)]
    assert [tuple(r) for r in emails] == [("operator_new_request", "sent", purchases),
                                          ("payment_confirmed", "sent", purchases)]
    assert (captures, balanced) == (purchases, True)
    assert len(mailbox()) == 2 * purchases
    rows: dict[str, int] = {}
    for target, n in dispatched:  # live events go to one channel per order: counted together
        kind = "live events" if target.startswith("odim:") else target
        rows[kind] = rows.get(kind, 0) + n
    assert (rows["process_webhook"], rows["send_email"]) == (purchases, 2 * purchases)
    print(
        f"\n[fault: redis stopped] during the outage: {purchases}/{purchases} purchases accepted, "
        f"{purchases}/{purchases} tracking queries served, {purchases}/{purchases} webhooks acknowledged; "
        f"{purchases} jobs held in the PostgreSQL outbox; /readyz 503 (redis), /metrics 200 (outbox depth shown, Redis queue depths left out); "
        f"Redis down {back - outage:.2f} s; after it returned, outbox flushed and all {purchases} payments "
        f"completed and {2 * purchases} emails sent once each within {flushed - back:.2f} s; outbox rows dispatched "
        f"by target: {rows}"
    )

"""Payments benchmark: guest purchases paid through the sandbox webhook, end to end, against the very
same database work done in-process.

One run does everything, against the development stack (settings.py defaults: PostgreSQL :54320,
Redis :63790, SMTP sink :2525)::

    uv run python bench/payments.py                 # 100 clients, 3 s warm-up + 20 s per run
    uv run python bench/payments.py --help

1. Setup: the demo marketplace is seeded when ``services`` is empty (``devstack.seed.seed_demo``);
   the first active service with a tier priced in XAF is bought (a ``bench-payments`` service is
   created when no tier is priced in XAF).
2. Starts the API (``uv run uvicorn server:app --workers N``, ``--server-workers``) on ``--port`` and
   the Dramatiq workers (``uv run dramatiq workers --processes P --threads T``, what ``odim worker``
   runs) with ``ODIM_PUBLIC_BASE_URL`` pointing at that port, and stops both at the end, whatever
   happens. No scheduler: the webhook handler relays the outbox right after its commit, and the
   ``process_webhook`` actor relays the emails and live events it produced after its own.
3. End to end run: ``--clients`` asyncio tasks in this process, each with its own
   ``httpx.AsyncClient`` (one keep-alive connection, like one customer's browser), each loop for
   ``--warmup`` then ``--duration`` seconds (a closed loop: a client starts its next purchase once
   the previous one is captured):
   * ``purchaseService`` over HTTP GraphQL as a guest (unique email and idempotency key per purchase);
   * the sandbox's "Pay" button exactly as the hosted page does it (``gateways.sandbox``:
     ``parse_checkout`` of the token in ``checkoutUrl``, ``record_checkout_outcome(details, "paid")``,
     ``build_event(details, "paid")``) and the signed webhook POSTed to ``/webhooks/sandbox``;
   * wait until the payment is captured: one asyncpg connection polls ``payments`` (status
     ``completed``, by reference, for the purchases in flight) every ``--poll-ms`` (50) ms.
   A purchase's end-to-end latency runs from the moment the client sent ``purchaseService`` to the
   first poll that saw its payment ``completed`` (committed: up to one poll interval late). The
   payment's ``completed_at`` column is a lower bound, also printed: the worker sets it before it
   waits for the ledger's account locks and commits. A purchase is recorded when its capture lands
   inside the measured window (like bench/geosearch.py's requests), so "captured per second" is the
   pipeline's sustained rate at this load.
4. Queue drain after the load stops: time until the purchases still in flight are captured, then
   until nothing is left anywhere (webhook inbox rows unprocessed, outbox rows undispatched, emails
   unsent, Dramatiq messages in Redis for the ``payments``, ``notifications`` and ``default``
   queues, delayed ones included).
5. Baseline, in the same run, after the API has been stopped: the same purchase and capture done
   in-process with the domain functions (``domain.service_request.purchase_service`` in one
   transaction, then ``domain.payment.apply_payment_status`` on the row-locked payment in another;
   no HTTP, no inbox, no worker, no outbox relay) by ``--clients`` asyncio tasks over a SQLAlchemy
   pool of ``--clients`` connections: the ceiling of the database work. The outbox rows it leaves
   (emails, live events) are relayed to the still-running worker afterwards, untimed, so nothing is
   left behind in the development database.
6. Checks: ``domain.ledger.verify`` on the whole ledger (zero sum per currency, kept balances equal to
   their entries, no forbidden negatives), and for each run's payments: captured payments ==
   ``payment_captured`` ledger transactions, and the orders' escrow balances == the captured amounts.
7. Prints the figures, CPU use per part (load generator, API, worker, PostgreSQL, machine, steal),
   what the database backends were doing (``pg_stat_activity`` sampled every 100 ms), the machine,
   and writes a JSON copy to ``bench/results/payments-<UTC timestamp>.json``.

Figures only: nothing here asserts a time (docs/conventions.md). Every HTTP status other than 200, GraphQL
error, payload error, unexpected webhook answer and capture that does not arrive within
``--capture-timeout`` seconds is counted and reported, never ignored.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import secrets
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import asyncpg
import httpx
import redis.asyncio as aioredis
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

import workers.broker  # noqa: F401  (sets the Dramatiq broker the outbox relay dispatches to)
from bench.geosearch import (
    SERVER_SETTINGS,
    ensure_database,
    machine_cores,
    machine_cpu,
    machine_info,
    percentile,
    port_in_use,
    server_env,
    start_server,
    stop_server,
    tree_cpu_seconds,
    wait_ready,
)
from devstack import seed as seed_module
from domain.money import ledger
from domain.orders import payment as payment_domain
from domain.orders import service_request as sr_domain
from domain.shared import outbox
from gateways import sandbox
from models import Payment, Service, ServiceTier, TierPrice
from models.db import dispose_engine, session_scope
from settings import get_settings
from workers.broker import QUEUES

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CURRENCY = "XAF"
GUEST_NAME = "Bench Customer"
GUEST_PHONE = "+237671234567"
BENCH_SERVICE_SLUG = "bench-payments"
BENCH_PRICE_MINOR = 25_000  # XAF has no minor unit: 25,000 XAF
#: Below uvicorn's default --timeout-keep-alive (5 s).
KEEPALIVE_EXPIRY_SECONDS = 4.0

PURCHASE_MUTATION = """
mutation Purchase($input: PurchaseServiceInput!) {
  purchaseService(input: $input) {
    checkoutUrl
    serviceRequest { reference status }
    feeBreakdown { total { amountMinor currency } }
    errors { field code message }
  }
}
""".strip()

#: Where the poller finds the captures: only the purchases in flight, by the unique reference.
CAPTURED_SQL = "SELECT reference, completed_at FROM payments WHERE reference = ANY($1::text[]) AND status = 'completed'"

#: What the database backends are doing, sampled during the measured windows: state (or wait event
#: when active) and, for backends in a transaction, the start of their current or last statement.
ACTIVITY_SQL = r"""
SELECT CASE WHEN state = 'active' THEN coalesce(wait_event_type || ':' || wait_event, 'active (on CPU)')
            ELSE coalesce(state, 'unknown') END AS what,
       CASE WHEN state IN ('active', 'idle in transaction') THEN left(regexp_replace(query, '\s+', ' ', 'g'), 90)
            ELSE '' END AS statement,
       count(*) AS n
FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()
GROUP BY 1, 2
"""

console = Console() if sys.stdout.isatty() else Console(width=160)


# --------------------------------------------------------------------------------------------
# One purchase, followed from start to capture
# --------------------------------------------------------------------------------------------


@dataclass
class Cycle:
    """One purchase. Times are wall-clock seconds (``time.time()``), comparable with the database's
    ``completed_at`` on this machine."""

    started: float
    reference: str | None = None
    purchase_s: float | None = None  # purchaseService HTTP call (baseline: the purchase transaction)
    purchase_end: float | None = None
    webhook_s: float | None = None  # POST /webhooks/sandbox (baseline: the capture transaction)
    webhook_end: float | None = None
    captured: float | None = None  # first poll that saw it completed (baseline: the capture's commit)
    completed_at: float | None = None  # payments.completed_at, set in the worker's transaction (HTTP run)
    error_kind: str | None = None
    error: str | None = None


def fail(cycle: Cycle, kind: str, message: str) -> Cycle:
    cycle.error_kind = kind
    cycle.error = message[:300]
    return cycle


class CapturePoller:
    """One asyncpg connection polling ``payments`` every ``interval`` seconds for the references in
    flight; resolves each reference's future with ``(seen_at, completed_at)`` (wall-clock seconds):
    when a poll first saw the payment completed (committed), and its ``completed_at`` column."""

    def __init__(self, conn: asyncpg.Connection, interval: float) -> None:
        self.conn = conn
        self.interval = interval
        self.waiting: dict[str, asyncio.Future[tuple[float, float]]] = {}
        self.polls = 0
        self.poll_seconds: list[float] = []

    def watch(self, reference: str) -> asyncio.Future[tuple[float, float]]:
        future: asyncio.Future[tuple[float, float]] = asyncio.get_running_loop().create_future()
        self.waiting[reference] = future
        return future

    def forget(self, reference: str) -> None:
        self.waiting.pop(reference, None)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if self.waiting:
                started = time.perf_counter()
                rows = await self.conn.fetch(CAPTURED_SQL, list(self.waiting))
                seen = time.time()
                self.poll_seconds.append(time.perf_counter() - started)
                self.polls += 1
                for row in rows:
                    future = self.waiting.pop(row["reference"], None)
                    if future is not None and not future.done():
                        future.set_result((seen, row["completed_at"].timestamp()))
            try:
                await asyncio.wait_for(stop.wait(), self.interval)
            except TimeoutError:
                pass


# --------------------------------------------------------------------------------------------
# CPU and database activity sampling
# --------------------------------------------------------------------------------------------


@dataclass
class Processes:
    """Process-tree roots whose CPU is accounted: the API (uv + uvicorn and its workers), the
    Dramatiq workers (uv + master + worker processes) and the PostgreSQL postmaster (all backends)."""

    api: int | None = None
    worker: int | None = None
    postgres: int | None = None

    def sample(self) -> dict[str, Any]:
        return {
            "t": time.perf_counter(), "loadgen": time.process_time(), "machine": machine_cpu(),
            **{name: tree_cpu_seconds(pid) if pid else None
               for name, pid in (("api", self.api), ("worker", self.worker), ("postgres", self.postgres))},
        }


def cpu_between(start: dict[str, Any], end: dict[str, Any]) -> dict[str, float | None]:
    """Cores used by each part between two ``Processes.sample()`` marks."""
    wall = max(1e-9, end["t"] - start["t"])
    out: dict[str, float | None] = {}
    for name in ("loadgen", "api", "worker", "postgres"):
        out[name] = None if start[name] is None or end[name] is None else (end[name] - start[name]) / wall
    out["machine_busy"], out["steal"] = machine_cores(start["machine"], end["machine"])
    out["other"] = out["machine_busy"] - sum(v or 0.0 for k, v in out.items() if k in ("loadgen", "api", "worker",
                                                                                          "postgres"))
    return out


def postmaster_pid() -> int | None:
    """The dev cluster's postmaster, from ``<data_dir>/pg/postmaster.pid`` (None when unreadable)."""
    try:
        return int((get_settings().data_dir / "pg" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


async def sample_activity(conn: asyncpg.Connection, start: float, end: float, out: dict[str, Any]) -> None:
    """Sample ``pg_stat_activity`` every 100 ms between wall-clock ``start`` and ``end``. ``out`` gets
    ``samples``, ``avg_backends`` (average number of client backends per state or wait event) and
    ``top_statements`` (the 8 most frequent ``[state or wait, statement, average backends]`` among
    backends inside a transaction)."""
    totals: Counter[str] = Counter()
    statements: Counter[tuple[str, str]] = Counter()
    samples = 0
    await asyncio.sleep(max(0.0, start - time.time()))
    while time.time() < end:
        for row in await conn.fetch(ACTIVITY_SQL):
            totals[row["what"]] += row["n"]
            if row["statement"]:
                statements[(row["what"], row["statement"])] += row["n"]
        samples += 1
        await asyncio.sleep(0.1)
    n = max(1, samples)
    out["samples"] = samples
    out["avg_backends"] = {k: v / n for k, v in totals.most_common()}
    out["top_statements"] = [[what, stmt, v / n] for (what, stmt), v in statements.most_common(8)]


# --------------------------------------------------------------------------------------------
# The load loop (closed loop: each client runs one purchase after another)
# --------------------------------------------------------------------------------------------


@dataclass
class Window:
    loop_start: float
    start: float
    end: float


async def run_clients(
    cycle: Callable[[int, int], Awaitable[Cycle]], *, clients: int, warmup: float, duration: float,
    procs: Processes, activity_conn: asyncpg.Connection, on_window_end: Callable[[], None] | None = None,
) -> tuple[list[Cycle], Window, dict[str, Any], dict[str, Any]]:
    """``clients`` tasks call ``cycle(client number, purchase number)`` back to back until the
    window closes (``warmup`` + ``duration`` seconds after the start); a cycle that started before
    the end runs to completion. Returns every cycle, the window, CPU marks at its edges and the
    database activity during it."""
    counter = itertools.count()
    cycles: list[Cycle] = []
    loop_start = time.time()
    window = Window(loop_start, loop_start + warmup, loop_start + warmup + duration)
    marks: dict[str, Any] = {}
    activity: dict[str, Any] = {}

    async def sampler() -> None:
        await asyncio.sleep(max(0.0, window.start - time.time()))
        marks["start"] = procs.sample()
        await asyncio.sleep(max(0.0, window.end - time.time()))
        marks["end"] = procs.sample()
        if on_window_end is not None:
            on_window_end()

    async def client(k: int) -> None:
        while time.time() < window.end:
            try:
                cycles.append(await cycle(k, next(counter)))
            except Exception as exc:  # a bug in the load generator itself: counted, not hidden
                cycles.append(fail(Cycle(time.time()), "loadgen", f"{type(exc).__name__}: {exc}"))

    tasks = [asyncio.create_task(sampler()),
             asyncio.create_task(sample_activity(activity_conn, window.start, window.end, activity))]
    await asyncio.gather(*(client(k) for k in range(clients)))
    await asyncio.gather(*tasks)
    return cycles, window, marks, activity


def latency_stats(values: list[float]) -> dict[str, Any]:
    """Count and nearest-rank p50/p95/p99/max/mean in milliseconds of a list of seconds."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0, "p50_ms": math.nan, "p95_ms": math.nan, "p99_ms": math.nan, "max_ms": math.nan,
                "mean_ms": math.nan}
    return {"n": len(ordered), "p50_ms": percentile(ordered, 50) * 1000, "p95_ms": percentile(ordered, 95) * 1000,
            "p99_ms": percentile(ordered, 99) * 1000, "max_ms": ordered[-1] * 1000,
            "mean_ms": sum(ordered) / len(ordered) * 1000}


def summarize(name: str, cycles: list[Cycle], window: Window) -> dict[str, Any]:
    """Figures of one run. A purchase is recorded when its capture lands in the window; the two
    calls' latencies are those of the calls that ended in the window; errors count the whole run
    (warm-up and the tail after the window included)."""
    duration = window.end - window.start

    def inside(t: float | None) -> bool:
        return t is not None and window.start <= t <= window.end

    captured = [c for c in cycles if inside(c.captured)]
    started = [c for c in cycles if inside(c.started)]
    errors = Counter(c.error_kind for c in cycles if c.error_kind)
    first_errors: dict[str, list[str]] = defaultdict(list)
    for c in cycles:
        if c.error_kind and len(first_errors[c.error_kind]) < 3:
            first_errors[c.error_kind].append(c.error or "")
    out = {
        "name": name,
        "window_seconds": duration,
        "purchases_total": len(cycles),
        "started_in_window": len(started),
        "captured_in_window": len(captured),
        "captured_per_second": len(captured) / duration if duration > 0 else 0.0,
        "started_in_window_captured": sum(1 for c in started if c.captured is not None),
        "captured_total": sum(1 for c in cycles if c.captured is not None),
        "end_to_end": latency_stats([c.captured - c.started for c in captured]),
        "purchase": latency_stats([c.purchase_s for c in cycles if inside(c.purchase_end) and c.purchase_s is not None]),
        "second_step": latency_stats([c.webhook_s for c in cycles if inside(c.webhook_end) and c.webhook_s is not None]),
        "errors": sum(errors.values()),
        "errors_by_kind": dict(errors),
        "first_errors": dict(first_errors),
    }
    completed = [c.completed_at - c.started for c in captured if c.completed_at is not None]
    if completed:
        out["end_to_end_completed_at"] = latency_stats(completed)
        out["webhook_to_capture"] = latency_stats(
            [c.captured - c.webhook_end for c in captured if c.webhook_end is not None])
    return out


# --------------------------------------------------------------------------------------------
# Setup: the service to buy
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    service_id: int
    service_slug: str
    service_name: str
    category: str
    tier_id: int
    tier_name: str
    price_minor: int
    currency: str = CURRENCY


async def ensure_offer() -> tuple[Offer, dict[str, Any]]:
    """A service tier priced in XAF: the demo marketplace's first one (seeded when ``services`` is
    empty), or a ``bench-payments`` service created here when no tier is priced in XAF."""
    info: dict[str, Any] = {"demo_seeded": False, "bench_service_created": False}
    query = (
        select(Service.id, Service.slug, Service.name, Service.category, ServiceTier.id, ServiceTier.name,
               TierPrice.amount_minor)
        .join(ServiceTier, ServiceTier.service_id == Service.id)
        .join(TierPrice, (TierPrice.tier_id == ServiceTier.id) & (TierPrice.currency == CURRENCY))
        .where(Service.active.is_(True))
        .order_by(Service.id, ServiceTier.position, ServiceTier.id)
        .limit(1)
    )
    try:
        async with session_scope() as session:
            any_service = await session.scalar(select(Service.id).limit(1))
        if any_service is None:
            summary = await seed_module.seed_demo()
            info["demo_seeded"] = not summary.get("skipped")
            console.print(f"demo marketplace seeded: {summary.get('counts')}")
        async with session_scope() as session:
            row = (await session.execute(query)).first()
            if row is None:
                service = Service(slug=BENCH_SERVICE_SLUG, name="Benchmark service", category="bench",
                                  description="Created by bench/payments.py")
                session.add(service)
                await session.flush()
                tier = ServiceTier(service_id=service.id, name="Standard", position=0, features=[])
                session.add(tier)
                await session.flush()
                session.add(TierPrice(tier_id=tier.id, currency=CURRENCY, amount_minor=BENCH_PRICE_MINOR))
                await session.flush()
                info["bench_service_created"] = True
                row = (await session.execute(query)).first()
        assert row is not None
    finally:
        await dispose_engine()
    return Offer(*row), info


# --------------------------------------------------------------------------------------------
# The processes: API and Dramatiq workers
# --------------------------------------------------------------------------------------------


def start_worker(port: int, log_path: Path, processes: int, threads: int) -> subprocess.Popen:
    """``uv run dramatiq workers`` (what ``odim worker`` runs) in its own process group, with the
    same settings as the API this script starts."""
    cmd = ["uv", "run", "dramatiq", "workers", "--processes", str(processes), "--threads", str(threads)]
    with open(log_path, "wb") as log:
        return subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=server_env(port), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def stop_worker(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """One SIGTERM to ``uv`` (it forwards it to the Dramatiq master, which stops its worker
    processes gracefully: a second signal would kill them), then ``stop_server``'s group
    SIGTERM/SIGKILL for anything left."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    stop_server(proc)


async def wait_worker_ready(
    redis: aioredis.Redis, proc: subprocess.Popen, log_path: Path, processes: int, since_ms: int,
    timeout: float = 60.0,
) -> float:
    """Wait until ``processes`` Dramatiq brokers have sent a heartbeat (Redis sorted set
    ``dramatiq:__heartbeats__``, scored in ms) since ``since_ms``: their consumers are fetching."""
    started = time.perf_counter()
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        if await redis.zcount("dramatiq:__heartbeats__", since_ms, "+inf") >= processes:
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"worker not fetching after {timeout} s:\n{log_path.read_text()[-3000:]}")
        await asyncio.sleep(0.2)


# --------------------------------------------------------------------------------------------
# Queues and drain
# --------------------------------------------------------------------------------------------


@dataclass
class Marks:
    """Highest ids before a run: rows above them were made by the run."""

    outbox: int
    inbox: int
    emails: int
    dead_letters: int
    payments: int


async def id_marks(conn: asyncpg.Connection) -> Marks:
    row = await conn.fetchrow(
        "SELECT (SELECT coalesce(max(id), 0) FROM outbox) AS outbox,"
        " (SELECT coalesce(max(id), 0) FROM webhook_inbox) AS inbox,"
        " (SELECT coalesce(max(id), 0) FROM emails) AS emails,"
        " (SELECT coalesce(max(id), 0) FROM dead_letters) AS dead_letters,"
        " (SELECT coalesce(max(id), 0) FROM payments) AS payments"
    )
    return Marks(**dict(row))


async def backlog(conn: asyncpg.Connection, redis: aioredis.Redis, marks: Marks) -> dict[str, int]:
    """Work not done yet, from rows made since ``marks`` and every Dramatiq queue in Redis."""
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM outbox WHERE id > $1 AND dispatched_at IS NULL) AS outbox,"
        " (SELECT count(*) FROM webhook_inbox WHERE id > $2 AND processed_at IS NULL AND event_type <> 'ignored')"
        "   AS webhooks,"
        " (SELECT count(*) FROM emails WHERE id > $3 AND sent_at IS NULL) AS emails",
        marks.outbox, marks.inbox, marks.emails,
    )
    out = dict(row)
    out["dramatiq_messages"] = await redis_messages(redis)
    return out


async def redis_messages(redis: aioredis.Redis) -> int:
    """Dramatiq messages not yet acknowledged, in every queue and its delay queue (hashes
    ``dramatiq:<queue>.msgs`` and ``dramatiq:<queue>.DQ.msgs``: an entry lives until its ack)."""
    pipe = redis.pipeline(transaction=False)
    for queue in QUEUES:
        pipe.hlen(f"dramatiq:{queue}.msgs")
        pipe.hlen(f"dramatiq:{queue}.DQ.msgs")
    return sum(await pipe.execute())


async def wait_drained(
    conn: asyncpg.Connection, redis: aioredis.Redis, marks: Marks, since: float, timeout: float,
    captures_pending: Callable[[], int],
) -> dict[str, Any]:
    """Poll every 100 ms until the run's captures are all in (``captures_pending() == 0``) and no
    work is left (``backlog`` all zero). Times are seconds after wall-clock ``since`` (the end of the
    load). ``drained`` is False when ``timeout`` passed first; ``left`` is the backlog at the end."""
    out: dict[str, Any] = {"captures_seconds": None, "queues_seconds": None, "drained": False}
    deadline = time.time() + timeout
    peak: dict[str, int] = defaultdict(int)
    while True:
        now = time.time()
        if out["captures_seconds"] is None and captures_pending() == 0:
            out["captures_seconds"] = now - since
        left = await backlog(conn, redis, marks)
        for k, v in left.items():
            peak[k] = max(peak[k], v)
        if out["captures_seconds"] is not None and not any(left.values()):
            out["queues_seconds"] = time.time() - since
            out["drained"] = True
            break
        if now > deadline:
            break
        await asyncio.sleep(0.1)
    out["left"] = left
    out["peak_after_load"] = dict(peak)
    return out


# --------------------------------------------------------------------------------------------
# Checks: ledger and captures
# --------------------------------------------------------------------------------------------


async def capture_check(conn: asyncpg.Connection, references: list[str]) -> dict[str, Any]:
    """For these payments: how many are completed, how many ``payment_captured`` ledger
    transactions they have, the amounts captured and what their orders' escrow accounts hold."""
    row = await conn.fetchrow(
        "SELECT count(*) AS payments,"
        " count(*) FILTER (WHERE p.status = 'completed') AS completed,"
        " count(t.id) AS captured_transactions,"
        " coalesce(sum(p.amount_minor) FILTER (WHERE p.status = 'completed'), 0)::bigint AS completed_minor,"
        " coalesce(sum(a.balance_minor), 0)::bigint AS escrow_minor"
        " FROM payments p"
        " LEFT JOIN ledger_transactions t"
        "   ON t.idempotency_key = 'payment_captured:' || p.reference AND t.kind = 'payment_captured'"
        " LEFT JOIN ledger_accounts a"
        "   ON a.key = 'escrow:service_request:' || p.service_request_id || ':' || p.currency"
        " WHERE p.reference = ANY($1::text[])",
        references,
    )
    out = dict(row)
    out["ok"] = out["completed"] == out["captured_transactions"] and out["completed_minor"] == out["escrow_minor"]
    return out


async def ledger_check() -> dict[str, Any]:
    """``domain.ledger.verify`` over the whole ledger (its own session)."""
    started = time.perf_counter()
    try:
        async with session_scope() as session:
            check = await ledger.verify(session)
    finally:
        await dispose_engine()
    return {"ok": check.ok, "currency_sums": check.currency_sums, "drifted_accounts": check.drifted_accounts[:20],
            "negative_accounts": check.negative_accounts[:20], "seconds": time.perf_counter() - started}


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def fmt_ms(stats: dict[str, Any], key: str) -> str:
    value = stats.get(key, math.nan)
    return "-" if value is None or math.isnan(value) else f"{value:,.0f}"


def fmt_cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


async def main(args: argparse.Namespace) -> int:
    settings = get_settings()
    if settings.environment == "test":
        console.print("[red]ODIM_ENVIRONMENT=test: the test stack truncates tables before every test; "
                      "run the benchmark on the development stack (unset the ODIM_* test variables)[/red]")
        return 2
    console.rule("[bold]Odim payments benchmark")
    db_url = httpx.URL(settings.database_url.replace("postgresql+asyncpg", "postgresql"))
    console.print(f"database: {db_url.host}:{db_url.port}{db_url.path}   Redis: {settings.redis_url}   API: "
                  f"127.0.0.1:{args.port} (uvicorn --workers {args.server_workers})   Dramatiq: --processes "
                  f"{args.worker_processes} --threads {args.worker_threads}")
    machine = machine_info()
    machine["load_generator"] = (f"httpx {machine['packages']['httpx']} (one AsyncClient per client, asyncio tasks, "
                                  "this process)")
    for pkg in ("dramatiq", "redis"):
        try:
            machine["packages"][pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            machine["packages"][pkg] = None
    timestamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_id = secrets.token_hex(4)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)

    await ensure_database()
    offer, setup = await ensure_offer()
    console.print(f"buying: service {offer.service_id} {offer.service_slug!r}, tier {offer.tier_id} "
                  f"{offer.tier_name!r}, {offer.price_minor:,} {offer.currency} (+ guest surcharge), as guests; "
                  f"run id {run_id}")
    if port_in_use(args.port):
        console.print(f"[red]port {args.port} is already in use: pick another with --port[/red]")
        return 2

    dsn = seed_module.asyncpg_dsn()
    poll_conn = await asyncpg.connect(dsn)
    watch_conn = await asyncpg.connect(dsn)
    activity_conn = await asyncpg.connect(dsn)
    redis = aioredis.from_url(settings.redis_url)
    facts = {
        "postgresql": await watch_conn.fetchval("SHOW server_version"),
        "shared_buffers": await watch_conn.fetchval("SHOW shared_buffers"),
        "synchronous_commit": await watch_conn.fetchval("SHOW synchronous_commit"),
        "max_connections": await watch_conn.fetchval("SHOW max_connections"),
        "redis": (await redis.info("server")).get("redis_version"),
        "payments_before": await watch_conn.fetchval("SELECT count(*) FROM payments"),
        "ledger_entries_before": await watch_conn.fetchval("SELECT count(*) FROM ledger_entries"),
        "dramatiq_messages_before": await redis_messages(redis),
    }
    if facts["dramatiq_messages_before"]:
        console.print(f"[yellow]warning: {facts['dramatiq_messages_before']} Dramatiq messages already wait in Redis; "
                      "the worker will process them during the run[/yellow]")
    procs = Processes(postgres=postmaster_pid())
    api_log = Path(tempfile.gettempdir()) / f"odim-bench-payments-api-{args.port}.log"
    worker_log = Path(tempfile.gettempdir()) / f"odim-bench-payments-worker-{args.port}.log"
    base_url = f"http://127.0.0.1:{args.port}"
    api: subprocess.Popen | None = None
    worker: subprocess.Popen | None = None
    baseline_engine = None
    try:
        # ------------------------------------------------------------ processes
        since_ms = int(time.time() * 1000)
        api = start_server(args.port, api_log, args.server_workers)
        worker = start_worker(args.port, worker_log, args.worker_processes, args.worker_threads)
        procs.api, procs.worker = api.pid, worker.pid
        api_ready = await wait_ready(base_url, api, api_log)
        worker_ready = await wait_worker_ready(redis, worker, worker_log, args.worker_processes, since_ms)
        console.print(f"API ready in {api_ready:.1f} s (log {api_log}); worker fetching after {worker_ready:.1f} s "
                      f"(log {worker_log})")

        # ------------------------------------------------------------ end to end over HTTP
        marks = await id_marks(watch_conn)
        poller = CapturePoller(poll_conn, args.poll_ms / 1000)
        stop_polling = asyncio.Event()
        poll_task = asyncio.create_task(poller.run(stop_polling))
        http_refs: list[str] = []
        load_end: dict[str, float] = {}
        # One AsyncClient (one keep-alive connection) per client, as each customer has its own
        # browser; one shared pool of 100 connections costs more load-generator CPU (httpcore scans
        # the whole pool for every request). uvicorn closes a connection idle for 5 s
        # (--timeout-keep-alive) and clients wait longer than that for their capture, so they never
        # reuse one the server may be closing. One TLS context for all (unused: plain HTTP).
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1,
                              keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS)
        tls = ssl.create_default_context()
        async with contextlib.AsyncExitStack() as stack:
            http_clients = [
                await stack.enter_async_context(httpx.AsyncClient(
                    base_url=base_url, limits=limits, timeout=httpx.Timeout(60.0), verify=tls))
                for _ in range(args.clients)
            ]

            async def http_cycle(k: int, i: int) -> Cycle:
                client = http_clients[k]
                c = Cycle(time.time())
                variables = {"input": {
                    "serviceId": str(offer.service_id), "tierId": str(offer.tier_id), "currency": offer.currency,
                    "idempotencyKey": f"bench-{run_id}-h{i}",
                    "customer": {"fullName": GUEST_NAME, "email": f"bench+{run_id}-h{i}@example.com",
                                 "phone": GUEST_PHONE},
                }}
                try:
                    r = await client.post("/graphql", json={"query": PURCHASE_MUTATION, "variables": variables})
                except httpx.HTTPError as exc:
                    return fail(c, "purchase_transport", f"{type(exc).__name__}: {exc}")
                c.purchase_end = time.time()
                c.purchase_s = c.purchase_end - c.started
                if r.status_code != 200:
                    return fail(c, "purchase_http_status", f"HTTP {r.status_code}: {r.text[:200]}")
                body = r.json()
                if body.get("errors"):
                    return fail(c, "purchase_graphql_error", json.dumps(body["errors"]))
                payload = (body.get("data") or {}).get("purchaseService") or {}
                if payload.get("errors"):
                    return fail(c, "purchase_payload_error", json.dumps(payload["errors"]))
                url = payload.get("checkoutUrl") or ""
                if "/sandbox/checkout/" not in url:
                    return fail(c, "purchase_no_checkout", json.dumps(payload)[:300])
                details = sandbox.parse_checkout(url.rsplit("/sandbox/checkout/", 1)[1])
                c.reference = details.reference
                http_refs.append(details.reference)
                captured = poller.watch(details.reference)
                # The sandbox's Pay button: settle in its records, then send the signed webhook.
                await sandbox.record_checkout_outcome(details, "paid")
                raw, headers = sandbox.build_event(details, "paid")
                sent = time.time()
                try:
                    r = await client.post("/webhooks/sandbox", content=raw, headers=headers)
                except httpx.HTTPError as exc:
                    poller.forget(details.reference)
                    return fail(c, "webhook_transport", f"{type(exc).__name__}: {exc}")
                c.webhook_end = time.time()
                c.webhook_s = c.webhook_end - sent
                try:
                    answer = r.json()
                except ValueError:
                    answer = None
                if r.status_code != 200 or answer != {"received": True, "duplicate": False}:
                    poller.forget(details.reference)
                    return fail(c, "webhook_answer", f"HTTP {r.status_code}: {r.text[:200]}")
                try:
                    c.captured, c.completed_at = await asyncio.wait_for(captured, args.capture_timeout)
                except TimeoutError:
                    poller.forget(details.reference)
                    return fail(c, "capture_timeout", f"{details.reference} not captured within "
                                                      f"{args.capture_timeout:g} s")
                return c

            console.print(f"[bold]1/2[/bold] end to end: {args.clients} clients, purchaseService + sandbox webhook "
                          f"+ wait for capture, {args.warmup:g} s warm-up + {args.duration:g} s")
            drain_task: asyncio.Task | None = None

            def load_stopped() -> None:
                nonlocal drain_task
                load_end["t"] = time.time()
                drain_task = asyncio.create_task(wait_drained(
                    watch_conn, redis, marks, load_end["t"], args.drain_timeout, lambda: len(poller.waiting)))

            http_cycles, http_window, http_marks, http_activity = await run_clients(
                http_cycle, clients=args.clients, warmup=args.warmup, duration=args.duration, procs=procs,
                activity_conn=activity_conn, on_window_end=load_stopped,
            )
        assert drain_task is not None
        drain = await drain_task
        stop_polling.set()
        await poll_task
        http_run = summarize("end to end (HTTP + worker)", http_cycles, http_window)
        http_run["cpu_cores"] = cpu_between(http_marks["start"], http_marks["end"])
        http_run["db_activity"] = http_activity
        http_run["drain"] = drain
        http_run["poller"] = {"interval_ms": args.poll_ms, "polls": poller.polls,
                              "query": latency_stats(poller.poll_seconds)}
        http_run["captures"] = await capture_check(watch_conn, http_refs)
        http_run["dead_letters"] = await watch_conn.fetchval(
            "SELECT count(*) FROM dead_letters WHERE id > $1", marks.dead_letters)
        drained = (f"in {drain['queues_seconds']:.1f} s" if drain["drained"]
                   else f"NOT within {args.drain_timeout:g} s")
        console.print(f"    {http_run['captured_in_window']:,} captured in the window "
                      f"({http_run['captured_per_second']:.1f}/s), {http_run['errors']} errors; queues drained {drained}")

        # ------------------------------------------------------------ baseline in-process
        stop_server(api)
        procs.api = None
        console.print(f"[bold]2/2[/bold] baseline in-process: purchase_service + apply_payment_status, "
                      f"{args.clients} tasks over a pool of {args.clients}, {args.warmup:g} s warm-up + "
                      f"{args.duration:g} s (API stopped; the idle worker stays for the clean-up)")
        base_marks = await id_marks(watch_conn)
        baseline_engine = create_async_engine(
            settings.database_url, pool_size=args.clients, max_overflow=0,
            connect_args={"server_settings": SERVER_SETTINGS},
        )
        maker = async_sessionmaker(baseline_engine, expire_on_commit=False, class_=AsyncSession)
        base_refs: list[str] = []

        async def baseline_cycle(_k: int, i: int) -> Cycle:
            c = Cycle(time.time())
            customer = sr_domain.CustomerDetails(full_name=GUEST_NAME, email=f"bench+{run_id}-b{i}@example.com",
                                                 phone=GUEST_PHONE)
            try:
                async with maker() as session, session.begin():
                    purchase = await sr_domain.purchase_service(
                        session, service_id=offer.service_id, tier_id=offer.tier_id, customer=customer, user=None,
                        idempotency_key=f"bench-{run_id}-b{i}", currency=offer.currency,
                    )
                    payment_id, c.reference = purchase.payment.id, purchase.payment.reference
            except Exception as exc:
                return fail(c, "purchase_exception", f"{type(exc).__name__}: {exc}")
            c.purchase_end = time.time()
            c.purchase_s = c.purchase_end - c.started
            base_refs.append(c.reference)
            try:
                async with maker() as session, session.begin():
                    payment = await session.scalar(select(Payment).where(Payment.id == payment_id).with_for_update())
                    outcome = await payment_domain.apply_payment_status(
                        session, payment, "succeeded", amount_minor=payment.amount_minor, currency=payment.currency,
                        event_id=f"evt_bench_{run_id}_b{i}",
                    )
            except Exception as exc:
                return fail(c, "capture_exception", f"{type(exc).__name__}: {exc}")
            c.webhook_end = c.captured = time.time()
            c.webhook_s = c.webhook_end - c.purchase_end
            if outcome != "completed":
                c.captured = None
                return fail(c, "capture_result", f"apply_payment_status returned {outcome!r}")
            return c

        base_cycles, base_window, base_cpu, base_activity = await run_clients(
            baseline_cycle, clients=args.clients, warmup=args.warmup, duration=args.duration, procs=procs,
            activity_conn=activity_conn,
        )
        await baseline_engine.dispose()
        baseline_engine = None
        base_run = summarize("baseline (domain functions in-process)", base_cycles, base_window)
        base_run["cpu_cores"] = cpu_between(base_cpu["start"], base_cpu["end"])
        base_run["db_activity"] = base_activity
        base_run["captures"] = await capture_check(watch_conn, base_refs)
        console.print(f"    {base_run['captured_in_window']:,} captured in the window "
                      f"({base_run['captured_per_second']:.1f}/s), {base_run['errors']} errors")

        # ------------------------------------------------------------ clean-up: relay what the baseline left
        started = time.time()
        relayed = 0
        try:
            while (n := await outbox.relay(limit=500)) > 0:
                relayed += n
        finally:
            await dispose_engine()
        cleanup = await wait_drained(watch_conn, redis, base_marks, started, args.drain_timeout, lambda: 0)
        cleanup["relayed"] = relayed
        base_run["cleanup_untimed"] = cleanup
        base_run["dead_letters"] = await watch_conn.fetchval(
            "SELECT count(*) FROM dead_letters WHERE id > $1", base_marks.dead_letters)
        console.print(f"    baseline's {relayed:,} outbox rows relayed to the worker afterwards (untimed); "
                      f"{'drained' if cleanup['drained'] else 'NOT drained'} after {time.time() - started:.1f} s")
        ledger_result = await ledger_check()
        ledger_result["whole_database"] = dict(await watch_conn.fetchrow(
            "SELECT (SELECT count(*) FROM payments WHERE status = 'completed') AS completed_payments,"
            " (SELECT count(*) FROM ledger_transactions WHERE kind = 'payment_captured') AS payment_captured"))
    finally:
        if baseline_engine is not None:
            await baseline_engine.dispose()
        if api is not None:
            stop_server(api)
        if worker is not None:
            stop_worker(worker)
        for conn in (poll_conn, watch_conn, activity_conn):
            await conn.close()
        await redis.aclose()

    # ---------------------------------------------------------------- figures
    ratios = {
        "throughput_end_to_end_over_baseline": (http_run["captured_per_second"] / base_run["captured_per_second"]
                                                if base_run["captured_per_second"] else math.nan),
        "p50_end_to_end_over_baseline": http_run["end_to_end"]["p50_ms"] / base_run["end_to_end"]["p50_ms"]
        if base_run["end_to_end"]["n"] else math.nan,
        "p95_end_to_end_over_baseline": http_run["end_to_end"]["p95_ms"] / base_run["end_to_end"]["p95_ms"]
        if base_run["end_to_end"]["n"] else math.nan,
    }

    console.rule("[bold]Results")
    table = Table(show_lines=False)
    for col in ("run", "captured/s", "captured", "started", "errors", "e2e p50 ms", "e2e p95 ms", "e2e p99 ms",
                "e2e max ms", "step 1 p50/p95 ms", "step 2 p50/p95 ms"):
        table.add_column(col, justify="right" if col != "run" else "left")
    for r in (http_run, base_run):
        e = r["end_to_end"]
        table.add_row(
            r["name"], f"{r['captured_per_second']:,.1f}", f"{r['captured_in_window']:,}",
            f"{r['started_in_window']:,}", f"{r['errors']:,}",
            fmt_ms(e, "p50_ms"), fmt_ms(e, "p95_ms"), fmt_ms(e, "p99_ms"), fmt_ms(e, "max_ms"),
            f"{fmt_ms(r['purchase'], 'p50_ms')} / {fmt_ms(r['purchase'], 'p95_ms')}",
            f"{fmt_ms(r['second_step'], 'p50_ms')} / {fmt_ms(r['second_step'], 'p95_ms')}",
        )
    console.print(table)
    console.print("step 1: purchaseService HTTP call (baseline: the purchase transaction); step 2: POST "
                  "/webhooks/sandbox HTTP call (baseline: the capture transaction). e2e: purchase sent -> capture "
                  "committed (HTTP run: first poll that saw the payment completed; baseline: the capture's "
                  "commit returned); a purchase is recorded when its capture lands in the window.")
    cat = http_run.get("end_to_end_completed_at", {})
    w2c = http_run.get("webhook_to_capture", {})
    console.print(f"end to end: webhook answered -> capture seen (queue + worker): p50 {fmt_ms(w2c, 'p50_ms')} ms, "
                  f"p95 {fmt_ms(w2c, 'p95_ms')} ms; purchase sent -> payments.completed_at (set in the worker's "
                  f"transaction before its ledger locks and commit, a lower bound): p50 {fmt_ms(cat, 'p50_ms')} ms, "
                  f"p95 {fmt_ms(cat, 'p95_ms')} ms; poller: every {args.poll_ms:g} ms, query p50 "
                  f"{fmt_ms(http_run['poller']['query'], 'p50_ms')} ms")
    console.print(f"[bold]end to end / baseline[/bold]: throughput "
                  f"[bold]{ratios['throughput_end_to_end_over_baseline']:.2f}[/bold], p50 "
                  f"{ratios['p50_end_to_end_over_baseline']:.2f}, p95 {ratios['p95_end_to_end_over_baseline']:.2f}")
    for r in (http_run, base_run):
        console.print(f"{r['name']}: {r['purchases_total']:,} purchases in all (warm-up and tail included), "
                      f"{r['captured_total']:,} captured; of the {r['started_in_window']:,} started in the window, "
                      f"{r['started_in_window_captured']:,} captured")
        if r["errors"]:
            console.print(f"[red]{r['name']}: {r['errors']} errors {r['errors_by_kind']}[/red], first: "
                          f"{r['first_errors']}", markup=True, highlight=False)

    d = http_run["drain"]
    console.rule("[bold]Queue drain after the load stopped")
    console.print(
        f"in-flight purchases captured after {d['captures_seconds']:.2f} s; " if d["captures_seconds"] is not None
        else "in-flight purchases NOT all captured; ", end="")
    console.print(f"everything done (webhook inbox, outbox, emails, Dramatiq queues) after {d['queues_seconds']:.2f} s"
                  if d["drained"] else f"[red]NOT drained within {args.drain_timeout:g} s: left {d['left']}[/red]")
    console.print(f"backlog peak after the load: {d['peak_after_load']}")

    console.rule("[bold]Checks")
    for r in (http_run, base_run):
        cc = r["captures"]
        console.print(f"{r['name']}: {cc['payments']:,} payments, {cc['completed']:,} completed, "
                      f"{cc['captured_transactions']:,} payment_captured ledger transactions, captured "
                      f"{cc['completed_minor']:,} {CURRENCY}, escrow holds {cc['escrow_minor']:,} {CURRENCY}: "
                      f"{'[green]ok' if cc['ok'] else '[red]MISMATCH'}[/]; dead letters: {r['dead_letters']}")
    console.print(f"ledger.verify (whole ledger, {ledger_result['seconds'] * 1000:.0f} ms): "
                  f"{'[green]balanced' if ledger_result['ok'] else '[red]NOT OK'}[/]; sums per currency "
                  f"{ledger_result['currency_sums']}, drifted accounts {ledger_result['drifted_accounts']}, "
                  f"negative accounts {ledger_result['negative_accounts']}")
    whole = ledger_result["whole_database"]
    console.print(f"whole database (earlier runs and other data included): {whole['completed_payments']:,} completed "
                  f"payments, {whole['payment_captured']:,} payment_captured transactions")

    console.rule("[bold]CPU (cores, over the measured window) and database backends")
    cpu = Table()
    for col in ("run", "load-gen", "API", "worker", "PostgreSQL", "other", "machine busy", "steal"):
        cpu.add_column(col, justify="right" if col != "run" else "left")
    for r in (http_run, base_run):
        c = r["cpu_cores"]
        cpu.add_row(r["name"], fmt_cores(c["loadgen"]), fmt_cores(c["api"]), fmt_cores(c["worker"]),
                    fmt_cores(c["postgres"]), fmt_cores(c["other"]), fmt_cores(c["machine_busy"]),
                    fmt_cores(c["steal"]))
    console.print(cpu)
    console.print("other: machine busy minus the four parts (Redis, the SMTP sink, anything else running); steal: "
                  "time the hypervisor gave to other guests while this machine wanted to run.")
    for r in (http_run, base_run):
        top = list(r["db_activity"].get("avg_backends", {}).items())[:6]
        console.print(f"{r['name']}: average client backends by state ({r['db_activity'].get('samples', 0)} samples): "
                      + ", ".join(f"{k} {v:.1f}" for k, v in top), markup=False, highlight=False)
        for what, stmt, v in r["db_activity"].get("top_statements", [])[:5]:
            console.print(f"    {v:5.1f}  {what}: {stmt}", markup=False, highlight=False)

    console.rule("[bold]Setup")
    console.print(f"API: uvicorn --workers {args.server_workers}; Dramatiq: --processes {args.worker_processes} "
                  f"--threads {args.worker_threads}; load generator: {machine['load_generator']}, "
                  f"{args.clients} clients")
    console.print(f"machine: {machine['nproc']} CPUs ({machine['cpu_model']}), {machine['memory']} RAM, Linux "
                  f"{machine['kernel']}, Python {machine['python']}, load average at start "
                  f"{' '.join(f'{x:.2f}' for x in machine['loadavg_at_start'])}")
    console.print("packages: " + ", ".join(f"{k} {v}" for k, v in machine["packages"].items()))
    console.print(f"PostgreSQL {facts['postgresql']} (shared_buffers {facts['shared_buffers']}, synchronous_commit "
                  f"{facts['synchronous_commit']}), Redis {facts['redis']}; {facts['payments_before']:,} payments "
                  f"and {facts['ledger_entries_before']:,} ledger entries before the run")
    console.print(f"offer: {offer.service_slug} / {offer.tier_name}, {offer.price_minor:,} {offer.currency} "
                  f"(category {offer.category!r}); guests; setup {setup}")

    console.rule("[bold]Notes")
    console.print(
        f"- This machine has {machine['nproc']} CPU(s): the load generator (this process: httpx, the sandbox's side "
        "and the poller), the API, the worker, PostgreSQL and Redis share them. Compare the CPU columns.\n"
        "- Closed loop: a client starts its next purchase only once the previous one is captured, so at most "
        f"{args.clients} purchases are in flight and the latency is that of a loaded system, not of a growing "
        "backlog.\n"
        "- The baseline runs the same domain functions without HTTP, GraphQL, the webhook inbox, Redis/Dramatiq "
        "or the outbox relay (its outbox rows are relayed afterwards, untimed): the ceiling of the database "
        "work of a purchase and its capture. Both runs write the same rows (request, payment, history, "
        "conversation, ledger transaction, emails, outbox).\n"
        "- Figures only: nothing is asserted."
    )

    out = RESULTS_DIR / f"payments-{timestamp}.json"
    out.write_text(json.dumps({
        "timestamp": timestamp,
        "command": " ".join(["uv run python bench/payments.py", *sys.argv[1:]]),
        "options": vars(args),
        "run_id": run_id,
        "machine": machine,
        "facts": facts,
        "offer": asdict(offer),
        "setup": setup,
        "runs": {"end_to_end": http_run, "baseline": base_run},
        "ratios": ratios,
        "ledger": ledger_result,
    }, indent=2, default=str))
    console.print(f"\nwritten {out.relative_to(PROJECT_ROOT)}")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--clients", type=int, default=100, help="concurrent clients (and baseline pool size)")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each run")
    parser.add_argument("--server-workers", type=int, default=2, help="uvicorn --workers for the API")
    parser.add_argument("--worker-processes", type=int, default=1, help="dramatiq workers --processes")
    parser.add_argument("--worker-threads", type=int, default=4, help="dramatiq workers --threads")
    parser.add_argument("--port", type=int, default=8098, help="port for the API server this script starts")
    parser.add_argument("--poll-ms", type=float, default=50.0, help="capture poller interval")
    parser.add_argument("--capture-timeout", type=float, default=60.0,
                        help="seconds a client waits for its payment's capture before counting an error")
    parser.add_argument("--drain-timeout", type=float, default=300.0,
                        help="seconds to wait for the queues to drain after the load")
    args = parser.parse_args(argv)
    if (args.clients < 1 or args.duration <= 0 or args.warmup < 0 or args.server_workers < 1
            or args.worker_processes < 1 or args.worker_threads < 1 or args.poll_ms <= 0
            or args.capture_timeout <= 0 or args.drain_timeout <= 0):
        parser.error("--clients, --server-workers, --worker-processes, --worker-threads >= 1; --duration, "
                     "--poll-ms, --capture-timeout, --drain-timeout > 0; --warmup >= 0")
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))

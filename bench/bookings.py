"""Bookings benchmark: slot holds through the domain, the same INSERTs through raw asyncpg, and the
1,000-way race for one slot.

One run does everything, against the development stack (settings.py defaults: PostgreSQL :54320,
Redis :63790), started and migrated when it is down (``bench.geosearch.ensure_database``)::

    uv run python bench/bookings.py                 # 100 customers, 3 s warm-up + 20 s, 1,000 providers
    uv run python bench/bookings.py --help

1. Setup (kept between runs, created when missing): a ``bench-bookings`` service (category
   ``bench``, one tier priced 15,000 XAF); ``--providers`` (1,000) verified providers named
   ``Bench bookings provider <k>`` near 0°N 0°E (in the sea, so they never show up around the demo
   cities), their time zones taking turns among Africa/Douala, Europe/Paris, America/New_York and
   Asia/Kolkata; each open Monday to Saturday 08:00-12:00 and 13:00-18:00 local time (9 one-hour
   slots a day), 120 minutes' notice, no buffer, a 30-day horizon, 60-minute slots of the service;
   ``--race-customers`` (1,000) customer accounts. Bookings that an earlier run left on the bench
   providers are deleted with their history, so every run starts from the same free slots.
2. The slot pool: every slot the providers' plans offer from now + 1 day to now + 29 days
   (``domain.availability.compute_slots`` on each plan, nothing busy: about 230,000), drawn at
   random (``random.Random(--seed)``).
3. Domain run: ``--clients`` (100) customers, asyncio tasks in this process, each with its own
   customer account, each loop for ``--warmup`` then ``--duration`` seconds: draw a slot, then
   ``domain.booking.hold_slot`` in its own transaction (a SQLAlchemy session over a pool of
   ``--clients`` connections, the API's session settings, every one opened and warmed first by a
   rolled-back hold at a provider of its own), committed when held. A hold is recorded
   when it ends inside the measured window. Refusals are ``SlotUnavailable`` (SLOT_UNAVAILABLE: the
   slot was drawn before); any other exception is an error, counted by kind (SQLSTATE when there
   is one). Before it, 20 holds one at a time give the unloaded latency and the SQL statements of
   one hold (counted by a ``before_cursor_execute`` hook).
4. Baseline, in the same run, after the domain run's bookings are deleted: exactly as many INSERTs
   of booking rows as the domain run made attempts in its window, for the same slots in the same
   order, with the columns ``hold_slot`` writes, one autocommitted statement each, by ``--clients``
   tasks over an asyncpg pool of as many connections (prepared statements; no ORM, no checks, no
   history row, no outbox row). Refusals are SQLSTATE 23P01 (the exclusion constraint). Printed
   as domain / raw.
5. The race: ``--race-customers`` (1,000) customers want the same slot (the first bench provider's
   first slot after now + 1 day, free after the clean-up). ``--race-connections`` (250) tasks each
   open their session and connection (warmed by a rolled-back hold at another provider), wait for
   all the others (an ``asyncio.Barrier``), then hold
   the slot for their share of the customers one after the other (4 each), every attempt in its own
   transaction through ``hold_slot``. Prints the race's duration (barrier released -> last answer),
   winners (must be 1), refusals and errors, and checks the database: one live booking on that slot.
6. Clean-up: the run's outbox rows (live events) are relayed (``domain.outbox.relay``, untimed) and
   its bookings deleted (``--keep`` keeps the race's).
7. Prints the figures, CPU per part (this process, PostgreSQL, machine busy, hypervisor steal), what
   the database backends were doing (``pg_stat_activity`` every 100 ms), the machine, and writes a
   JSON copy to ``bench/results/bookings-<UTC timestamp>.json``.

Figures only: nothing here asserts a time (docs/conventions.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import secrets
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import asyncpg
from rich.console import Console
from rich.table import Table
from sqlalchemy import event, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from bench.geosearch import SERVER_SETTINGS, ensure_database, machine_cores, machine_cpu, machine_info, tree_cpu_seconds
from bench.payments import ACTIVITY_SQL, fmt_cores, fmt_ms, latency_stats, postmaster_pid
from devstack import seed as seed_module
from domain.bookings import booking
from domain.bookings.booking import SlotUnavailable
from domain.identity.user import hash_password
from domain.providers import availability
from domain.shared import outbox
from domain.shared.errors import DomainError
from models import (
    AvailabilityRule,
    Booking,
    BookingStatusChange,
    Provider,
    ProviderBookingSettings,
    ProviderService,
    Service,
    ServiceTier,
    TierPrice,
    User,
)
from models.bookings import LIVE_STATUSES
from models.db import dispose_engine, session_scope
from settings import get_settings

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CURRENCY = "XAF"
SERVICE_SLUG = "bench-bookings"
PRICE_MINOR = 15_000  # XAF has no minor unit: 15,000 XAF
PROVIDER_PREFIX = "Bench bookings provider "
CUSTOMER_EMAIL = "bench-bookings-{:04d}@example.com"
TIME_ZONES = ("Africa/Douala", "Europe/Paris", "America/New_York", "Asia/Kolkata")
#: Monday to Saturday, 08:00-12:00 and 13:00-18:00 local (minutes after local midnight).
PLAN = {weekday: [(8 * 60, 12 * 60), (13 * 60, 18 * 60)] for weekday in range(6)}
SLOT_MINUTES = 60
NOTICE_MINUTES = 120
BUFFER_MINUTES = 0
HORIZON_DAYS = 30

RAW_INSERT_SQL = (
    "INSERT INTO bookings (reference, provider_id, service_id, tier_id, customer_user_id, currency, status, "
    "starts_at, ends_at, blocked_until, time_zone, hold_expires_at, customer_note) "
    "VALUES ($1, $2, $3, $4, $5, $6, 'held', $7, $8, $9, $10, $11, '') RETURNING id"
)

console = Console() if sys.stdout.isatty() else Console(width=160)


# --------------------------------------------------------------------------------------------
# Setup: service, providers, customers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchProvider:
    id: int
    time_zone: str


@dataclass
class BenchData:
    service_id: int
    tier_id: int
    providers: list[BenchProvider]
    customers: list[User]
    created: dict[str, int] = field(default_factory=dict)


async def ensure_bench_data(n_providers: int, n_customers: int) -> BenchData:
    """The bench service, ``n_providers`` providers with their plan, rules and service, and
    ``n_customers`` customer accounts: reused when an earlier run made them, created when missing."""
    created = {"service": 0, "providers": 0, "customers": 0}
    async with session_scope() as s:
        service = await s.scalar(select(Service).where(Service.slug == SERVICE_SLUG))
        if service is None:
            service = Service(slug=SERVICE_SLUG, name="Benchmark visit", category="bench",
                              description="Created by bench/bookings.py")
            s.add(service)
            await s.flush()
            s.add(ServiceTier(service_id=service.id, name="Visit", position=0, features=[]))
            await s.flush()
            created["service"] = 1
        tier_id = await s.scalar(select(ServiceTier.id).where(ServiceTier.service_id == service.id)
                                 .order_by(ServiceTier.position, ServiceTier.id).limit(1))
        if await s.get(TierPrice, (tier_id, CURRENCY)) is None:
            s.add(TierPrice(tier_id=tier_id, currency=CURRENCY, amount_minor=PRICE_MINOR))
        service_id = service.id

    async with session_scope() as s:
        existing = (await s.execute(select(Provider.id, Provider.time_zone)
                                    .where(Provider.display_name.like(PROVIDER_PREFIX + "%"))
                                    .order_by(Provider.id))).all()
        missing = n_providers - len(existing)
        if missing > 0:
            rng = random.Random(7)
            new = [
                Provider(display_name=f"{PROVIDER_PREFIX}{k + 1}", categories=["bench"], verified=True,
                         available=True, suspended=False, rating=4.0, city="Bench", country_code="CM",
                         time_zone=TIME_ZONES[k % len(TIME_ZONES)],
                         location=f"SRID=4326;POINT({rng.uniform(0, 0.3):.6f} {rng.uniform(0, 0.3):.6f})")
                for k in range(len(existing), n_providers)
            ]
            s.add_all(new)
            await s.flush()
            ids = [p.id for p in new]
            await s.execute(insert(AvailabilityRule), [
                {"provider_id": pid, "weekday": w, "start_minute": a, "end_minute": b}
                for pid in ids for w, ranges in PLAN.items() for a, b in ranges])
            await s.execute(insert(ProviderBookingSettings), [
                {"provider_id": pid, "min_notice_minutes": NOTICE_MINUTES, "buffer_minutes": BUFFER_MINUTES,
                 "horizon_days": HORIZON_DAYS} for pid in ids])
            await s.execute(insert(ProviderService), [
                {"provider_id": pid, "service_id": service_id, "slot_minutes": SLOT_MINUTES, "active": True}
                for pid in ids])
            existing = [*existing, *((p.id, p.time_zone) for p in new)]
            created["providers"] = missing
    providers = [BenchProvider(pid, tz) for pid, tz in existing[:n_providers]]

    emails = [CUSTOMER_EMAIL.format(i) for i in range(n_customers)]
    async with session_scope() as s:
        have = {u.email: u for u in (await s.scalars(select(User).where(User.email.in_(emails)))).all()}
        todo = [e for e in emails if e not in have]
        if todo:
            password_hash = hash_password(secrets.token_urlsafe(16))
            new_users = [User(email=e, password_hash=password_hash, full_name="Bench Customer", role="customer")
                         for e in todo]
            s.add_all(new_users)
            await s.flush()
            have.update({u.email: u for u in new_users})
            created["customers"] = len(todo)
    await dispose_engine()
    return BenchData(service_id, tier_id, providers, [have[e] for e in emails], created)


async def delete_bench_bookings(conn: asyncpg.Connection, provider_ids: list[int]) -> int:
    """Delete every booking of the bench providers and its history; returns how many bookings."""
    async with conn.transaction():
        await conn.execute("DELETE FROM booking_status_history h USING bookings b "
                           "WHERE h.booking_id = b.id AND b.provider_id = ANY($1::bigint[])", provider_ids)
        status = await conn.execute("DELETE FROM bookings WHERE provider_id = ANY($1::bigint[])", provider_ids)
    return int(status.split()[-1])


@dataclass(frozen=True)
class SlotChoice:
    provider: BenchProvider
    start: datetime
    end: datetime


def slot_pool(providers: list[BenchProvider], now: datetime) -> list[SlotChoice]:
    """Every slot the plans offer from now + 1 day to now + 29 days, nothing busy (pure computation)."""
    lo, hi = now + timedelta(days=1), now + timedelta(days=HORIZON_DAYS - 1)
    out: list[SlotChoice] = []
    for p in providers:
        for slot in availability.compute_slots(
            time_zone=p.time_zone, plan=PLAN, exceptions={}, busy=[], slot_minutes=SLOT_MINUTES,
            buffer_minutes=BUFFER_MINUTES, window_start=lo, window_end=hi, earliest=lo, latest=hi,
        ):
            out.append(SlotChoice(p, slot.start, slot.end))
    return out


def distinct_providers(pool: list[SlotChoice], rng: random.Random, n: int) -> list[SlotChoice]:
    """``n`` random slots of ``n`` different providers (providers reused only when there are fewer
    than ``n``): the warm-up holds of different connections never wait for each other."""
    by_provider: dict[int, list[SlotChoice]] = {}
    for c in pool:
        by_provider.setdefault(c.provider.id, []).append(c)
    ids = list(by_provider)
    rng.shuffle(ids)
    picked: list[SlotChoice] = []
    for i in range(n):
        slots = by_provider[ids[i % len(ids)]]
        picked.append(slots[(i // len(ids)) % len(slots)])
    return picked


# --------------------------------------------------------------------------------------------
# Attempts and figures
# --------------------------------------------------------------------------------------------


@dataclass
class Attempt:
    """One hold (or raw INSERT). Times are ``time.perf_counter()`` seconds."""

    started: float
    ended: float = 0.0
    outcome: str = "held"  # held | refused | <error kind>
    choice: SlotChoice | None = None
    error: str | None = None


def error_kind(exc: BaseException) -> str:
    """``refused`` for ``SlotUnavailable``; the code of another domain error; otherwise the
    exception's class and the SQLSTATE found on it or its causes (``DBAPIError 40P01``)."""
    if isinstance(exc, SlotUnavailable):
        return "refused"
    if isinstance(exc, DomainError):
        return exc.code
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            break
        state = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if state:
            return f"{type(exc).__name__} {state}"
        seen = getattr(seen, "orig", None) or seen.__cause__
    return type(exc).__name__


@dataclass
class Window:
    start: float
    end: float


def summarize(name: str, attempts: list[Attempt], window: Window | None) -> dict[str, Any]:
    """Attempts that ended in the window (all of them without one): holds/s, refusals, errors by
    kind, latency of all attempts and of successful holds."""
    inside = [a for a in attempts if window is None or window.start <= a.ended <= window.end]
    if window is not None:
        seconds = window.end - window.start
    else:
        seconds = (max(a.ended for a in attempts) - min(a.started for a in attempts)) if attempts else 0.0
    kinds = Counter(a.outcome for a in inside)
    first_errors: dict[str, list[str]] = {}
    for a in attempts:
        if a.outcome not in ("held", "refused") and len(first_errors.setdefault(a.outcome, [])) < 3:
            first_errors[a.outcome].append(a.error or "")
    return {
        "name": name,
        "seconds": seconds,
        "attempts": len(inside),
        "attempts_total": len(attempts),
        "held": kinds.get("held", 0),
        "refused": kinds.get("refused", 0),
        "errors": sum(v for k, v in kinds.items() if k not in ("held", "refused")),
        "errors_by_kind": {k: v for k, v in kinds.items() if k not in ("held", "refused")},
        "first_errors": first_errors,
        "attempts_per_second": len(inside) / seconds if seconds > 0 else math.nan,
        "held_per_second": kinds.get("held", 0) / seconds if seconds > 0 else math.nan,
        "latency": latency_stats([a.ended - a.started for a in inside]),
        "latency_held": latency_stats([a.ended - a.started for a in inside if a.outcome == "held"]),
        "latency_refused": latency_stats([a.ended - a.started for a in inside if a.outcome == "refused"]),
    }


class CpuMarks:
    """CPU seconds of this process, the PostgreSQL postmaster's tree and the whole machine."""

    def __init__(self) -> None:
        self.postgres = postmaster_pid()

    def sample(self) -> dict[str, Any]:
        return {"t": time.perf_counter(), "script": time.process_time(), "machine": machine_cpu(),
                "postgres": tree_cpu_seconds(self.postgres) if self.postgres else None}

    @staticmethod
    def between(start: dict[str, Any], end: dict[str, Any]) -> dict[str, float | None]:
        wall = max(1e-9, end["t"] - start["t"])
        busy, steal = machine_cores(start["machine"], end["machine"])
        pg = None if start["postgres"] is None else (end["postgres"] - start["postgres"]) / wall
        script = (end["script"] - start["script"]) / wall
        return {"script": script, "postgres": pg, "other": busy - script - (pg or 0.0), "machine_busy": busy,
                "steal": steal}


async def sample_activity(conn: asyncpg.Connection, stop: asyncio.Event, out: dict[str, Any]) -> None:
    """Sample ``pg_stat_activity`` every 100 ms until ``stop`` is set (``bench.payments.ACTIVITY_SQL``).
    ``out`` gets ``samples``, ``avg_backends`` (average client backends per state or wait event) and
    ``top_statements`` (the 8 most frequent ``[state or wait, statement, average backends]`` among
    backends inside a transaction)."""
    totals: Counter[str] = Counter()
    statements: Counter[tuple[str, str]] = Counter()
    samples = 0
    while not stop.is_set():
        for row in await conn.fetch(ACTIVITY_SQL):
            totals[row["what"]] += row["n"]
            if row["statement"]:
                statements[(row["what"], row["statement"])] += row["n"]
        samples += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)
    n = max(1, samples)
    out["samples"] = samples
    out["avg_backends"] = {k: v / n for k, v in totals.most_common()}
    out["top_statements"] = [[what, stmt, v / n] for (what, stmt), v in statements.most_common(8)]


# --------------------------------------------------------------------------------------------
# The runs
# --------------------------------------------------------------------------------------------


def domain_engine(pool_size: int):
    """An engine like the API's (models/db.py session settings) with ``pool_size`` connections and
    no overflow."""
    return create_async_engine(get_settings().database_url, pool_size=pool_size, max_overflow=0, pool_timeout=120,
                               connect_args={"server_settings": SERVER_SETTINGS})


async def hold(maker: async_sessionmaker[AsyncSession], data: BenchData, customer: User, choice: SlotChoice,
               session: AsyncSession | None = None) -> Attempt:
    """``hold_slot`` for ``choice`` in its own transaction (``session`` when given, already in one)."""
    a = Attempt(time.perf_counter(), choice=choice)
    try:
        if session is None:
            async with maker() as s, s.begin():
                await booking.hold_slot(s, customer=customer, provider_id=choice.provider.id,
                                        service_id=data.service_id, start=choice.start, currency=CURRENCY)
        else:
            await booking.hold_slot(session, customer=customer, provider_id=choice.provider.id,
                                    service_id=data.service_id, start=choice.start, currency=CURRENCY)
            await session.commit()
    except Exception as exc:  # counted by kind, never hidden
        a.outcome, a.error = error_kind(exc), f"{type(exc).__name__}: {exc}"[:300]
        if session is not None:
            await session.rollback()
    a.ended = time.perf_counter()
    return a


async def warm(session: AsyncSession, data: BenchData, customer: User, choice: SlotChoice,
               everyone: asyncio.Barrier) -> None:
    """One ``hold_slot`` in ``session``, rolled back once every task of ``everyone`` has made its own:
    all the pool's connections are open at once, their prepared statements and type codecs ready
    (asyncpg introspects non-builtin types such as ``geography`` on first use of each connection)."""
    try:
        await booking.hold_slot(session, customer=customer, provider_id=choice.provider.id,
                                service_id=data.service_id, start=choice.start, currency=CURRENCY)
    except DomainError:
        pass
    async with asyncio.timeout(300):
        await everyone.wait()
    await session.rollback()


async def profile_one_hold(data: BenchData, pool: list[SlotChoice], rng: random.Random, n: int = 20) -> dict[str, Any]:
    """``n`` holds one at a time on one warm connection (unloaded latency) and the statements of one
    hold and one refusal."""
    engine = domain_engine(1)
    maker = async_sessionmaker(engine, expire_on_commit=False)
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(" ".join(statement.split())[:100])

    try:
        await hold(maker, data, data.customers[0], rng.choice(pool))  # warms the connection
        latencies = []
        for _ in range(n):
            a = await hold(maker, data, data.customers[0], rng.choice(pool))
            latencies.append(a.ended - a.started)
        choice = rng.choice(pool)
        event.listen(engine.sync_engine, "before_cursor_execute", count)
        held = await hold(maker, data, data.customers[0], choice)
        held_statements = list(statements)
        statements.clear()
        refused = await hold(maker, data, data.customers[1], choice)
        refused_statements = list(statements)
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    finally:
        await engine.dispose()
    return {"holds": n, "latency": latency_stats(latencies), "held_outcome": held.outcome,
            "refused_outcome": refused.outcome, "held_statements": held_statements,
            "refused_statements": refused_statements}


async def domain_run(data: BenchData, pool: list[SlotChoice], rng: random.Random, args: argparse.Namespace,
                     activity_conn: asyncpg.Connection) -> tuple[dict[str, Any], list[Attempt]]:
    """``args.clients`` customers holding random slots for warm-up + duration seconds."""
    engine = domain_engine(args.clients)
    maker = async_sessionmaker(engine, expire_on_commit=False)
    attempts: list[Attempt] = []
    marks: dict[str, Any] = {}
    activity: dict[str, Any] = {}
    cpu = CpuMarks()
    try:
        everyone = asyncio.Barrier(args.clients)
        spare = distinct_providers(pool, rng, args.clients)

        async def connect(k: int) -> None:  # every connection open and warm before the load starts
            async with maker() as s:
                await warm(s, data, data.customers[k], spare[k], everyone)

        await asyncio.gather(*(connect(k) for k in range(args.clients)))
        loop_start = time.perf_counter()
        window = Window(loop_start + args.warmup, loop_start + args.warmup + args.duration)
        stop = asyncio.Event()

        async def sampler() -> None:
            await asyncio.sleep(max(0.0, window.start - time.perf_counter()))
            marks["start"] = cpu.sample()
            sampling = asyncio.create_task(sample_activity(activity_conn, stop, activity))
            await asyncio.sleep(max(0.0, window.end - time.perf_counter()))
            marks["end"] = cpu.sample()
            stop.set()
            await sampling

        async def customer(k: int) -> None:
            while time.perf_counter() < window.end:
                attempts.append(await hold(maker, data, data.customers[k], rng.choice(pool)))

        sampling = asyncio.create_task(sampler())
        await asyncio.gather(*(customer(k) for k in range(args.clients)))
        await sampling
    finally:
        await engine.dispose()
    out = summarize(f"domain: hold_slot, {args.clients} customers", attempts, window)
    out["cpu_cores"] = CpuMarks.between(marks["start"], marks["end"])
    out["db_activity"] = activity
    return out, [a for a in attempts if window.start <= a.ended <= window.end]


async def raw_run(data: BenchData, replay: list[Attempt], args: argparse.Namespace,
                  activity_conn: asyncpg.Connection) -> dict[str, Any]:
    """The same number of booking INSERTs as ``replay``, same slots in the same order, through an
    asyncpg pool of ``args.clients`` connections, one autocommitted statement each."""
    dsn = seed_module.asyncpg_dsn()
    pg_pool = await asyncpg.create_pool(dsn, min_size=args.clients, max_size=args.clients,
                                        server_settings=SERVER_SETTINGS)
    attempts: list[Attempt] = []
    cpu = CpuMarks()
    activity: dict[str, Any] = {}
    hold_seconds = get_settings().booking_hold_seconds
    run = secrets.token_hex(3)
    try:
        queue = iter(enumerate(replay))

        async def client(k: int) -> None:
            async with pg_pool.acquire() as conn:
                for i, original in queue:
                    choice = original.choice
                    assert choice is not None
                    a = Attempt(time.perf_counter(), choice=choice)
                    try:
                        await conn.fetchval(
                            RAW_INSERT_SQL, f"R{run}{i:08d}", choice.provider.id,
                            data.service_id, data.tier_id, data.customers[i % args.clients].id, CURRENCY,
                            choice.start, choice.end, choice.end + timedelta(minutes=BUFFER_MINUTES),
                            choice.provider.time_zone, datetime.now(UTC) + timedelta(seconds=hold_seconds))
                    except asyncpg.ExclusionViolationError:
                        a.outcome = "refused"
                    except asyncpg.PostgresError as exc:
                        a.outcome, a.error = f"{type(exc).__name__} {exc.sqlstate}", str(exc)[:300]
                    a.ended = time.perf_counter()
                    attempts.append(a)

        await asyncio.gather(*(pg_pool.execute("SELECT 1") for _ in range(args.clients)))
        start = cpu.sample()
        stop = asyncio.Event()
        sampling = asyncio.create_task(sample_activity(activity_conn, stop, activity))
        await asyncio.gather(*(client(k) for k in range(args.clients)))
        end = cpu.sample()
        stop.set()
        await sampling
    finally:
        await pg_pool.close()
    out = summarize(f"raw asyncpg INSERTs, {args.clients} connections", attempts, None)
    out["cpu_cores"] = CpuMarks.between(start, end)
    out["db_activity"] = activity
    return out


async def race_run(data: BenchData, choice: SlotChoice, spare: list[SlotChoice], args: argparse.Namespace,
                   activity_conn: asyncpg.Connection) -> dict[str, Any]:
    """``args.race_customers`` customers racing for ``choice`` over ``args.race_connections``
    connections (each connection's task holds for its share of the customers, one after the other).
    Each connection is warmed first by a hold of its ``spare`` slot, rolled back."""
    n, width = args.race_customers, min(args.race_connections, args.race_customers)
    engine = domain_engine(width)
    maker = async_sessionmaker(engine, expire_on_commit=False)
    barrier, warmed = asyncio.Barrier(width), asyncio.Barrier(width)
    stop = asyncio.Event()
    sampling: list[asyncio.Task] = []  # pg_stat_activity from the release of the racers on
    released: list[float] = []
    attempts: list[Attempt] = []
    pids: set[int] = set()
    activity: dict[str, Any] = {}
    cpu = CpuMarks()
    marks: dict[str, Any] = {}
    shares = [list(range(k, n, width)) for k in range(width)]
    try:
        async def racer(k: int) -> None:
            async with maker() as session:  # its transaction (and connection) stays open across the barrier
                await warm(session, data, data.customers[k], spare[k], warmed)
                pids.add(await session.scalar(text("SELECT pg_backend_pid()")))
                async with asyncio.timeout(300):
                    await barrier.wait()
                if not released:
                    marks["start"] = cpu.sample()
                    sampling.append(asyncio.create_task(sample_activity(activity_conn, stop, activity)))
                released.append(time.perf_counter())
                for j, i in enumerate(shares[k]):
                    if j == 0:  # the first attempt on the connection already checked out
                        attempts.append(await hold(maker, data, data.customers[i], choice, session=session))
                    else:
                        attempts.append(await hold(maker, data, data.customers[i], choice))

        await asyncio.gather(*(racer(k) for k in range(width)))
        marks["end"] = cpu.sample()
        stop.set()
        await asyncio.gather(*sampling)
    finally:
        await engine.dispose()
    start, end = min(released), max(a.ended for a in attempts)
    out = summarize(f"race: {n} customers, one slot", attempts, None)
    out["race_seconds"] = end - start
    out["connections"] = len(pids)
    out["cpu_cores"] = CpuMarks.between(marks["start"], marks["end"])
    out["db_activity"] = activity
    async with session_scope() as s:
        statuses = dict((await s.execute(
            select(Booking.status, func.count()).where(Booking.provider_id == choice.provider.id,
                                                       Booking.starts_at == choice.start).group_by(Booking.status)
        )).all())
        history = await s.scalar(select(func.count()).select_from(BookingStatusChange).join(
            Booking, Booking.id == BookingStatusChange.booking_id).where(
            Booking.provider_id == choice.provider.id, Booking.starts_at == choice.start))
    await dispose_engine()
    live = sum(v for k, v in statuses.items() if k in LIVE_STATUSES)
    expired = statuses.get("payment_expired", 0)
    out["database"] = {"bookings_on_the_slot_by_status": statuses, "live_bookings_on_the_slot": live,
                       "history_rows": history}
    # A winner whose hold expired during a race longer than booking_hold_seconds is expired lazily by
    # the next attempt, which then wins too: one more winner, one payment_expired, two history rows.
    out["ok"] = (live == 1 and out["errors"] == 0 and out["held"] == 1 + expired
                 and out["refused"] == n - out["held"] and history == out["held"] + expired)
    return out


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def print_run_table(runs: list[dict[str, Any]]) -> None:
    table = Table()
    for col in ("run", "attempts", "attempts/s", "held", "held/s", "refused", "errors", "p50 ms", "p95 ms",
                "p99 ms", "max ms"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for r in runs:
        lat = r["latency"]
        table.add_row(r["name"], f"{r['attempts']:,}", f"{r['attempts_per_second']:,.1f}", f"{r['held']:,}",
                      f"{r['held_per_second']:,.1f}", f"{r['refused']:,}", f"{r['errors']:,}",
                      fmt_ms(lat, "p50_ms"), fmt_ms(lat, "p95_ms"), fmt_ms(lat, "p99_ms"), fmt_ms(lat, "max_ms"))
    console.print(table)


async def relay_outbox() -> dict[str, Any]:
    """Dispatch the pending outbox rows (the holds' live events) to Redis, untimed."""
    started, relayed = time.perf_counter(), 0
    try:
        while (k := await outbox.relay(limit=500)) > 0:
            relayed += k
    except Exception as exc:  # Redis down: the rows stay pending for `odim worker`'s relay
        return {"relayed": relayed, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        await dispose_engine()
    return {"relayed": relayed, "seconds": time.perf_counter() - started}


async def main(args: argparse.Namespace) -> int:
    settings = get_settings()
    if settings.environment == "test":
        console.print("[red]ODIM_ENVIRONMENT=test: the test stack truncates tables before every test; "
                      "run the benchmark on the development stack (unset the ODIM_* test variables)[/red]")
        return 2
    console.rule("[bold]Odim bookings benchmark")
    machine = machine_info()
    timestamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    await ensure_database()
    started = time.perf_counter()
    data = await ensure_bench_data(args.providers, max(args.race_customers, args.clients))
    console.print(f"setup in {time.perf_counter() - started:.1f} s: service {data.service_id}, "
                  f"{len(data.providers):,} providers, {len(data.customers):,} customers; created {data.created}")

    dsn = seed_module.asyncpg_dsn()
    watch = await asyncpg.connect(dsn)
    activity_conn = await asyncpg.connect(dsn)
    provider_ids = [p.id for p in data.providers]
    facts = {
        "postgresql": await watch.fetchval("SHOW server_version"),
        "shared_buffers": await watch.fetchval("SHOW shared_buffers"),
        "synchronous_commit": await watch.fetchval("SHOW synchronous_commit"),
        "max_connections": int(await watch.fetchval("SHOW max_connections")),
        "deadlock_timeout": await watch.fetchval("SHOW deadlock_timeout"),
        "connections_in_use": await watch.fetchval("SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                                                   "'client backend'"),
        "bookings_in_database": await watch.fetchval("SELECT count(*) FROM bookings"),
        "earlier_bench_bookings_deleted": await delete_bench_bookings(watch, provider_ids),
    }
    room = facts["max_connections"] - facts["connections_in_use"] - 5
    if args.race_connections > room:
        console.print(f"[yellow]only {room} connections free (max_connections {facts['max_connections']}, "
                      f"{facts['connections_in_use']} in use): the race uses {room}[/yellow]")
        args.race_connections = room
    rng = random.Random(args.seed)
    pool = slot_pool(data.providers, datetime.now(UTC))
    facts["slot_pool"] = len(pool)
    console.print(f"{len(pool):,} slots offered from now + 1 day to now + {HORIZON_DAYS - 1} days; "
                  f"{facts['earlier_bench_bookings_deleted']:,} bookings of an earlier run deleted")

    results: dict[str, Any] = {}
    try:
        # ---------------------------------------------------------------- one hold at a time
        console.print("profiling one hold at a time ...")
        profile = await profile_one_hold(data, pool, rng)
        results["profile"] = profile
        await delete_bench_bookings(watch, provider_ids)

        # ---------------------------------------------------------------- domain run
        console.print(f"domain run: {args.clients} customers, {args.warmup:g} s + {args.duration:g} s ...")
        dom, replay = await domain_run(data, pool, rng, args, activity_conn)
        results["domain"] = dom
        console.print(f"    {dom['held']:,} held ({dom['held_per_second']:.1f}/s), {dom['refused']:,} refused, "
                      f"{dom['errors']:,} errors")
        await delete_bench_bookings(watch, provider_ids)

        # ---------------------------------------------------------------- raw baseline
        console.print(f"raw run: {len(replay):,} INSERTs over {args.clients} asyncpg connections ...")
        raw = await raw_run(data, replay, args, activity_conn)
        results["raw"] = raw
        await delete_bench_bookings(watch, provider_ids)

        # ---------------------------------------------------------------- the race
        first = data.providers[0]
        target = min((c for c in pool if c.provider.id == first.id), key=lambda c: c.start)
        console.print(f"race: {args.race_customers:,} customers for provider {first.id} at "
                      f"{target.start.isoformat()} over {args.race_connections} connections ...")
        spare = distinct_providers([c for c in pool if c.provider.id != first.id], rng, args.race_connections)
        race = await race_run(data, target, spare, args, activity_conn)
        results["race"] = race
        if not args.keep:
            await delete_bench_bookings(watch, provider_ids)
        results["outbox"] = await relay_outbox()
    finally:
        await watch.close()
        await activity_conn.close()

    # -------------------------------------------------------------------- figures
    ratios = {
        "throughput_domain_over_raw": dom["attempts_per_second"] / raw["attempts_per_second"]
        if raw["attempts_per_second"] else math.nan,
        "p50_domain_over_raw": dom["latency"]["p50_ms"] / raw["latency"]["p50_ms"] if raw["latency"]["n"] else math.nan,
        "p95_domain_over_raw": dom["latency"]["p95_ms"] / raw["latency"]["p95_ms"] if raw["latency"]["n"] else math.nan,
    }
    results["ratios"] = ratios

    console.rule(f"[bold]Holds: {args.clients} customers over {len(data.providers):,} providers vs. the same INSERTs "
                 "through raw asyncpg")
    print_run_table([dom, raw])
    console.print(f"[bold]domain / raw[/bold]: throughput [bold]{ratios['throughput_domain_over_raw']:.3f}[/bold] "
                  f"(raw is {1 / ratios['throughput_domain_over_raw']:.1f}x faster), p50 "
                  f"{ratios['p50_domain_over_raw']:.1f}, p95 {ratios['p95_domain_over_raw']:.1f}")
    console.print(f"domain: held p50/p95 {fmt_ms(dom['latency_held'], 'p50_ms')} / "
                  f"{fmt_ms(dom['latency_held'], 'p95_ms')} ms, refused p50/p95 "
                  f"{fmt_ms(dom['latency_refused'], 'p50_ms')} / {fmt_ms(dom['latency_refused'], 'p95_ms')} ms; "
                  f"{dom['attempts_total']:,} attempts in all (warm-up and tail included)")
    lat = profile["latency"]
    console.print(f"one hold at a time (unloaded, one warm connection): p50 {lat['p50_ms']:.1f} ms, p95 "
                  f"{lat['p95_ms']:.1f} ms over {profile['holds']} holds; {len(profile['held_statements'])} SQL "
                  f"statements for a hold ({profile['held_outcome']}), {len(profile['refused_statements'])} for a "
                  f"refusal ({profile['refused_outcome']})")
    for stmt in profile["held_statements"]:
        console.print(f"    {stmt}", markup=False, highlight=False)
    for r in (dom, raw):
        if r["errors"]:
            console.print(f"[red]{r['name']}: {r['errors']} errors {r['errors_by_kind']}[/red], first: "
                          f"{r['first_errors']}", markup=True, highlight=False)

    console.rule(f"[bold]The race: {args.race_customers:,} customers, one slot")
    console.print(f"{race['attempts']:,} attempts over {race['connections']} connections "
                  f"({args.race_customers // max(1, args.race_connections)}+ each): race duration "
                  f"[bold]{race['race_seconds'] * 1000:,.0f} ms[/bold] (barrier released -> last answer); winners "
                  f"[bold]{race['held']}[/bold], refused {race['refused']:,}, errors {race['errors']} "
                  f"{race['errors_by_kind'] or ''}; attempt latency p50 {fmt_ms(race['latency'], 'p50_ms')} ms, "
                  f"p95 {fmt_ms(race['latency'], 'p95_ms')} ms, max {fmt_ms(race['latency'], 'max_ms')} ms")
    db = race["database"]
    console.print(f"database: {db['live_bookings_on_the_slot']} live booking on the slot "
                  f"({db['bookings_on_the_slot_by_status']}), {db['history_rows']} history rows: "
                  f"{'[green]ok' if race['ok'] else '[red]NOT OK'}[/]")
    if race["race_seconds"] > get_settings().booking_hold_seconds:
        console.print(f"[yellow]the race outlasted the hold ({get_settings().booking_hold_seconds} s): a winner's "
                      "hold expired during it and a later attempt took the slot (lazy expiry)[/yellow]")
    if race["errors"]:
        console.print(f"[red]race errors: {race['first_errors']}[/red]", markup=True, highlight=False)

    console.rule("[bold]CPU (cores) and database backends")
    cpu = Table()
    for col in ("run", "this process", "PostgreSQL", "other", "machine busy", "steal"):
        cpu.add_column(col, justify="left" if col == "run" else "right")
    for r in (dom, raw, race):
        c = r["cpu_cores"]
        cpu.add_row(r["name"], fmt_cores(c["script"]), fmt_cores(c["postgres"]), fmt_cores(c["other"]),
                    fmt_cores(c["machine_busy"]), fmt_cores(c["steal"]))
    console.print(cpu)
    for r in (dom, raw, race):
        top = list(r["db_activity"].get("avg_backends", {}).items())[:6]
        console.print(f"{r['name']}: average client backends by state ({r['db_activity'].get('samples', 0)} "
                      "samples): " + ", ".join(f"{k} {v:.1f}" for k, v in top), markup=False, highlight=False)
        for what, stmt, v in r["db_activity"].get("top_statements", [])[:4]:
            console.print(f"    {v:5.1f}  {what}: {stmt}", markup=False, highlight=False)

    console.rule("[bold]Setup")
    for pkg in ("asyncpg", "sqlalchemy"):
        try:
            machine["packages"][pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            machine["packages"][pkg] = None
    console.print(f"machine: {machine['nproc']} CPUs ({machine['cpu_model']}), {machine['memory']} RAM, Linux "
                  f"{machine['kernel']}, Python {machine['python']}, load average at start "
                  f"{' '.join(f'{x:.2f}' for x in machine['loadavg_at_start'])}")
    console.print(f"PostgreSQL {facts['postgresql']} (shared_buffers {facts['shared_buffers']}, synchronous_commit "
                  f"{facts['synchronous_commit']}, max_connections {facts['max_connections']}, deadlock_timeout "
                  f"{facts['deadlock_timeout']}); packages: "
                  + ", ".join(f"{k} {v}" for k, v in machine["packages"].items()))
    console.print(f"data: {len(data.providers):,} providers ({', '.join(TIME_ZONES)} in turn), Mon-Sat 08-12 + "
                  f"13-18 local, {SLOT_MINUTES}-minute slots, notice {NOTICE_MINUTES} min, buffer {BUFFER_MINUTES}, "
                  f"horizon {HORIZON_DAYS} days; {facts['slot_pool']:,} slots in the pool; seed {args.seed}; "
                  f"outbox relayed afterwards: {results['outbox']}")

    out = RESULTS_DIR / f"bookings-{timestamp}.json"
    out.write_text(json.dumps({
        "timestamp": timestamp, "command": " ".join(["uv run python bench/bookings.py", *sys.argv[1:]]),
        "options": vars(args), "machine": machine, "facts": facts, "created": data.created, **results,
    }, indent=2, default=str))
    console.print(f"\nwritten {out.relative_to(PROJECT_ROOT)}")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--clients", type=int, default=100, help="concurrent customers (and pool size)")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds of the domain run")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before it")
    parser.add_argument("--providers", type=int, default=1000, help="bench providers (created when missing)")
    parser.add_argument("--race-customers", type=int, default=1000, help="customers racing for one slot")
    parser.add_argument("--race-connections", type=int, default=250, help="connections they race over")
    parser.add_argument("--seed", type=int, default=42, help="random seed of the slot draws")
    parser.add_argument("--keep", action="store_true", help="keep the race's bookings at the end")
    args = parser.parse_args(argv)
    if (args.clients < 1 or args.duration <= 0 or args.warmup < 0 or args.providers < 1
            or args.race_customers < 2 or args.race_connections < 2):
        parser.error("--clients, --providers >= 1; --race-customers, --race-connections >= 2; --duration > 0; "
                     "--warmup >= 0")
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))

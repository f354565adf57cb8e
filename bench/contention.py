"""Contention benchmark: 100 concurrent actors on each place where money or time is shared, with what
the database backends waited on, and the statements per operation.

One run does everything, in this process through the domain functions, against the development stack
(settings.py defaults, started and migrated when down: ``bench.geosearch.ensure_database``)::

    uv run python bench/contention.py                   # 100 actors, 2 s warm-up + 10 s per scenario
    uv run python bench/contention.py --help

Scenarios (each actor loops: one operation in its own transaction, the next when it committed):

* ``captures, 1 stripe`` and ``captures, N stripes``: a payment for an order of its own completes
  (``domain.orders.payment.apply_payment_status``: the order moves on, its money is captured into
  escrow). With one stripe every capture credits the same gateway clearing row (the hot account);
  with ``settings.ledger_hot_account_stripes`` (16) it credits its order's stripe. Orders are bought
  before the timed window (untimed), so only the capture is measured.
* ``captures during releases and payout runs``: the same captures while another task, in a loop,
  releases an order's escrow to each of 20 providers (platform revenue, provider payable) and runs
  the payout batch (``domain.money.payout.run_payouts``).
* ``chat sends, one conversation``: customer and provider of one order post into its conversation
  (``domain.messaging.chat.send_message``; the conversation row orders the messages, by design).
* ``notifications to one user``: in-app notifications to one account (``domain.messaging.feed.notify``).
* ``refunds of one order``: 1-unit refunds of one large paid order (``domain.orders.refunds.refund_order``;
  the order's row serialises its money, by design).

For each: operations per second, latency p50/p95/p99, errors by kind, SQL statements per operation
(a ``before_cursor_execute`` hook), the average number of backends per state or wait event
(``pg_stat_activity`` every 100 ms), and CPU of this process, PostgreSQL and the machine with steal.
Writes a JSON copy to ``bench/results/contention-<UTC timestamp>.json``.

Figures only: nothing here asserts a time (docs/conventions.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import asyncpg
from rich.console import Console
from rich.table import Table
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from bench.bookings import CpuMarks, sample_activity
from bench.geosearch import SERVER_SETTINGS, ensure_database, machine_info
from bench.payments import fmt_cores, latency_stats
from devstack import seed as seed_module
from domain.identity.user import hash_password
from domain.messaging import chat, feed
from domain.money import escrow, payout
from domain.orders import payment as payment_domain
from domain.orders import refunds
from domain.orders import service_request as sr
from domain.orders.locks import lock_request
from domain.shared.errors import DomainError
from gateways.sandbox import SandboxGateway
from models import Conversation, Payment, Provider, Service, ServiceTier, TierPrice, User
from models.db import dispose_engine, session_scope
from settings import get_settings

RESULTS_DIR = Path(__file__).resolve().parent / "results"
console = Console() if sys.stdout.isatty() else Console(width=160)
PREFIX = "bench-contention"


@dataclass
class Op:
    started: float
    ended: float = 0.0
    error: str | None = None


@dataclass
class World:
    service_id: int
    tier_id: int
    customer: User
    provider_user: User
    provider_id: int
    admin: User
    conversation_id: int
    big_order_id: int
    payout_providers: list[int] = field(default_factory=list)


async def ensure_world() -> World:
    """A service priced in XAF, a customer, a provider with an account, an admin, one paid order assigned
    to the provider (its conversation), one large paid order to refund from, and 20 providers with a
    payable earning and a default payout destination."""
    async with session_scope() as s:
        service = await s.scalar(select(Service).where(Service.slug == PREFIX))
        if service is None:
            service = Service(slug=PREFIX, name="Bench contention", category="bench", description="Bench.")
            s.add(service)
            await s.flush()
            tier = ServiceTier(service_id=service.id, name="Standard", position=0, features=[])
            s.add(tier)
            await s.flush()
            s.add(TierPrice(tier_id=tier.id, currency="XAF", amount_minor=10_000))
        tier_id = await s.scalar(select(ServiceTier.id).where(ServiceTier.service_id == service.id))
        service_id = service.id
    run = secrets.token_hex(4)

    async def account(role: str, name: str) -> User:
        async with session_scope() as s:
            user = User(email=f"{PREFIX}-{run}-{name}@example.com", password_hash=hash_password("bench-password-1"),
                        full_name=f"Bench {name}", phone="+237671234567", role=role)
            s.add(user)
        return user

    customer, provider_user, admin = await account("customer", "customer"), await account("provider", "pro"), \
        await account("admin", "ops")
    async with session_scope() as s:
        provider = Provider(user_id=provider_user.id, display_name=f"Bench contention {run}", categories=["bench"],
                            verified=True, available=True, location="SRID=4326;POINT(0.5 0.5)")
        s.add(provider)
        await s.flush()
        provider_id = provider.id

    async def paid_order(amount_tier: int | None = None) -> int:
        async with session_scope() as s:
            made = await sr.purchase_service(s, SandboxGateway(), service_id=service_id, tier_id=tier_id,
                                             user=customer, customer=None)
        async with session_scope() as s:
            pay = await s.scalar(select(Payment).where(Payment.service_request_id == made.service_request.id))
            request = await lock_request(s, made.service_request.id)
            await payment_domain.confirm_payment(s, pay, request, f"evt_{PREFIX}_{pay.id}")
        return made.service_request.id

    order_id = await paid_order()
    async with session_scope() as s:
        await sr.assign_provider(s, order_id, provider_id, actor=admin)
        conversation_id = await s.scalar(select(Conversation.id).where(Conversation.service_request_id == order_id))
    big = await paid_order()
    return World(service_id, tier_id, customer, provider_user, provider_id, admin, conversation_id, big)


async def unpaid_orders(world: World, n: int) -> list[int]:
    """``n`` orders bought by ``n`` guests (awaiting payment), 20 at a time: their payments are what the
    capture scenarios complete."""
    ids: list[int] = []

    async def buyer(count: int) -> None:
        for _ in range(count):
            async with session_scope() as s:  # guests: one customer's feed would serialise the captures
                made = await sr.purchase_service(
                    s, SandboxGateway(), service_id=world.service_id, tier_id=world.tier_id, user=None,
                    customer=sr.CustomerDetails("Bench Guest", f"guest-{secrets.token_hex(6)}@example.com",
                                                "+237671234567"))
                ids.append(made.payment.id)

    await asyncio.gather(*(buyer(n // 20 + (1 if k < n % 20 else 0)) for k in range(20)))
    return ids


async def payout_providers(n: int = 20) -> list[int]:
    """``n`` providers with a default mobile-money destination (their earnings come from releases)."""
    from models import PayoutDestination

    ids = []
    async with session_scope() as s:
        for k in range(n):
            provider = Provider(display_name=f"Bench payout {k} {secrets.token_hex(3)}", categories=["bench"],
                                verified=True, available=True, location="SRID=4326;POINT(0.6 0.6)")
            s.add(provider)
            await s.flush()
            s.add(PayoutDestination(provider_id=provider.id, kind="mobile_money", currency="XAF", country_code="CM",
                                    holder_name="Bench", phone="+237671234567", operator="mtn", is_default=True))
            ids.append(provider.id)
    return ids


async def released_order(world: World, provider_id: int) -> None:
    """A paid order of ``provider_id``'s, its escrow released: an earning to pay out."""
    async with session_scope() as s:
        made = await sr.purchase_service(s, SandboxGateway(), service_id=world.service_id, tier_id=world.tier_id,
                                         user=world.customer, customer=None)
    async with session_scope() as s:
        pay = await s.scalar(select(Payment).where(Payment.service_request_id == made.service_request.id))
        request = await lock_request(s, made.service_request.id)
        await payment_domain.confirm_payment(s, pay, request, f"evt_{PREFIX}_{pay.id}")
        request.assigned_provider_id = provider_id
        await s.flush()
        await escrow.release(s, request)


def count_statements(engine) -> Callable[[], int]:
    seen = [0]

    def before(conn, cursor, statement, parameters, context, executemany):
        seen[0] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    return lambda: seen[0]


async def run(name: str, op: Callable[[AsyncSession, int], Awaitable[None]], args: argparse.Namespace,
              activity: asyncpg.Connection, *, background: Callable[[asyncio.Event], Awaitable[Any]] | None = None,
              ) -> dict[str, Any]:
    """``args.actors`` tasks loop ``op(session, actor)`` (each in its own transaction) for warm-up + duration."""
    engine = create_async_engine(get_settings().database_url, pool_size=args.actors, max_overflow=0,
                                 connect_args={"server_settings": SERVER_SETTINGS})
    maker = async_sessionmaker(engine, expire_on_commit=False)
    statements = count_statements(engine)
    ops: list[Op] = []
    start = time.perf_counter()
    window_start, window_end = start + args.warmup, start + args.warmup + args.duration
    stop = asyncio.Event()
    marks: dict[str, Any] = {}

    async def actor(k: int) -> None:
        while time.perf_counter() < window_end:
            o = Op(time.perf_counter())
            try:
                async with maker() as session, session.begin():
                    await op(session, k)
            except DomainError as exc:
                o.error = exc.code
            except Exception as exc:
                o.error = type(exc).__name__
            o.ended = time.perf_counter()
            ops.append(o)

    async def measure() -> None:
        await asyncio.sleep(args.warmup)
        marks["cpu0"], marks["stmts0"] = cpu.sample(), statements()
        marks["ops0"] = len(ops)
        await sample_activity(activity, stop, marks.setdefault("activity", {}))

    cpu = CpuMarks()
    side = asyncio.create_task(background(stop)) if background else None
    sampler = asyncio.create_task(measure())
    await asyncio.gather(*(actor(k) for k in range(args.actors)))
    marks["cpu1"], marks["stmts1"] = cpu.sample(), statements()
    stop.set()
    await sampler
    side_result = await side if side else None
    await engine.dispose()
    timed = [o for o in ops if window_start <= o.ended <= window_end]
    done = [o for o in timed if o.error is None]
    errors = Counter(o.error for o in timed if o.error is not None)
    n_ops = max(1, len(ops) - marks["ops0"])
    return {
        "name": name, "actors": args.actors, "ok": len(done), "per_second": len(done) / args.duration,
        "latency_ms": latency_stats([o.ended - o.started for o in done]),
        "errors": dict(errors), "statements_per_op": (marks["stmts1"] - marks["stmts0"]) / n_ops,
        "cpu": CpuMarks.between(marks["cpu0"], marks["cpu1"]), "activity": marks["activity"],
        "background": side_result,
    }


async def main(args: argparse.Namespace) -> int:
    settings = get_settings()
    if settings.environment == "test":
        console.print("[red]ODIM_ENVIRONMENT=test: run the benchmark on the development stack[/red]")
        return 2
    console.rule("[bold]Odim contention benchmark")
    await ensure_database()
    settings.chat_rate_limit = "100000000/minute"  # the sends are what is measured, not the limiter
    world = await ensure_world()
    activity = await asyncpg.connect(seed_module.asyncpg_dsn())
    results: list[dict[str, Any]] = []
    stripes = settings.ledger_hot_account_stripes
    per_run = args.orders

    async def captures(label: str, n_stripes: int, background=None) -> None:
        settings.ledger_hot_account_stripes = n_stripes
        console.print(f"{label}: buying {per_run:,} orders first (untimed) ...")
        payments = await unpaid_orders(world, per_run)
        queue = iter(payments)

        async def capture(session: AsyncSession, _k: int) -> None:
            payment = await session.scalar(select(Payment).where(Payment.id == next(queue)).with_for_update(key_share=True))
            await payment_domain.apply_payment_status(
                session, payment, "succeeded", amount_minor=payment.amount_minor, currency=payment.currency,
                event_id=f"evt_{PREFIX}_{payment.id}")

        results.append(await run(label, capture, args, activity, background=background))
        settings.ledger_hot_account_stripes = stripes

    await captures("captures, 1 stripe", 1)
    await captures(f"captures, {stripes} stripes", stripes)

    earners = await payout_providers()

    async def payout_loop(stop: asyncio.Event) -> dict[str, int]:
        """Releases to 20 providers, then the payout batch, again and again."""
        runs = made = released = 0
        while not stop.is_set():
            for pid in earners:
                await released_order(world, pid)
                released += 1
            made += await payout.run_payouts()
            runs += 1
        return {"payout_runs": runs, "payouts": made, "releases": released}

    await captures(f"captures during releases and payout runs ({stripes} stripes)", stripes, background=payout_loop)

    async def send(session: AsyncSession, k: int) -> None:
        who = world.customer if k % 2 == 0 else world.provider_user
        await chat.send_message(session, who, world.conversation_id, f"message from actor {k}")

    console.print("chat sends, one conversation ...")
    results.append(await run("chat sends, one conversation", send, args, activity))

    async def notify(session: AsyncSession, k: int) -> None:
        await feed.notify(session, world.customer.id, kind="payout", title="Bench", body=f"from actor {k}")

    console.print("notifications to one user ...")
    results.append(await run("notifications to one user", notify, args, activity))

    # 1 XAF at a time: 10,000 XAF captured is more than the run can refund
    async def refund_one(session: AsyncSession, k: int) -> None:
        await refunds.refund_order(session, world.big_order_id, actor_user_id=world.admin.id, amount_minor=1,
                                   reason="bench")

    console.print("refunds of one order ...")
    results.append(await run("refunds of one order (1 XAF each)", refund_one, args, activity))

    await activity.close()
    await dispose_engine()
    table = Table(title=f"{args.actors} concurrent actors, {args.duration:g} s each (after {args.warmup:g} s warm-up)")
    for col in ("scenario", "ops/s", "p50 ms", "p95 ms", "p99 ms", "errors", "stmts/op", "API+script CPU",
                "PostgreSQL CPU", "machine busy", "steal", "top wait (avg backends)"):
        table.add_column(col, justify="left" if col in ("scenario", "errors", "top wait (avg backends)") else "right")
    for r in results:
        lat, cpu = r["latency_ms"], r["cpu"]
        waits = [(k, v) for k, v in r["activity"].get("avg_backends", {}).items() if k not in ("idle",)]
        top = ", ".join(f"{k} {v:.1f}" for k, v in waits[:2])
        table.add_row(r["name"], f"{r['per_second']:.1f}", f"{lat.get('p50_ms', 0):.0f}", f"{lat.get('p95_ms', 0):.0f}",
                      f"{lat.get('p99_ms', 0):.0f}", json.dumps(r["errors"]) if r["errors"] else "0",
                      f"{r['statements_per_op']:.1f}", fmt_cores(cpu["script"]), fmt_cores(cpu["postgres"]),
                      fmt_cores(cpu["machine_busy"]), fmt_cores(cpu["steal"]), top)
    console.print(table)
    one, many = results[0], results[1]
    if one["per_second"]:
        console.print(f"captures/s, {stripes} stripes vs 1: {many['per_second'] / one['per_second']:.2f}x; "
                      f"p95 {many['latency_ms'].get('p95_ms', 0):.0f} ms vs {one['latency_ms'].get('p95_ms', 0):.0f} ms")
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"contention-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps({"machine": machine_info(), "args": vars(args), "results": results}, indent=2,
                              default=str))
    console.print(f"written to {out.relative_to(PROJECT_ROOT)}")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--actors", type=int, default=100)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--orders", type=int, default=6000,
                        help="orders bought before each capture scenario (more than it can capture)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(asyncio.run(main(parse_args())))

"""No double booking under real concurrency ("Holds and no double booking").

Every race here runs ``domain.booking.hold_slot`` from many customers at once, each in its own
session on its own PostgreSQL connection (a dedicated engine whose pool holds exactly one connection
per racer, ``max_overflow=0``; the distinct backend pids are asserted). The racers first open their
transactions and wait on a barrier until all are connected; then an ``InsertGate`` holds every
``INSERT INTO bookings`` (a ``before_cursor_execute`` hook awaiting it through
``AdaptedConnection.run_async``) until every racer is at its own INSERT or waiting for a lock in
PostgreSQL, so the inserts reach PostgreSQL together. Nothing in the domain checks for a conflict
before inserting: the exclusion constraint ``bookings_no_overlap`` on ``(provider_id, during)`` over
the live statuses decides, and its SQLSTATE 23P01 becomes ``SlotUnavailable`` (``SLOT_UNAVAILABLE``);
any other error a racer gets (such as PostgreSQL's deadlock_detected, 40P01, which concurrent
inserts of conflicting rows can meet, execIndexing.c) fails the test.

Which lengths the availability module offers decides how the overlap cases are built: slots step
from each range's start by the service's own slot length, so a provider cannot offer a 60-minute
slot at 10:00 and at 10:30 of the same day (ranges of one day must not overlap). The overlapping
cases therefore give the provider a second, shorter service (30 or 15 minutes: "Quick diagnosis"),
whose slots start every 30 or 15 minutes, or a buffer that makes 60-minute slots overlap through
``blocked_until = end + buffer``. All times are local to the provider (Africa/Douala, UTC+1, open
08:00-18:00 every day) on Monday 2027-03-01; holds are made a week earlier (``NOW``).

The race's duration is printed (run with ``-s`` to see it); nothing asserts a time.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from domain.bookings import booking
from domain.bookings.booking import SlotUnavailable
from domain.identity.user import hash_password
from domain.providers import availability
from domain.shared import live
from models import Booking, BookingStatusChange, Email, OutboxMessage, Payment, ServiceRequest, Ticket, User
from models.db import get_engine, session_scope
from settings import get_settings
from tests.support.bookings import Bookable, bookable_provider
from tests.support.factories import make_service

DOUALA = ZoneInfo("Africa/Douala")
NOW = datetime(2027, 2, 22, 9, 0, tzinfo=UTC)  # a week before the slots raced for
BARRIER_TIMEOUT_S = 120.0  # a racer that never reaches a barrier fails the test instead of hanging it


def at(hour: int, minute: int = 0) -> datetime:
    """Local time on Monday 2027-03-01 at the provider (Africa/Douala, UTC+1)."""
    return datetime(2027, 3, 1, hour, minute, tzinfo=DOUALA)


# --- builders -----------------------------------------------------------------------------------------


async def customers(n: int, prefix: str = "racer") -> list[User]:
    """``n`` customers with distinct accounts, written in one transaction."""
    password_hash = hash_password("correct-horse-battery")
    async with session_scope() as s:
        users = [User(email=f"{prefix}{i}@example.com", password_hash=password_hash, full_name=f"Racer {i}",
                      role="customer") for i in range(n)]
        s.add_all(users)
        await s.flush()
    return users


async def second_service(b: Bookable, slot_minutes: int) -> int:
    """A second bookable service at ``b``'s provider with ``slot_minutes`` slots; returns its id."""
    service, _ = await make_service(name=f"Quick diagnosis {slot_minutes} {b.provider.id}", tiers=1)
    async with session_scope() as s:
        await availability.set_service_slot(s, b.provider.id, service.id, slot_minutes)
    return service.id


# --- the race -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    customer: User
    provider_id: int
    service_id: int
    start: datetime
    now: datetime = NOW


@dataclass
class Outcome:
    attempt: Attempt
    backend_pid: int
    booking_id: int | None = None
    error: BaseException | None = None
    finished: float = 0.0


@dataclass
class Race:
    outcomes: list[Outcome]
    seconds: float  # from the release of the racers to the last commit or refusal
    insert_seconds: float | None  # from the opening of the insert gate to the last commit or refusal

    @property
    def won(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.booking_id is not None]

    @property
    def refused(self) -> list[Outcome]:
        return [o for o in self.outcomes if isinstance(o.error, SlotUnavailable)]

    @property
    def unexpected(self) -> list[tuple[str, str]]:
        return [(type(o.error).__name__, str(o.error)[:300]) for o in self.outcomes
                if o.error is not None and not isinstance(o.error, SlotUnavailable)]


async def _barrier(barrier: asyncio.Barrier) -> None:
    async with asyncio.timeout(BARRIER_TIMEOUT_S):
        await barrier.wait()


class InsertGate:
    """Holds every racer's ``INSERT INTO bookings`` until each racer still running is either at its
    own INSERT or waiting for a lock inside PostgreSQL (``pg_stat_activity.wait_event_type = 'Lock'``:
    a row lock of the lazy expiry, or any lock the domain takes before inserting), then lets them
    all go at once. A plain barrier would wait forever for racers blocked behind a lock held by a
    racer waiting at the barrier."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.arrived = 0
        self.done_early = 0  # racers that finished without reaching the gate
        self.opened = asyncio.Event()
        self.opened_at: float | None = None

    async def wait(self) -> None:
        self.arrived += 1
        async with asyncio.timeout(BARRIER_TIMEOUT_S):
            await self.opened.wait()

    async def watch(self, pids: list[int], stop: asyncio.Event) -> None:
        """Poll the racers' backends until the gate can open (or ``stop``)."""
        async with get_engine().connect() as conn:
            while not self.opened.is_set() and not stop.is_set():
                waiting = await conn.scalar(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids) AND wait_event_type = 'Lock'"),
                    {"pids": pids})
                await conn.rollback()
                if self.arrived and self.arrived + waiting + self.done_early >= self.n:
                    self.opened_at = time.perf_counter()
                    self.opened.set()
                    return
                await asyncio.sleep(0.005)


async def race(attempts: list[Attempt], *, per_connection: int = 1, label: str = "") -> Race:
    """Run the attempts' ``hold_slot`` calls at once over ``len(attempts) / per_connection``
    connections, each its own session: connection ``k`` makes attempts ``k``, ``k + connections``, ...
    one after the other, each in its own transaction, committed when it succeeds (a customer who
    tries again at once). All connect first (a barrier), then start together, and the first
    ``INSERT INTO bookings`` of each is held at an ``InsertGate`` so they reach PostgreSQL together.
    Returns each attempt's outcome (booking id or exception) and the race's duration."""
    n = len(attempts) // per_connection
    assert n * per_connection == len(attempts)
    engine = create_async_engine(get_settings().database_url, pool_size=n, max_overflow=0, pool_timeout=60)
    maker = async_sessionmaker(engine, expire_on_commit=False)
    connected, gate = asyncio.Barrier(n + 1), InsertGate(n)  # the racers and the gate's watcher
    released: list[float] = []
    pids: list[int] = []
    stop_watching = asyncio.Event()

    def hold_inserts(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO BOOKINGS ") and not gate.opened.is_set():
            conn.connection.dbapi_connection.run_async(lambda _driver: gate.wait())

    event.listen(engine.sync_engine, "before_cursor_execute", hold_inserts)

    async def racer(mine: list[Attempt]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        async with maker() as session:
            pid = 0
            for j, a in enumerate(mine):
                outcome = Outcome(a, backend_pid=pid)
                try:
                    async with session.begin():
                        if j == 0:
                            pid = outcome.backend_pid = await session.scalar(text("SELECT pg_backend_pid()"))
                            pids.append(pid)
                            await _barrier(connected)
                            released.append(time.perf_counter())
                        held = await booking.hold_slot(
                            session, customer=a.customer, provider_id=a.provider_id, service_id=a.service_id,
                            start=a.start, currency="XAF", now=a.now,
                        )
                        outcome.booking_id = held.id
                except Exception as exc:  # recorded and asserted on by the test
                    outcome.booking_id, outcome.error = None, exc
                    await connected.abort()  # harmless once everybody has passed; fails the others fast otherwise
                if j == 0 and not gate.opened.is_set():
                    gate.done_early += 1
                outcome.finished = time.perf_counter()
                outcomes.append(outcome)
        return outcomes

    async def watcher() -> None:
        await _barrier(connected)
        await gate.watch(list(pids), stop_watching)

    watching = asyncio.create_task(watcher())
    try:
        per_racer = await asyncio.gather(*(racer(attempts[k::n]) for k in range(n)))
    finally:
        stop_watching.set()
        await watching
        await engine.dispose()
    outcomes = [o for mine in per_racer for o in mine]
    end = max(o.finished for o in outcomes)
    result = Race(outcomes, end - min(released, default=end),
                  end - gate.opened_at if gate.opened_at is not None else None)
    codes = Counter(type(o.error).__name__ if o.error else "held" for o in outcomes)
    inserts = f", {result.insert_seconds * 1000:.0f} ms of it after the gate opened" if gate.opened_at else ""
    print(f"\n{label or 'race'}: {len(attempts)} attempts on {len({o.backend_pid for o in outcomes})} connections: "
          f"{dict(codes)} in {result.seconds * 1000:.0f} ms{inserts}")
    return result


async def table_counts() -> dict[str, int]:
    """Rows in every table a hold or its consequences could write."""
    async with session_scope() as s:
        return {
            model.__tablename__: await s.scalar(select(func.count()).select_from(model))
            for model in (Booking, BookingStatusChange, OutboxMessage, Email, ServiceRequest, Payment, Ticket)
        }


async def bookings_by_start() -> list[tuple[datetime, datetime, str, int]]:
    """``(starts_at, blocked_until, status, customer id)`` of every booking, by start."""
    async with session_scope() as s:
        rows = (await s.execute(select(Booking.starts_at, Booking.blocked_until, Booking.status,
                                       Booking.customer_user_id).order_by(Booking.starts_at, Booking.id))).all()
    return [tuple(r) for r in rows]


async def history() -> list[tuple[int, str | None, str, str, int | None]]:
    """``(booking id, from, to, actor type, actor user id)`` of every history row, in order."""
    async with session_scope() as s:
        rows = (await s.execute(select(
            BookingStatusChange.booking_id, BookingStatusChange.from_status, BookingStatusChange.to_status,
            BookingStatusChange.actor_type, BookingStatusChange.actor_user_id,
        ).order_by(BookingStatusChange.id))).all()
    return [tuple(r) for r in rows]


def assert_refused(race_: Race, expected: int) -> None:
    assert race_.unexpected == []
    assert len(race_.refused) == expected
    assert {(o.error.code, o.error.field) for o in race_.refused} == {("SLOT_UNAVAILABLE", "start")}


# --- the 200-way race -----------------------------------------------------------------------------------


async def test_200_customers_racing_for_one_slot_get_exactly_one_hold():
    # given a provider with 60-minute slots and 200 customers who all want Monday 10:00
    b = await bookable_provider()
    racers = await customers(200)
    before = await table_counts()

    # when all 200 hold it at once, each on its own connection
    result = await race([Attempt(c, b.provider.id, b.service.id, at(10)) for c in racers], label="200-way race")

    # then every racer had its own connection, exactly one won and 199 got SLOT_UNAVAILABLE
    assert len({o.backend_pid for o in result.outcomes}) == 200
    assert len(result.won) == 1
    assert_refused(result, 199)
    winner = result.won[0]
    # and the database holds that one booking, its one history row and its one live event, nothing else
    assert await bookings_by_start() == [
        (at(10).astimezone(UTC), at(11).astimezone(UTC), "held", winner.attempt.customer.id)]
    assert await history() == [(winner.booking_id, None, "held", "customer", winner.attempt.customer.id)]
    async with session_scope() as s:
        held = await s.get(Booking, winner.booking_id)
        events = (await s.execute(select(OutboxMessage.kind, OutboxMessage.target))).all()
    assert held.hold_expires_at == NOW + timedelta(seconds=get_settings().booking_hold_seconds)
    assert events == [("event", live.booking_channel(winner.booking_id))]
    assert await table_counts() == {**before, "bookings": 1, "booking_status_history": 1, "outbox": 1}


async def test_customers_trying_again_at_once_still_get_one_hold_and_only_refusals():
    # given 200 customers and 50 connections: each connection holds for 4 customers one after the
    # other, so new inserts keep arriving while earlier ones wait for each other
    b = await bookable_provider()
    racers = await customers(200)
    before = await table_counts()

    # when they all go for Monday 10:00
    result = await race([Attempt(c, b.provider.id, b.service.id, at(10)) for c in racers], per_connection=4,
                        label="200 attempts, 4 per connection")

    # then one hold exists and the 199 others were refused with SLOT_UNAVAILABLE (not deadlock_detected)
    assert len(result.won) == 1
    assert_refused(result, 199)
    assert len({o.backend_pid for o in result.outcomes}) == 50
    assert await table_counts() == {**before, "bookings": 1, "booking_status_history": 1, "outbox": 1}


# --- overlapping but different slots ----------------------------------------------------------------


async def test_overlapping_slots_of_different_lengths_race_and_exactly_one_wins():
    # given a provider with 60-minute "Leak repair" slots (10:00-11:00) and 30-minute "Quick
    # diagnosis" slots (10:30-11:00 overlaps the former; 10:00-10:30 too)
    b = await bookable_provider()
    diagnosis = await second_service(b, 30)
    racers = await customers(100)
    attempts = [Attempt(c, b.provider.id, b.service.id, at(10)) if i % 2 == 0
                else Attempt(c, b.provider.id, diagnosis, at(10, 30)) for i, c in enumerate(racers)]

    # when 50 customers hold the hour at 10:00 and 50 the half hour at 10:30, all at once
    result = await race(attempts, label="10:00 (60 min) vs 10:30 (30 min)")

    # then exactly one of the 100 holds exists and the 99 others were refused
    assert len(result.won) == 1
    assert_refused(result, 99)
    winner = result.won[0].attempt
    length = 60 if winner.service_id == b.service.id else 30
    assert await bookings_by_start() == [(winner.start.astimezone(UTC),
                                          (winner.start + timedelta(minutes=length)).astimezone(UTC),
                                          "held", winner.customer.id)]
    assert len(await history()) == 1


async def test_slots_overlapping_only_through_the_buffer_race_and_exactly_one_wins():
    # given 60-minute slots and a 30-minute buffer: 10:00 blocks 10:00-11:30, 11:00 blocks 11:00-12:30
    b = await bookable_provider(buffer_minutes=30)
    racers = await customers(100)
    attempts = [Attempt(c, b.provider.id, b.service.id, at(10) if i % 2 == 0 else at(11))
                for i, c in enumerate(racers)]

    # when 50 customers hold 10:00 and 50 hold 11:00 at once
    result = await race(attempts, label="10:00 vs 11:00 with a 30-minute buffer")

    # then exactly one of them holds its slot, with the buffer in its blocked time
    assert len(result.won) == 1
    assert_refused(result, 99)
    winner = result.won[0].attempt
    assert await bookings_by_start() == [(winner.start.astimezone(UTC),
                                          (winner.start + timedelta(minutes=90)).astimezone(UTC),
                                          "held", winner.customer.id)]


async def test_a_buffer_refuses_the_slot_at_the_end_of_a_booking_and_accepts_the_one_after_the_buffer():
    # given a 60-minute visit held 10:00-11:00 with a 15-minute buffer (blocked until 11:15), and a
    # 15-minute service whose slots start at 11:00 and 11:15
    b = await bookable_provider(buffer_minutes=15)
    diagnosis = await second_service(b, 15)
    first, second, third = await customers(3)
    async with session_scope() as s:
        visit = await booking.hold_slot(s, customer=first, provider_id=b.provider.id, service_id=b.service.id,
                                        start=at(10), currency="XAF", now=NOW)
    before = await table_counts()

    # when another customer holds the 15-minute slot at 11:00
    refused: SlotUnavailable | None = None
    try:
        async with session_scope() as s:
            await booking.hold_slot(s, customer=second, provider_id=b.provider.id, service_id=diagnosis,
                                    start=at(11), currency="XAF", now=NOW)
    except SlotUnavailable as exc:
        refused = exc

    # then it is refused and nothing was written
    assert refused is not None and (refused.code, refused.field) == ("SLOT_UNAVAILABLE", "start")
    assert await table_counts() == before

    # when a third holds the 15-minute slot at 11:15, after the buffer
    async with session_scope() as s:
        after_buffer = await booking.hold_slot(s, customer=third, provider_id=b.provider.id, service_id=diagnosis,
                                               start=at(11, 15), currency="XAF", now=NOW)

    # then both holds exist, each blocking its slot plus the buffer
    assert await bookings_by_start() == [
        (at(10).astimezone(UTC), at(11, 15).astimezone(UTC), "held", first.id),
        (at(11, 15).astimezone(UTC), at(11, 45).astimezone(UTC), "held", third.id),
    ]
    assert [(row[0], row[2]) for row in await history()] == [(visit.id, "held"), (after_buffer.id, "held")]


async def test_with_a_buffer_racing_holds_at_the_end_of_a_slot_conflict_and_after_the_buffer_do_not():
    # given two providers with 60-minute and 15-minute services and a 15-minute buffer: 10:00-11:00
    # blocks until 11:15, so 11:00-11:15 conflicts with it and 11:15-11:30 does not
    ngo = await bookable_provider("Ngo Repairs", buffer_minutes=15)
    eto = await bookable_provider("Eto Services", buffer_minutes=15)
    ngo_diagnosis, eto_diagnosis = await second_service(ngo, 15), await second_service(eto, 15)
    racers = await customers(120)
    groups = [(ngo.provider.id, ngo.service.id, at(10)), (ngo.provider.id, ngo_diagnosis, at(11)),
              (eto.provider.id, eto.service.id, at(10)), (eto.provider.id, eto_diagnosis, at(11, 15))]
    attempts = [Attempt(c, *groups[i % 4]) for i, c in enumerate(racers)]

    # when 30 customers race for each: 10:00 and 11:00 at Ngo, 10:00 and 11:15 at Eto, all at once
    result = await race(attempts, label="10:00 vs 11:00 and 10:00 vs 11:15, 15-minute buffer")

    # then Ngo has exactly one hold (10:00 or 11:00), Eto has both 10:00 and 11:15
    assert_refused(result, 117)
    won = sorted((o.attempt.provider_id, o.attempt.start) for o in result.won)
    assert won in ([(ngo.provider.id, at(10)), (eto.provider.id, at(10)), (eto.provider.id, at(11, 15))],
                   [(ngo.provider.id, at(11)), (eto.provider.id, at(10)), (eto.provider.id, at(11, 15))])
    async with session_scope() as s:
        eto_rows = (await s.execute(select(Booking.starts_at, Booking.blocked_until, Booking.status)
                                    .where(Booking.provider_id == eto.provider.id).order_by(Booking.starts_at))).all()
    assert [tuple(r) for r in eto_rows] == [(at(10).astimezone(UTC), at(11, 15).astimezone(UTC), "held"),
                                            (at(11, 15).astimezone(UTC), at(11, 45).astimezone(UTC), "held")]


# --- back to back -------------------------------------------------------------------------------------


async def test_back_to_back_slots_are_both_held_one_after_the_other():
    # given 60-minute slots and no buffer
    b = await bookable_provider()
    first, second = await customers(2)

    # when one customer holds 10:00-11:00 and another then 11:00-12:00
    async with session_scope() as s:
        await booking.hold_slot(s, customer=first, provider_id=b.provider.id, service_id=b.service.id,
                                start=at(10), currency="XAF", now=NOW)
    async with session_scope() as s:
        await booking.hold_slot(s, customer=second, provider_id=b.provider.id, service_id=b.service.id,
                                start=at(11), currency="XAF", now=NOW)

    # then both are held: the ranges are half-open, [10:00, 11:00) and [11:00, 12:00) do not overlap
    assert await bookings_by_start() == [
        (at(10).astimezone(UTC), at(11).astimezone(UTC), "held", first.id),
        (at(11).astimezone(UTC), at(12).astimezone(UTC), "held", second.id),
    ]


async def test_back_to_back_slots_raced_concurrently_are_both_held_once():
    # given 60-minute slots, no buffer, and 150 customers
    b = await bookable_provider()
    racers = await customers(150)
    slots = [at(9), at(10), at(11)]
    attempts = [Attempt(c, b.provider.id, b.service.id, slots[i % 3]) for i, c in enumerate(racers)]

    # when 50 race for each of 09:00, 10:00 and 11:00 at once
    result = await race(attempts, label="back-to-back 09:00 / 10:00 / 11:00")

    # then each of the three slots is held exactly once and the 147 others were refused
    assert sorted(o.attempt.start for o in result.won) == slots
    assert_refused(result, 147)
    assert [row[:3] for row in await bookings_by_start()] == [
        (s.astimezone(UTC), (s + timedelta(hours=1)).astimezone(UTC), "held") for s in slots]
    assert len(await history()) == 3


# --- expired holds ----------------------------------------------------------------------------------


async def test_an_unexpired_hold_still_blocks_its_slot():
    # given a hold made at NOW (kept for booking_hold_seconds)
    b = await bookable_provider()
    first, second = await customers(2)
    async with session_scope() as s:
        await booking.hold_slot(s, customer=first, provider_id=b.provider.id, service_id=b.service.id,
                                start=at(10), currency="XAF", now=NOW)
    before, hold_history = await table_counts(), await history()

    # when another customer holds the same slot one second before the hold expires
    almost = NOW + timedelta(seconds=get_settings().booking_hold_seconds - 1)
    refused: SlotUnavailable | None = None
    try:
        async with session_scope() as s:
            await booking.hold_slot(s, customer=second, provider_id=b.provider.id, service_id=b.service.id,
                                    start=at(10), currency="XAF", now=almost)
    except SlotUnavailable as exc:
        refused = exc

    # then it is refused and the first hold is untouched
    assert refused is not None and refused.code == "SLOT_UNAVAILABLE"
    assert await table_counts() == before
    assert await history() == hold_history
    assert await bookings_by_start() == [(at(10).astimezone(UTC), at(11).astimezone(UTC), "held", first.id)]


async def test_an_expired_hold_is_expired_lazily_by_the_next_hold_of_the_slot():
    # given a hold whose time is up (nobody has swept it yet)
    b = await bookable_provider()
    first, second = await customers(2)
    async with session_scope() as s:
        old = await booking.hold_slot(s, customer=first, provider_id=b.provider.id, service_id=b.service.id,
                                      start=at(10), currency="XAF", now=NOW)
    later = NOW + timedelta(seconds=get_settings().booking_hold_seconds + 1)

    # when another customer holds the same slot
    async with session_scope() as s:
        new = await booking.hold_slot(s, customer=second, provider_id=b.provider.id, service_id=b.service.id,
                                      start=at(10), currency="XAF", now=later)

    # then the old hold is payment_expired by the system, in the same transaction, and the new one held
    assert await history() == [
        (old.id, None, "held", "customer", first.id),
        (old.id, "held", "payment_expired", "system", None),
        (new.id, None, "held", "customer", second.id),
    ]
    assert await bookings_by_start() == [
        (at(10).astimezone(UTC), at(11).astimezone(UTC), "payment_expired", first.id),
        (at(10).astimezone(UTC), at(11).astimezone(UTC), "held", second.id),
    ]


async def test_50_customers_racing_for_the_slot_of_an_expired_hold_get_one_hold_and_one_expiry():
    # given an expired hold on Monday 10:00 and 50 customers who want that slot
    b = await bookable_provider()
    first, *racers = await customers(51)
    async with session_scope() as s:
        old = await booking.hold_slot(s, customer=first, provider_id=b.provider.id, service_id=b.service.id,
                                      start=at(10), currency="XAF", now=NOW)
    later = NOW + timedelta(seconds=get_settings().booking_hold_seconds + 1)

    # when the 50 hold it at once (all but the first wait on the expired hold's row lock, which the
    # first keeps until it commits)
    result = await race([Attempt(c, b.provider.id, b.service.id, at(10), now=later) for c in racers],
                        label="50-way race for an expired hold's slot")

    # then one won, 49 were refused, and the old hold was expired exactly once, by the system
    assert len(result.won) == 1
    assert_refused(result, 49)
    winner = result.won[0]
    assert await history() == [
        (old.id, None, "held", "customer", first.id),
        (old.id, "held", "payment_expired", "system", None),
        (winner.booking_id, None, "held", "customer", winner.attempt.customer.id),
    ]
    assert await bookings_by_start() == [
        (at(10).astimezone(UTC), at(11).astimezone(UTC), "payment_expired", first.id),
        (at(10).astimezone(UTC), at(11).astimezone(UTC), "held", winner.attempt.customer.id),
    ]

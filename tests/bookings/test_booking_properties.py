"""Property tests of the booking state machine, in the style of tests/money/test_money_properties.py:
a hypothesis state machine makes random transition attempts — a random target status (half the time
one the table leads to from the booking's current status, else any status) by a random actor (the
booking's customer, its provider, another provider, an admin, the system) — on a few bookings,
through the same domain calls the app makes (``booking_fixtures.attempt``), against real PostgreSQL
and Redis. A second property runs random batches of attempts concurrently over real connections.

Checked after every attempt:
* an accepted attempt moved its booking to the target along a table row, for that actor, with
  exactly one history row; a refused one changed nothing at all (statuses, history, outbox, emails,
  ledger, refunds, disputes, substitution offers, escalations, orders);

Invariants (``check_invariants``), after every step and every concurrent batch:
* every booking's status is one the table reaches;
* every booking's history is a chain: the first row from NULL (to ``held`` by its customer, or to
  ``accepted`` for a follow-up visit), each next row's from = the previous row's to and a table row
  for its actor, the last row's to = the booking's status; one live event per history row;
* no live visit belongs to a cancelled or completed order (closing a job closes its follow-ups);
* no two live bookings of a provider overlap; the ledger balances (``ledger.verify``).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import timedelta

import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

import workers  # noqa: F401  (the Dramatiq broker the outbox dispatches to)
from domain.bookings import booking
from domain.money import ledger
from domain.shared import live
from domain.shared.errors import DomainError
from models import (
    Booking,
    BookingStatusChange,
    Dispute,
    Email,
    Escalation,
    LedgerEntry,
    OutboxMessage,
    Refund,
    ServiceRequest,
    SubstitutionOffer,
)
from models.bookings import BOOKING_STATUSES, LIVE_STATUSES
from models.db import dispose_engine, session_scope
from settings import get_settings
from tests.conftest import truncate_all
from tests.support.bookings import ACTORS, attempt, cast, drive, hold, hold_clock, slot

REACHABLE = frozenset({"held"} | {to for _, to in booking.TRANSITIONS})
STATUSES = sorted(BOOKING_STATUSES) + ["teleported"]  # and one that does not exist
STARTS = ["held", "paid", "accepted", "en_route", "arrived", "in_progress", "cannot_make_it", "completed"]
NEXT: dict[str, list[str]] = defaultdict(list)
for _frm, _to in sorted(booking.TRANSITIONS):
    NEXT[_frm].append(_to)


# --- the world ------------------------------------------------------------------------------------


async def reset_and_build():
    """Empty tables and Redis; a provider, a substitute, two customers, an admin and three held
    bookings (two customers, three days)."""
    async with session_scope() as s:
        await truncate_all(s)
    client = aioredis.from_url(get_settings().redis_url)
    await client.flushdb()
    await client.aclose()
    c = await cast()
    for index, who in enumerate([c.customer, c.other_customer, c.customer]):
        await hold(c.b, who, slot(index), now=hold_clock(index))
    return c


async def snapshot() -> tuple:
    """Everything an attempt can change, as one comparable value."""
    async with session_scope() as s:
        bookings = (await s.execute(select(
            Booking.id, Booking.status, Booking.provider_id, Booking.review_rating, Booking.service_request_id,
            Booking.updated_at,
        ).order_by(Booking.id))).all()
        orders = (await s.execute(select(
            ServiceRequest.id, ServiceRequest.status, ServiceRequest.captured_minor, ServiceRequest.refunded_minor,
            ServiceRequest.released_at,
        ).order_by(ServiceRequest.id))).all()
        counts = []
        for model in (BookingStatusChange, OutboxMessage, Email, LedgerEntry, Refund, Dispute, Escalation):
            counts.append(await s.scalar(select(func.count()).select_from(model)))
        disputes = (await s.execute(select(Dispute.id, Dispute.status).order_by(Dispute.id))).all()
        offers = (await s.execute(select(SubstitutionOffer.id, SubstitutionOffer.status)
                                  .order_by(SubstitutionOffer.id))).all()
    return tuple(map(tuple, bookings)), tuple(map(tuple, orders)), tuple(counts), tuple(disputes), tuple(offers)


async def statuses() -> dict[int, str]:
    async with session_scope() as s:
        return dict((await s.execute(select(Booking.id, Booking.status))).all())


async def history_rows(booking_id: int) -> list[tuple[str | None, str, str]]:
    async with session_scope() as s:
        rows = (await s.execute(select(BookingStatusChange.from_status, BookingStatusChange.to_status,
                                       BookingStatusChange.actor_type)
                                .where(BookingStatusChange.booking_id == booking_id)
                                .order_by(BookingStatusChange.id))).all()
    return [tuple(r) for r in rows]


async def check_invariants() -> None:
    async with session_scope() as s:
        rows = (await s.scalars(select(Booking).order_by(Booking.id))).all()
        changes = (await s.scalars(select(BookingStatusChange).order_by(BookingStatusChange.id))).all()
        channels = [live.booking_channel(row.id) for row in rows]
        events = dict((await s.execute(select(OutboxMessage.target, func.count()).where(
            OutboxMessage.kind == "event", OutboxMessage.target.in_(channels)).group_by(OutboxMessage.target))).all())
        check = await ledger.verify(s)
        order_status = dict((await s.execute(select(ServiceRequest.id, ServiceRequest.status))).all())
    assert check.ok, check
    by_booking = defaultdict(list)
    for change in changes:
        by_booking[change.booking_id].append(change)
    for row in rows:
        assert row.status in REACHABLE, (row.id, row.status)
        chain = by_booking[row.id]
        assert chain, row.id
        first = chain[0]
        if row.parent_booking_id is None:  # held by its customer, or a follow-up booked by the provider or an admin
            assert (first.from_status, first.to_status, first.actor_type) == (None, "held", "customer"), row.id
        else:
            assert (first.from_status, first.to_status) == (None, "accepted"), row.id
            assert first.actor_type in ("provider", "admin"), row.id
        for previous, change in zip(chain, chain[1:], strict=False):
            assert change.from_status == previous.to_status, (row.id, previous.to_status, change.from_status)
            assert booking.allowed(change.from_status, change.to_status, change.actor_type), (
                row.id, change.from_status, change.to_status, change.actor_type)
        assert chain[-1].to_status == row.status, (row.id, chain[-1].to_status, row.status)
        assert events.get(live.booking_channel(row.id), 0) == len(chain), row.id
        if row.status in LIVE_STATUSES and row.service_request_id is not None:  # a visit still to make is paid for
            assert order_status[row.service_request_id] not in ("cancelled", "completed"), (row.id, row.status)
    live_rows = [r for r in rows if r.status in LIVE_STATUSES]
    for i, a in enumerate(live_rows):
        for b in live_rows[i + 1:]:
            assert a.provider_id != b.provider_id or a.blocked_until <= b.starts_at or b.blocked_until <= a.starts_at, (
                a.id, b.id)


# --- one attempt ----------------------------------------------------------------------------------

ATTEMPT_OPTIONS = st.fixed_dictionaries({
    "waited": st.booleans(),  # the provider reports a no-show after the wait (or a second before it ends)
    "notice_hours": st.sampled_from([72, 30, 2]),  # how long before the start a cancellation comes
    "rating": st.integers(0, 6),
    "resolution": st.sampled_from(["release", "refund_full", "refund_partial"]),
    "follow_up_hours": st.sampled_from([1, 2, 3]),
})


async def try_once(c, booking_id: int, to: str, actor: str, options: dict) -> tuple[bool, str, list]:
    """Attempt ``to`` by ``actor``; returns ``(accepted, outcome, new history rows of the booking)``.
    Asserts the attempt's own properties: accepted = one table row for that actor; refused = no change."""
    async with session_scope() as s:
        row = await s.get(Booking, booking_id)
    current = row.status
    now = None
    if to == "customer_no_show" and row.arrived_at is not None:
        wait = timedelta(seconds=get_settings().booking_no_show_wait_seconds)
        now = row.arrived_at + wait - (timedelta(0) if options["waited"] else timedelta(seconds=1))
    elif to.startswith("cancelled_by"):
        now = row.starts_at - timedelta(hours=options["notice_hours"])
    before_history = await history_rows(booking_id)
    before = await snapshot()
    try:
        await attempt(c, booking_id, to, actor, now=now, rating=options["rating"], resolution=options["resolution"],
                      follow_up_start=row.starts_at + timedelta(hours=options["follow_up_hours"]))
    except DomainError as exc:
        assert await snapshot() == before, (current, to, actor, exc.code)
        return False, exc.code, []
    after_history = await history_rows(booking_id)
    new = after_history[len(before_history):]
    assert after_history[:len(before_history)] == before_history
    actor_type = "provider" if actor == "other_provider" else actor
    assert new == [(current, to, actor_type)], (current, to, actor, new)
    assert booking.allowed(current, to, actor_type)
    assert (await statuses())[booking_id] == to
    return True, f"{current}->{to} by {actor_type}", new


def choose(rnd, status: str) -> tuple[str, str]:
    """``(to, actor)``: 60 % of the time a row the table offers from ``status`` by one of its actors
    (or any provider), else any status by anyone."""
    if NEXT[status] and rnd.random() < 0.6:
        to = rnd.choice(NEXT[status])
        actors = sorted(booking.TRANSITIONS[(status, to)].actors)
        if "provider" in actors:
            actors.append("other_provider")
        return to, rnd.choice(actors)
    return rnd.choice(STATUSES), rnd.choice(ACTORS)


# --- the state machine ----------------------------------------------------------------------------


class BookingMachine(RuleBasedStateMachine):
    """Random transition attempts on a few bookings; ``loop`` is the test's event loop."""

    loop: asyncio.AbstractEventLoop
    tally: dict[str, int] = defaultdict(int)
    rows_seen: set[tuple[str, str, str]] = set()

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    @initialize(rnd=st.randoms(use_true_random=True))
    def build(self, rnd) -> None:
        """Three bookings, moved along ROUTES to a drawn status first, so walks start anywhere in the table."""
        self.tally["examples"] += 1
        self.c = self.run(reset_and_build())
        for booking_id in sorted(self.run(statuses())):
            self.run(drive(self.c, booking_id, rnd.choice(STARTS)))

    @precondition(lambda self: getattr(self, "open_walks", 3) < 2 and getattr(self, "holds", 0) < 12)
    @rule(rnd=st.randoms(use_true_random=True))
    def hold_another_slot(self, rnd):
        """A new hold, once fewer than two bookings can still move (up to twelve more per example),
        moved along ROUTES to a drawn status."""
        self.holds = getattr(self, "holds", 0) + 1
        index = self.holds + 2  # days 3..14: each booking and its follow-ups on a day of their own
        who = rnd.choice([self.c.customer, self.c.other_customer])
        held = self.run(hold(self.c.b, who, slot(index), now=hold_clock(index)))
        self.run(drive(self.c, held.id, rnd.choice(STARTS)))
        self.tally["holds"] += 1

    @precondition(lambda self: getattr(self, "open_walks", 3) > 0 or getattr(self, "holds", 0) >= 12)
    @rule(data=st.data(), options=ATTEMPT_OPTIONS)
    def attempt_a_transition(self, data, options):
        """Mostly (85 %) a booking that can still move, and a target and an actor by ``choose``."""
        # Choices by a seeded PRNG (hypothesis draws and replays the seed): hypothesis' own choices
        # favour the first elements of a list, which left some rows of the table untried.
        rnd = data.draw(st.randoms(use_true_random=True), label="choices")
        current = self.run(statuses())
        movable = sorted(i for i, status in current.items() if NEXT[status])
        booking_id = rnd.choice(movable) if movable and rnd.random() < 0.85 else rnd.choice(sorted(current))
        to, actor = choose(rnd, current[booking_id])
        accepted, outcome, new = self.run(try_once(self.c, booking_id, to, actor, options))
        self.tally["tried"] += 1
        if accepted:
            self.tally["accepted"] += 1
            self.rows_seen.add(new[0])
        else:
            self.tally[f"refused ({outcome})"] += 1

    @invariant()
    def the_table_holds(self):
        if hasattr(self, "c"):
            self.tally["invariant checks"] += 1
            self.run(check_invariants())
            self.open_walks = sum(1 for status in self.run(statuses()).values() if NEXT[status])


STATE_MACHINE_EXAMPLES = 15
STATE_MACHINE_STEPS = 40


def test_random_transition_attempts_follow_the_table_and_keep_the_history():
    loop = asyncio.new_event_loop()
    BookingMachine.loop = loop
    try:
        run_state_machine_as_test(
            BookingMachine,
            settings=settings(max_examples=STATE_MACHINE_EXAMPLES, stateful_step_count=STATE_MACHINE_STEPS,
                              deadline=None, suppress_health_check=list(HealthCheck)),
        )
    finally:
        loop.run_until_complete(dispose_engine())
        loop.close()
    table_rows = {(frm, to, actor) for (frm, to), rule_ in booking.TRANSITIONS.items() for actor in rule_.actors}
    tally = dict(sorted(BookingMachine.tally.items()))
    print("\nbooking state machine:", tally)
    print(f"table rows (per actor) exercised: {len(BookingMachine.rows_seen & table_rows)} of {len(table_rows)};"
          f" not reached: {sorted(table_rows - BookingMachine.rows_seen)}")
    assert BookingMachine.rows_seen <= table_rows
    assert tally["accepted"] > 0 and tally["tried"] > tally["accepted"]


# --- the same attempts, concurrently ----------------------------------------------------------------


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(start=st.randoms(use_true_random=True),
       batches=st.lists(st.lists(st.tuples(st.randoms(use_true_random=True), ATTEMPT_OPTIONS), min_size=3, max_size=8),
                        min_size=2, max_size=5))
async def test_concurrent_transition_attempts_keep_the_table_and_the_history(start, batches):
    """Batches of attempts on three bookings run at once (separate connections), each choosing its
    booking, target and actor when it starts; every attempt ends in success or a typed refusal, and
    after each batch the invariants hold."""
    c = await reset_and_build()
    ids = sorted(await statuses())
    for booking_id in ids:  # spread the bookings over the table first
        await drive(c, booking_id, start.choice(STARTS))

    async def one(rnd, options) -> None:
        booking_id = rnd.choice(ids)
        async with session_scope() as s:
            row = await s.get(Booking, booking_id)
        to, actor = choose(rnd, row.status)
        now = row.starts_at - timedelta(hours=options["notice_hours"]) if to.startswith("cancelled_by") else None
        try:
            await attempt(c, booking_id, to, actor, now=now, rating=options["rating"],
                          resolution=options["resolution"],
                          follow_up_start=row.starts_at + timedelta(hours=options["follow_up_hours"]))
        except DomainError:
            return f"booking {booking_id}: {row.status} -> {to} by {actor}: refused"
        except Exception as exc:  # reported below with the whole batch
            return exc, f"booking {booking_id}: {row.status} -> {to} by {actor}: {type(exc).__name__} {exc}"[:600]
        return f"booking {booking_id}: {row.status} -> {to} by {actor}: done"

    for batch in batches:
        results = await asyncio.gather(*(one(rnd, options) for rnd, options in batch))
        crashes = [r[1] for r in results if isinstance(r, tuple)]
        assert crashes == [], "\n".join(r if isinstance(r, str) else r[1] for r in results)
        await check_invariants()


# --- walks the state machine found, replayed as plain tests --------------------------------------------


async def follow_up_of(booking_id: int) -> int:
    async with session_scope() as s:
        return await s.scalar(select(Booking.id).where(Booking.parent_booking_id == booking_id))


async def order_money(booking_id: int) -> tuple[str, int, int]:
    """``(status, captured_minor, refunded_minor)`` of the booking's order."""
    async with session_scope() as s:
        row = await s.get(Booking, booking_id)
        order = await s.get(ServiceRequest, row.service_request_id)
        return order.status, order.captured_minor, order.refunded_minor


async def job_whose_follow_up_needs_a_follow_up(c) -> tuple[int, int, int]:
    """A visit in ``needs_follow_up`` whose follow-up (started, then also ``needs_follow_up``) has its
    own follow-up booked (``accepted``), an hour apart on the same order: ``(job, follow_up, second)``."""
    job = (await hold(c.b, c.customer, slot(0), now=hold_clock(0))).id
    await drive(c, job, "in_progress")
    await attempt(c, job, "needs_follow_up", "admin", follow_up_start=slot(0, 10))
    follow_up = await follow_up_of(job)
    await attempt(c, follow_up, "en_route", "provider")
    await attempt(c, follow_up, "in_progress", "provider")
    await attempt(c, follow_up, "needs_follow_up", "admin", follow_up_start=slot(0, 11))
    second = await follow_up_of(follow_up)
    assert await statuses() == {job: "needs_follow_up", follow_up: "needs_follow_up", second: "accepted"}
    return job, follow_up, second


async def test_abandoning_a_job_closes_the_follow_up_of_its_follow_up():
    # given a job whose follow-up needs a follow-up of its own, booked on the same order (the walk of
    # --hypothesis-seed=35463682881656647740140310590534901388, without its unrelated bookings)
    c = await cast()
    job, follow_up, second = await job_whose_follow_up_needs_a_follow_up(c)
    # when an admin abandons the job (needs_follow_up -> cancelled_by_admin)
    await attempt(c, job, "cancelled_by_admin", "admin")
    # then the whole chain is closed by the admin (the second follow-up used to stay accepted)
    assert await statuses() == {job: "cancelled_by_admin", follow_up: "cancelled_by_admin", second: "cancelled_by_admin"}
    assert (await history_rows(follow_up))[-1] == ("needs_follow_up", "cancelled_by_admin", "admin")
    assert (await history_rows(second))[-1] == ("accepted", "cancelled_by_admin", "admin")
    # and the order is cancelled and refunded in full, with no live visit left on it
    status, captured, refunded = await order_money(job)
    assert (status, refunded) == ("cancelled", captured) and captured > 0
    await check_invariants()


async def test_no_follow_up_after_all_completes_the_follow_up_and_cancels_the_one_booked_after_it():
    # given a job whose follow-up needs a follow-up of its own, booked on the same order
    c = await cast()
    job, follow_up, second = await job_whose_follow_up_needs_a_follow_up(c)
    # when an admin completes the job (needs_follow_up -> completed: no follow-up after all)
    await attempt(c, job, "completed", "admin")
    # then the follow-up is completed the same way and the visit booked after it cancelled
    assert await statuses() == {job: "completed", follow_up: "completed", second: "cancelled_by_admin"}
    assert (await history_rows(follow_up))[-1] == ("needs_follow_up", "completed", "admin")
    assert (await history_rows(second))[-1] == ("accepted", "cancelled_by_admin", "admin")
    # and the order completes (it used to stay in progress for the live second follow-up)
    assert (await order_money(job))[0] == "completed"
    await check_invariants()
    # when the customer disputes the job and an admin refunds it in full (this used to cancel the
    # order under the still-accepted second follow-up)
    await attempt(c, job, "disputed", "customer")
    await attempt(c, job, "resolved", "admin", resolution="refund_full")
    # then the money goes back and no visit of the order is live
    status, captured, refunded = await order_money(job)
    assert (status, refunded) == ("completed", captured) and captured > 0
    assert (await statuses())[job] == "resolved"
    await check_invariants()


"""The booking sweeper killed (SIGKILL) in the middle of a sweep: nothing is lost, nothing is doubled.

Given three expired holds, a real ``odim bookings sweep`` process expires the first, then blocks on
the second (the test holds its row lock) and is killed there. PostgreSQL rolls the dead process's
open transaction back: the first hold stays expired (its transaction had committed), the others
are untouched. The next sweep expires the rest, each exactly once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, text

from models import Booking, BookingStatusChange
from models.db import get_engine, session_scope
from tests.support.bookings import MONDAY, bookable_provider, customer, hold

ROOT = Path(__file__).resolve().parents[2]


async def wait_until(predicate, *, seconds: float, what: str) -> None:
    for _ in range(int(seconds * 10)):
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def expiries() -> dict[int, int]:
    async with session_scope() as s:
        rows = await s.execute(
            select(BookingStatusChange.booking_id, func.count())
            .where(BookingStatusChange.to_status == "payment_expired").group_by(BookingStatusChange.booking_id)
        )
        return dict(rows.all())


async def statuses() -> list[str]:
    async with session_scope() as s:
        return list((await s.scalars(select(Booking.status).order_by(Booking.id))).all())


async def test_a_sweeper_killed_mid_sweep_loses_nothing_and_the_next_sweep_expires_each_hold_once():
    # given: three holds whose ten minutes ran out an hour ago
    b = await bookable_provider()
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    held = [await hold(b, await customer(f"c{i}@example.com"), MONDAY + timedelta(hours=9 + i), now=an_hour_ago)
            for i in range(3)]
    async with get_engine().connect() as blocker:
        await blocker.execute(text("BEGIN"))
        await blocker.execute(text("SELECT id FROM bookings WHERE id = :id FOR UPDATE"), {"id": held[1].id})

        # when: a sweep expires the first hold, blocks on the second ...
        sweeper = subprocess.Popen(
            [sys.executable, "-m", "cli", "bookings", "sweep"], cwd=ROOT, env=dict(os.environ),
            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            async def sweeper_is_blocked() -> bool:
                async with get_engine().connect() as probe:
                    waiting = await probe.scalar(text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND query ILIKE '%FROM bookings%FOR NO KEY UPDATE%'"))
                return waiting == 1

            await wait_until(sweeper_is_blocked, seconds=60, what="the sweeper to block on the second hold")
            # ... and is killed there, mid-transaction
            os.killpg(sweeper.pid, signal.SIGKILL)
            sweeper.wait(timeout=10)
        finally:
            if sweeper.poll() is None:
                os.killpg(sweeper.pid, signal.SIGKILL)
        await blocker.execute(text("ROLLBACK"))

    # then: the first expiry had committed; the killed transaction left nothing behind
    assert await statuses() == ["payment_expired", "held", "held"]
    assert await expiries() == {held[0].id: 1}

    # when: the next sweep runs
    done = subprocess.run([sys.executable, "-m", "cli", "bookings", "sweep"], cwd=ROOT, env=dict(os.environ),
                          capture_output=True, text=True, timeout=120)

    # then: every hold expired exactly once
    assert done.returncode == 0, done.stderr
    assert "holds expired: 2" in done.stdout
    assert await statuses() == ["payment_expired"] * 3
    assert await expiries() == {h.id: 1 for h in held}

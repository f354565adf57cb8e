"""Booking locks (position 5 of the lock order in domain/shared/locks.py): claims on a provider's time,
then the booking's order, then the booking.

The exclusion constraint decides who gets a slot. But concurrent INSERTs of overlapping rows wait on
each other's uncommitted rows, and PostgreSQL breaks the cycles as deadlocks (SQLSTATE 40P01, one per
``deadlock_timeout``, as its execIndexing.c documents; measured here: up to 755 of 999 racers for one
slot got 40P01 instead of a refusal). So no two writers ever insert overlapping rows at once:

* a hold *claims* the provider's time it covers, ``[start, blocked_until)``, as transaction advisory
  locks on 5-minute buckets (``CLAIM_SQL``, ``pg_try_advisory_xact_lock``) without waiting: a bucket
  claimed by another transaction means someone is taking overlapping time right now, and the hold is
  refused at once (``SLOT_UNAVAILABLE``) instead of queueing behind it. Holds of disjoint time claim
  disjoint buckets and never wait for each other. The hold share-locks the provider's row (``FOR
  SHARE``: holds do not block one another) so plan changes, suspensions, follow-ups and take-overs,
  which lock it ``FOR NO KEY UPDATE``, never run beside a hold;
* follow-ups and take-overs lock the provider's row ``FOR NO KEY UPDATE`` (``domain.providers.locks``):
  they wait for holds in flight and for each other.

Buckets are claimed in ascending order and the claim stops at the first one held elsewhere, so a
refused hold keeps at most the buckets before it, until its transaction rolls back a moment later.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.orders.locks import lock_request
from domain.shared.errors import NotFound
from models import Booking


async def lock_booking(session: AsyncSession, booking_id: int) -> Booking:
    """The booking, row-locked (``FOR NO KEY UPDATE``) for the rest of the transaction, its order
    locked first when it has one. Raises ``NotFound``.

    Lock order, everywhere: provider -> payment -> order -> booking. A payment's confirmation holds
    the payment and the order when it reaches the booking (domain/orders/payment.py -> ``order_paid``), so
    a transition must not hold the booking while it waits for the order: that deadlocked."""
    while True:
        order_id = await session.scalar(select(Booking.service_request_id).where(Booking.id == booking_id))
        if order_id is not None:
            await lock_request(session, order_id)
        savepoint = await session.begin_nested()
        booking = await session.scalar(select(Booking).where(Booking.id == booking_id).with_for_update(key_share=True))
        if booking is None:
            await savepoint.rollback()
            raise NotFound("No such booking", field="bookingId")
        if booking.service_request_id == order_id:
            await savepoint.commit()  # RELEASE SAVEPOINT: the row lock stays with the transaction
            return booking
        # A checkout opened the order while we waited for the booking, and its payment may already
        # hold that order and want the booking: let the booking go (rolling back to the savepoint
        # releases the row lock) and lock again in order, the new order first.
        await savepoint.rollback()


BUCKET_SECONDS = 300
# Advisory lock keys: provider id in the high bits, the 5-minute bucket (since the Unix epoch, modulo
# 2**24: about 160 years) in the low 24. Another key space than any other advisory lock of Odim's.
# A scalar subquery: ``:keys`` in ascending order, claimed one after the other until one is held elsewhere.
CLAIM_SQL = (
    "WITH RECURSIVE claim(i, ok) AS (SELECT 0, true UNION ALL "
    "SELECT i + 1, pg_try_advisory_xact_lock((CAST(:keys AS bigint[]))[i + 1]) FROM claim "
    "WHERE ok AND i < cardinality(CAST(:keys AS bigint[]))) SELECT bool_and(ok) FROM claim"
)


def time_keys(provider_id: int, start: datetime, end: datetime) -> list[int]:
    """The advisory lock keys of ``provider_id``'s time ``[start, end)``, sorted: one per 5-minute
    bucket it touches."""
    first = int(start.timestamp()) // BUCKET_SECONDS
    last = (int(end.timestamp()) - 1) // BUCKET_SECONDS
    return [(provider_id << 24) | (bucket % (1 << 24)) for bucket in range(first, last + 1)]

"""Booking row locks (position 5 of the lock order in domain/shared/locks.py): the provider first when
a write can put a booking on its time, then the booking's order, then the booking.

Holds, follow-ups and take-overs take the provider's row first (``domain.providers.locks``). The
exclusion constraint still decides who gets a slot; the lock only queues the writers. Without it,
concurrent INSERTs of overlapping rows wait on each other's uncommitted rows and PostgreSQL breaks the
cycles as deadlocks (SQLSTATE 40P01, one per ``deadlock_timeout``), as its execIndexing.c documents;
measured here: up to 755 of 999 racers for one slot got 40P01 instead of a refusal.
"""

from __future__ import annotations

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

"""Builders for booking tests: a bookable provider (account, weekly plan, rules, a service with a
slot length), a customer, holding and paying through the domain like the API does."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from domain.bookings import booking
from domain.bookings import locks as booking_locks
from domain.orders import dispute as dispute_domain
from domain.orders import payment as payment_domain
from domain.providers import availability
from domain.shared.errors import DomainError
from models import Booking, Dispute, Payment, Provider, Service, ServiceTier, SubstitutionOffer, User
from models.db import session_scope
from settings import get_settings
from tests.support.contracts import accept_visit_if_contracted
from tests.support.factories import make_provider, make_service, make_user

# A Monday far enough ahead for any notice or horizon the tests set (horizons are widened to match).
MONDAY = datetime(2027, 3, 1, tzinfo=UTC)


@dataclass
class Bookable:
    provider: Provider
    provider_user: User
    service: Service
    tier: ServiceTier


async def bookable_provider(
    name: str = "Eko Plumbing", *, email: str | None = None, time_zone: str = "Africa/Douala",
    latitude: float = 4.0511, longitude: float = 9.7679, service: tuple[Service, list[ServiceTier]] | None = None,
    slot_minutes: int = 60, buffer_minutes: int = 0, hours: tuple[int, int] = (8, 18), categories: list[str] | None = None,
) -> Bookable:
    """A verified provider with an account, open every day ``hours`` (local), no notice, a 400-day
    horizon and ``slot_minutes`` slots for ``service`` (a new plumbing service by default)."""
    user = await make_user(email or f"{name.lower().replace(' ', '.')}@example.com", role="provider", full_name=name)
    provider = await make_provider(display_name=name, user_id=user.id, latitude=latitude, longitude=longitude,
                                   categories=categories)
    service, tiers = service or await make_service(name=f"Visit {name}", tiers=1)
    async with session_scope() as s:
        await availability.set_time_zone(s, provider.id, time_zone)
        await availability.set_weekly_plan(s, provider.id, [(d, hours[0] * 60, hours[1] * 60) for d in range(7)])
        await availability.set_booking_rules(s, provider.id, min_notice_minutes=0, buffer_minutes=buffer_minutes,
                                             horizon_days=366)
        await availability.set_service_slot(s, provider.id, service.id, slot_minutes)
    async with session_scope() as s:
        provider = await s.get(Provider, provider.id)
    return Bookable(provider, user, service, tiers[0])


async def hold(b: Bookable, customer: User, start: datetime, *, now: datetime | None = None, **kw) -> Booking:
    """Hold ``start`` on ``b`` for ``customer`` (raises the domain's errors)."""
    async with session_scope() as s:
        return await booking.hold_slot(s, customer=customer, provider_id=b.provider.id, service_id=b.service.id,
                                       start=start, currency="XAF", now=now or start - timedelta(days=7), **kw)


async def checkout_and_pay(booking_id: int, customer: User, *, now: datetime | None = None) -> Payment:
    """Open the booking's checkout and apply the gateway's success for it (as a webhook would)."""
    async with session_scope() as s:
        out = await booking.checkout(s, booking_id, customer=customer, now=now)
        payment_id = out.payment.id
    async with session_scope() as s:
        payment = await s.scalar(select(Payment).where(Payment.id == payment_id).with_for_update(key_share=True))
        await payment_domain.apply_payment_status(s, payment, "succeeded", amount_minor=payment.amount_minor,
                                                  currency=payment.currency, event_id=f"evt_{payment.reference}")
    return payment


async def customer(email: str = "ada@example.com") -> User:
    return await make_user(email, full_name="Ada Customer")


async def status_of(booking_id: int) -> str:
    async with session_scope() as s:
        return (await s.get(Booking, booking_id)).status


# --- the state machine tests' helpers (tests/bookings/test_booking.py, tests/bookings/test_booking_properties.py) -------

ACTORS = ("customer", "provider", "other_provider", "admin", "system")


def slot(day: int, hour: int = 9) -> datetime:
    """A slot start ``day`` days after MONDAY at ``hour``:00 UTC (``hour`` + 1 in Douala)."""
    return MONDAY + timedelta(days=day, hours=hour)


def hold_clock(index: int) -> datetime:
    """The ``now`` a test's ``index``-th hold is made at: 11 minutes apart, so one hold's expiry
    time never catches a later hold (hold_expires_at = now + 10 minutes)."""
    return MONDAY - timedelta(days=7) + timedelta(minutes=11 * index)


@dataclass
class Cast:
    """Everybody around a booking: the provider, a second provider (a substitute), two customers
    and an admin."""

    b: Bookable
    substitute: Bookable
    customer: User
    other_customer: User
    admin: User


async def cast() -> Cast:
    b = await bookable_provider()
    substitute = await bookable_provider("Bonaberi Repairs", service=(b.service, [b.tier]))
    return Cast(b, substitute, await customer(), await customer("bob@example.com"),
                await make_user("ops@example.com", role="admin", full_name="Odim Ops"))


async def user_for(c: Cast, booking_id: int, actor: str) -> User:
    """The user acting as ``actor`` on the booking: its customer, its current provider's account,
    the other provider of the cast, or the admin."""
    async with session_scope() as s:
        row = await s.get(Booking, booking_id)
        if actor == "customer":
            return await s.get(User, row.customer_user_id)
        if actor == "provider":
            return await s.scalar(select(User).join(Provider, Provider.user_id == User.id)
                                  .where(Provider.id == row.provider_id))
        if actor == "other_provider":
            return c.substitute.provider_user if row.provider_id == c.b.provider.id else c.b.provider_user
    assert actor == "admin", actor
    return c.admin


class TimerIdle(DomainError):
    """A timer ran and did not move the booking (test-only: timers return counts, not errors)."""

    code = "TIMER_IDLE"


async def offer_to(booking_id: int, provider_id: int) -> None:
    """A substitution offer of the visit to ``provider_id`` (as domain/bookings/substitution.py makes them)."""
    async with session_scope() as s:
        await s.execute(insert(SubstitutionOffer).values(booking_id=booking_id, provider_id=provider_id)
                        .on_conflict_do_nothing(index_elements=["booking_id", "provider_id"]))


async def attempt(
    c: Cast, booking_id: int, to: str, actor: str, *, now: datetime | None = None, follow_up_start: datetime | None = None,
    rating: int = 5, resolution: str = "release",
) -> None:
    """``actor`` (one of ACTORS) tries to move the booking to ``to`` the way the app would: the
    dedicated domain call where there is one (follow-up, dispute, review, take-over, the timers and
    the payment for the system), else ``booking.change_status``; the system's other attempts go to
    ``booking.transition`` itself. Raises what the domain raises (``TimerIdle`` when a timer moved
    nothing)."""
    async with session_scope() as s:
        row = await s.get(Booking, booking_id)
    current = row.status
    if actor == "system":
        timers = {
            ("held", "payment_expired"): lambda: booking.expire_holds(now=now or row.hold_expires_at),
            ("paid", "expired"): lambda: booking.expire_unanswered(now=now or row.response_due_at),
            ("in_progress", "completed"): lambda: booking.auto_complete(
                now=now or row.ends_at + timedelta(seconds=get_settings().booking_auto_complete_seconds)),
        }
        if (current, to) == ("held", "paid"):
            async with session_scope() as s:
                buyer = await s.get(User, row.customer_user_id)
            await checkout_and_pay(booking_id, buyer)
        elif (current, to) in timers:
            await timers[(current, to)]()
        elif (current, to) == ("disputed", "resolved"):
            async with session_scope() as s:
                await booking.dispute_resolved(s, row.service_request_id, actor_user_id=None, note="Settled")
        else:
            async with session_scope() as s:
                await booking.transition(s, await booking_locks.lock_booking(s, booking_id), to, actor_type="system", now=now)
        if await status_of(booking_id) != to:
            raise TimerIdle(f"the {current} -> {to} timer did not move booking {booking_id}")
        return
    user = await user_for(c, booking_id, actor)
    if to == "in_progress":  # work starts only on a contract both parties accepted
        await accept_visit_if_contracted(booking_id)
    async with session_scope() as s:
        if to == "needs_follow_up":
            await booking.book_follow_up(s, booking_id, actor=user, start=follow_up_start or row.starts_at + timedelta(hours=2),
                                         now=now)
        elif to == "disputed":
            await booking.open_dispute(s, booking_id, actor=user, reason="The tap still drips")
        elif to == "reviewed":
            await booking.review(s, booking_id, actor=user, rating=rating, comment="Quick and tidy")
        elif to == "resolved" and current == "disputed" and (open_dispute := await s.scalar(
            select(Dispute).where(Dispute.service_request_id == row.service_request_id, Dispute.status == "open")
        )) is not None:
            await dispute_domain.resolve_dispute(s, open_dispute.id, actor=user, resolution=resolution,
                                                 refund_minor=1 if resolution == "refund_partial" else None)
        elif to == "accepted" and current == "cannot_make_it" and actor in ("other_provider", "admin"):
            substitute = await user_for(c, booking_id, "other_provider")
            provider_id = c.b.provider.id if substitute.id == c.b.provider_user.id else c.substitute.provider.id
            await booking.take_over(s, booking_id, actor=user, provider_id=provider_id if actor == "admin" else None, now=now)
        else:
            await booking.change_status(s, booking_id, to, actor=user, now=now)


# The way to each status from ``held``: (to, actor) steps.
_PAID = [("paid", "system")]
_ACCEPTED = _PAID + [("accepted", "provider")]
_EN_ROUTE = _ACCEPTED + [("en_route", "provider")]
_ARRIVED = _EN_ROUTE + [("arrived", "provider")]
_IN_PROGRESS = _ACCEPTED + [("in_progress", "provider")]
_COMPLETED = _IN_PROGRESS + [("completed", "provider")]
_DISPUTED = _COMPLETED + [("disputed", "customer")]
ROUTES: dict[str, list[tuple[str, str]]] = {
    "held": [],
    "paid": _PAID,
    "payment_expired": [("payment_expired", "system")],
    "declined": _PAID + [("declined", "provider")],
    "expired": _PAID + [("expired", "system")],
    "accepted": _ACCEPTED,
    "en_route": _EN_ROUTE,
    "arrived": _ARRIVED,
    "in_progress": _IN_PROGRESS,
    "needs_follow_up": _IN_PROGRESS + [("needs_follow_up", "provider")],
    "completed": _COMPLETED,
    "cancelled_by_customer": _ACCEPTED + [("cancelled_by_customer", "customer")],
    "cancelled_by_provider": _ACCEPTED + [("cancelled_by_provider", "provider")],
    "cancelled_by_admin": _ACCEPTED + [("cancelled_by_admin", "admin")],
    "cannot_make_it": _ACCEPTED + [("cannot_make_it", "provider")],
    "customer_no_show": _ARRIVED + [("customer_no_show", "provider")],
    "disputed": _DISPUTED,
    "resolved": _DISPUTED + [("resolved", "admin")],
    "reviewed": _COMPLETED + [("reviewed", "customer")],
}


async def drive(c: Cast, booking_id: int, status: str) -> None:
    """Move a held booking along ROUTES[status] (the customer-no-show step once the wait is over)."""
    for to, actor in ROUTES[status]:
        now = None
        if to == "customer_no_show":
            async with session_scope() as s:
                arrived_at = (await s.get(Booking, booking_id)).arrived_at
            now = arrived_at + timedelta(seconds=get_settings().booking_no_show_wait_seconds)
        await attempt(c, booking_id, to, actor, now=now)
    assert await status_of(booking_id) == status

"""Substitution: when a provider cannot make a visit, it is offered to other qualified providers
nearby who are free at that time; the first to accept takes it (domain/bookings/booking.py ``take_over``).

"Late or stuck expert": "the provider reports ``cannot_make_it``; the system offers the visit
to other qualified, available providers nearby (a substitution request they can accept; first accept
wins, atomically) and alerts admins if nobody accepts within a set time" (settings.booking_substitution_seconds,
counted from the report: ``bookings.substitution_due_at``).

An offer is ``offered`` until the visit is taken (the winner's offer -> ``accepted``, the others ->
``lost``, by ``take_over``) or the deadline passes with nobody taking it (-> ``expired`` by
``escalate_unanswered``, which also escalates ``substitution_unanswered``). A booking still in
``cannot_make_it`` with offers in ``offered`` past its deadline is therefore exactly one that has not been
escalated yet: no other marker is needed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from geoalchemy2 import Geometry
from sqlalchemy import cast, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.messaging import notification
from domain.orders import escalation
from domain.providers import availability
from domain.providers.availability import local_instant
from models import Booking, BookingStatusChange, Provider, ProviderService, Service, SubstitutionOffer, Ticket, User
from models.db import session_scope
from settings import get_settings

MAX_OFFERS = 20  # substitutes offered one visit, nearest first
MAX_CANDIDATES = 200  # nearest qualified providers checked for free time


async def _origin(session: AsyncSession, booking: Booking) -> str:
    """EWKT of the point substitutes are searched around: the ticket's location, else the booking's provider's."""
    if booking.ticket_id is not None:
        stmt = select(func.ST_AsEWKT(cast(Ticket.location, Geometry))).where(Ticket.id == booking.ticket_id)
    else:
        stmt = select(func.ST_AsEWKT(cast(Provider.location, Geometry))).where(Provider.id == booking.provider_id)
    return await session.scalar(stmt)


async def _candidates(session: AsyncSession, booking: Booking, origin: str, radius_m: float) -> list:
    """One statement: verified, available, non-suspended providers within ``radius_m`` of ``origin``
    with an active ``provider_services`` row for the booking's (active) service, other than the
    booking's provider, any provider who reported ``cannot_make_it`` on it, and any provider already
    holding an offer for it; nearest first (``<->`` on the geography, served by the partial GiST
    index), at most ``MAX_CANDIDATES``. Rows: id, display_name, time_zone, user email and name, distance_m."""
    point = func.ST_GeogFromText(origin)
    gave_up = (
        select(Provider.id).join(BookingStatusChange, BookingStatusChange.actor_user_id == Provider.user_id)
        .where(BookingStatusChange.booking_id == booking.id, BookingStatusChange.to_status == "cannot_make_it")
    )
    stmt = (
        select(Provider.id, Provider.display_name, Provider.time_zone, User.email, User.full_name,
               func.ST_Distance(Provider.location, point).label("distance_m"))
        .join(ProviderService, ProviderService.provider_id == Provider.id)
        .join(Service, Service.id == ProviderService.service_id)
        .outerjoin(User, User.id == Provider.user_id)
        .where(
            Provider.verified.is_(True), Provider.available.is_(True), Provider.suspended.is_(False),
            func.ST_DWithin(Provider.location, point, radius_m),
            ProviderService.service_id == booking.service_id, ProviderService.active.is_(True), Service.active.is_(True),
            Provider.id != booking.provider_id, Provider.id.not_in(gave_up),
            ~exists().where(SubstitutionOffer.booking_id == booking.id, SubstitutionOffer.provider_id == Provider.id),
        )
        .order_by(Provider.location.op("<->")(point))
        .limit(MAX_CANDIDATES)
    )
    return list((await session.execute(stmt)).all())


def _works_during(zone: ZoneInfo, plan: dict, dates: dict, start: datetime, end: datetime) -> bool:
    """Whether the provider's plan (after its date exceptions) covers ``[start, end)``: the ranges
    of the local dates around it, as UTC intervals (``availability.local_instant``), touching ranges
    merged (a range until midnight continues the next day's from midnight)."""
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    intervals: list[tuple[datetime, datetime]] = []
    while day <= last:
        ranges = dates[day] if day in dates else plan.get(day.weekday(), ())
        intervals.extend((local_instant(zone, day, s), local_instant(zone, day, e)) for s, e in ranges)
        day += timedelta(days=1)
    merged: list[list[datetime]] = []
    for lo, hi in sorted(intervals):
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return any(lo <= start and end <= hi for lo, hi in merged)


async def offer_substitution(session: AsyncSession, booking: Booking, *, now: datetime | None = None) -> list[SubstitutionOffer]:
    """Offer ``booking`` (just moved to ``cannot_make_it``, row-locked, in the caller's transaction)
    to substitutes and email each one (template ``substitution_offer``).

    Candidates (``_candidates``): verified, available, non-suspended providers within
    settings.booking_substitution_radius_km of the ticket's location (of the booking's provider when
    it has no ticket) taking the booking's service. Of those, the ones FREE for the visit: their
    weekly plan and date exceptions cover ``[starts_at, ends_at)`` and no live booking or unexpired
    hold of theirs overlaps ``[starts_at, blocked_until)`` (the exclusion constraint's test; min
    notice and horizon do not apply to a substitute). Plans and bookings are loaded for all
    candidates at once (``availability``'s batch loaders): four statements whatever their number.
    At most ``MAX_OFFERS`` (20), nearest first, get an offer in status ``offered``.
    Nobody found: an escalation ``substitution_unanswered`` at once (the operator is emailed).
    Returns the new offers, nearest first."""
    now = now or datetime.now(UTC)
    settings = get_settings()
    origin = await _origin(session, booking)
    rows = await _candidates(session, booking, origin, settings.booking_substitution_radius_km * 1000.0)
    chosen = []
    if rows:
        ids = [r.id for r in rows]
        start, end = booking.starts_at.astimezone(UTC), booking.ends_at.astimezone(UTC)
        plans, dates = await availability.load_calendars(session, ids, start, booking.blocked_until)
        busy = await availability.load_busy(session, ids, start, booking.blocked_until, now)
        for r in rows:
            if not _works_during(ZoneInfo(r.time_zone), plans.get(r.id, {}), dates.get(r.id, {}), start, end):
                continue
            pid_busy = busy.get(r.id)
            if pid_busy is not None and not pid_busy.free(start, booking.blocked_until):
                continue
            chosen.append(r)
            if len(chosen) == MAX_OFFERS:
                break
    if not chosen:
        await escalation.escalate(
            session, "substitution_unanswered", booking=booking,
            note=f"Visit {booking.reference}: its provider cannot make it and no qualified provider nearby is free "
                 f"at {booking.starts_at:%Y-%m-%d %H:%M} UTC; assign one or cancel the visit",
        )
        return []
    offer_ids = list((await session.scalars(
        insert(SubstitutionOffer)
        .values([{"booking_id": booking.id, "provider_id": r.id, "status": "offered"} for r in chosen])
        .on_conflict_do_nothing(index_elements=["booking_id", "provider_id"])
        .returning(SubstitutionOffer.id)
    )).all())
    offers = list((await session.scalars(
        select(SubstitutionOffer).where(SubstitutionOffer.id.in_(offer_ids))
    )).all())
    by_provider = {o.provider_id: o for o in offers}
    service = await session.get(Service, booking.service_id)
    local = booking.starts_at.astimezone(ZoneInfo(booking.time_zone))
    due = booking.substitution_due_at or now + timedelta(seconds=settings.booking_substitution_seconds)
    for r in chosen:
        offer = by_provider.get(r.id)
        if offer is None or r.email is None:
            continue
        await notification.queue_email(
            session, dedupe_key=f"substitution_offer:{offer.id}", kind="substitution_offer", to=r.email,
            template="substitution_offer",
            context={"name": r.full_name or r.display_name, "reference": booking.reference,
                     "service": service.name if service else "", "when": f"{local:%Y-%m-%d %H:%M} ({booking.time_zone})",
                     "distance_km": f"{r.distance_m / 1000:.1f}", "due": f"{due:%Y-%m-%d %H:%M} UTC"},
        )
    return [by_provider[r.id] for r in chosen if r.id in by_provider]


async def escalate_unanswered(*, now: datetime | None = None, limit: int = 500) -> int:
    """Bookings still ``cannot_make_it`` past ``substitution_due_at`` whose offers nobody took: their
    open offers -> ``expired`` and an escalation ``substitution_unanswered`` (the operator is
    emailed). Once per round of offers: after it no offer is open, so the next sweep skips the
    booking. Each booking in its own transaction, row-locked like ``take_over``: a substitute who
    accepts first wins and the booking is skipped; one who accepts after finds its offer expired
    (``SubstitutionTaken``) and only an admin can assign the visit then. Returns how many bookings
    were escalated."""
    now = now or datetime.now(UTC)
    open_offer = exists().where(SubstitutionOffer.booking_id == Booking.id, SubstitutionOffer.status == "offered")
    async with session_scope() as session:
        ids = list((await session.scalars(
            select(Booking.id).where(Booking.status == "cannot_make_it", Booking.substitution_due_at <= now, open_offer)
            .order_by(Booking.id).limit(limit)
        )).all())
    done = 0
    for booking_id in ids:
        async with session_scope() as session:
            booking = await session.scalar(
                select(Booking).where(Booking.id == booking_id).with_for_update(key_share=True)
            )
            if booking is None or booking.status != "cannot_make_it" or booking.substitution_due_at is None \
                    or booking.substitution_due_at > now:
                continue
            expired = list((await session.scalars(
                update(SubstitutionOffer)
                .where(SubstitutionOffer.booking_id == booking.id, SubstitutionOffer.status == "offered")
                .values(status="expired", decided_at=now)
                .returning(SubstitutionOffer.id)
                .execution_options(synchronize_session=False)
            )).all())
            if not expired:
                continue
            await escalation.escalate(
                session, "substitution_unanswered", booking=booking,
                note=f"Visit {booking.reference} at {booking.starts_at:%Y-%m-%d %H:%M} UTC: none of the "
                     f"{len(expired)} providers offered it accepted by {booking.substitution_due_at:%H:%M} UTC; "
                     "assign one or cancel the visit",
            )
            done += 1
    return done


async def offers_for_provider(session: AsyncSession, provider_id: int) -> list[tuple[SubstitutionOffer, Booking]]:
    """The provider's open offers (``offered``, on visits still ``cannot_make_it``) with their
    bookings, soonest visit first, in one statement. Accept one with ``booking.take_over``."""
    rows = (await session.execute(
        select(SubstitutionOffer, Booking)
        .join(Booking, Booking.id == SubstitutionOffer.booking_id)
        .where(SubstitutionOffer.provider_id == provider_id, SubstitutionOffer.status == "offered",
               Booking.status == "cannot_make_it")
        .order_by(Booking.starts_at, Booking.id)
    )).all()
    return [(offer, booking) for offer, booking in rows]


async def offers_of_booking(session: AsyncSession, booking_id: int) -> list[SubstitutionOffer]:
    """All offers of one visit (any status), by id, in one statement (for admins)."""
    return list((await session.scalars(
        select(SubstitutionOffer).where(SubstitutionOffer.booking_id == booking_id).order_by(SubstitutionOffer.id)
    )).all())

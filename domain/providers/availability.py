"""Availability of providers' time: weekly plans, date exceptions, booking rules and the free slots
computed from them.

Slots are computed deterministically, in this order ("Availability and slots"):

1. the weekly plan (``availability_rules``): ranges of local minutes ``[start, end)`` per weekday
   (0 = Monday; 1440 = the next local midnight) in the provider's IANA zone (``providers.time_zone``);
2. exceptions (``availability_exceptions``): the rows of one concrete local date REPLACE that
   weekday's plan; one row with both minutes NULL is a day off;
3. each range becomes an interval of UTC instants (see ``local_instant`` for the daylight-saving
   rule) and is cut into slots stepped from its start by the slot length in ELAPSED minutes; a
   slot fits when ``start + slot <= range end``;
4. a slot is free when ``[start, end + buffer)`` does not overlap any busy ``[starts_at,
   blocked_until)`` of a live booking or unexpired hold: the same half-open test as the database's
   exclusion constraint ``bookings_no_overlap`` on ``during`` (models/bookings.py), which stays the
   only judge of conflicts when a slot is held;
5. only slots with ``now + min notice <= start < now + horizon`` and inside the asked window are kept.

The pure core is ``compute_slots``; the rest loads its inputs in a constant number of statements.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from sqlalchemy import Date, SmallInteger, and_, cast, delete, func, null, or_, select, text, union_all
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.providers.errors import ProvidersErrorCode
from domain.providers.locks import lock_provider
from domain.providers.provider import GeoPoint, NearbyProvider, providers_nearby
from domain.shared.errors import CommonErrorCode, DomainError, NotFound
from models import (
    AvailabilityException,
    AvailabilityRule,
    Booking,
    Provider,
    ProviderBookingSettings,
    ProviderService,
    Service,
)
from models.bookings import LIVE_STATUSES
from settings import get_settings

MINUTES_PER_DAY = 1440
MAX_CANDIDATES = 200  # geosearch candidates providers_available checks for free slots
MAX_NOTICE_MINUTES = 30 * MINUTES_PER_DAY
MAX_EXCEPTION_SPAN_DAYS = 366
SLOT_MINUTES_RANGE = (5, 1440)  # the check constraint provider_services.slot_range
BUFFER_MINUTES_RANGE = (0, 1440)  # provider_booking_settings.buffer_range
HORIZON_DAYS_RANGE = (1, 366)  # provider_booking_settings.horizon_range

# A literal list (not bind parameters) so the planner can match the partial GiST index of the
# exclusion constraint, whose predicate is this same list.
_LIVE_SQL = text("bookings.status IN (" + ", ".join(f"'{s}'" for s in LIVE_STATUSES) + ")")


# --- errors ---------------------------------------------------------------------------------------


class ServiceNotBookable(DomainError):
    """The provider takes no bookings for this service (no active ``provider_services`` row, or the
    catalogue service is inactive)."""

    code = ProvidersErrorCode.SERVICE_NOT_BOOKABLE
    field = "serviceId"


class SlotNotOffered(DomainError):
    """The requested start is not one of the provider's computed slots (busy bookings ignored)."""

    code = ProvidersErrorCode.SLOT_NOT_OFFERED
    field = "start"


class InvalidWindow(DomainError):
    """A ``from``/``to`` window that is naive, empty, reversed or wider than allowed."""

    code = CommonErrorCode.INVALID_WINDOW
    field = "to"


class InvalidRange(DomainError):
    """A plan or exception range outside ``0 <= start < end <= 1440`` or a weekday outside 0..6."""

    code = ProvidersErrorCode.INVALID_RANGE
    field = "ranges"


class OverlappingRanges(DomainError):
    """Two ranges of the same weekday (or date) overlap; touching ranges are fine."""

    code = ProvidersErrorCode.OVERLAPPING_RANGES
    field = "ranges"


class InvalidBookingRules(DomainError):
    """A notice, buffer or horizon outside its bounds (the field says which)."""

    code = ProvidersErrorCode.INVALID_BOOKING_RULES
    field = None


class InvalidSlotLength(DomainError):
    """A slot length outside 5..1440 minutes (``provider_services.slot_range``)."""

    code = ProvidersErrorCode.INVALID_SLOT_LENGTH
    field = "slotMinutes"


class ServiceNotFound(DomainError):
    """No catalogue service with this id."""

    code = CommonErrorCode.SERVICE_NOT_FOUND
    field = "serviceId"


class InvalidTimeZone(DomainError):
    """Not an IANA time zone name known to zoneinfo."""

    code = ProvidersErrorCode.INVALID_TIME_ZONE
    field = "timeZone"


# --- values ---------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Slot:
    """``[start, end)`` as timezone-aware UTC datetimes; ``end - start`` is the slot length."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Rules:
    """A provider's booking rules: minimum notice (minutes before a slot's start it can still be
    booked), buffer (minutes kept free after every booking, ``blocked_until = end + buffer``) and
    horizon (days ahead slots are offered). Defaults come from settings (``booking_default_*``)."""

    min_notice_minutes: int
    buffer_minutes: int
    horizon_days: int


@dataclass(frozen=True)
class SlotOffer:
    """A slot a provider offers for a service, with what a hold needs to write the booking:
    ``blocked_until`` (end + buffer, UTC) and the provider's zone at booking time."""

    slot: Slot
    slot_minutes: int
    rules: Rules
    time_zone: str

    @property
    def blocked_until(self) -> datetime:
        return self.slot.end + timedelta(minutes=self.rules.buffer_minutes)


@dataclass(frozen=True)
class AvailableProvider:
    """A geosearch hit with its earliest free slot in the asked window and the service it is for."""

    provider: NearbyProvider
    first_slot: Slot
    service_id: int


@dataclass(frozen=True, order=True)
class WeeklyRange:
    """One range of the weekly plan: ``weekday`` 0 = Monday, local minutes ``[start_minute, end_minute)``."""

    weekday: int
    start_minute: int
    end_minute: int


@dataclass(frozen=True)
class DateException:
    """The ranges (local minutes) replacing the plan on ``on_date``; ``[]`` is a day off."""

    on_date: date
    ranges: list[tuple[int, int]]


@dataclass(frozen=True)
class ServiceSlot:
    """A service a provider takes bookings for, with its slot length in minutes."""

    provider_id: int
    service_id: int
    slot_minutes: int
    active: bool


# --- the pure core --------------------------------------------------------------------------------


def local_instant(zone: ZoneInfo, day: date, minute: int) -> datetime:
    """The UTC instant of local ``minute`` (0..1440) of local ``day`` in ``zone``; 1440 is the next
    local midnight. Daylight-saving rule (PEP 495, ``fold=0``):

    - a wall time that does not exist (the spring-forward gap) is read with the offset in force
      before the gap, which lands after the gap, shifted by the gap's length: 02:30 on
      2027-03-14 in America/New_York is 07:30 UTC, i.e. 03:30 EDT;
    - an ambiguous wall time (the fall-back repeat) is its first occurrence: 01:30 on 2027-11-07
      in America/New_York is 05:30 UTC (01:30 EDT), not 06:30 UTC.
    """
    if minute == MINUTES_PER_DAY:
        day, minute = day + timedelta(days=1), 0
    return datetime.combine(day, time(minute // 60, minute % 60), tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class _Busy:
    """Busy intervals merged into disjoint, sorted ``[starts[i], ends[i])``."""

    starts: list[datetime] = field(default_factory=list)
    ends: list[datetime] = field(default_factory=list)

    @classmethod
    def of(cls, intervals: Iterable[tuple[datetime, datetime]]) -> _Busy:
        busy = cls()
        for start, end in sorted(intervals):
            if end <= start:
                continue
            if busy.ends and start <= busy.ends[-1]:
                busy.ends[-1] = max(busy.ends[-1], end)
            else:
                busy.starts.append(start)
                busy.ends.append(end)
        return busy

    def free(self, start: datetime, end: datetime) -> bool:
        """True when ``[start, end)`` overlaps no busy interval (half-open, as ``&&`` on tstzrange)."""
        i = bisect.bisect_left(self.starts, end) - 1  # the last interval starting before ``end``
        return i < 0 or self.ends[i] <= start


_NOT_BUSY = _Busy()


def _slots(
    zone: ZoneInfo,
    plan: Mapping[int, Sequence[tuple[int, int]]],
    exceptions: Mapping[date, Sequence[tuple[int, int]]],
    busy: _Busy,
    slot_minutes: int,
    buffer_minutes: int,
    lo: datetime,
    hi: datetime,
    limit: int | None = None,
) -> list[Slot]:
    """Free slots starting in ``[lo, hi)``, sorted; with ``limit``, only the earliest ``limit``
    (stops one local date after it has enough: every slot of a date starts before any slot of the
    date after next, whatever the daylight-saving gaps)."""
    if hi <= lo:
        return []
    step = timedelta(minutes=slot_minutes)
    blocked = timedelta(minutes=slot_minutes + buffer_minutes)
    day = lo.astimezone(zone).date() - timedelta(days=1)
    last_day = hi.astimezone(zone).date() + timedelta(days=1)
    found: set[Slot] = set()
    stop_after: date | None = None
    while day <= last_day:
        ranges = exceptions[day] if day in exceptions else plan.get(day.weekday(), ())
        for start_minute, end_minute in ranges:
            start, range_end = local_instant(zone, day, start_minute), local_instant(zone, day, end_minute)
            while start + step <= range_end and start < hi:
                if start >= lo and busy.free(start, start + blocked):
                    found.add(Slot(start, start + step))
                start += step
        if limit is not None:
            if stop_after is None and len(found) >= limit:
                stop_after = day + timedelta(days=1)
            elif stop_after is not None and day >= stop_after:
                break
        day += timedelta(days=1)
    ordered = sorted(found)
    return ordered if limit is None else ordered[:limit]


def _aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def compute_slots(
    *,
    time_zone: str,
    plan: dict[int, list[tuple[int, int]]],
    exceptions: dict[date, list[tuple[int, int]]],
    busy: list[tuple[datetime, datetime]],
    slot_minutes: int,
    buffer_minutes: int,
    window_start: datetime,
    window_end: datetime,
    earliest: datetime,
    latest: datetime,
) -> list[Slot]:
    """The free slots of one provider and service, sorted by start, without duplicates.

    ``plan`` maps weekday (0 = Monday) to local minute ranges ``(start, end)``, ``0 <= start < end
    <= 1440``; ``exceptions`` maps local dates to the ranges replacing that date's plan (``[]`` =
    day off); ``busy`` holds ``(starts_at, blocked_until)`` of live bookings and unexpired holds
    (aware datetimes). Every local date of ``time_zone`` touched by the window is expanded (local
    times to UTC per ``local_instant``), stepped by ``slot_minutes`` of elapsed time from each
    range's start, a slot ``[s, s + slot)`` kept when ``[s, s + slot + buffer_minutes)`` overlaps no
    busy interval (half-open) and ``max(window_start, earliest) <= s < min(window_end, latest)``.
    Returns the slots in UTC. Raises ``ValueError`` for naive datetimes or a slot length < 1."""
    for name, value in (("window_start", window_start), ("window_end", window_end),
                        ("earliest", earliest), ("latest", latest)):
        _aware(value, name)
    if slot_minutes < 1 or buffer_minutes < 0:
        raise ValueError("slot_minutes must be >= 1 and buffer_minutes >= 0")
    return _slots(
        ZoneInfo(time_zone), plan, exceptions, _Busy.of(busy), slot_minutes, buffer_minutes,
        max(window_start, earliest).astimezone(UTC), min(window_end, latest).astimezone(UTC),
    )


# --- loading --------------------------------------------------------------------------------------


def _defaults() -> Rules:
    s = get_settings()
    return Rules(s.booking_default_notice_minutes, s.booking_default_buffer_minutes, s.booking_default_horizon_days)


def _rules_of(notice: int | None, buffer: int | None, horizon: int | None) -> Rules:
    if notice is None:  # no provider_booking_settings row (the outer join gave NULLs)
        return _defaults()
    return Rules(notice, buffer, horizon)


def _check_window(window_start: datetime, window_end: datetime) -> None:
    if window_start.tzinfo is None or window_start.utcoffset() is None:
        raise InvalidWindow("from must carry a time zone", field="from")
    if window_end.tzinfo is None or window_end.utcoffset() is None:
        raise InvalidWindow("to must carry a time zone")
    if window_end <= window_start:
        raise InvalidWindow("to must be after from")
    max_days = get_settings().booking_max_window_days
    if window_end - window_start > timedelta(days=max_days):
        raise InvalidWindow(f"The window may span at most {max_days} days")


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    _aware(now, "now")
    return now.astimezone(UTC)


@dataclass
class _Offer:
    """What one provider offers: its zone, rules and ``{service_id: slot_minutes}``."""

    time_zone: str
    rules: Rules
    services: dict[int, int]

    def bounds(self, now: datetime, lo: datetime, hi: datetime) -> tuple[datetime, datetime]:
        earliest = now + timedelta(minutes=self.rules.min_notice_minutes)
        latest = now + timedelta(days=self.rules.horizon_days)
        return max(lo, earliest).astimezone(UTC), min(hi, latest).astimezone(UTC)


async def _load_offer(session: AsyncSession, provider_id: int, service_id: int) -> tuple[_Offer, bool]:
    """One statement: the provider, its rules and its ``provider_services`` row for the service.
    Returns ``(offer, bookable)`` where ``bookable`` is verified and not suspended.
    Raises ``NotFound`` (no provider), ``ServiceNotBookable``."""
    stmt = (
        select(
            Provider.time_zone, Provider.verified, Provider.suspended,
            ProviderBookingSettings.min_notice_minutes, ProviderBookingSettings.buffer_minutes,
            ProviderBookingSettings.horizon_days,
            ProviderService.slot_minutes, ProviderService.active.label("offered"), Service.active.label("listed"),
        )
        .select_from(Provider)
        .outerjoin(ProviderBookingSettings, ProviderBookingSettings.provider_id == Provider.id)
        .outerjoin(ProviderService, and_(ProviderService.provider_id == Provider.id,
                                         ProviderService.service_id == service_id))
        .outerjoin(Service, Service.id == ProviderService.service_id)
        .where(Provider.id == provider_id)
    )
    row = (await session.execute(stmt)).one_or_none()
    if row is None:
        raise NotFound("No such provider", field="providerId")
    return offer_from_row(service_id=service_id, time_zone=row.time_zone, verified=row.verified,
                          suspended=row.suspended, min_notice_minutes=row.min_notice_minutes,
                          buffer_minutes=row.buffer_minutes, horizon_days=row.horizon_days,
                          slot_minutes=row.slot_minutes, offered=row.offered, listed=row.listed)


async def _load_offers(
    session: AsyncSession, provider_ids: Sequence[int], *, service_id: int | None, category: str | None
) -> dict[int, _Offer]:
    """One statement: ``{provider_id: _Offer}`` for the verified, non-suspended providers among
    ``provider_ids`` that have an active ``provider_services`` row for an active service (that
    service when ``service_id`` is given, else any of ``category`` when given, else any)."""
    conditions = [
        Provider.id.in_(list(provider_ids)), Provider.verified.is_(True), Provider.suspended.is_(False),
        ProviderService.active.is_(True), Service.active.is_(True),
    ]
    if service_id is not None:
        conditions.append(ProviderService.service_id == service_id)
    elif category is not None:
        conditions.append(Service.category == category)
    stmt = (
        select(
            Provider.id, Provider.time_zone,
            ProviderBookingSettings.min_notice_minutes, ProviderBookingSettings.buffer_minutes,
            ProviderBookingSettings.horizon_days, ProviderService.service_id, ProviderService.slot_minutes,
        )
        .select_from(Provider)
        .join(ProviderService, ProviderService.provider_id == Provider.id)
        .join(Service, Service.id == ProviderService.service_id)
        .outerjoin(ProviderBookingSettings, ProviderBookingSettings.provider_id == Provider.id)
        .where(*conditions)
        .order_by(Provider.id, ProviderService.service_id)
    )
    offers: dict[int, _Offer] = {}
    for r in (await session.execute(stmt)).all():
        offer = offers.get(r.id)
        if offer is None:
            rules = _rules_of(r.min_notice_minutes, r.buffer_minutes, r.horizon_days)
            offer = offers[r.id] = _Offer(r.time_zone, rules, {})
        offer.services[r.service_id] = r.slot_minutes
    return offers


async def load_calendars(
    session: AsyncSession, provider_ids: Sequence[int], lo: datetime, hi: datetime
) -> tuple[dict[int, dict[int, list[tuple[int, int]]]], dict[int, dict[date, list[tuple[int, int]]]]]:
    """One statement (rules UNION ALL exceptions): ``(plans, exceptions)`` per provider. Exceptions
    are loaded for the UTC dates of ``[lo, hi)`` widened by two days, which covers the local dates
    of every zone (offsets are within +-14 h) plus the padding ``_slots`` expands."""
    ids = list(provider_ids)
    first_day, last_day = lo.astimezone(UTC).date() - timedelta(days=2), hi.astimezone(UTC).date() + timedelta(days=2)
    rules = select(
        AvailabilityRule.provider_id, AvailabilityRule.weekday, cast(null(), Date).label("on_date"),
        AvailabilityRule.start_minute, AvailabilityRule.end_minute,
    ).where(AvailabilityRule.provider_id.in_(ids))
    exceptions = select(
        AvailabilityException.provider_id, cast(null(), SmallInteger), AvailabilityException.on_date,
        AvailabilityException.start_minute, AvailabilityException.end_minute,
    ).where(AvailabilityException.provider_id.in_(ids), AvailabilityException.on_date.between(first_day, last_day))
    plans: dict[int, dict[int, list[tuple[int, int]]]] = defaultdict(lambda: defaultdict(list))
    dates: dict[int, dict[date, list[tuple[int, int]]]] = defaultdict(lambda: defaultdict(list))
    for provider_id, weekday, on_date, start, end in (await session.execute(union_all(rules, exceptions))).all():
        if on_date is None:
            plans[provider_id][weekday].append((start, end))
        else:
            ranges = dates[provider_id][on_date]  # touching the key makes the date an exception
            if start is not None:
                ranges.append((start, end))
    for per_day in (*plans.values(), *dates.values()):
        for ranges in per_day.values():
            ranges.sort()
    return plans, dates


async def load_busy(
    session: AsyncSession, provider_ids: Sequence[int], lo: datetime, hi: datetime, now: datetime
) -> dict[int, _Busy]:
    """One statement: live bookings whose ``during`` overlaps ``[lo, hi + 2 days)`` (the longest
    slot plus the longest buffer), except holds with ``hold_expires_at <= now`` (lazy expiry: an
    expired hold no longer blocks, whatever the sweeper has done yet)."""
    stmt = (
        select(Booking.provider_id, Booking.starts_at, Booking.blocked_until)
        .where(
            Booking.provider_id.in_(list(provider_ids)),
            _LIVE_SQL,
            Booking.during.op("&&")(func.tstzrange(lo, hi + timedelta(days=2), "[)")),
            or_(Booking.status != "held", Booking.hold_expires_at.is_(None), Booking.hold_expires_at > now),
        )
    )
    intervals: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    for provider_id, starts_at, blocked_until in (await session.execute(stmt)).all():
        intervals[provider_id].append((starts_at, blocked_until))
    return {pid: _Busy.of(found) for pid, found in intervals.items()}


# --- queries --------------------------------------------------------------------------------------


async def available_slots(
    session: AsyncSession,
    *,
    provider_id: int,
    service_id: int,
    window_start: datetime,
    window_end: datetime,
    now: datetime | None = None,
) -> list[Slot]:
    """Free slots (UTC, sorted) of ``provider_id`` for ``service_id`` starting in ``[window_start,
    window_end)``, per ``compute_slots``: earliest = now + min notice, latest = now + horizon days.
    A provider that is not verified, or is suspended, has none. Three SQL statements (provider,
    rules and service; plan and exceptions; busy bookings); only the first when the provider is not
    bookable or the window lies outside its notice and horizon.
    Raises ``InvalidWindow`` (naive datetimes, ``to <= from``, wider than
    ``booking_max_window_days``), ``NotFound`` (field providerId), ``ServiceNotBookable``."""
    _check_window(window_start, window_end)
    now = _now(now)
    offer, bookable = await _load_offer(session, provider_id, service_id)
    if not bookable:
        return []
    lo, hi = offer.bounds(now, window_start, window_end)
    if hi <= lo:
        return []
    plans, dates = await load_calendars(session, [provider_id], lo, hi)
    busy = await load_busy(session, [provider_id], lo, hi, now)
    return _slots(ZoneInfo(offer.time_zone), plans.get(provider_id, {}), dates.get(provider_id, {}),
                  busy.get(provider_id, _NOT_BUSY), offer.services[service_id], offer.rules.buffer_minutes, lo, hi)


async def slot_length(session: AsyncSession, provider_id: int, service_id: int) -> int:
    """The slot length in minutes of ``service_id`` at ``provider_id`` (one statement).
    Raises ``ServiceNotBookable`` when there is no active ``provider_services`` row for an active service."""
    minutes = await session.scalar(
        select(ProviderService.slot_minutes)
        .join(Service, Service.id == ProviderService.service_id)
        .where(ProviderService.provider_id == provider_id, ProviderService.service_id == service_id,
               ProviderService.active.is_(True), Service.active.is_(True))
    )
    if minutes is None:
        raise ServiceNotBookable("This provider takes no bookings for this service")
    return minutes


async def booking_rules(session: AsyncSession, provider_id: int) -> Rules:
    """The provider's ``Rules`` (one statement); the settings' defaults when it has set none
    (including for an unknown provider id)."""
    row = (await session.execute(
        select(ProviderBookingSettings.min_notice_minutes, ProviderBookingSettings.buffer_minutes,
               ProviderBookingSettings.horizon_days).where(ProviderBookingSettings.provider_id == provider_id)
    )).one_or_none()
    return _defaults() if row is None else Rules(*row)


async def offered_slot(
    session: AsyncSession, *, provider_id: int, service_id: int, start: datetime, now: datetime | None = None
) -> SlotOffer:
    """The slot of ``provider_id`` for ``service_id`` starting exactly at ``start`` if the plan,
    exceptions, min notice and horizon offer it, IGNORING bookings and holds: whether it is taken
    is for the exclusion constraint to decide at insert time (never check-then-insert). Two SQL
    statements; only the local dates around ``start`` are expanded.
    Raises ``NotFound`` (field providerId), ``ServiceNotBookable``, ``SlotNotOffered`` (also for a
    naive ``start`` and for a provider that is not verified or is suspended)."""
    if start.tzinfo is None or start.utcoffset() is None:
        raise SlotNotOffered("start must carry a time zone")
    offer, bookable = await _load_offer(session, provider_id, service_id)
    plans, dates = await load_calendars(session, [provider_id], start, start)
    return check_offered(offer, bookable, plans.get(provider_id, {}), dates.get(provider_id, {}), service_id=service_id,
                         start=start, now=now)


def check_offered(
    offer: _Offer, bookable: bool, plan: Mapping[int, Sequence[tuple[int, int]]],
    exceptions: Mapping[date, Sequence[tuple[int, int]]], *, service_id: int, start: datetime,
    now: datetime | None = None,
) -> SlotOffer:
    """``offered_slot``'s decision on data already loaded (no SQL): ``offer`` and ``bookable`` as
    ``offer_from_row`` builds them, the provider's weekly ``plan`` and date ``exceptions`` (local
    minutes) around ``start``. Raises ``SlotNotOffered``."""
    if start.tzinfo is None or start.utcoffset() is None:
        raise SlotNotOffered("start must carry a time zone")
    if not bookable:
        raise SlotNotOffered("This provider takes no bookings at the moment")
    now = _now(now)
    start = start.astimezone(UTC)
    lo, hi = offer.bounds(now, start, start + timedelta(microseconds=1))
    slots = _slots(ZoneInfo(offer.time_zone), plan, exceptions, _NOT_BUSY,
                   offer.services[service_id], offer.rules.buffer_minutes, lo, hi)
    if not slots or slots[0].start != start:
        raise SlotNotOffered("This provider offers no slot starting at that time")
    return SlotOffer(slots[0], offer.services[service_id], offer.rules, offer.time_zone)


def offer_from_row(
    *, service_id: int, time_zone: str, verified: bool, suspended: bool, min_notice_minutes: int | None,
    buffer_minutes: int | None, horizon_days: int | None, slot_minutes: int | None, offered: bool | None,
    listed: bool | None,
) -> tuple[_Offer, bool]:
    """``(offer, bookable)`` from the columns ``_load_offer`` reads (for callers that read them in a
    statement of their own). Raises ``ServiceNotBookable``."""
    if not (offered and listed):
        raise ServiceNotBookable("This provider takes no bookings for this service")
    offer = _Offer(time_zone, _rules_of(min_notice_minutes, buffer_minutes, horizon_days), {service_id: slot_minutes})
    return offer, bool(verified and not suspended)


def calendar_dates(start: datetime) -> tuple[date, date]:
    """The UTC dates whose exceptions ``check_offered`` needs around ``start`` (see ``load_calendars``)."""
    day = start.astimezone(UTC).date()
    return day - timedelta(days=2), day + timedelta(days=2)


async def validate_slot(
    session: AsyncSession, *, provider_id: int, service_id: int, start: datetime, now: datetime | None = None
) -> Slot:
    """``offered_slot(...).slot``: the offered slot starting at ``start`` with its end.
    Raises ``NotFound``, ``ServiceNotBookable``, ``SlotNotOffered``."""
    return (await offered_slot(session, provider_id=provider_id, service_id=service_id, start=start, now=now)).slot


async def providers_available(
    session: AsyncSession,
    *,
    point: GeoPoint,
    radius_km: float,
    category: str | None,
    service_id: int | None,
    window_start: datetime,
    window_end: datetime,
    first: int = 20,
    now: datetime | None = None,
) -> list[AvailableProvider]:
    """Providers near ``point`` with at least one free slot starting in ``[window_start,
    window_end)``, nearest first, at most ``first``. Candidates are the nearest ``MAX_CANDIDATES``
    (200) of ``providers_nearby`` (verified, available, not suspended, offering ``category``);
    a candidate counts when it has a free slot for ``service_id`` when given, else for any of its
    active services (of ``category`` when given). ``first_slot`` is its earliest such slot (ties:
    lowest service id). Four SQL statements whatever the number of candidates (geosearch; offers;
    plans and exceptions; bookings), plus one when the geosearch page ends in a distance tie.
    Raises ``InvalidWindow``, ``InvalidRadius`` (radius_km not in (0, 100]), ``InvalidLocation``."""
    _check_window(window_start, window_end)
    now = _now(now)
    if first <= 0:
        return []
    hits, _ = await providers_nearby(session, point, radius_km * 1000.0, category=category, first=MAX_CANDIDATES)
    if not hits:
        return []
    offers = await _load_offers(session, [h.id for h in hits], service_id=service_id, category=category)
    if not offers:
        return []
    window_start, window_end = window_start.astimezone(UTC), window_end.astimezone(UTC)
    plans, dates = await load_calendars(session, list(offers), window_start, window_end)
    busy = await load_busy(session, list(offers), window_start, window_end, now)
    found: list[AvailableProvider] = []
    for hit in hits:
        offer = offers.get(hit.id)
        if offer is None:
            continue
        lo, hi = offer.bounds(now, window_start, window_end)
        best: tuple[Slot, int] | None = None
        for sid, minutes in sorted(offer.services.items()):
            slots = _slots(ZoneInfo(offer.time_zone), plans.get(hit.id, {}), dates.get(hit.id, {}),
                           busy.get(hit.id, _NOT_BUSY), minutes, offer.rules.buffer_minutes, lo, hi, limit=1)
            if slots and (best is None or slots[0].start < best[0].start):
                best = (slots[0], sid)
        if best is not None:
            found.append(AvailableProvider(provider=hit, first_slot=best[0], service_id=best[1]))
            if len(found) == first:
                break
    return found


async def first_free_slots(
    session: AsyncSession,
    provider_ids: Sequence[int],
    *,
    window_start: datetime,
    window_end: datetime,
    category: str | None = None,
    now: datetime | None = None,
) -> dict[int, Slot]:
    """``{provider_id: earliest free slot starting in [window_start, window_end)}`` for those of
    ``provider_ids`` (verified, not suspended) with at least one, for any of their active services
    (of ``category`` when given), with the same rules as ``providers_available`` (notice, horizon,
    buffer, live bookings and unexpired holds). Three SQL statements whatever the number of
    providers (offers; plans and exceptions; bookings); none when ``provider_ids`` is empty.
    Used by discovery's availability filter (domain/providers/discovery.py). Raises ``InvalidWindow``."""
    _check_window(window_start, window_end)
    now = _now(now)
    if not provider_ids:
        return {}
    offers = await _load_offers(session, list(provider_ids), service_id=None, category=category)
    if not offers:
        return {}
    window_start, window_end = window_start.astimezone(UTC), window_end.astimezone(UTC)
    plans, dates = await load_calendars(session, list(offers), window_start, window_end)
    busy = await load_busy(session, list(offers), window_start, window_end, now)
    found: dict[int, Slot] = {}
    for pid, offer in offers.items():
        lo, hi = offer.bounds(now, window_start, window_end)
        for minutes in offer.services.values():
            slots = _slots(ZoneInfo(offer.time_zone), plans.get(pid, {}), dates.get(pid, {}),
                           busy.get(pid, _NOT_BUSY), minutes, offer.rules.buffer_minutes, lo, hi, limit=1)
            if slots and (pid not in found or slots[0].start < found[pid].start):
                found[pid] = slots[0]
    return found


async def nearest_free_slots(
    session: AsyncSession,
    *,
    provider_ids: list[int],
    service_id: int | None,
    after: datetime,
    limit: int = 5,
    now: datetime | None = None,
    search_days: int = 14,
) -> list[tuple[int, Slot]]:
    """The earliest free slots of ``provider_ids`` starting in ``[after, after + search_days)``
    (and within each provider's notice and horizon), merged as ``(provider_id, slot)``, earliest
    first (ties by provider id, then end), at most ``limit``. Slots are for ``service_id`` when
    given, else for any active service of each provider (so one provider may appear with slots of
    different lengths). Unverified or suspended providers have none. Three SQL statements whatever
    the number of providers (offers; plans and exceptions; bookings). Used when a ticket's
    preferred windows match no provider. Raises ``ValueError`` for a naive ``after``."""
    _aware(after, "after")
    now = _now(now)
    if not provider_ids or limit <= 0 or search_days <= 0:
        return []
    after = after.astimezone(UTC)
    until = after + timedelta(days=search_days)
    offers = await _load_offers(session, provider_ids, service_id=service_id, category=None)
    if not offers:
        return []
    plans, dates = await load_calendars(session, list(offers), after, until)
    busy = await load_busy(session, list(offers), after, until, now)
    found: set[tuple[int, Slot]] = set()
    for pid, offer in offers.items():
        lo, hi = offer.bounds(now, after, until)
        for minutes in offer.services.values():
            for slot in _slots(ZoneInfo(offer.time_zone), plans.get(pid, {}), dates.get(pid, {}),
                               busy.get(pid, _NOT_BUSY), minutes, offer.rules.buffer_minutes, lo, hi, limit=limit):
                found.add((pid, slot))
    return sorted(found, key=lambda item: (item[1].start, item[0], item[1].end))[:limit]


async def service_slots(session: AsyncSession, provider_ids: list[int]) -> dict[int, list[ServiceSlot]]:
    """The services each provider takes bookings for (active or not), by service id, in one statement."""
    rows = (await session.scalars(
        select(ProviderService).where(ProviderService.provider_id.in_(provider_ids))
        .order_by(ProviderService.provider_id, ProviderService.service_id)
    )).all()
    found: dict[int, list[ServiceSlot]] = {i: [] for i in provider_ids}
    for row in rows:
        found[row.provider_id].append(ServiceSlot(row.provider_id, row.service_id, row.slot_minutes, row.active))
    return found


async def weekly_plan(session: AsyncSession, provider_id: int) -> list[WeeklyRange]:
    """The provider's weekly plan sorted by weekday then start (one statement; [] when none)."""
    rows = (await session.execute(
        select(AvailabilityRule.weekday, AvailabilityRule.start_minute, AvailabilityRule.end_minute)
        .where(AvailabilityRule.provider_id == provider_id)
        .order_by(AvailabilityRule.weekday, AvailabilityRule.start_minute)
    )).all()
    return [WeeklyRange(*r) for r in rows]


async def date_exceptions(
    session: AsyncSession, provider_id: int, from_date: date, to_date: date
) -> list[DateException]:
    """The provider's date exceptions with ``from_date <= on_date <= to_date``, by date (one
    statement). Raises ``InvalidWindow`` when ``to_date < from_date`` or the span exceeds 366 days."""
    if to_date < from_date:
        raise InvalidWindow("to must not be before from")
    if (to_date - from_date).days > MAX_EXCEPTION_SPAN_DAYS:
        raise InvalidWindow(f"The span may be at most {MAX_EXCEPTION_SPAN_DAYS} days")
    rows = (await session.execute(
        select(AvailabilityException.on_date, AvailabilityException.start_minute, AvailabilityException.end_minute)
        .where(AvailabilityException.provider_id == provider_id,
               AvailabilityException.on_date.between(from_date, to_date))
        .order_by(AvailabilityException.on_date, AvailabilityException.start_minute)
    )).all()
    by_date: dict[date, list[tuple[int, int]]] = {}
    for on_date, start, end in rows:
        ranges = by_date.setdefault(on_date, [])
        if start is not None:
            ranges.append((start, end))
    return [DateException(d, ranges) for d, ranges in by_date.items()]


# --- provider-side writes (the caller commits) ----------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_ranges(ranges: Sequence[tuple[int, int]], keys: Sequence[object]) -> None:
    """``ranges[i]`` are local minute ranges grouped by ``keys[i]`` (a weekday, or one date).
    Raises ``InvalidRange`` (field ``ranges.<i>``) or ``OverlappingRanges`` (the later one's index)."""
    for i, (start, end) in enumerate(ranges):
        if not (_is_int(start) and _is_int(end) and 0 <= start < end <= MINUTES_PER_DAY):
            raise InvalidRange("A range needs 0 <= startMinute < endMinute <= 1440", field=f"ranges.{i}")
    order = sorted(range(len(ranges)), key=lambda i: (str(keys[i]), ranges[i][0], i))
    for prev, cur in zip(order, order[1:], strict=False):
        if keys[prev] == keys[cur] and ranges[cur][0] < ranges[prev][1]:
            raise OverlappingRanges("Ranges of the same day must not overlap", field=f"ranges.{max(prev, cur)}")


async def set_weekly_plan(
    session: AsyncSession, provider_id: int, ranges: list[tuple[int, int, int]]
) -> list[WeeklyRange]:
    """Replace the provider's weekly plan with ``ranges`` of ``(weekday 0 = Monday .. 6, start_minute,
    end_minute)``, local minutes, ``0 <= start < end <= 1440``; ranges of one weekday must not overlap
    (touching is fine). ``[]`` clears the plan. Returns the new plan, sorted.
    Raises ``InvalidRange`` (field ``ranges.<i>``), ``OverlappingRanges``, ``NotFound``; nothing
    is written on error."""
    for i, item in enumerate(ranges):
        if len(item) != 3 or not _is_int(item[0]) or not 0 <= item[0] <= 6:
            raise InvalidRange("weekday must be 0 (Monday) to 6 (Sunday)", field=f"ranges.{i}")
    _check_ranges([(s, e) for _, s, e in ranges], [w for w, _, _ in ranges])
    await lock_provider(session, provider_id)
    await session.execute(delete(AvailabilityRule).where(AvailabilityRule.provider_id == provider_id))
    if ranges:
        await session.execute(insert(AvailabilityRule), [
            {"provider_id": provider_id, "weekday": w, "start_minute": s, "end_minute": e} for w, s, e in ranges
        ])
    return sorted(WeeklyRange(w, s, e) for w, s, e in ranges)


async def set_date_exception(
    session: AsyncSession, provider_id: int, on_date: date, ranges: list[tuple[int, int]]
) -> DateException:
    """Replace the provider's exception for local date ``on_date`` with ``ranges`` of local minutes
    (they replace that weekday's plan; ``[]`` = day off). Raises ``InvalidRange`` (also when
    ``on_date`` is not a date), ``OverlappingRanges``, ``NotFound``; nothing is written on error."""
    if not isinstance(on_date, date) or isinstance(on_date, datetime):
        raise InvalidRange("onDate must be a date", field="onDate")
    _check_ranges(ranges, [on_date] * len(ranges))
    await lock_provider(session, provider_id)
    await session.execute(delete(AvailabilityException).where(
        AvailabilityException.provider_id == provider_id, AvailabilityException.on_date == on_date))
    rows = [{"provider_id": provider_id, "on_date": on_date, "start_minute": s, "end_minute": e} for s, e in ranges]
    await session.execute(insert(AvailabilityException), rows or [
        {"provider_id": provider_id, "on_date": on_date, "start_minute": None, "end_minute": None}])
    return DateException(on_date, sorted(ranges))


async def clear_date_exception(session: AsyncSession, provider_id: int, on_date: date) -> bool:
    """Remove the provider's exception for ``on_date`` (the weekly plan applies again).
    Returns whether there was one. Raises ``NotFound``."""
    await lock_provider(session, provider_id)
    result = await session.execute(delete(AvailabilityException).where(
        AvailabilityException.provider_id == provider_id, AvailabilityException.on_date == on_date))
    return result.rowcount > 0


async def set_booking_rules(
    session: AsyncSession, provider_id: int, *, min_notice_minutes: int, buffer_minutes: int, horizon_days: int
) -> Rules:
    """Upsert the provider's booking rules: notice 0..43200 minutes (30 days), buffer 0..1440
    minutes, horizon 1..366 days (the table's check constraints). Raises ``InvalidBookingRules``
    (field minNoticeMinutes | bufferMinutes | horizonDays), ``NotFound``."""
    for name, value, (low, high) in (
        ("minNoticeMinutes", min_notice_minutes, (0, MAX_NOTICE_MINUTES)),
        ("bufferMinutes", buffer_minutes, BUFFER_MINUTES_RANGE),
        ("horizonDays", horizon_days, HORIZON_DAYS_RANGE),
    ):
        if not (_is_int(value) and low <= value <= high):
            raise InvalidBookingRules(f"{name} must be between {low} and {high}", field=name)
    await lock_provider(session, provider_id)
    values = {"min_notice_minutes": min_notice_minutes, "buffer_minutes": buffer_minutes, "horizon_days": horizon_days}
    await session.execute(
        insert(ProviderBookingSettings).values(provider_id=provider_id, **values)
        .on_conflict_do_update(index_elements=[ProviderBookingSettings.provider_id],
                               set_={**values, "updated_at": func.now()})
    )
    return Rules(min_notice_minutes, buffer_minutes, horizon_days)


async def set_service_slot(
    session: AsyncSession, provider_id: int, service_id: int, slot_minutes: int | None = None, active: bool = True
) -> ServiceSlot:
    """Upsert the provider's bookable service with its slot length (5..1440 minutes;
    ``booking_default_slot_minutes`` when None) and whether it takes bookings.
    Raises ``InvalidSlotLength``, ``ServiceNotFound``, ``NotFound``."""
    if slot_minutes is None:
        slot_minutes = get_settings().booking_default_slot_minutes
    low, high = SLOT_MINUTES_RANGE
    if not (_is_int(slot_minutes) and low <= slot_minutes <= high):
        raise InvalidSlotLength(f"slotMinutes must be between {low} and {high}")
    if await session.scalar(select(Service.id).where(Service.id == service_id)) is None:
        raise ServiceNotFound("No such service")
    await lock_provider(session, provider_id)
    await session.execute(
        insert(ProviderService).values(provider_id=provider_id, service_id=service_id,
                                       slot_minutes=slot_minutes, active=active)
        .on_conflict_do_update(index_elements=[ProviderService.provider_id, ProviderService.service_id],
                               set_={"slot_minutes": slot_minutes, "active": active})
    )
    return ServiceSlot(provider_id, service_id, slot_minutes, bool(active))


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    # "localtime" is the machine's own zone file, not an IANA name.
    return frozenset(available_timezones() - {"localtime", "posixrules"})


def validate_time_zone(name: str) -> str:
    """``name`` when it is an IANA zone name zoneinfo knows (``Africa/Douala``, ``UTC``), else
    raises ``InvalidTimeZone`` (field timeZone)."""
    if not isinstance(name, str) or name not in _zone_names():
        raise InvalidTimeZone("Unknown time zone: give an IANA name such as Africa/Douala")
    ZoneInfo(name)
    return name


async def set_time_zone(session: AsyncSession, provider_id: int, name: str) -> Provider:
    """Set the provider's IANA zone (its plan and exceptions are read in it from now on; bookings
    keep the zone they were made in). Raises ``InvalidTimeZone``, ``NotFound``."""
    validate_time_zone(name)
    provider = await lock_provider(session, provider_id)
    provider.time_zone = name
    await session.flush()
    return provider

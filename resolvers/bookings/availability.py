"""A provider's availability: free slots and the availability search (public), and the calling
provider's own booking setup (time zone, weekly plan, date exceptions, rules, bookable services)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from domain.providers import availability, discovery
from domain.providers.provider import GeoPoint
from domain.shared.errors import DomainError
from resolvers import loaders
from resolvers.context import Context, forbidden
from resolvers.errors import PayloadError, bad_input, write
from resolvers.ids import decode_id
from resolvers.pagination import page_size


def zone_or_none(name: str | None) -> str | None:
    """``name`` validated as an IANA zone (``INVALID_TIME_ZONE`` on field timeZone), or None."""
    return availability.validate_time_zone(name) if name is not None else None


# --- slots and search (public) --------------------------------------------------------------------


@dataclass(frozen=True)
class LocalSlot:
    """A free slot in UTC with the zone its local times are shown in."""

    start: datetime
    end: datetime
    time_zone: str

    def local(self, instant: datetime) -> str:
        """ISO 8601 with the zone's offset at that instant, e.g. ``2027-03-01T13:30:00+05:30``."""
        return instant.astimezone(ZoneInfo(self.time_zone)).isoformat()


async def available_slots(
    ctx: Context, *, provider_id: str, service_id: str, window_start: datetime, window_end: datetime,
    time_zone: str | None,
) -> list[LocalSlot]:
    """Free slots of a provider for a service in ``[from, to)`` (``availability.available_slots``),
    shown in ``time_zone`` (the asker's) or else the provider's zone. Bad input (ids, window, zone,
    unknown provider, a service the provider does not take bookings for) is a top-level error with
    the domain's code and field."""
    try:
        zone = zone_or_none(time_zone)
        pid = decode_id(provider_id, "Provider", field="providerId")
        sid = decode_id(service_id, "Service", field="serviceId")
        async with ctx.db() as session:
            slots = await availability.available_slots(
                session, provider_id=pid, service_id=sid, window_start=window_start, window_end=window_end
            )
        if zone is None:
            view = await loaders.provider_views(ctx).load(pid)
            zone = view.time_zone if view else "UTC"
    except DomainError as exc:
        raise bad_input(exc) from exc
    return [LocalSlot(s.start, s.end, zone) for s in slots]


@dataclass(frozen=True)
class AvailableHit:
    """A provider near the search point with its earliest free slot (in the asker's zone)."""

    hit: availability.AvailableProvider
    first_slot: LocalSlot


async def providers_available(
    ctx: Context, *, latitude: float, longitude: float, radius_km: float, category: str | None,
    service_id: str | None, window_start: datetime, window_end: datetime, first: int | None, time_zone: str | None,
) -> list[AvailableHit]:
    """Geosearch combined with availability (``availability.providers_available``), nearest first;
    each first slot is shown in ``time_zone`` or else its provider's zone (one more statement)."""
    try:
        zone = zone_or_none(time_zone)
        point = GeoPoint(latitude, longitude)
        sid = decode_id(service_id, "Service", field="serviceId") if service_id else None
        size = page_size(first)
        async with ctx.db() as session:
            found = await availability.providers_available(
                session, point=point, radius_km=radius_km, category=category or None, service_id=sid,
                window_start=window_start, window_end=window_end, first=size,
            )
    except DomainError as exc:
        raise bad_input(exc) from exc
    if zone is None:
        views = await loaders.provider_views(ctx).load_many([f.provider.id for f in found])
        zones = [v.time_zone if v else "UTC" for v in views]
    else:
        zones = [zone] * len(found)
    return [AvailableHit(f, LocalSlot(f.first_slot.start, f.first_slot.end, z)) for f, z in zip(found, zones, strict=True)]


# --- a provider's own availability ----------------------------------------------------------------


async def my_provider_id(ctx: Context) -> int:
    """The calling provider account's profile id. UNAUTHENTICATED when anonymous; FORBIDDEN for
    other roles and for a provider account without a profile."""
    user = await ctx.require_user()
    if user.role != "provider":
        raise forbidden("Only provider accounts have availability")
    provider_id = await loaders.provider_ids_by_user(ctx).load(user.id)
    if provider_id is None:
        raise forbidden("This account has no provider profile")
    return provider_id


@dataclass(frozen=True)
class AvailabilityView:
    """A provider's booking setup: zone, weekly plan, exceptions from today (its local date) for
    ``EXCEPTION_DAYS`` days, rules and bookable services with their slot lengths."""

    provider_id: int
    time_zone: str
    weekly_plan: list[availability.WeeklyRange]
    exceptions: list[availability.DateException]
    rules: availability.Rules
    services: list[availability.ServiceSlot]


EXCEPTION_DAYS = 60


async def availability_of(ctx: Context, provider_id: int) -> AvailabilityView:
    """Five statements: zone, plan, exceptions, rules, services."""
    view = await loaders.provider_views(ctx).load(provider_id)
    if view is None:
        raise forbidden("This account has no provider profile")
    today = datetime.now(UTC).astimezone(ZoneInfo(view.time_zone)).date()
    async with ctx.db() as session:
        plan = await availability.weekly_plan(session, provider_id)
        exceptions = await availability.date_exceptions(
            session, provider_id, today, today + timedelta(days=EXCEPTION_DAYS)
        )
        rules = await availability.booking_rules(session, provider_id)
    services = await loaders.service_slots_by_provider(ctx).load(provider_id)
    return AvailabilityView(provider_id, view.time_zone, plan, exceptions, rules, services)


async def my_availability(ctx: Context) -> AvailabilityView:
    """The calling provider's booking setup (provider accounts only)."""
    return await availability_of(ctx, await my_provider_id(ctx))


_HHMM = re.compile(r"^(\d{2}):(\d{2})$")


def minute_of(value: str, *, field: str, end: bool) -> int:
    """Minutes after local midnight of ``"HH:MM"`` (00:00-23:59; ``24:00`` only as an end).
    Raises ``InvalidRange`` on ``field``."""
    match = _HHMM.match(value.strip()) if isinstance(value, str) else None
    if match:
        hours, minutes = int(match[1]), int(match[2])
        if (hours < 24 and minutes < 60) or (end and hours == 24 and minutes == 0):
            return hours * 60 + minutes
    allowed = "00:00 to 24:00" if end else "00:00 to 23:59"
    raise availability.InvalidRange(f"Give a time as HH:MM, {allowed}", field=field)


def hhmm(minute: int) -> str:
    """``"HH:MM"`` of a local minute 0..1440 (1440 is ``"24:00"``)."""
    return f"{minute // 60:02d}:{minute % 60:02d}"


@dataclass
class AvailabilityResult:
    availability: AvailabilityView | None
    errors: list[PayloadError]
    changed: bool = True


async def _edit_availability(
    ctx: Context, edit: Callable[[AsyncSession, int], Awaitable[Any]]
) -> AvailabilityResult:
    provider_id = await my_provider_id(ctx)
    out, errors = await write(lambda session: edit(session, provider_id))
    if errors:
        return AvailabilityResult(None, errors, False)
    await discovery.invalidate_provider(provider_id)  # committed: cached searches with a window must miss
    return AvailabilityResult(await availability_of(ctx, provider_id), [], out is not False)


async def set_weekly_plan(ctx: Context, *, ranges: list[tuple[int, str, str]]) -> AvailabilityResult:
    """Replace the caller's weekly plan with ``(weekday 0 = Monday, "HH:MM", "HH:MM")`` ranges."""

    async def edit(session: AsyncSession, provider_id: int) -> Any:
        parsed = [
            (weekday, minute_of(start, field=f"ranges.{i}.start", end=False),
             minute_of(end, field=f"ranges.{i}.end", end=True))
            for i, (weekday, start, end) in enumerate(ranges)
        ]
        return await availability.set_weekly_plan(session, provider_id, parsed)

    return await _edit_availability(ctx, edit)


async def set_date_exception(ctx: Context, *, on_date: date, ranges: list[tuple[str, str]]) -> AvailabilityResult:
    """Replace the caller's plan on one local date (``[]``: a day off)."""

    async def edit(session: AsyncSession, provider_id: int) -> Any:
        parsed = [
            (minute_of(start, field=f"ranges.{i}.start", end=False), minute_of(end, field=f"ranges.{i}.end", end=True))
            for i, (start, end) in enumerate(ranges)
        ]
        return await availability.set_date_exception(session, provider_id, on_date, parsed)

    return await _edit_availability(ctx, edit)


async def clear_date_exception(ctx: Context, *, on_date: date) -> AvailabilityResult:
    """Remove the caller's exception on ``on_date``; ``changed`` is False when there was none."""
    return await _edit_availability(
        ctx, lambda session, provider_id: availability.clear_date_exception(session, provider_id, on_date)
    )


async def set_booking_rules(
    ctx: Context, *, min_notice_minutes: int, buffer_minutes: int, horizon_days: int
) -> AvailabilityResult:
    return await _edit_availability(ctx, lambda session, provider_id: availability.set_booking_rules(
        session, provider_id, min_notice_minutes=min_notice_minutes, buffer_minutes=buffer_minutes,
        horizon_days=horizon_days,
    ))


async def set_service_slot(
    ctx: Context, *, service_id: str, slot_minutes: int | None, active: bool
) -> AvailabilityResult:
    async def edit(session: AsyncSession, provider_id: int) -> Any:
        sid = decode_id(service_id, "Service", field="serviceId")
        return await availability.set_service_slot(session, provider_id, sid, slot_minutes, active)

    return await _edit_availability(ctx, edit)


async def set_time_zone(ctx: Context, *, time_zone: str) -> AvailabilityResult:
    return await _edit_availability(
        ctx, lambda session, provider_id: availability.set_time_zone(session, provider_id, time_zone)
    )

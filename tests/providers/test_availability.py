"""Availability and slots: the pure slot computation across time zones and daylight-saving
changes, and the database side (plans, exceptions, rules, bookings and holds, geosearch)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from domain.providers import availability as av
from domain.providers.availability import Rules, Slot, compute_slots, local_instant
from domain.providers.provider import GeoPoint
from domain.shared.errors import DomainError
from models import (
    AvailabilityException,
    AvailabilityRule,
    Booking,
    Provider,
    ProviderBookingSettings,
    ProviderService,
)
from models.db import session_scope
from settings import get_settings
from tests.support.factories import make_provider, make_service, make_user
from tests.support.statements import count_statements

FAR_PAST = datetime(2000, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def h(hours: int, minutes: int = 0) -> int:
    """Local minutes after midnight."""
    return hours * 60 + minutes


def slots(*, time_zone: str = "UTC", plan=None, exceptions=None, busy=(), slot_minutes: int = 60,
          buffer_minutes: int = 0, window_start: datetime, window_end: datetime,
          earliest: datetime = FAR_PAST, latest: datetime = FAR_FUTURE) -> list[Slot]:
    return compute_slots(
        time_zone=time_zone, plan=plan or {}, exceptions=exceptions or {}, busy=list(busy),
        slot_minutes=slot_minutes, buffer_minutes=buffer_minutes, window_start=window_start,
        window_end=window_end, earliest=earliest, latest=latest,
    )


def day_starts(time_zone: str, day: date, ranges: list[tuple[int, int]], **kw) -> list[datetime]:
    """UTC starts of the slots of local ``day`` for a plan giving ``ranges`` on its weekday."""
    window_start = datetime.combine(day, datetime.min.time(), UTC) - timedelta(days=1)
    return [s.start for s in slots(time_zone=time_zone, plan={day.weekday(): ranges}, window_start=window_start,
                                   window_end=window_start + timedelta(days=3), **kw)]


# --- the pure core: zones without daylight saving ---------------------------------------------------


def test_douala_plan_gives_slots_at_utc_plus_one():
    # given: Monday 09:00-12:00 in Africa/Douala (UTC+1, no DST) and a window over one Monday
    monday = date(2027, 3, 15)

    # when
    found = slots(time_zone="Africa/Douala", plan={0: [(h(9), h(12))]},
                  window_start=utc(2027, 3, 14), window_end=utc(2027, 3, 17))

    # then
    assert found == [Slot(utc(2027, 3, 15, 8), utc(2027, 3, 15, 9)), Slot(utc(2027, 3, 15, 9), utc(2027, 3, 15, 10)),
                     Slot(utc(2027, 3, 15, 10), utc(2027, 3, 15, 11))]
    assert monday.weekday() == 0


def test_kolkata_plan_keeps_its_half_hour_offset_and_steps_from_the_range_start():
    # given: Asia/Kolkata is UTC+05:30; two ranges on Tuesday, 90-minute slots
    tuesday = date(2027, 3, 16)

    # when
    found = day_starts("Asia/Kolkata", tuesday, [(h(9), h(12)), (h(14, 15), h(17))], slot_minutes=90)

    # then: 09:00, 10:30 then 14:15, 15:45 - no slot crosses a range's end (17:15 > 17:00)
    assert found == [utc(2027, 3, 16, 3, 30), utc(2027, 3, 16, 5), utc(2027, 3, 16, 8, 45)]


def test_a_range_until_midnight_ends_at_the_next_local_midnight():
    # given: Douala, Friday 22:00-24:00 (end minute 1440)
    friday = date(2027, 3, 19)

    # when
    found = day_starts("Africa/Douala", friday, [(h(22), 1440)])

    # then: 21:00 and 22:00 UTC; the last slot ends at local midnight (23:00 UTC)
    assert found == [utc(2027, 3, 19, 21), utc(2027, 3, 19, 22)]


# --- the pure core: daylight-saving changes ---------------------------------------------------------


def test_new_york_morning_slots_move_one_hour_earlier_in_utc_after_spring_forward():
    # given: Sunday 09:00-12:00 in America/New_York; DST starts on Sunday 2027-03-14
    plan = {6: [(h(9), h(12))]}

    # when
    found = slots(time_zone="America/New_York", plan=plan, window_start=utc(2027, 3, 6), window_end=utc(2027, 3, 16))

    # then: EST (UTC-5) on the 7th, EDT (UTC-4) on the 14th
    assert [s.start for s in found] == [
        utc(2027, 3, 7, 14), utc(2027, 3, 7, 15), utc(2027, 3, 7, 16),
        utc(2027, 3, 14, 13), utc(2027, 3, 14, 14), utc(2027, 3, 14, 15),
    ]


def test_new_york_morning_slots_move_one_hour_later_in_utc_after_fall_back():
    # given: Sunday 09:00-12:00 in America/New_York; DST ends on Sunday 2027-11-07
    plan = {6: [(h(9), h(12))]}

    # when
    found = slots(time_zone="America/New_York", plan=plan, window_start=utc(2027, 10, 30), window_end=utc(2027, 11, 9))

    # then
    assert [s.start for s in found] == [
        utc(2027, 10, 31, 13), utc(2027, 10, 31, 14), utc(2027, 10, 31, 15),
        utc(2027, 11, 7, 14), utc(2027, 11, 7, 15), utc(2027, 11, 7, 16),
    ]


def test_new_york_night_range_holds_two_slots_on_spring_forward_and_four_on_fall_back():
    # given: 01:00-04:00 local on both change days (three wall-clock hours)
    night = [(h(1), h(4))]

    # when
    spring = day_starts("America/New_York", date(2027, 3, 14), night)
    autumn = day_starts("America/New_York", date(2027, 11, 7), night)

    # then: 01:00 EST -> 04:00 EDT is two elapsed hours; 01:00 EDT -> 04:00 EST is four
    assert spring == [utc(2027, 3, 14, 6), utc(2027, 3, 14, 7)]
    assert autumn == [utc(2027, 11, 7, 5), utc(2027, 11, 7, 6), utc(2027, 11, 7, 7), utc(2027, 11, 7, 8)]


def test_paris_slots_across_spring_forward_and_fall_back():
    # given: Europe/Paris changes on 2027-03-28 (02:00 -> 03:00) and 2027-10-31 (03:00 -> 02:00)
    morning, night = [(h(9), h(12))], [(h(1), h(4))]

    # when / then: CET is UTC+1, CEST UTC+2
    assert day_starts("Europe/Paris", date(2027, 3, 21), morning) == [utc(2027, 3, 21, h_) for h_ in (8, 9, 10)]
    assert day_starts("Europe/Paris", date(2027, 3, 28), morning) == [utc(2027, 3, 28, h_) for h_ in (7, 8, 9)]
    assert day_starts("Europe/Paris", date(2027, 3, 28), night) == [utc(2027, 3, 28, 0), utc(2027, 3, 28, 1)]
    assert day_starts("Europe/Paris", date(2027, 10, 24), morning) == [utc(2027, 10, 24, h_) for h_ in (7, 8, 9)]
    assert day_starts("Europe/Paris", date(2027, 10, 31), morning) == [utc(2027, 10, 31, h_) for h_ in (8, 9, 10)]
    assert day_starts("Europe/Paris", date(2027, 10, 31), night) == [
        utc(2027, 10, 30, 23), utc(2027, 10, 31, 0), utc(2027, 10, 31, 1), utc(2027, 10, 31, 2)]


def test_a_range_starting_in_the_gap_is_shifted_past_it_and_an_ambiguous_start_takes_the_first_occurrence():
    # given: 02:30 does not exist in New York on 2027-03-14; 01:30 happens twice on 2027-11-07
    # when
    spring = day_starts("America/New_York", date(2027, 3, 14), [(h(2, 30), h(5))])
    autumn = day_starts("America/New_York", date(2027, 11, 7), [(h(1, 30), h(3))])

    # then: 02:30 is read with EST (07:30 UTC = 03:30 EDT); the range ends 05:00 EDT = 09:00 UTC
    assert spring == [utc(2027, 3, 14, 7, 30)]
    # and 01:30 is 01:30 EDT (05:30 UTC); 03:00 EST is 08:00 UTC
    assert autumn == [utc(2027, 11, 7, 5, 30), utc(2027, 11, 7, 6, 30)]


def test_local_instant_documents_the_daylight_saving_rule():
    ny = ZoneInfo("America/New_York")
    assert local_instant(ny, date(2027, 3, 14), h(2, 30)) == utc(2027, 3, 14, 7, 30)
    assert local_instant(ny, date(2027, 11, 7), h(1, 30)) == utc(2027, 11, 7, 5, 30)
    assert local_instant(ny, date(2027, 3, 13), 1440) == utc(2027, 3, 14, 5)
    assert local_instant(ZoneInfo("Asia/Kolkata"), date(2027, 1, 1), 0) == utc(2026, 12, 31, 18, 30)


# --- the pure core: exceptions, bookings, buffers, notice, horizon ------------------------------------


def test_an_exception_replaces_that_dates_plan_only():
    # given: Mondays 09:00-12:00 UTC, but 2027-03-15 has 14:00-16:00 instead
    plan = {0: [(h(9), h(12))]}
    exceptions = {date(2027, 3, 15): [(h(14), h(16))]}

    # when
    found = slots(plan=plan, exceptions=exceptions, window_start=utc(2027, 3, 15), window_end=utc(2027, 3, 23))

    # then
    assert [s.start for s in found] == [utc(2027, 3, 15, 14), utc(2027, 3, 15, 15),
                                        utc(2027, 3, 22, 9), utc(2027, 3, 22, 10), utc(2027, 3, 22, 11)]


def test_a_day_off_has_no_slots_and_an_exception_adds_hours_to_a_day_without_plan():
    # given: Monday 2027-03-15 off; Tuesday has no plan but an exception 10:00-11:00
    plan = {0: [(h(9), h(12))]}
    exceptions = {date(2027, 3, 15): [], date(2027, 3, 16): [(h(10), h(11))]}

    # when
    found = slots(plan=plan, exceptions=exceptions, window_start=utc(2027, 3, 15), window_end=utc(2027, 3, 17))

    # then
    assert found == [Slot(utc(2027, 3, 16, 10), utc(2027, 3, 16, 11))]


def test_a_booking_blocks_the_slots_it_overlaps_including_buffers():
    # given: 08:00-14:00, hourly, a 30-minute buffer, a booking 10:00-11:00 blocked until 11:30
    plan = {0: [(h(8), h(14))]}
    busy = [(utc(2027, 3, 15, 10), utc(2027, 3, 15, 11, 30))]

    # when
    found = slots(plan=plan, busy=busy, buffer_minutes=30, window_start=utc(2027, 3, 15), window_end=utc(2027, 3, 16))

    # then: 09:00 needs [09:00, 10:30) and 11:00 starts inside the booking's buffer
    assert [s.start for s in found] == [utc(2027, 3, 15, 8), utc(2027, 3, 15, 12), utc(2027, 3, 15, 13)]


def test_slots_touching_back_to_back_bookings_stay_free():
    # given: two back-to-back bookings 09:00-10:00 and 10:00-11:00, no buffer
    plan = {0: [(h(8), h(13))]}
    busy = [(utc(2027, 3, 15, 10), utc(2027, 3, 15, 11)), (utc(2027, 3, 15, 9), utc(2027, 3, 15, 10))]

    # when
    found = slots(plan=plan, busy=busy, window_start=utc(2027, 3, 15), window_end=utc(2027, 3, 16))

    # then: [08:00, 09:00) and [11:00, 12:00) only touch them (half-open, as tstzrange '[)')
    assert [s.start for s in found] == [utc(2027, 3, 15, 8), utc(2027, 3, 15, 11), utc(2027, 3, 15, 12)]


def test_min_notice_horizon_and_window_bound_the_starts():
    plan = {0: [(h(8), h(14))]}
    day = {"window_start": utc(2027, 3, 15), "window_end": utc(2027, 3, 16)}

    # when / then: earliest is inclusive, latest and window end exclusive
    assert [s.start.hour for s in slots(plan=plan, earliest=utc(2027, 3, 15, 10), **day)] == [10, 11, 12, 13]
    assert [s.start.hour for s in slots(plan=plan, earliest=utc(2027, 3, 15, 10, 1), **day)] == [11, 12, 13]
    assert [s.start.hour for s in slots(plan=plan, latest=utc(2027, 3, 15, 10), **day)] == [8, 9]
    assert [s.start.hour for s in slots(plan=plan, window_start=utc(2027, 3, 15, 9),
                                        window_end=utc(2027, 3, 15, 11))] == [9, 10]


def test_slots_are_deterministic_whatever_the_input_order():
    # given: the same plan, exceptions and bookings in two different orders
    plan_a = {0: [(h(8), h(10)), (h(13), h(17))], 2: [(h(9), h(12))]}
    plan_b = {2: [(h(9), h(12))], 0: [(h(13), h(17)), (h(8), h(10))]}
    busy = [(utc(2027, 3, 15, 14), utc(2027, 3, 15, 15)), (utc(2027, 3, 17, 9), utc(2027, 3, 17, 10))]
    window = {"window_start": utc(2027, 3, 14), "window_end": utc(2027, 3, 21)}

    # when
    first = slots(time_zone="Europe/Paris", plan=plan_a, busy=busy, **window)
    again = slots(time_zone="Europe/Paris", plan=plan_a, busy=busy, **window)
    reordered = slots(time_zone="Europe/Paris", plan=plan_b, busy=list(reversed(busy)), **window)

    # then
    assert first == again == reordered
    assert [s.start for s in first] == [utc(2027, 3, 15, h_) for h_ in (7, 8, 12, 13, 15)] + [
        utc(2027, 3, 17, 8), utc(2027, 3, 17, 10)]


ZONES = ["UTC", "Africa/Douala", "Asia/Kolkata", "America/New_York", "Europe/Paris"]
NO_DST = {"UTC", "Africa/Douala", "Asia/Kolkata"}


@st.composite
def day_ranges(draw) -> list[tuple[int, int]]:
    cuts = sorted(draw(st.sets(st.integers(0, 96), max_size=6)))
    return [(cuts[i] * 15, cuts[i + 1] * 15) for i in range(0, len(cuts) - 1, 2)]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    zone=st.sampled_from(ZONES),
    plan=st.dictionaries(st.integers(0, 6), day_ranges(), max_size=7),
    slot_minutes=st.sampled_from([15, 30, 45, 60, 90, 120]),
    buffer_minutes=st.sampled_from([0, 10, 30]),
    busy_offsets=st.lists(st.tuples(st.integers(0, 14 * 96), st.integers(1, 16)), max_size=8),
    start_day=st.sampled_from([date(2027, 3, 10), date(2027, 3, 24), date(2027, 10, 28), date(2027, 11, 4)]),
    limit=st.integers(1, 12),
)
def test_free_slots_respect_bookings_bounds_and_never_overlap(
    zone, plan, slot_minutes, buffer_minutes, busy_offsets, start_day, limit
):
    # given: random plans around daylight-saving changes and random bookings (15-minute grid)
    window_start = datetime.combine(start_day, datetime.min.time(), UTC)
    window_end = window_start + timedelta(days=10)
    busy = [(window_start + timedelta(minutes=15 * o), window_start + timedelta(minutes=15 * (o + n)))
            for o, n in busy_offsets]
    earliest, latest = window_start + timedelta(hours=5), window_end - timedelta(hours=7)

    # when
    found = slots(time_zone=zone, plan=plan, busy=busy, slot_minutes=slot_minutes, buffer_minutes=buffer_minutes,
                  window_start=window_start, window_end=window_end, earliest=earliest, latest=latest)

    # then: sorted, unique, exact length, in bounds, and free with the buffer (half-open)
    assert found == sorted(set(found))
    step, blocked = timedelta(minutes=slot_minutes), timedelta(minutes=slot_minutes + buffer_minutes)
    for s in found:
        assert s.start.tzinfo is UTC and s.end - s.start == step
        assert earliest <= s.start < latest
        assert all(not (s.start < b_end and b_start < s.start + blocked) for b_start, b_end in busy)
    if zone in NO_DST:  # non-overlapping ranges give non-overlapping slots
        assert all(a.end <= b.start for a, b in zip(found, found[1:], strict=False))
    # and the early-stopping search for the first few slots agrees with the full computation
    lo, hi = max(window_start, earliest), min(window_end, latest)
    assert av._slots(ZoneInfo(zone), plan, {}, av._Busy.of(busy), slot_minutes, buffer_minutes, lo, hi,
                     limit=limit) == found[:limit]
    # and removing every booking only adds slots
    assert set(found) <= set(slots(time_zone=zone, plan=plan, slot_minutes=slot_minutes, window_start=window_start,
                                   window_end=window_end, earliest=earliest, latest=latest))


# --- database helpers ---------------------------------------------------------------------------------

# Monday 2027-03-01 06:00 UTC; the provider works weekdays 08:00-12:00 in Douala (07:00-11:00 UTC).
NOW = utc(2027, 3, 1, 6)
TUESDAY = (utc(2027, 3, 2), utc(2027, 3, 3))
WEEKDAYS_8_TO_12 = [(d, h(8), h(12)) for d in range(5)]
_refs = iter(range(1, 10**6))




async def bookable_provider(service_id: int, *, latitude: float = 4.0511, longitude: float = 9.7679,
                            name: str = "Eko Plumbing", plan=None, slot_minutes: int = 60, notice: int = 120,
                            buffer: int = 0, horizon: int = 30, **provider_kw):
    provider = await make_provider(latitude=latitude, longitude=longitude, display_name=name, **provider_kw)
    async with session_scope() as s:
        await av.set_weekly_plan(s, provider.id, WEEKDAYS_8_TO_12 if plan is None else plan)
        await av.set_service_slot(s, provider.id, service_id, slot_minutes)
        await av.set_booking_rules(s, provider.id, min_notice_minutes=notice, buffer_minutes=buffer,
                                   horizon_days=horizon)
    return provider


@pytest.fixture
async def shop():
    """A service with a tier and a customer who books."""
    service, tiers = await make_service()
    customer = await make_user("ada@example.com")
    return service, tiers[0], customer


async def add_booking(shop, provider_id: int, start: datetime, *, status: str = "paid", minutes: int = 60,
                      buffer: int = 0, hold_expires_at: datetime | None = None) -> None:
    service, tier, customer = shop
    async with session_scope() as s:
        s.add(Booking(
            reference=f"BK{next(_refs):06d}", provider_id=provider_id, service_id=service.id, tier_id=tier.id,
            customer_user_id=customer.id, currency="XAF", status=status, starts_at=start,
            ends_at=start + timedelta(minutes=minutes), blocked_until=start + timedelta(minutes=minutes + buffer),
            time_zone="Africa/Douala", hold_expires_at=hold_expires_at,
        ))


async def tuesday_starts(provider_id: int, service_id: int, **kw) -> list[datetime]:
    async with session_scope() as s:
        found = await av.available_slots(s, provider_id=provider_id, service_id=service_id, window_start=TUESDAY[0],
                                         window_end=TUESDAY[1], now=kw.pop("now", NOW), **kw)
    return [x.start for x in found]


async def raised(coro) -> tuple[str, str | None]:
    with pytest.raises(DomainError) as info:
        await coro
    return info.value.code, info.value.field


async def plan_rows(provider_id: int) -> list[tuple[int, int, int]]:
    async with session_scope() as s:
        rows = await s.execute(select(AvailabilityRule.weekday, AvailabilityRule.start_minute,
                                      AvailabilityRule.end_minute).where(AvailabilityRule.provider_id == provider_id)
                               .order_by(AvailabilityRule.weekday, AvailabilityRule.start_minute))
        return [tuple(r) for r in rows.all()]


# --- available_slots against the database ----------------------------------------------------------------


async def test_live_bookings_and_unexpired_holds_block_their_slots(shop):
    # given: Tuesday offers 07:00-11:00 UTC; a paid booking at 08:00 and a hold expiring in 5 minutes at 10:00
    service = shop[0]
    provider = await bookable_provider(service.id)
    await add_booking(shop, provider.id, utc(2027, 3, 2, 8), status="paid")
    await add_booking(shop, provider.id, utc(2027, 3, 2, 10), status="held", hold_expires_at=NOW + timedelta(minutes=5))

    # when
    found = await tuesday_starts(provider.id, service.id)

    # then
    assert found == [utc(2027, 3, 2, 7), utc(2027, 3, 2, 9)]


async def test_expired_holds_and_finished_bookings_do_not_block(shop):
    # given: a hold that expired a minute ago (not swept yet), a cancelled and a payment-expired booking
    service = shop[0]
    provider = await bookable_provider(service.id)
    await add_booking(shop, provider.id, utc(2027, 3, 2, 8), status="held", hold_expires_at=NOW - timedelta(minutes=1))
    await add_booking(shop, provider.id, utc(2027, 3, 2, 9), status="cancelled_by_customer")
    await add_booking(shop, provider.id, utc(2027, 3, 2, 10), status="payment_expired")

    # when
    found = await tuesday_starts(provider.id, service.id)

    # then: every planned slot is free
    assert found == [utc(2027, 3, 2, h_) for h_ in (7, 8, 9, 10)]


async def test_a_hold_expiring_exactly_now_does_not_block(shop):
    # given
    service = shop[0]
    provider = await bookable_provider(service.id)
    await add_booking(shop, provider.id, utc(2027, 3, 2, 8), status="held", hold_expires_at=NOW)

    # when / then: hold_expires_at <= now is expired
    assert await tuesday_starts(provider.id, service.id) == [utc(2027, 3, 2, h_) for h_ in (7, 8, 9, 10)]


async def test_available_slots_takes_three_statements(shop):
    # given
    service = shop[0]
    provider = await bookable_provider(service.id)
    await add_booking(shop, provider.id, utc(2027, 3, 2, 8))

    # when
    with count_statements() as statements:
        found = await tuesday_starts(provider.id, service.id)

    # then: provider+rules+service, plan+exceptions, bookings (the session_scope adds no statement of its own
    # beyond BEGIN/COMMIT, which asyncpg does not send through the cursor)
    assert found == [utc(2027, 3, 2, 7), utc(2027, 3, 2, 9), utc(2027, 3, 2, 10)]
    assert len(statements) == 3


async def test_the_providers_buffer_keeps_time_free_around_bookings(shop):
    # given: a 30-minute buffer and a booking 08:00-09:00 blocked until 09:30
    service = shop[0]
    provider = await bookable_provider(service.id, buffer=30)
    await add_booking(shop, provider.id, utc(2027, 3, 2, 8), buffer=30)

    # when
    found = await tuesday_starts(provider.id, service.id)

    # then: 07:00 would block until 08:30 and 09:00 starts inside the buffer
    assert found == [utc(2027, 3, 2, 10)]


async def test_min_notice_and_horizon_come_from_the_providers_rules(shop):
    # given: 60 minutes' notice asked at 07:30 on Tuesday; another provider with a 1-day horizon
    service = shop[0]
    near = await bookable_provider(service.id, notice=60)
    short = await bookable_provider(service.id, name="Short", horizon=1, notice=0)

    # when
    with_notice = await tuesday_starts(near.id, service.id, now=utc(2027, 3, 2, 7, 30))
    with_horizon = await tuesday_starts(short.id, service.id, now=utc(2027, 3, 1, 8, 30))

    # then: from 08:30 on; and up to Tuesday 08:30
    assert with_notice == [utc(2027, 3, 2, 9), utc(2027, 3, 2, 10)]
    assert with_horizon == [utc(2027, 3, 2, 7), utc(2027, 3, 2, 8)]


async def test_a_provider_without_rules_uses_the_settings_defaults(shop):
    # given: a provider with a plan and a service but no provider_booking_settings row
    service = shop[0]
    provider = await make_provider()
    async with session_scope() as s:
        await av.set_weekly_plan(s, provider.id, WEEKDAYS_8_TO_12)
        await av.set_service_slot(s, provider.id, service.id)
    cfg = get_settings()

    # when
    async with session_scope() as s:
        rules = await av.booking_rules(s, provider.id)
        minutes = await av.slot_length(s, provider.id, service.id)
    found = await tuesday_starts(provider.id, service.id, now=utc(2027, 3, 2, 6))

    # then: default notice (120 minutes) from 06:00 leaves 08:00 on
    assert rules == Rules(cfg.booking_default_notice_minutes, cfg.booking_default_buffer_minutes,
                          cfg.booking_default_horizon_days)
    assert minutes == cfg.booking_default_slot_minutes == 60
    assert cfg.booking_default_notice_minutes == 120
    assert found == [utc(2027, 3, 2, 8), utc(2027, 3, 2, 9), utc(2027, 3, 2, 10)]


async def test_unverified_or_suspended_providers_have_no_slots(shop):
    # given
    service = shop[0]
    unverified = await bookable_provider(service.id, name="New", verified=False)
    suspended = await bookable_provider(service.id, name="Banned", suspended=True)

    # when / then
    assert await tuesday_starts(unverified.id, service.id) == []
    assert await tuesday_starts(suspended.id, service.id) == []


async def test_a_service_the_provider_does_not_take_is_not_bookable(shop):
    # given: one service never set up, one set up then deactivated
    service = shop[0]
    other, _ = await make_service(name="Drain cleaning")
    provider = await bookable_provider(service.id)
    async with session_scope() as s:
        await av.set_service_slot(s, provider.id, service.id, 60, active=False)

    # when / then
    assert await raised(tuesday_starts(provider.id, other.id)) == ("SERVICE_NOT_BOOKABLE", "serviceId")
    assert await raised(tuesday_starts(provider.id, service.id)) == ("SERVICE_NOT_BOOKABLE", "serviceId")
    assert await raised(tuesday_starts(provider.id + 1000, service.id)) == ("NOT_FOUND", "providerId")
    async with session_scope() as s:
        with pytest.raises(av.ServiceNotBookable):
            await av.slot_length(s, provider.id, service.id)


async def test_bad_windows_are_refused(shop):
    service = shop[0]
    provider = await bookable_provider(service.id)

    async def ask(start, end):
        async with session_scope() as s:
            await av.available_slots(s, provider_id=provider.id, service_id=service.id, window_start=start,
                                     window_end=end, now=NOW)

    # when / then
    assert await raised(ask(TUESDAY[1], TUESDAY[0])) == ("INVALID_WINDOW", "to")
    assert await raised(ask(TUESDAY[0], TUESDAY[0])) == ("INVALID_WINDOW", "to")
    assert await raised(ask(TUESDAY[0], TUESDAY[0] + timedelta(days=31, seconds=1))) == ("INVALID_WINDOW", "to")
    assert await raised(ask(datetime(2027, 3, 2), TUESDAY[1])) == ("INVALID_WINDOW", "from")
    assert get_settings().booking_max_window_days == 31
    async with session_scope() as s:  # the widest window is fine
        wide = await av.available_slots(s, provider_id=provider.id, service_id=service.id, window_start=TUESDAY[0],
                                        window_end=TUESDAY[0] + timedelta(days=31), now=NOW)
    # 21 weekdays from Tuesday 2 March to Tuesday 30 March: the 30-day horizon ends on 31 March at 06:00 UTC
    assert len(wide) == 4 * 21


async def test_date_exceptions_replace_the_plan_and_clearing_restores_it(shop):
    # given: Tuesday 2027-03-02 gets 14:00-16:00 local instead of 08:00-12:00
    service = shop[0]
    provider = await bookable_provider(service.id)
    async with session_scope() as s:
        await av.set_date_exception(s, provider.id, date(2027, 3, 2), [(h(14), h(16))])

    # when / then
    assert await tuesday_starts(provider.id, service.id) == [utc(2027, 3, 2, 13), utc(2027, 3, 2, 14)]
    async with session_scope() as s:
        await av.set_date_exception(s, provider.id, date(2027, 3, 2), [])
    assert await tuesday_starts(provider.id, service.id) == []
    async with session_scope() as s:
        listed = await av.date_exceptions(s, provider.id, date(2027, 3, 1), date(2027, 3, 31))
        assert await av.clear_date_exception(s, provider.id, date(2027, 3, 2)) is True
        assert await av.clear_date_exception(s, provider.id, date(2027, 3, 2)) is False
    assert listed == [av.DateException(date(2027, 3, 2), [])]
    assert await tuesday_starts(provider.id, service.id) == [utc(2027, 3, 2, h_) for h_ in (7, 8, 9, 10)]


async def test_slots_follow_the_providers_time_zone_across_a_dst_change(shop):
    # given: a provider in New York working Sundays 09:00-12:00, asked over the spring-forward weekend
    service = shop[0]
    provider = await bookable_provider(service.id, plan=[(6, h(9), h(12))], notice=0, horizon=366)
    async with session_scope() as s:
        await av.set_time_zone(s, provider.id, "America/New_York")

    # when
    async with session_scope() as s:
        found = await av.available_slots(s, provider_id=provider.id, service_id=service.id,
                                         window_start=utc(2027, 3, 6), window_end=utc(2027, 3, 15), now=NOW)

    # then
    assert [x.start for x in found] == [utc(2027, 3, 7, h_) for h_ in (14, 15, 16)] + [
        utc(2027, 3, 14, h_) for h_ in (13, 14, 15)]


# --- validate_slot ---------------------------------------------------------------------------------------


async def test_validate_slot_accepts_an_offered_start_even_when_booked(shop):
    # given: 08:00 UTC Tuesday is offered but already paid for (the exclusion constraint decides that)
    service = shop[0]
    provider = await bookable_provider(service.id, buffer=15)
    await add_booking(shop, provider.id, utc(2027, 3, 2, 8), buffer=15)

    # when
    with count_statements() as statements:
        async with session_scope() as s:
            offer = await av.offered_slot(s, provider_id=provider.id, service_id=service.id,
                                          start=utc(2027, 3, 2, 8), now=NOW)
            slot = await av.validate_slot(s, provider_id=provider.id, service_id=service.id,
                                          start=datetime(2027, 3, 2, 9, tzinfo=ZoneInfo("Africa/Douala")), now=NOW)

    # then
    assert offer == av.SlotOffer(Slot(utc(2027, 3, 2, 8), utc(2027, 3, 2, 9)), 60, Rules(120, 15, 30), "Africa/Douala")
    assert offer.blocked_until == utc(2027, 3, 2, 9, 15)
    assert slot == Slot(utc(2027, 3, 2, 8), utc(2027, 3, 2, 9))
    assert len(statements) == 4  # two per call


async def test_validate_slot_refuses_starts_that_are_not_offered(shop):
    # given
    service = shop[0]
    provider = await bookable_provider(service.id)
    hidden = await bookable_provider(service.id, name="Hidden", verified=False)

    async def check(start, *, provider_id=provider.id, now=NOW):
        async with session_scope() as s:
            await av.validate_slot(s, provider_id=provider_id, service_id=service.id, start=start, now=now)

    # when / then: off the grid, outside the plan, within the notice, beyond the horizon, naive, unverified
    assert await raised(check(utc(2027, 3, 2, 7, 30))) == ("SLOT_NOT_OFFERED", "start")
    assert await raised(check(utc(2027, 3, 2, 11))) == ("SLOT_NOT_OFFERED", "start")
    assert await raised(check(utc(2027, 3, 6, 8))) == ("SLOT_NOT_OFFERED", "start")
    assert await raised(check(utc(2027, 3, 2, 7), now=utc(2027, 3, 2, 6))) == ("SLOT_NOT_OFFERED", "start")
    assert await raised(check(utc(2027, 3, 31, 7))) == ("SLOT_NOT_OFFERED", "start")
    assert await raised(check(datetime(2027, 3, 2, 7))) == ("SLOT_NOT_OFFERED", "start")
    assert await raised(check(utc(2027, 3, 2, 7), provider_id=hidden.id)) == ("SLOT_NOT_OFFERED", "start")
    # and the last start within the horizon is still offered
    async with session_scope() as s:
        assert (await av.validate_slot(s, provider_id=provider.id, service_id=service.id, start=utc(2027, 3, 30, 10),
                                       now=NOW)).end == utc(2027, 3, 30, 11)


# --- providers_available and nearest_free_slots ----------------------------------------------------------


async def test_providers_available_keeps_providers_with_a_free_slot_nearest_first(shop):
    # given: four providers at increasing distances from central Douala; the nearest is fully booked on
    # Tuesday, the third does not take this service, one is 60 km away (outside 25 km)
    service = shop[0]
    other, _ = await make_service(name="Drain cleaning")
    full = await bookable_provider(service.id, latitude=4.0512, name="Full")
    second = await bookable_provider(service.id, latitude=4.0600, name="Second")
    other_only = await bookable_provider(other.id, latitude=4.0700, name="Other only")
    fourth = await bookable_provider(service.id, latitude=4.0800, name="Fourth", notice=0)
    await bookable_provider(service.id, latitude=4.6, name="Far")
    for hour in (7, 8, 9, 10):
        await add_booking(shop, full.id, utc(2027, 3, 2, hour))
    await add_booking(shop, second.id, utc(2027, 3, 2, 7))

    # when
    with count_statements() as statements:
        async with session_scope() as s:
            found = await av.providers_available(
                s, point=GeoPoint(4.0511, 9.7679), radius_km=25, category="plumbing", service_id=service.id,
                window_start=TUESDAY[0], window_end=TUESDAY[1], now=NOW)

    # then: geosearch, offers, plans+exceptions, bookings - whatever the number of candidates
    assert [(a.provider.id, a.first_slot, a.service_id) for a in found] == [
        (second.id, Slot(utc(2027, 3, 2, 8), utc(2027, 3, 2, 9)), service.id),
        (fourth.id, Slot(utc(2027, 3, 2, 7), utc(2027, 3, 2, 8)), service.id),
    ]
    assert len(statements) == 4
    assert other_only.id not in {a.provider.id for a in found}


async def test_providers_available_without_a_service_uses_any_active_service_and_honours_first(shop):
    # given: a provider whose 60-minute service is booked at 07:00 but whose 30-minute one is free at 08:00
    service = shop[0]
    other, _ = await make_service(name="Drain cleaning")
    first = await bookable_provider(service.id, latitude=4.0512, name="First")
    async with session_scope() as s:
        await av.set_service_slot(s, first.id, other.id, 30)
    await add_booking(shop, first.id, utc(2027, 3, 2, 7), minutes=60)
    second = await bookable_provider(other.id, latitude=4.0600, name="Second")

    # when
    async with session_scope() as s:
        found = await av.providers_available(
            s, point=GeoPoint(4.0511, 9.7679), radius_km=25, category=None, service_id=None,
            window_start=TUESDAY[0], window_end=TUESDAY[1], now=NOW)
        only_one = await av.providers_available(
            s, point=GeoPoint(4.0511, 9.7679), radius_km=25, category=None, service_id=None,
            window_start=TUESDAY[0], window_end=TUESDAY[1], first=1, now=NOW)

    # then: the earliest free slot of any of its services (08:00; both services free there, lowest id wins)
    assert [(a.provider.id, a.first_slot.start, a.service_id) for a in found] == [
        (first.id, utc(2027, 3, 2, 8), service.id), (second.id, utc(2027, 3, 2, 7), other.id)]
    assert [a.provider.id for a in only_one] == [first.id]


async def test_providers_available_with_nobody_free_returns_nothing(shop):
    # given: the only provider is off on Tuesday
    service = shop[0]
    provider = await bookable_provider(service.id)
    async with session_scope() as s:
        await av.set_date_exception(s, provider.id, date(2027, 3, 2), [])

    # when
    async with session_scope() as s:
        found = await av.providers_available(
            s, point=GeoPoint(4.0511, 9.7679), radius_km=25, category="plumbing", service_id=service.id,
            window_start=TUESDAY[0], window_end=TUESDAY[1], now=NOW)
        with pytest.raises(av.InvalidWindow):
            await av.providers_available(
                s, point=GeoPoint(4.0511, 9.7679), radius_km=25, category=None, service_id=None,
                window_start=TUESDAY[1], window_end=TUESDAY[0], now=NOW)

    # then
    assert found == []


async def test_nearest_free_slots_merges_the_earliest_slots_of_several_providers(shop):
    # given: A is booked at 07:00 and 08:00 on Tuesday, B starts work at 09:00 local (08:00 UTC)
    service = shop[0]
    a = await bookable_provider(service.id, name="A")
    b = await bookable_provider(service.id, name="B", plan=[(d, h(9), h(12)) for d in range(5)])
    hidden = await bookable_provider(service.id, name="Hidden", suspended=True)
    await add_booking(shop, a.id, utc(2027, 3, 2, 7))
    await add_booking(shop, a.id, utc(2027, 3, 2, 8))

    # when: from Tuesday 00:00 on
    with count_statements() as statements:
        async with session_scope() as s:
            found = await av.nearest_free_slots(s, provider_ids=[a.id, b.id, hidden.id], service_id=service.id,
                                                after=TUESDAY[0], limit=4, now=NOW)

    # then
    assert found == [
        (b.id, Slot(utc(2027, 3, 2, 8), utc(2027, 3, 2, 9))),
        (a.id, Slot(utc(2027, 3, 2, 9), utc(2027, 3, 2, 10))),
        (b.id, Slot(utc(2027, 3, 2, 9), utc(2027, 3, 2, 10))),
        (a.id, Slot(utc(2027, 3, 2, 10), utc(2027, 3, 2, 11))),
    ]
    assert len(statements) == 3


async def test_nearest_free_slots_looks_past_fully_booked_days(shop):
    # given: the provider is off from Tuesday to Thursday
    service = shop[0]
    provider = await bookable_provider(service.id)
    async with session_scope() as s:
        for day in (2, 3, 4):
            await av.set_date_exception(s, provider.id, date(2027, 3, day), [])

    # when
    async with session_scope() as s:
        found = await av.nearest_free_slots(s, provider_ids=[provider.id], service_id=None, after=TUESDAY[0],
                                            limit=2, now=NOW)
        none_soon = await av.nearest_free_slots(s, provider_ids=[provider.id], service_id=None, after=TUESDAY[0],
                                                limit=2, now=NOW, search_days=3)

    # then: Friday 07:00 and 08:00 UTC; nothing within three days
    assert found == [(provider.id, Slot(utc(2027, 3, 5, 7), utc(2027, 3, 5, 8))),
                     (provider.id, Slot(utc(2027, 3, 5, 8), utc(2027, 3, 5, 9)))]
    assert none_soon == []


# --- provider-side writes ------------------------------------------------------------------------------


async def test_set_weekly_plan_replaces_the_plan(shop):
    # given
    provider = await bookable_provider(shop[0].id)

    # when
    async with session_scope() as s:
        plan = await av.set_weekly_plan(s, provider.id, [(2, h(13), h(17)), (2, h(8), h(12)), (5, h(9), 1440)])
        read = await av.weekly_plan(s, provider.id)

    # then: touching or separate ranges on one day are fine
    expected = [av.WeeklyRange(2, h(8), h(12)), av.WeeklyRange(2, h(13), h(17)), av.WeeklyRange(5, h(9), 1440)]
    assert plan == read == expected
    assert await plan_rows(provider.id) == [(2, h(8), h(12)), (2, h(13), h(17)), (5, h(9), 1440)]


@pytest.mark.parametrize(("ranges", "error"), [
    ([(0, h(8), h(12)), (0, h(11), h(13))], ("OVERLAPPING_RANGES", "ranges.1")),
    ([(0, h(11), h(13)), (1, h(8), h(9)), (0, h(8), h(12))], ("OVERLAPPING_RANGES", "ranges.2")),
    ([(0, h(8), h(12)), (7, h(8), h(12))], ("INVALID_RANGE", "ranges.1")),
    ([(-1, h(8), h(12))], ("INVALID_RANGE", "ranges.0")),
    ([(0, h(12), h(12))], ("INVALID_RANGE", "ranges.0")),
    ([(0, h(13), h(12))], ("INVALID_RANGE", "ranges.0")),
    ([(0, h(8), 1441)], ("INVALID_RANGE", "ranges.0")),
    ([(0, -5, h(1))], ("INVALID_RANGE", "ranges.0")),
])
async def test_a_bad_weekly_plan_is_refused_and_nothing_is_written(shop, ranges, error):
    # given: a provider with its weekday plan
    provider = await bookable_provider(shop[0].id)

    # when
    async with session_scope() as s:
        result = await raised(av.set_weekly_plan(s, provider.id, ranges))

    # then: the old plan is untouched
    assert result == error
    assert await plan_rows(provider.id) == [(d, h(8), h(12)) for d in range(5)]


async def test_a_bad_date_exception_is_refused_and_nothing_is_written(shop):
    # given
    provider = await bookable_provider(shop[0].id)
    async with session_scope() as s:
        await av.set_date_exception(s, provider.id, date(2027, 3, 2), [(h(9), h(10))])

    # when
    async with session_scope() as s:
        overlap = await raised(av.set_date_exception(s, provider.id, date(2027, 3, 2), [(h(9), h(11)), (h(10), h(12))]))
        bad = await raised(av.set_date_exception(s, provider.id, date(2027, 3, 2), [(h(9), h(9))]))
        missing = await raised(av.set_date_exception(s, provider.id + 1000, date(2027, 3, 2), []))

    # then
    assert (overlap, bad, missing) == (("OVERLAPPING_RANGES", "ranges.1"), ("INVALID_RANGE", "ranges.0"),
                                       ("NOT_FOUND", "providerId"))
    async with session_scope() as s:
        rows = (await s.execute(select(AvailabilityException.on_date, AvailabilityException.start_minute,
                                       AvailabilityException.end_minute))).all()
    assert [tuple(r) for r in rows] == [(date(2027, 3, 2), h(9), h(10))]


async def test_booking_rules_are_upserted_and_validated(shop):
    # given
    provider = await bookable_provider(shop[0].id, notice=120, buffer=0, horizon=30)

    # when
    async with session_scope() as s:
        updated = await av.set_booking_rules(s, provider.id, min_notice_minutes=0, buffer_minutes=15, horizon_days=366)
    async with session_scope() as s:
        errors = [
            await raised(av.set_booking_rules(s, provider.id, min_notice_minutes=-1, buffer_minutes=0, horizon_days=1)),
            await raised(av.set_booking_rules(s, provider.id, min_notice_minutes=0, buffer_minutes=1441,
                                              horizon_days=1)),
            await raised(av.set_booking_rules(s, provider.id, min_notice_minutes=0, buffer_minutes=0, horizon_days=0)),
            await raised(av.set_booking_rules(s, provider.id + 1000, min_notice_minutes=0, buffer_minutes=0,
                                              horizon_days=1)),
        ]

    # then
    assert updated == Rules(0, 15, 366)
    assert errors == [("INVALID_BOOKING_RULES", "minNoticeMinutes"), ("INVALID_BOOKING_RULES", "bufferMinutes"),
                      ("INVALID_BOOKING_RULES", "horizonDays"), ("NOT_FOUND", "providerId")]
    async with session_scope() as s:
        assert await av.booking_rules(s, provider.id) == Rules(0, 15, 366)
        assert await s.scalar(select(func.count()).select_from(ProviderBookingSettings)) == 1


async def test_service_slots_are_upserted_and_validated(shop):
    # given
    service = shop[0]
    provider = await make_provider()

    # when
    async with session_scope() as s:
        first = await av.set_service_slot(s, provider.id, service.id, 45)
        second = await av.set_service_slot(s, provider.id, service.id, 90, active=False)
        errors = [
            await raised(av.set_service_slot(s, provider.id, service.id + 1000, 60)),
            await raised(av.set_service_slot(s, provider.id, service.id, 4)),
            await raised(av.set_service_slot(s, provider.id, service.id, 1441)),
            await raised(av.set_service_slot(s, provider.id + 1000, service.id, 60)),
        ]

    # then
    assert first == av.ServiceSlot(provider.id, service.id, 45, True)
    assert second == av.ServiceSlot(provider.id, service.id, 90, False)
    assert errors == [("SERVICE_NOT_FOUND", "serviceId"), ("INVALID_SLOT_LENGTH", "slotMinutes"),
                      ("INVALID_SLOT_LENGTH", "slotMinutes"), ("NOT_FOUND", "providerId")]
    async with session_scope() as s:
        rows = (await s.execute(select(ProviderService.service_id, ProviderService.slot_minutes,
                                       ProviderService.active))).all()
    assert [tuple(r) for r in rows] == [(service.id, 90, False)]


async def test_time_zones_are_validated_against_the_iana_database(shop):
    # given
    provider = await make_provider()

    # when
    async with session_scope() as s:
        updated = await av.set_time_zone(s, provider.id, "Asia/Kolkata")
        errors = [await raised(av.set_time_zone(s, provider.id, name))
                  for name in ("Mars/Olympus_Mons", "", "localtime", "../etc/passwd", "asia/kolkata")]
        missing = await raised(av.set_time_zone(s, provider.id + 1000, "UTC"))

    # then
    assert updated.time_zone == "Asia/Kolkata"
    assert av.validate_time_zone("America/New_York") == "America/New_York"
    assert errors == [("INVALID_TIME_ZONE", "timeZone")] * 5
    assert missing == ("NOT_FOUND", "providerId")
    async with session_scope() as s:
        assert await s.scalar(select(Provider.time_zone).where(Provider.id == provider.id)) == "Asia/Kolkata"


"""A provider's availability in GraphQL: free slots and the availability search (``availableSlots``,
``providersAvailable``), and the provider's own booking setup (``myAvailability``) with the inputs,
payloads and AvailabilityError codes of its mutations (``setWeeklyPlan`` ... ``setProviderTimeZone``).
Times of day are ``"HH:MM"`` strings in the provider's zone."""

from __future__ import annotations

from datetime import date
from enum import Enum

import strawberry

from domain.providers.availability import DateException as DomainDateException
from domain.providers.availability import ServiceSlot as DomainServiceSlot
from domain.providers.errors import ProvidersErrorCode
from domain.providers.provider import NearbyProvider as NearbyHit
from domain.shared.errors import CommonErrorCode
from resolvers import loaders
from resolvers.bookings import availability as availability_resolvers
from resolvers.bookings.availability import AvailabilityResult, AvailabilityView
from schema.bookings.types import BookableSlot
from schema.catalogue.services import Service
from schema.providers.provider import Provider
from schema.shared.common import GeoPoint, coded_errors, error_code_enum


@strawberry.enum(description="A day of the week of a provider's plan, in the provider's time zone.")
class Weekday(Enum):
    MONDAY = 0
    TUESDAY = 1
    WEDNESDAY = 2
    THURSDAY = 3
    FRIDAY = 4
    SATURDAY = 5
    SUNDAY = 6


AvailabilityErrorCode = error_code_enum("AvailabilityErrorCode", [
    ProvidersErrorCode.INVALID_RANGE, ProvidersErrorCode.OVERLAPPING_RANGES,
    ProvidersErrorCode.INVALID_BOOKING_RULES, ProvidersErrorCode.INVALID_SLOT_LENGTH,
    ProvidersErrorCode.INVALID_TIME_ZONE, CommonErrorCode.SERVICE_NOT_FOUND, CommonErrorCode.NOT_FOUND,
    CommonErrorCode.INVALID_ID, CommonErrorCode.INVALID,
], description="INVALID_RANGE: a time is not HH:MM (24:00 only as an end) or a range ends before it "
                 "starts; OVERLAPPING_RANGES: two ranges of one day overlap (touching is fine).")


@strawberry.type
class AvailabilityError:
    field: str | None = strawberry.field(description="The input field it is about, e.g. `ranges.2.end`, or null.")
    code: AvailabilityErrorCode
    message: str = strawberry.field(description="For people; switch on `code`.")


def availability_errors(errors) -> list[AvailabilityError]:
    return coded_errors(AvailabilityErrorCode, AvailabilityError, errors)


def provider_of_hit(h: NearbyHit) -> Provider:
    return Provider(
        id=h.id, display_name=h.display_name, categories=h.categories, rating=h.rating,
        review_count=h.review_count, city=h.city, location=GeoPoint(latitude=h.latitude, longitude=h.longitude),
        verified=True, available=True,
    )


@strawberry.type(description="A provider near the search point with at least one free slot in the window.")
class AvailableProvider:
    provider: Provider
    distance_meters: float = strawberry.field(description="Geodesic (WGS84 spheroid) distance in metres.")
    service_id: strawberry.ID = strawberry.field(description="The service `firstSlot` is for (global id).")
    first_slot: BookableSlot = strawberry.field(description="Its earliest free slot in the window.")


@strawberry.type(description="A range of a weekday in the provider's zone: `[start, end)`, HH:MM (end may be 24:00).")
class WeeklyRange:
    weekday: Weekday
    start: str = strawberry.field(description="HH:MM local time.")
    end: str = strawberry.field(description="HH:MM local time; 24:00 is the end of the day.")


@strawberry.type(description="A range of local time `[start, end)`, HH:MM (end may be 24:00).")
class TimeRange:
    start: str = strawberry.field(description="HH:MM local time.")
    end: str = strawberry.field(description="HH:MM local time; 24:00 is the end of the day.")


@strawberry.type(description="The ranges replacing the weekly plan on one local date.")
class DateException:
    on_date: date = strawberry.field(name="date", description="A local date in the provider's zone.")
    day_off: bool = strawberry.field(description="True when the provider takes no bookings that day.")
    ranges: list[TimeRange]

    @classmethod
    def of(cls, e: DomainDateException) -> "DateException":
        return cls(on_date=e.on_date, day_off=not e.ranges, ranges=[
            TimeRange(start=availability_resolvers.hhmm(s), end=availability_resolvers.hhmm(t)) for s, t in e.ranges
        ])


@strawberry.type(description="A provider's booking rules.")
class BookingRules:
    min_notice_minutes: int = strawberry.field(description="How long before a slot starts it can still be held.")
    buffer_minutes: int = strawberry.field(description="Kept free after every booking.")
    horizon_days: int = strawberry.field(description="How far ahead slots are offered.")


@strawberry.type(description="A service the provider takes bookings for.")
class ServiceSlot:
    slot_minutes: int = strawberry.field(description="Length of each slot of this service.")
    active: bool = strawberry.field(description="False: no bookings for it at the moment.")
    _service_id: strawberry.Private[int]

    @classmethod
    def of(cls, s: DomainServiceSlot) -> "ServiceSlot":
        return cls(slot_minutes=s.slot_minutes, active=s.active, _service_id=s.service_id)

    @strawberry.field(description="The catalogue service.")
    async def service(self, info: strawberry.Info) -> Service | None:
        found = await loaders.services(info.context).load(self._service_id)
        return Service.of(found) if found else None


@strawberry.type(description="Your booking setup as a provider.")
class ProviderAvailability:
    time_zone: str = strawberry.field(description="IANA zone the plan and exceptions are read in.")
    weekly_plan: list[WeeklyRange] = strawberry.field(description="By weekday, then start.")
    exceptions: list[DateException] = strawberry.field(description="From today (your local date), 60 days ahead.")
    rules: BookingRules
    services: list[ServiceSlot] = strawberry.field(description="Services you take bookings for, by service id.")

    @classmethod
    def of(cls, v: AvailabilityView) -> "ProviderAvailability":
        h = availability_resolvers.hhmm
        return cls(
            time_zone=v.time_zone,
            weekly_plan=[WeeklyRange(weekday=Weekday(r.weekday), start=h(r.start_minute), end=h(r.end_minute))
                         for r in v.weekly_plan],
            exceptions=[DateException.of(e) for e in v.exceptions],
            rules=BookingRules(min_notice_minutes=v.rules.min_notice_minutes, buffer_minutes=v.rules.buffer_minutes,
                               horizon_days=v.rules.horizon_days),
            services=[ServiceSlot.of(s) for s in v.services],
        )


@strawberry.input
class WeeklyRangeInput:
    weekday: Weekday
    start: str = strawberry.field(description="HH:MM local time, 00:00 to 23:59.")
    end: str = strawberry.field(description="HH:MM local time after `start`; 24:00 is the end of the day.")


@strawberry.input
class TimeRangeInput:
    start: str = strawberry.field(description="HH:MM local time, 00:00 to 23:59.")
    end: str = strawberry.field(description="HH:MM local time after `start`; 24:00 is the end of the day.")


@strawberry.input
class SetWeeklyPlanInput:
    ranges: list[WeeklyRangeInput] = strawberry.field(
        description="The whole plan (replaces the previous one); ranges of one day must not overlap; [] clears it."
    )


@strawberry.input
class SetDateExceptionInput:
    on_date: date = strawberry.field(name="date", description="A local date in your time zone.")
    ranges: list[TimeRangeInput] = strawberry.field(description="Replace that day's plan; [] is a day off.")


@strawberry.input
class ClearDateExceptionInput:
    on_date: date = strawberry.field(name="date", description="The local date whose exception to remove.")


@strawberry.input
class SetBookingRulesInput:
    min_notice_minutes: int = strawberry.field(description="0 to 43200 (30 days).")
    buffer_minutes: int = strawberry.field(description="0 to 1440, kept free after each booking.")
    horizon_days: int = strawberry.field(description="1 to 366.")


@strawberry.input
class SetServiceSlotInput:
    service_id: strawberry.ID
    slot_minutes: int | None = strawberry.field(default=None, description="5 to 1440; default 60.")
    active: bool = strawberry.field(default=True, description="False stops bookings for this service.")


@strawberry.input
class SetProviderTimeZoneInput:
    time_zone: str = strawberry.field(description="IANA name, e.g. Africa/Douala, Asia/Kolkata.")


@strawberry.type
class SetWeeklyPlanPayload:
    availability: ProviderAvailability | None
    errors: list[AvailabilityError]


@strawberry.type
class SetDateExceptionPayload:
    availability: ProviderAvailability | None
    errors: list[AvailabilityError]


@strawberry.type
class ClearDateExceptionPayload:
    availability: ProviderAvailability | None
    cleared: bool = strawberry.field(description="False when that date had no exception.")
    errors: list[AvailabilityError]


@strawberry.type
class SetBookingRulesPayload:
    availability: ProviderAvailability | None
    errors: list[AvailabilityError]


@strawberry.type
class SetServiceSlotPayload:
    availability: ProviderAvailability | None
    errors: list[AvailabilityError]


@strawberry.type
class SetProviderTimeZonePayload:
    availability: ProviderAvailability | None
    errors: list[AvailabilityError]


def availability_and_errors(r: AvailabilityResult) -> tuple[ProviderAvailability | None, list[AvailabilityError]]:
    return (ProviderAvailability.of(r.availability) if r.availability else None), availability_errors(r.errors)

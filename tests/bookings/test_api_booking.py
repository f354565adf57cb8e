"""Bookings over GraphQL: slots in the asker's zone, holds, checkout and payment through the
sandbox, the booking state machine, a provider's availability, tickets, escalations, the live
``bookingStatusChanged`` subscription and the statements a page of bookings takes.

Everything goes through ``server.app`` in-process (the ``api_client`` fixture) against the real test
PostgreSQL, Redis and SMTP sink; payments are paid the real way (the sandbox's hosted page, its signed
webhook, a real Dramatiq worker: ``tests.test_api_money.pay``). The subscription runs the schema's
subscription resolver in-process on a context authenticated like ``on_ws_connect`` does, against the
real Redis pub/sub bus (the WebSocket transport itself is covered by tests/system/test_journey_e2e.py).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from sqlalchemy import func, select

import schema
from domain.bookings import booking as booking_domain
from domain.orders import escalation
from domain.shared import live, outbox
from models import Booking, BookingStatusChange, Email, Escalation, OutboxMessage, ServiceRequest
from models.db import session_scope
from resolvers.context import Context
from resolvers.ids import decode_id, encode_id
from settings import get_settings
from tests.orders.test_api_money import pay
from tests.support.bookings import MONDAY, bookable_provider, checkout_and_pay, customer, hold, status_of
from tests.support.contracts import accept_both
from tests.support.factories import make_provider, make_service, make_user
from tests.support.graphql_client import error_codes, gql, login
from tests.support.statements import count_statements

MONEY = "{ amountMinor currency }"
NINE = MONDAY + timedelta(hours=8)  # 09:00 in Douala (UTC+1, no DST) on Monday 1 March 2027

SET_TIME_ZONE = """
mutation($input: SetProviderTimeZoneInput!) {
  setProviderTimeZone(input: $input) { availability { timeZone } errors { field code message } }
}
"""
SET_WEEKLY_PLAN = """
mutation($input: SetWeeklyPlanInput!) {
  setWeeklyPlan(input: $input) { availability { weeklyPlan { weekday start end } } errors { field code message } }
}
"""
SET_RULES = """
mutation($input: SetBookingRulesInput!) {
  setBookingRules(input: $input) { availability { rules { minNoticeMinutes bufferMinutes horizonDays } }
    errors { field code message } }
}
"""
SET_SERVICE_SLOT = """
mutation($input: SetServiceSlotInput!) {
  setServiceSlot(input: $input) { availability { services { slotMinutes active } } errors { field code message } }
}
"""
SET_DATE_EXCEPTION = """
mutation($input: SetDateExceptionInput!) {
  setDateException(input: $input) { availability { exceptions { date dayOff ranges { start end } } }
    errors { field code message } }
}
"""
MY_AVAILABILITY = """
{ myAvailability {
    timeZone weeklyPlan { weekday start end } exceptions { date dayOff ranges { start end } }
    rules { minNoticeMinutes bufferMinutes horizonDays } services { slotMinutes active service { name } }
} }
"""
SLOTS = """
query($p: ID!, $s: ID!, $from: DateTime!, $to: DateTime!, $tz: String) {
  availableSlots(providerId: $p, serviceId: $s, from: $from, to: $to, timeZone: $tz) {
    start end localStart localEnd timeZone
  }
}
"""
PROVIDERS_AVAILABLE = """
query($near: GeoPointInput!, $from: DateTime!, $to: DateTime!, $tz: String) {
  providersAvailable(near: $near, radiusKm: 20, category: "plumbing", from: $from, to: $to, timeZone: $tz) {
    provider { displayName } serviceId firstSlot { start localStart timeZone }
  }
}
"""
BOOKING_FIELDS = """
id reference status statusLabel start end timeZone localStart allowedTransitions
history { from to actorType note }
"""
HOLD = f"""
mutation($input: HoldSlotInput!) {{
  holdSlot(input: $input) {{ booking {{ {BOOKING_FIELDS} holdExpiresAt }} errors {{ field code message }} }}
}}
"""
CHECKOUT = f"""
mutation($input: CheckoutBookingInput!) {{
  checkoutBooking(input: $input) {{
    booking {{ status }} checkoutUrl
    feeBreakdown {{ total {MONEY} lines {{ kind label amount {MONEY} }} }}
    errors {{ field code message }}
  }}
}}
"""
CHANGE = """
mutation($input: ChangeBookingStatusInput!) {
  changeBookingStatus(input: $input) { booking { status allowedTransitions } errors { field code message } }
}
"""
REVIEW = """
mutation($input: ReviewBookingInput!) {
  reviewBooking(input: $input) { booking { status reviewRating reviewComment } errors { field code message } }
}
"""
BOOKING = f"""
query($id: ID!) {{
  booking(id: $id) {{
    {BOOKING_FIELDS}
    provider {{ displayName }} service {{ name }} tier {{ name }}
    order {{ status amount {MONEY} receipt {{ lines {{ kind label amount {MONEY} }} total {MONEY} netPaid {MONEY} }} }}
  }}
}}
"""
STATUS_ONLY = "query($id: ID!) { booking(id: $id) { status allowedTransitions } }"
MY_BOOKINGS = """
query($first: Int, $after: String, $status: BookingStatus) {
  myBookings(first: $first, after: $after, status: $status) {
    pageInfo { hasNextPage hasPreviousPage endCursor }
    edges { cursor node {
      reference status allowedTransitions provider { displayName } service { name } tier { name }
      history { to actorType } order { reference status }
    } }
  }
}
"""


def err(field: str | None, code: str, message: str) -> dict:
    return {"field": field, "code": code, "message": message}


def gid(type_name: str, ident: int) -> str:
    return encode_id(type_name, ident)


async def counts() -> dict[str, int]:
    async with session_scope() as s:
        return {
            name: await s.scalar(select(func.count()).select_from(model))
            for name, model in (("bookings", Booking), ("history", BookingStatusChange), ("outbox", OutboxMessage),
                                ("emails", Email), ("orders", ServiceRequest), ("escalations", Escalation))
        }


async def hold_over_http(client, token: str, b, start: datetime, **extra) -> dict:
    body = await gql(client, HOLD, {"input": {
        "providerId": gid("Provider", b.provider.id), "serviceId": gid("Service", b.service.id),
        "start": start.isoformat(), **extra,
    }}, token=token)
    return body


async def change(client, token: str, booking_id: str, status: str, note: str | None = None) -> dict:
    body = await gql(client, CHANGE, {"input": {"bookingId": booking_id, "status": status, "note": note}}, token=token)
    assert "errors" not in body, body
    return body["data"]["changeBookingStatus"]


# --- the journey ------------------------------------------------------------------------------------


async def test_the_journey_over_http_from_the_providers_plan_to_a_completed_and_reviewed_visit(api_client):
    # given a verified provider account in Douala, a catalogue service and a customer
    provider_user = await make_user("eko@example.com", role="provider", full_name="Eko Plumbing")
    provider = await make_provider(user_id=provider_user.id, display_name="Eko Plumbing")
    service, _ = await make_service(name="Leak repair", tiers=1, prices={"XAF": 15000})
    await make_user("ada@example.com", full_name="Ada Customer")
    ptoken = await login(api_client, "eko@example.com")
    ctoken = await login(api_client, "ada@example.com")
    provider_id, service_id = gid("Provider", provider.id), gid("Service", service.id)

    # when the provider sets up bookings: Douala time, Mondays 08:00-12:00, no notice, a year ahead, 60 minutes
    setup = [
        (SET_TIME_ZONE, "setProviderTimeZone", {"timeZone": "Africa/Douala"}),
        (SET_WEEKLY_PLAN, "setWeeklyPlan", {"ranges": [{"weekday": "MONDAY", "start": "08:00", "end": "12:00"}]}),
        (SET_RULES, "setBookingRules", {"minNoticeMinutes": 0, "bufferMinutes": 0, "horizonDays": 366}),
        (SET_SERVICE_SLOT, "setServiceSlot", {"serviceId": service_id, "slotMinutes": 60, "active": True}),
    ]
    for query, name, variables in setup:
        body = await gql(api_client, query, {"input": variables}, token=ptoken)
        assert body["data"][name]["errors"] == [], body
    # then its availability reads back as set
    mine = await gql(api_client, MY_AVAILABILITY, token=ptoken)
    assert mine["data"]["myAvailability"] == {
        "timeZone": "Africa/Douala", "weeklyPlan": [{"weekday": "MONDAY", "start": "08:00", "end": "12:00"}],
        "exceptions": [], "rules": {"minNoticeMinutes": 0, "bufferMinutes": 0, "horizonDays": 366},
        "services": [{"slotMinutes": 60, "active": True, "service": {"name": "Leak repair"}}],
    }

    # when the customer, in India, looks at Monday 1 March 2027
    body = await gql(api_client, SLOTS, {"p": provider_id, "s": service_id, "from": "2027-03-01T00:00:00Z",
                                         "to": "2027-03-02T00:00:00Z", "tz": "Asia/Kolkata"}, token=ctoken)
    # then the four slots of 08:00-12:00 in Douala (07:00-11:00 UTC) are shown at 12:30-16:30 in Kolkata
    assert body["data"]["availableSlots"] == [
        {"start": f"2027-03-01T{h:02d}:00:00+00:00", "end": f"2027-03-01T{h + 1:02d}:00:00+00:00",
         "localStart": f"2027-03-01T{h + 5:02d}:30:00+05:30", "localEnd": f"2027-03-01T{h + 6:02d}:30:00+05:30",
         "timeZone": "Asia/Kolkata"}
        for h in (7, 8, 9, 10)
    ]

    # when the customer holds the 09:00 (Douala) slot
    before = datetime.now(UTC)
    held = (await gql(api_client, HOLD, {"input": {"providerId": provider_id, "serviceId": service_id,
                                                   "start": "2027-03-01T13:30:00+05:30", "note": "Kitchen tap"}},
                      token=ctoken))["data"]["holdSlot"]
    after = datetime.now(UTC)
    # then it is held for ten minutes, and the customer may only let it go
    assert held["errors"] == []
    booking = held["booking"]
    booking_id = booking["id"]
    assert (booking["status"], booking["start"], booking["end"], booking["timeZone"], booking["localStart"]) == (
        "HELD", "2027-03-01T08:00:00+00:00", "2027-03-01T09:00:00+00:00", "Africa/Douala", "2027-03-01T09:00:00+01:00")
    hold_seconds = get_settings().booking_hold_seconds
    expires = datetime.fromisoformat(booking["holdExpiresAt"])
    assert before + timedelta(seconds=hold_seconds) <= expires <= after + timedelta(seconds=hold_seconds)
    assert booking["allowedTransitions"] == ["CANCELLED_BY_CUSTOMER"]
    assert booking["history"] == [{"from": None, "to": "HELD", "actorType": "CUSTOMER", "note": "Slot held"}]
    # and the slot is no longer offered
    body = await gql(api_client, SLOTS, {"p": provider_id, "s": service_id, "from": "2027-03-01T00:00:00Z",
                                         "to": "2027-03-02T00:00:00Z"})
    assert [s["localStart"] for s in body["data"]["availableSlots"]] == [
        "2027-03-01T08:00:00+01:00", "2027-03-01T10:00:00+01:00", "2027-03-01T11:00:00+01:00"]

    # when the customer checks out and pays on the sandbox's hosted page
    out = (await gql(api_client, CHECKOUT, {"input": {"bookingId": booking_id}}, token=ctoken))["data"]["checkoutBooking"]
    assert out["errors"] == []
    assert out["booking"] == {"status": "HELD"}
    assert out["feeBreakdown"] == {"total": {"amountMinor": 15000, "currency": "XAF"}, "lines": [
        {"kind": "PRICE", "label": "Service price", "amount": {"amountMinor": 15000, "currency": "XAF"}},
        {"kind": "TOTAL", "label": "Total", "amount": {"amountMinor": 15000, "currency": "XAF"}},
    ]}
    await pay(api_client, out["checkoutUrl"])
    # then the booking is paid: the provider may accept or decline it, the customer cancel it
    seen_by_provider = (await gql(api_client, STATUS_ONLY, {"id": booking_id}, token=ptoken))["data"]["booking"]
    assert seen_by_provider == {"status": "PAID", "allowedTransitions": ["ACCEPTED", "DECLINED"]}
    seen_by_customer = (await gql(api_client, STATUS_ONLY, {"id": booking_id}, token=ctoken))["data"]["booking"]
    assert seen_by_customer == {"status": "PAID", "allowedTransitions": ["CANCELLED_BY_CUSTOMER"]}

    # when the provider accepts, travels, arrives, works and completes
    for status in ("ACCEPTED", "EN_ROUTE", "ARRIVED", "IN_PROGRESS", "COMPLETED"):
        if status == "IN_PROGRESS":  # both parties accept the visit's contract first (tests/orders/test_contracts.py)
            await accept_both(booking_id=decode_id(booking_id, "Booking", field="id"))
        moved = await change(api_client, ptoken, booking_id, status)
        assert moved["errors"] == [] and moved["booking"]["status"] == status
    # then the customer sees the whole history and the receipt of the order that paid for it
    final = (await gql(api_client, BOOKING, {"id": booking_id}, token=ctoken))["data"]["booking"]
    assert (final["status"], final["statusLabel"], final["allowedTransitions"]) == (
        "COMPLETED", "Completed", ["DISPUTED", "REVIEWED"])
    assert [(h["from"], h["to"], h["actorType"]) for h in final["history"]] == [
        (None, "HELD", "CUSTOMER"), ("HELD", "PAID", "SYSTEM"), ("PAID", "ACCEPTED", "PROVIDER"),
        ("ACCEPTED", "EN_ROUTE", "PROVIDER"), ("EN_ROUTE", "ARRIVED", "PROVIDER"),
        ("ARRIVED", "IN_PROGRESS", "PROVIDER"), ("IN_PROGRESS", "COMPLETED", "PROVIDER"),
    ]
    assert (final["provider"], final["service"], final["tier"]) == (
        {"displayName": "Eko Plumbing"}, {"name": "Leak repair"}, {"name": "Basic"})
    assert final["order"] == {
        "status": "COMPLETED", "amount": {"amountMinor": 15000, "currency": "XAF"},
        "receipt": {
            "lines": [{"kind": "PRICE", "label": "Service price", "amount": {"amountMinor": 15000, "currency": "XAF"}},
                      {"kind": "TOTAL", "label": "Total", "amount": {"amountMinor": 15000, "currency": "XAF"}}],
            "total": {"amountMinor": 15000, "currency": "XAF"}, "netPaid": {"amountMinor": 15000, "currency": "XAF"},
        },
    }

    node = await gql(api_client, "query($id: ID!) { node(id: $id) { __typename ... on Booking { reference } } }",
                     {"id": booking_id}, token=ptoken)
    assert node["data"]["node"] == {"__typename": "Booking", "reference": booking["reference"]}

    # when the customer reviews the visit
    body = await gql(api_client, REVIEW, {"input": {"bookingId": booking_id, "rating": 5, "comment": "Dry again"}},
                     token=ctoken)
    # then it is reviewed
    assert body["data"]["reviewBooking"] == {
        "booking": {"status": "REVIEWED", "reviewRating": 5, "reviewComment": "Dry again"}, "errors": []}


# --- typed errors that change nothing -----------------------------------------------------------------


async def test_a_taken_slot_is_slot_unavailable_in_the_payload_and_nothing_is_written(api_client):
    # given Ada holds 09:00 on Monday
    b = await bookable_provider()
    await hold(b, await customer(), NINE)
    await customer("bob@example.com")
    token = await login(api_client, "bob@example.com")
    before = await counts()
    # when Bob asks for the same slot
    body = await hold_over_http(api_client, token, b, NINE)
    # then the exclusion constraint's refusal comes back as a typed payload error
    assert body["data"]["holdSlot"] == {"booking": None, "errors": [
        err("start", "SLOT_UNAVAILABLE", "This time is no longer available: choose another slot")]}
    # and nothing was written
    assert await counts() == before


async def test_an_invalid_transition_is_a_typed_error_and_changes_nothing(api_client):
    # given a held booking
    b = await bookable_provider()
    ada = await customer()
    held = await hold(b, ada, NINE)
    ptoken = await login(api_client, b.provider_user.email)
    ctoken = await login(api_client, "ada@example.com")
    before = await counts()
    # when its provider accepts it before it is paid, and its customer marks it completed
    by_provider = await change(api_client, ptoken, gid("Booking", held.id), "ACCEPTED")
    by_customer = await change(api_client, ctoken, gid("Booking", held.id), "COMPLETED", note="done?")
    # then both are refused with INVALID_TRANSITION
    assert by_provider == {"booking": None, "errors": [
        err("status", "INVALID_TRANSITION", "A provider cannot move a booking from held to accepted")]}
    assert by_customer == {"booking": None, "errors": [
        err("status", "INVALID_TRANSITION", "A customer cannot move a booking from held to completed")]}
    # and nothing changed: status, history, events, emails
    assert await status_of(held.id) == "held"
    assert await counts() == before


async def test_checkout_errors_come_back_typed_and_hold_errors_name_their_field(api_client):
    # given a held booking and a provider whose service has two tiers
    b = await bookable_provider(service=await make_service(name="Boiler service", tiers=2))
    await customer()
    token = await login(api_client, "ada@example.com")
    # when Ada holds without choosing a tier, at a time that is no slot, and with an unknown id
    no_tier = await hold_over_http(api_client, token, b, NINE)
    off_plan = await hold_over_http(api_client, token, b, NINE + timedelta(minutes=30), tierId=gid("ServiceTier", b.tier.id))
    bad_id = await gql(api_client, HOLD, {"input": {"providerId": "nope", "serviceId": gid("Service", b.service.id),
                                                    "start": NINE.isoformat()}}, token=token)
    # then each is a payload error naming the input field, and nothing was written
    assert no_tier["data"]["holdSlot"]["errors"][0]["code"] == "TIER_REQUIRED"
    assert off_plan["data"]["holdSlot"]["errors"] == [
        err("start", "SLOT_NOT_OFFERED", "This provider offers no slot starting at that time")]
    assert bad_id["data"]["holdSlot"]["errors"] == [err("providerId", "INVALID_ID", "Not a Provider id")]
    assert (await counts())["bookings"] == 0


async def test_an_unknown_time_zone_is_a_typed_error_and_slots_default_to_the_providers_zone(api_client):
    # given a bookable provider in Douala
    b = await bookable_provider(hours=(8, 10))
    variables = {"p": gid("Provider", b.provider.id), "s": gid("Service", b.service.id),
                 "from": "2027-03-01T00:00:00Z", "to": "2027-03-02T00:00:00Z"}
    # when a client asks in a zone that does not exist
    body = await gql(api_client, SLOTS, {**variables, "tz": "Mars/Olympus_Mons"})
    # then it is a top-level error with the domain's code and field, as geosearch reports a bad radius
    assert body["data"] is None
    assert [(e["message"], e["extensions"]) for e in body["errors"]] == [
        ("Unknown time zone: give an IANA name such as Africa/Douala", {"code": "INVALID_TIME_ZONE", "field": "timeZone"})]
    # when it asks without a zone, the provider's is used
    body = await gql(api_client, SLOTS, variables)
    assert [(s["localStart"], s["timeZone"]) for s in body["data"]["availableSlots"]] == [
        ("2027-03-01T08:00:00+01:00", "Africa/Douala"), ("2027-03-01T09:00:00+01:00", "Africa/Douala")]


# --- authorisation ------------------------------------------------------------------------------------


async def test_only_logged_in_customers_hold_slots(api_client):
    # given a bookable provider and an admin
    b = await bookable_provider()
    await make_user("ops@example.com", role="admin")
    admin = await login(api_client, "ops@example.com")
    # when a guest and an admin try to hold a slot
    guest = await hold_over_http(api_client, None, b, NINE)
    operator = await hold_over_http(api_client, admin, b, NINE)
    # then the guest must log in, the admin may not book, and nothing was written
    assert error_codes(guest) == ["UNAUTHENTICATED"] and guest["data"] is None
    assert error_codes(operator) == ["FORBIDDEN"] and operator["data"] is None
    assert (await counts())["bookings"] == 0


async def test_a_stranger_neither_sees_nor_moves_nor_pays_someone_elses_booking(api_client):
    # given Ada's held booking, Bob (another customer) and another provider
    b = await bookable_provider()
    other = await bookable_provider("Other Plumbing", latitude=4.06)
    held = await hold(b, await customer(), NINE)
    await customer("bob@example.com")
    bob = await login(api_client, "bob@example.com")
    other_provider = await login(api_client, other.provider_user.email)
    booking_id = gid("Booking", held.id)
    before = await counts()
    # when they look at it, by id and as a node
    for token in (None, bob, other_provider):
        assert (await gql(api_client, STATUS_ONLY, {"id": booking_id}, token=token))["data"] == {"booking": None}
        node = await gql(api_client, "query($id: ID!) { node(id: $id) { id } }", {"id": booking_id}, token=token)
        assert node["data"] == {"node": None}
    # when they try to cancel it, pay for it, or it is listed
    cancel = await gql(api_client, CHANGE, {"input": {"bookingId": booking_id, "status": "CANCELLED_BY_CUSTOMER"}},
                       token=bob)
    pay_it = await gql(api_client, CHECKOUT, {"input": {"bookingId": booking_id}}, token=bob)
    accept = await gql(api_client, CHANGE, {"input": {"bookingId": booking_id, "status": "CANCELLED_BY_PROVIDER"}},
                       token=other_provider)
    listed = await gql(api_client, MY_BOOKINGS, {"first": 10}, token=bob)
    # then each is FORBIDDEN, Bob's list is empty, and nothing changed
    assert error_codes(cancel) == error_codes(pay_it) == error_codes(accept) == ["FORBIDDEN"]
    assert listed["data"]["myBookings"]["edges"] == []
    assert await status_of(held.id) == "held"
    assert await counts() == before
    # and anonymous callers cannot list bookings at all
    assert error_codes(await gql(api_client, MY_BOOKINGS, {"first": 10})) == ["UNAUTHENTICATED"]


async def test_only_a_provider_account_edits_its_own_availability(api_client):
    # given a bookable provider (open 08:00-18:00 every day), a customer and an admin
    b = await bookable_provider()
    await customer()
    await make_user("ops@example.com", role="admin")
    plan = {"input": {"ranges": [{"weekday": "SUNDAY", "start": "10:00", "end": "11:00"}]}}
    # when a guest, a customer and an admin try to replace a plan or read "their" availability
    refusals = [
        (await gql(api_client, SET_WEEKLY_PLAN, plan, token=token), await gql(api_client, MY_AVAILABILITY, token=token))
        for token in (None, await login(api_client, "ada@example.com"), await login(api_client, "ops@example.com"))
    ]
    # then the guest must log in, the others are refused
    assert [(error_codes(w), error_codes(r)) for w, r in refusals] == [
        (["UNAUTHENTICATED"], ["UNAUTHENTICATED"]), (["FORBIDDEN"], ["FORBIDDEN"]), (["FORBIDDEN"], ["FORBIDDEN"])]
    # and the provider's plan is untouched
    mine = await gql(api_client, MY_AVAILABILITY, token=await login(api_client, b.provider_user.email))
    assert mine["data"]["myAvailability"]["weeklyPlan"] == [
        {"weekday": day, "start": "08:00", "end": "18:00"}
        for day in ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")]


async def test_weekly_plan_times_are_hh_mm_with_24_00_only_as_an_end_and_bad_input_writes_nothing(api_client):
    # given a bookable provider
    b = await bookable_provider()
    token = await login(api_client, b.provider_user.email)

    async def set_plan(*ranges: tuple[str, str, str]) -> dict:
        body = await gql(api_client, SET_WEEKLY_PLAN, {"input": {"ranges": [
            {"weekday": w, "start": s, "end": e} for w, s, e in ranges]}}, token=token)
        return body["data"]["setWeeklyPlan"]

    # when times are malformed or ranges of one day overlap
    bad = [
        await set_plan(("MONDAY", "24:00", "24:00")),
        await set_plan(("MONDAY", "08:00", "12:00"), ("TUESDAY", "9:00", "25:00")),
        await set_plan(("MONDAY", "08:00", "12:00"), ("MONDAY", "11:30", "13:00")),
    ]
    # then each comes back with its field and nothing was written
    assert bad == [
        {"availability": None, "errors": [err("ranges.0.start", "INVALID_RANGE", "Give a time as HH:MM, 00:00 to 23:59")]},
        {"availability": None, "errors": [err("ranges.1.start", "INVALID_RANGE", "Give a time as HH:MM, 00:00 to 23:59")]},
        {"availability": None, "errors": [err("ranges.1", "OVERLAPPING_RANGES", "Ranges of the same day must not overlap")]},
    ]
    assert len((await gql(api_client, MY_AVAILABILITY, token=token))["data"]["myAvailability"]["weeklyPlan"]) == 7
    # when a day runs to midnight and a date has extra hours
    good = await set_plan(("SATURDAY", "20:00", "24:00"), ("MONDAY", "08:00", "12:00"), ("MONDAY", "13:00", "17:30"))
    soon = (datetime.now(UTC).astimezone(ZoneInfo("Africa/Douala")) + timedelta(days=10)).date().isoformat()
    listed = await gql(api_client, SET_DATE_EXCEPTION, {"input": {"date": soon, "ranges": [
        {"start": "09:00", "end": "10:00"}, {"start": "06:00", "end": "07:00"}]}}, token=token)
    extra = await gql(api_client, SET_DATE_EXCEPTION, {"input": {"date": "2027-03-02", "ranges": [
        {"start": "06:00", "end": "07:00"}]}}, token=token)
    day_off = await gql(api_client, SET_DATE_EXCEPTION, {"input": {"date": "2027-03-03", "ranges": []}}, token=token)
    # then the plan is stored, sorted, and 24:00 reads back as the end of the day
    assert good == {"errors": [], "availability": {"weeklyPlan": [
        {"weekday": "MONDAY", "start": "08:00", "end": "12:00"}, {"weekday": "MONDAY", "start": "13:00", "end": "17:30"},
        {"weekday": "SATURDAY", "start": "20:00", "end": "24:00"}]}}
    # and exceptions are listed for the next 60 days (March 2027 is further away)
    near = {"date": soon, "dayOff": False, "ranges": [{"start": "06:00", "end": "07:00"}, {"start": "09:00", "end": "10:00"}]}
    assert listed["data"]["setDateException"] == {"errors": [], "availability": {"exceptions": [near]}}
    assert extra["data"]["setDateException"] == {"errors": [], "availability": {"exceptions": [near]}}
    assert day_off["data"]["setDateException"]["errors"] == []
    # and the slots follow the exception on Tuesday 2 March (06:00-07:00 Douala only)
    body = await gql(api_client, SLOTS, {"p": gid("Provider", b.provider.id), "s": gid("Service", b.service.id),
                                         "from": "2027-03-02T00:00:00Z", "to": "2027-03-04T00:00:00Z"})
    assert [s["localStart"] for s in body["data"]["availableSlots"]] == ["2027-03-02T06:00:00+01:00"]


async def test_escalations_and_appliance_models_are_for_admins_only(api_client):
    # given an open escalation on a booking, a customer, a provider and an admin
    b = await bookable_provider()
    held = await hold(b, await customer(), NINE)
    async with session_scope() as s:
        opened = await escalation.escalate(s, "customer_no_show", booking=await s.get(Booking, held.id), note="Nobody home")
    await make_user("ops@example.com", role="admin")
    ctoken = await login(api_client, "ada@example.com")
    ptoken = await login(api_client, b.provider_user.email)
    admin = await login(api_client, "ops@example.com")
    listing = "query($open: Boolean) { escalations(openOnly: $open) { edges { node { id kind subject note resolvedAt booking { reference } } } } }"
    resolve = ("mutation($input: ResolveEscalationInput!) { resolveEscalation(input: $input) { escalation { kind resolvedAt }"
               " errors { field code message } } }")
    add_model = ("mutation($input: AddApplianceModelInput!) { addApplianceModel(input: $input) { applianceModel { brand model }"
                 " errors { field code message } } }")
    escalation_id = gid("Escalation", opened.id)
    # when a customer and a provider try the admin fields
    refused = [
        await gql(api_client, listing, {"open": True}, token=ctoken),
        await gql(api_client, resolve, {"input": {"escalationId": escalation_id}}, token=ptoken),
        await gql(api_client, add_model, {"input": {"category": "plumbing", "brand": "Grohe", "model": "Eurosmart"}},
                  token=ctoken),
        await gql(api_client, "query($id: ID!) { node(id: $id) { id } }", {"id": escalation_id}, token=ptoken),
    ]
    # then they are refused (the node is simply null) and the escalation stays open
    assert [error_codes(r) for r in refused] == [["FORBIDDEN"], ["FORBIDDEN"], ["FORBIDDEN"], []]
    assert refused[3]["data"] == {"node": None}
    async with session_scope() as s:
        assert (await s.get(Escalation, opened.id)).resolved_at is None
    # when the admin lists and resolves it
    body = await gql(api_client, listing, {"open": True}, token=admin)
    assert body["data"]["escalations"]["edges"] == [{"node": {
        "id": escalation_id, "kind": "CUSTOMER_NO_SHOW", "subject": f"booking:{held.id}", "note": "Nobody home",
        "resolvedAt": None, "booking": {"reference": held.reference}}}]
    resolved = await gql(api_client, resolve, {"input": {"escalationId": escalation_id}}, token=admin)
    # then it is resolved and no longer listed as open
    assert resolved["data"]["resolveEscalation"]["errors"] == []
    assert resolved["data"]["resolveEscalation"]["escalation"]["resolvedAt"] is not None
    assert (await gql(api_client, listing, {"open": True}, token=admin))["data"]["escalations"]["edges"] == []
    assert len((await gql(api_client, listing, {"open": False}, token=admin))["data"]["escalations"]["edges"]) == 1


# --- reading ------------------------------------------------------------------------------------------


def test_the_booking_api_names_clients_rely_on():
    gql_schema = schema.schema._schema

    def args(type_name: str, field: str) -> dict[str, str]:
        return {n: str(a.type) for n, a in gql_schema.get_type(type_name).fields[field].args.items()}

    assert args("Query", "availableSlots") == {
        "providerId": "ID!", "serviceId": "ID!", "from": "DateTime!", "to": "DateTime!", "timeZone": "String"}
    assert args("Query", "providersAvailable") == {
        "near": "GeoPointInput!", "radiusKm": "Float!", "from": "DateTime!", "to": "DateTime!", "category": "String",
        "serviceId": "ID", "first": "Int", "timeZone": "String"}
    assert args("Query", "myBookings") == {"status": "BookingStatus", "first": "Int", "after": "String"}
    assert args("Query", "escalations") == {"openOnly": "Boolean!", "kind": "EscalationKind", "first": "Int",
                                            "after": "String"}
    assert args("Subscription", "bookingStatusChanged") == {"bookingId": "ID!", "after": "ID"}
    assert str(gql_schema.subscription_type.fields["bookingStatusChanged"].type) == "BookingStatusEvent!"
    for name in ("holdSlot", "checkoutBooking", "changeBookingStatus", "bookFollowUp", "openBookingDispute",
                 "reviewBooking", "takeOverBooking", "setWeeklyPlan", "setDateException", "clearDateException",
                 "setBookingRules", "setServiceSlot", "setProviderTimeZone", "createTicket", "cancelTicket",
                 "resolveEscalation", "addApplianceModel"):
        assert list(args("Mutation", name)) == ["input"], name
    node = gql_schema.get_type("Node")
    for name in ("Booking", "Ticket", "Escalation"):
        assert node in gql_schema.get_type(name).interfaces, name
    assert {n: str(f.type) for n, f in gql_schema.get_type("BookableSlot").fields.items()} == {
        "start": "DateTime!", "end": "DateTime!", "localStart": "String!", "localEnd": "String!", "timeZone": "String!"}


async def test_the_state_machine_is_public_data_clients_can_draw(api_client):
    # when an anonymous client asks for the transition table
    body = await gql(api_client, "{ bookingStateMachine { from to actors description } }")
    rows = body["data"]["bookingStateMachine"]
    # then it has every row of the domain's table, with its actors and description, in the table's order
    assert [(r["from"], r["to"]) for r in rows] == [(f.upper(), t.upper()) for f, t in booking_domain.TRANSITIONS]
    assert rows[0] == {"from": "HELD", "to": "PAID", "actors": ["SYSTEM"], "description": "payment captured within the hold"}
    completed = next(r for r in rows if (r["from"], r["to"]) == ("IN_PROGRESS", "COMPLETED"))
    assert completed["actors"] == ["PROVIDER", "ADMIN", "SYSTEM"]
    assert all(r["actors"] and r["description"] for r in rows)


async def test_providers_available_lists_only_providers_free_in_the_window_with_their_first_slot(api_client):
    # given two providers in Douala offering the same service: one is off on Monday 1 March, one is not
    service = await make_service(name="Leak repair", tiers=1)
    free = await bookable_provider("Free Plumbing", service=service, hours=(10, 12))
    await bookable_provider("Busy Plumbing", latitude=4.055, service=service)
    busy_token = await login(api_client, "busy.plumbing@example.com")
    body = await gql(api_client, SET_DATE_EXCEPTION, {"input": {"date": "2027-03-01", "ranges": []}}, token=busy_token)
    assert body["data"]["setDateException"]["errors"] == []
    # when a customer in India searches near Douala for Monday
    body = await gql(api_client, PROVIDERS_AVAILABLE, {
        "near": {"latitude": 4.0483, "longitude": 9.7043}, "from": "2027-03-01T00:00:00Z",
        "to": "2027-03-02T00:00:00Z", "tz": "Asia/Kolkata"})
    # then only the free provider is listed, with its first slot (10:00 in Douala) shown in Kolkata
    assert body["data"]["providersAvailable"] == [{
        "provider": {"displayName": "Free Plumbing"}, "serviceId": gid("Service", free.service.id),
        "firstSlot": {"start": "2027-03-01T09:00:00+00:00", "localStart": "2027-03-01T14:30:00+05:30",
                      "timeZone": "Asia/Kolkata"},
    }]


async def test_my_bookings_pages_by_cursor_and_takes_the_same_statements_for_2_and_10_bookings(api_client):
    # given a customer with 2 paid bookings at one provider, and another with 10 at another
    few = await bookable_provider()
    many = await bookable_provider("Other Plumbing", latitude=4.06)
    ada, bob = await customer(), await customer("bob@example.com")
    for i in range(2):
        await checkout_and_pay((await hold(few, ada, NINE + timedelta(hours=i))).id, ada)
    made = []
    for i in range(10):
        made.append(await hold(many, bob, NINE + timedelta(hours=i // 2, days=i % 2)))
        await checkout_and_pay(made[-1].id, bob)
    ada_token, bob_token = await login(api_client, "ada@example.com"), await login(api_client, "bob@example.com")
    # when each lists its bookings with their provider, service, tier, history, order and allowed transitions
    with count_statements() as statements:
        page_of_2 = await gql(api_client, MY_BOOKINGS, {"first": 20}, token=ada_token)
    two = len(statements)
    with count_statements() as statements:
        page_of_10 = await gql(api_client, MY_BOOKINGS, {"first": 20}, token=bob_token)
    ten = len(statements)
    # then every field is batched, the same 8 statements whatever the page size: the caller's account, the
    # page, providers, services with tiers and prices (3), histories, orders (a customer's allowed
    # transitions need no statement)
    assert "errors" not in page_of_2 and "errors" not in page_of_10
    assert len(page_of_2["data"]["myBookings"]["edges"]) == 2 and len(page_of_10["data"]["myBookings"]["edges"]) == 10
    assert (two, ten) == (8, 8), statements
    node = page_of_10["data"]["myBookings"]["edges"][0]["node"]
    assert node["reference"] == made[-1].reference
    assert (node["status"], node["allowedTransitions"], node["provider"], node["service"]["name"], node["tier"]) == (
        "PAID", ["CANCELLED_BY_CUSTOMER"], {"displayName": "Other Plumbing"}, many.service.name, {"name": "Basic"})
    assert node["history"] == [{"to": "HELD", "actorType": "CUSTOMER"}, {"to": "PAID", "actorType": "SYSTEM"}]
    assert node["order"]["status"] == "PAYMENT_CONFIRMED"
    # when Bob pages through 4 at a time
    seen: list[str] = []
    after = None
    while True:
        page = (await gql(api_client, MY_BOOKINGS, {"first": 4, "after": after}, token=bob_token))["data"]["myBookings"]
        seen += [e["node"]["reference"] for e in page["edges"]]
        assert page["pageInfo"]["hasPreviousPage"] == (after is not None)
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    # then he sees each booking once, newest first
    assert seen == [b.reference for b in reversed(made)]
    # and a status filter keeps only matching ones
    held_only = await gql(api_client, MY_BOOKINGS, {"first": 20, "status": "HELD"}, token=bob_token)
    assert held_only["data"]["myBookings"]["edges"] == []


# --- follow-ups and take-overs ------------------------------------------------------------------------


async def test_a_provider_books_a_follow_up_and_an_admin_gives_a_visit_to_another_provider(api_client):
    # given a paid, accepted visit in progress, another provider nearby and an admin
    b = await bookable_provider()
    other = await bookable_provider("Other Plumbing", latitude=4.06, service=(b.service, [b.tier]))
    ada = await customer()
    visit = await hold(b, ada, NINE)
    await checkout_and_pay(visit.id, ada)
    await make_user("ops@example.com", role="admin")
    ptoken, admin = await login(api_client, b.provider_user.email), await login(api_client, "ops@example.com")
    visit_id = gid("Booking", visit.id)
    for status in ("ACCEPTED", "IN_PROGRESS"):
        if status == "IN_PROGRESS":  # both parties accept the visit's contract first (tests/orders/test_contracts.py)
            await accept_both(booking_id=visit.id)
        assert (await change(api_client, ptoken, visit_id, status))["errors"] == []
    # when the provider books another visit the next day at 09:00
    body = await gql(api_client, """
        mutation($input: BookFollowUpInput!) { bookFollowUp(input: $input) {
          booking { status } followUp { id status start parentBooking { reference } order { reference } }
          errors { field code message } } }""",
        {"input": {"bookingId": visit_id, "start": (NINE + timedelta(days=1)).isoformat(), "note": "Part ordered"}},
        token=ptoken)
    # then the first visit needs a follow-up and the new one is accepted on the same order
    out = body["data"]["bookFollowUp"]
    assert out["errors"] == [] and out["booking"] == {"status": "NEEDS_FOLLOW_UP"}
    follow_up = out["followUp"]
    async with session_scope() as s:
        order_reference = await s.scalar(select(ServiceRequest.reference).join(
            Booking, Booking.service_request_id == ServiceRequest.id).where(Booking.id == visit.id))
    assert (follow_up["status"], follow_up["start"], follow_up["parentBooking"], follow_up["order"]) == (
        "ACCEPTED", "2027-03-02T08:00:00+00:00", {"reference": visit.reference}, {"reference": order_reference})
    # when the provider cannot make the follow-up and an admin gives it to the other provider
    assert (await change(api_client, ptoken, follow_up["id"], "CANNOT_MAKE_IT"))["errors"] == []
    taken = await gql(api_client, """
        mutation($input: TakeOverBookingInput!) { takeOverBooking(input: $input) {
          booking { status provider { displayName } } errors { field code message } } }""",
        {"input": {"bookingId": follow_up["id"], "providerId": gid("Provider", other.provider.id)}}, token=admin)
    # then the other provider has it, and the first provider no longer sees it
    assert taken["data"]["takeOverBooking"] == {
        "booking": {"status": "ACCEPTED", "provider": {"displayName": "Other Plumbing"}}, "errors": []}
    assert (await gql(api_client, STATUS_ONLY, {"id": follow_up["id"]}, token=ptoken))["data"] == {"booking": None}
    other_token = await login(api_client, other.provider_user.email)
    assert (await gql(api_client, STATUS_ONLY, {"id": follow_up["id"]}, token=other_token))["data"]["booking"] == {
        "status": "ACCEPTED", "allowedTransitions": ["EN_ROUTE", "IN_PROGRESS", "CANNOT_MAKE_IT", "CANCELLED_BY_PROVIDER"]}


# --- the live subscription ----------------------------------------------------------------------------

SUBSCRIBE = """
subscription($id: ID!) {
  bookingStatusChanged(bookingId: $id) { bookingId reference status previousStatus statusLabel actorType note }
}
"""


def ws_context(token: str | None) -> Context:
    """A context as ``on_ws_connect`` builds it from ``connection_init``'s token."""
    ctx = Context()
    ctx.authenticate(token)
    return ctx


async def subscribers(channel: str) -> int:
    client = aioredis.from_url(get_settings().redis_url)
    try:
        return dict(await client.pubsub_numsub(channel)).get(channel.encode(), 0)
    finally:
        await client.aclose()


async def first_result(token: str | None, booking_id: str):
    stream = await schema.schema.subscribe(SUBSCRIBE, variable_values={"id": booking_id}, context_value=ws_context(token))
    try:
        return await anext(aiter(stream))
    finally:
        await stream.aclose()


async def test_the_bookings_people_receive_its_status_changes_live_and_nobody_else_may_subscribe(api_client):
    # given a paid booking, its provider, a stranger, and the live bus
    b = await bookable_provider()
    ada = await customer()
    visit = await hold(b, ada, NINE)
    await checkout_and_pay(visit.id, ada)
    await customer("bob@example.com")
    ctoken, ptoken = await login(api_client, "ada@example.com"), await login(api_client, b.provider_user.email)
    stranger = await login(api_client, "bob@example.com")
    booking_id = gid("Booking", visit.id)
    await outbox.relay()  # the events of the hold and the payment are out before anyone subscribes
    await live.bus.connect()
    stream = None
    try:
        # when a stranger or a guest subscribes
        refused = await first_result(stranger, booking_id)
        anonymous = await first_result(None, booking_id)
        # then they are refused
        assert [(e.message, e.extensions) for e in refused.errors] == [
            ("Only the booking's customer, its provider or an operator can follow it", {"code": "FORBIDDEN"})]
        assert [e.extensions for e in anonymous.errors] == [{"code": "UNAUTHENTICATED"}]
        # when the customer subscribes and the provider accepts the booking
        stream = await schema.schema.subscribe(SUBSCRIBE, variable_values={"id": booking_id},
                                               context_value=ws_context(ctoken))
        received = asyncio.create_task(anext(aiter(stream)))
        channel = live.booking_channel(visit.id)
        for _ in range(200):  # until the subscription has reached Redis
            if await subscribers(channel):
                break
            await asyncio.sleep(0.05)
        assert await subscribers(channel) == 1
        assert (await change(api_client, ptoken, booking_id, "ACCEPTED", note="See you at nine"))["errors"] == []
        event = await asyncio.wait_for(received, 10)
        # then the customer receives the change
        assert event.errors is None
        assert event.data == {"bookingStatusChanged": {
            "bookingId": booking_id, "reference": visit.reference, "status": "ACCEPTED", "previousStatus": "PAID",
            "statusLabel": "Confirmed by the provider", "actorType": "PROVIDER", "note": "See you at nine"}}
    finally:
        if stream is not None:
            await stream.aclose()
        await live.bus.disconnect()


# --- tickets ------------------------------------------------------------------------------------------

CREATE_TICKET = """
mutation($input: CreateTicketInput!) {
  createTicket(input: $input) {
    ticket { id reference status category appliance brand model modelUnlisted urgent address
             preferredWindows { start end } location { latitude longitude } service { name } }
    errors { field code message }
  }
}
"""
SUGGEST = """
query($t: ID!, $tz: String) {
  ticketSlotSuggestions(ticketId: $t, timeZone: $tz) {
    matchedPreferred slots { provider { displayName } serviceId slot { start localStart timeZone } }
  }
}
"""
TICKET = """
query($id: ID!) { ticket(id: $id) { reference status modelUnlisted visits { reference status } } }
"""


async def test_a_customer_opens_an_urgent_ticket_is_offered_slots_in_its_window_and_pays_the_surcharge(api_client):
    # given a bookable plumber in Douala (08:00-18:00), a customer, another customer and an admin
    b = await bookable_provider()
    await customer()
    await customer("bob@example.com")
    await make_user("ops@example.com", role="admin")
    ctoken, bob, admin = [await login(api_client, e) for e in ("ada@example.com", "bob@example.com", "ops@example.com")]
    ptoken = await login(api_client, b.provider_user.email)
    # when Ada opens an urgent ticket for a tap whose model is not listed, free Monday 14:00-16:00 in Douala
    body = await gql(api_client, CREATE_TICKET, {"input": {
        "category": "plumbing", "serviceId": gid("Service", b.service.id), "appliance": "Kitchen tap",
        "brand": "Grohe", "model": "Eurosmart 2", "description": "Drips all night", "urgent": True,
        "preferredWindows": [{"start": "2027-03-01T14:00:00+01:00", "end": "2027-03-01T16:00:00+01:00"}],
        "location": {"latitude": 4.0483, "longitude": 9.7043}, "address": "Rue 1.234, Akwa"}}, token=ctoken)
    # then the ticket is open, kept as typed and flagged for an admin
    out = body["data"]["createTicket"]
    assert out["errors"] == []
    ticket = out["ticket"]
    assert {k: v for k, v in ticket.items() if k not in ("id", "reference")} == {
        "status": "OPEN", "category": "plumbing", "appliance": "Kitchen tap", "brand": "Grohe", "model": "Eurosmart 2",
        "modelUnlisted": True, "urgent": True, "address": "Rue 1.234, Akwa",
        "preferredWindows": [{"start": "2027-03-01T13:00:00+00:00", "end": "2027-03-01T15:00:00+00:00"}],
        "location": {"latitude": 4.0483, "longitude": 9.7043}, "service": {"name": b.service.name}}
    # when she asks for slots, shown in Kolkata
    body = await gql(api_client, SUGGEST, {"t": ticket["id"], "tz": "Asia/Kolkata"}, token=ctoken)
    # then the plumber's first free slot inside her window is offered
    assert body["data"]["ticketSlotSuggestions"] == {"matchedPreferred": True, "slots": [{
        "provider": {"displayName": "Eko Plumbing"}, "serviceId": gid("Service", b.service.id),
        "slot": {"start": "2027-03-01T13:00:00+00:00", "localStart": "2027-03-01T18:30:00+05:30",
                 "timeZone": "Asia/Kolkata"}}]}
    # when she holds it for the ticket and checks out
    held = await hold_over_http(api_client, ctoken, b, datetime(2027, 3, 1, 13, tzinfo=UTC), ticketId=ticket["id"])
    assert held["data"]["holdSlot"]["errors"] == []
    booking_id = held["data"]["holdSlot"]["booking"]["id"]
    out = (await gql(api_client, CHECKOUT, {"input": {"bookingId": booking_id}}, token=ctoken))["data"]["checkoutBooking"]
    # then the urgent surcharge (25 %) is on what she pays
    assert out["feeBreakdown"] == {"total": {"amountMinor": 12500, "currency": "XAF"}, "lines": [
        {"kind": "PRICE", "label": "Service price", "amount": {"amountMinor": 10000, "currency": "XAF"}},
        {"kind": "URGENT_SURCHARGE", "label": "Urgent visit surcharge", "amount": {"amountMinor": 2500, "currency": "XAF"}},
        {"kind": "TOTAL", "label": "Total", "amount": {"amountMinor": 12500, "currency": "XAF"}},
    ]}
    # and the ticket shows its visit to Ada and to the plumber, and to nobody else
    expected = {"reference": ticket["reference"], "status": "OPEN", "modelUnlisted": True, "visits": [
        {"reference": held["data"]["holdSlot"]["booking"]["reference"], "status": "HELD"}]}
    assert (await gql(api_client, TICKET, {"id": ticket["id"]}, token=ctoken))["data"]["ticket"] == expected
    assert (await gql(api_client, TICKET, {"id": ticket["id"]}, token=ptoken))["data"]["ticket"] == expected
    assert (await gql(api_client, TICKET, {"id": ticket["id"]}, token=bob))["data"] == {"ticket": None}
    listed = await gql(api_client, "{ myTickets(first: 5) { edges { node { reference } } } }", token=ctoken)
    assert listed["data"]["myTickets"]["edges"] == [{"node": {"reference": ticket["reference"]}}]
    assert (await gql(api_client, "{ myTickets(first: 5) { edges { node { reference } } } }", token=bob))["data"] == {
        "myTickets": {"edges": []}}
    # when Ada tries to cancel the ticket while its visit is held, and Bob tries at all
    cancel = ("mutation($input: CancelTicketInput!) { cancelTicket(input: $input) { ticket { status } "
              "errors { field code message } } }")
    blocked = await gql(api_client, cancel, {"input": {"ticketId": ticket["id"]}}, token=ctoken)
    stranger = await gql(api_client, cancel, {"input": {"ticketId": ticket["id"]}}, token=bob)
    # then hers is a typed error, his is refused, and the ticket stays open
    assert blocked["data"]["cancelTicket"] == {"ticket": None, "errors": [err(
        "ticketId", "TICKET_HAS_OPEN_VISIT", "This ticket has a visit in progress or booked: cancel the visit first")]}
    assert error_codes(stranger) == ["FORBIDDEN"]
    # when an admin adds the model to the list
    added = await gql(api_client, """mutation($input: AddApplianceModelInput!) { addApplianceModel(input: $input) {
        applianceModel { category brand model } errors { field code message } } }""",
        {"input": {"category": "plumbing", "brand": "GROHE", "model": "eurosmart 2"}}, token=admin)
    # then the ticket is no longer flagged and its escalation is resolved
    assert added["data"]["addApplianceModel"] == {
        "applianceModel": {"category": "plumbing", "brand": "GROHE", "model": "eurosmart 2"}, "errors": []}
    assert (await gql(api_client, TICKET, {"id": ticket["id"]}, token=ctoken))["data"]["ticket"]["modelUnlisted"] is False
    open_ones = await gql(api_client, "{ escalations { edges { node { kind } } } }", token=admin)
    assert open_ones["data"]["escalations"]["edges"] == []


async def test_ticket_input_problems_come_back_as_typed_errors_and_nothing_is_written(api_client):
    # given a catalogue with plumbing only and a customer
    await bookable_provider()
    await customer()
    token = await login(api_client, "ada@example.com")
    base = {"category": "plumbing", "appliance": "Tap", "location": {"latitude": 4.05, "longitude": 9.70}}
    # when the category is unknown, a window ends before it starts, or a guest tries
    unknown = await gql(api_client, CREATE_TICKET, {"input": {**base, "category": "astrology"}}, token=token)
    backwards = await gql(api_client, CREATE_TICKET, {"input": {**base, "preferredWindows": [
        {"start": "2027-03-01T16:00:00+01:00", "end": "2027-03-01T14:00:00+01:00"}]}}, token=token)
    guest = await gql(api_client, CREATE_TICKET, {"input": base})
    # then each is refused with its code and field
    assert [e["code"] for e in unknown["data"]["createTicket"]["errors"]] == ["UNKNOWN_CATEGORY"]
    assert [(e["field"], e["code"]) for e in backwards["data"]["createTicket"]["errors"]] == [
        ("preferredWindows.0.end", "INVALID_WINDOW")]
    assert error_codes(guest) == ["UNAUTHENTICATED"]
    # and no ticket was written
    listed = await gql(api_client, "{ myTickets { edges { node { reference } } } }", token=token)
    assert listed["data"]["myTickets"]["edges"] == []


async def test_a_substitute_sees_the_offer_and_the_first_to_accept_takes_the_visit(api_client):
    # given an accepted visit of Eko's, and Ola, a qualified plumber nearby who is free then
    b = await bookable_provider()
    ola = await bookable_provider("Ola Plumbing", latitude=4.06, service=(b.service, [b.tier]))
    ada = await customer()
    visit = await hold(b, ada, NINE)
    await checkout_and_pay(visit.id, ada)
    eko, ola_token = await login(api_client, b.provider_user.email), await login(api_client, ola.provider_user.email)
    visit_id = gid("Booking", visit.id)
    assert (await change(api_client, eko, visit_id, "ACCEPTED"))["errors"] == []
    # when Eko reports he cannot make it
    assert (await change(api_client, eko, visit_id, "CANNOT_MAKE_IT", note="Van broke down"))["errors"] == []
    # then Ola is offered the visit
    offers = await gql(api_client, "{ mySubstitutionOffers { status bookingId bookingReference slot { localStart } "
                                   "service { name } } }", token=ola_token)
    assert offers["data"]["mySubstitutionOffers"] == [{
        "status": "OFFERED", "bookingId": visit_id, "bookingReference": visit.reference,
        "slot": {"localStart": "2027-03-01T09:00:00+01:00"}, "service": {"name": b.service.name}}]
    # and Eko, a customer, has none to see
    assert error_codes(await gql(api_client, "{ mySubstitutionOffers { status } }", token=await login(
        api_client, "ada@example.com"))) == ["FORBIDDEN"]
    # when Ola accepts it
    take = """mutation($input: TakeOverBookingInput!) { takeOverBooking(input: $input) {
        booking { status provider { displayName } } errors { field code message } } }"""
    taken = await gql(api_client, take, {"input": {"bookingId": visit_id}}, token=ola_token)
    # then the visit is hers, accepted, and the offer is gone from her list
    assert taken["data"]["takeOverBooking"] == {
        "booking": {"status": "ACCEPTED", "provider": {"displayName": "Ola Plumbing"}}, "errors": []}
    assert (await gql(api_client, "{ mySubstitutionOffers { status } }", token=ola_token))["data"] == {
        "mySubstitutionOffers": []}
    # when she tries again, it is already taken and nothing changes
    again = await gql(api_client, take, {"input": {"bookingId": visit_id}}, token=ola_token)
    assert again["data"]["takeOverBooking"]["errors"][0]["code"] == "SUBSTITUTION_TAKEN"
    assert await status_of(visit.id) == "accepted"

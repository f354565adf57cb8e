"""Tickets: the customer's job with its appliance model (unlisted models flagged for an
admin), preferred windows and the slots suggested for them (or the nearest free ones instead),
escalation of tickets nobody took, and the urgent surcharge on their visits. Real PostgreSQL, Redis
and SMTP sink."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from domain.bookings import booking, ticket
from domain.money import escrow
from domain.providers.availability import Slot
from domain.providers.provider import GeoPoint
from domain.shared import pagination
from domain.shared.errors import DomainError
from models import ApplianceModel, Booking, Email, Escalation, ServiceRequest, Ticket, User
from models.db import session_scope
from settings import get_settings
from tests.support.bookings import MONDAY, Bookable, bookable_provider, checkout_and_pay, customer, hold
from tests.support.factories import make_service, make_user

DAY = MONDAY + timedelta(days=7)  # Monday 2027-03-08, 00:00 UTC (01:00 in Douala)
DOUALA = (4.0511, 9.7679)
NOW = MONDAY  # a week before DAY


def at(hour: int, minute: int = 0) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute)


async def open_ticket(who: User, *, now: datetime = NOW, **over) -> Ticket:
    args = dict(category="appliances", service_id=None, appliance="Fridge", brand=None, model=None,
                description="It stopped cooling", preferred_windows=[(at(9), at(11))], urgent=False,
                point=GeoPoint(*DOUALA), address="12 Rue Joss, Akwa")
    args.update(over)
    async with session_scope() as s:
        return await ticket.create_ticket(s, who, now=now, **args)


async def counts() -> tuple[int, int, int]:
    async with session_scope() as s:
        return (await s.scalar(select(func.count()).select_from(Ticket)),
                await s.scalar(select(func.count()).select_from(Escalation)),
                await s.scalar(select(func.count()).select_from(Email)))


async def escalations() -> list[tuple[str, str, bool]]:
    async with session_scope() as s:
        rows = (await s.scalars(select(Escalation).order_by(Escalation.id))).all()
    return [(r.kind, r.subject, r.resolved_at is not None) for r in rows]


async def operator_alerts() -> list[str]:
    async with session_scope() as s:
        rows = (await s.scalars(select(Email).where(Email.kind == "operator_alert").order_by(Email.id))).all()
    assert {r.to_address for r in rows} <= {get_settings().operator_email}
    return [r.subject for r in rows]


async def fridge_provider(name: str, service, *, km_north: float = 0.0, **kw) -> Bookable:
    return await bookable_provider(name, service=service, latitude=DOUALA[0] + km_north / 111.0,
                                   longitude=DOUALA[1], categories=["appliances"], **kw)


# --- creating a ticket -----------------------------------------------------------------------------


async def test_a_ticket_is_created_with_its_windows_in_utc_and_a_reference():
    # given
    service, _ = await make_service(name="Fridge repair", category="appliances", tiers=1)
    ada = await customer()
    douala = timezone(timedelta(hours=1))
    # when: the windows are given with a +01:00 offset
    made = await open_ticket(ada, service_id=service.id, brand=" Samsung ", model="", urgent=True,
                             preferred_windows=[(at(9).astimezone(douala), at(11).astimezone(douala))])
    # then
    async with session_scope() as s:
        row = await s.get(Ticket, made.id)
        where = (await ticket.locations(s, [made.id]))[made.id]
    assert row.reference.startswith("TKT-") and len(row.reference) == 13
    assert (row.customer_user_id, row.category, row.service_id, row.appliance, row.brand, row.model) == (
        ada.id, "appliances", service.id, "Fridge", "Samsung", None)
    assert (row.status, row.urgent, row.model_unlisted, row.flagged_reason) == ("open", True, False, None)
    assert row.preferred_windows == [{"start": "2027-03-08T09:00:00+00:00", "end": "2027-03-08T11:00:00+00:00"}]
    assert ticket.windows_of(row) == [(at(9), at(11))]
    assert (round(where.latitude, 6), round(where.longitude, 6)) == DOUALA
    assert await counts() == (1, 0, 0)


def _windows(n: int) -> list[tuple[datetime, datetime]]:
    return [(at(9 + i % 8), at(10 + i % 8)) for i in range(n)]


CASES = [
    ({"appliance": "  "}, ("REQUIRED", "appliance", "appliance is required")),
    ({"brand": "B" * 81}, ("TOO_LONG", "brand", "brand is limited to 80 characters")),
    ({"model": "RT38"}, ("REQUIRED", "brand", "Give the brand with the model")),
    ({"description": "x" * 5001}, ("TOO_LONG", "description", "description is limited to 5000 characters")),
    ({"address": "x" * 501}, ("TOO_LONG", "address", "address is limited to 500 characters")),
    ({"preferred_windows": [(datetime(2027, 3, 8, 9), at(11))]},
     ("INVALID_WINDOW", "preferredWindows.0.start", "Give times with their UTC offset")),
    ({"preferred_windows": [(at(9), at(11)), (at(11), at(11))]},
     ("INVALID_WINDOW", "preferredWindows.1.end", "A window must end after it starts")),
    ({"preferred_windows": [(at(9), at(11)), (NOW - timedelta(minutes=1), at(11))]},
     ("INVALID_WINDOW", "preferredWindows.1.start", "A window must start in the future")),
    ({"preferred_windows": [(at(9), at(9) + timedelta(days=31, seconds=1))]},
     ("INVALID_WINDOW", "preferredWindows.0.end", "A window may span at most 31 days")),
    ({"preferred_windows": _windows(11)}, ("TOO_MANY_WINDOWS", "preferredWindows", "Give at most 10 preferred windows")),
    ({"category": "gardening"}, ("UNKNOWN_CATEGORY", "category", "No service is offered in category 'gardening'")),
    ({"service_id": "plumbing"}, ("SERVICE_NOT_IN_CATEGORY", "serviceId", "This service belongs to plumbing, not appliances")),
    ({"service_id": 999_999}, ("NOT_FOUND", "serviceId", "No such service")),
]


@pytest.mark.parametrize(("change", "error"), CASES, ids=[e[0] + ":" + (e[1] or "") for _, e in CASES])
async def test_a_bad_ticket_is_refused_and_nothing_is_written(change, error):
    # given: an appliances service and a plumbing one
    await make_service(name="Fridge repair", category="appliances", tiers=1)
    plumbing, _ = await make_service(name="Leak repair", category="plumbing", tiers=1)
    ada = await customer()
    if change.get("service_id") == "plumbing":
        change = {**change, "service_id": plumbing.id}
    # when
    with pytest.raises(DomainError) as caught:
        await open_ticket(ada, **change)
    # then
    assert (caught.value.code, caught.value.field, caught.value.message) == error
    assert await counts() == (0, 0, 0)


async def test_ten_windows_are_accepted():
    # given
    await make_service(name="Fridge repair", category="appliances", tiers=1)
    # when
    made = await open_ticket(await customer(), preferred_windows=_windows(10))
    # then
    assert len(made.preferred_windows) == 10


# --- appliance models ------------------------------------------------------------------------------


async def test_an_unlisted_model_is_kept_flagged_and_escalated_to_the_operator():
    # given: the list knows Samsung RT38 only
    await make_service(name="Fridge repair", category="appliances", tiers=1)
    async with session_scope() as s:
        s.add(ApplianceModel(category="appliances", brand="Samsung", model="RT38"))
    # when
    made = await open_ticket(await customer(), brand="LG", model="GN-B202")
    # then
    assert (made.brand, made.model, made.model_unlisted, made.flagged_reason) == (
        "LG", "GN-B202", True, "Model not listed: LG GN-B202")
    assert await escalations() == [("model_unlisted", f"ticket:{made.id}", False)]
    assert await operator_alerts() == [f"[Odim operations] Escalation: model unlisted on {made.reference}"]


async def test_a_listed_model_matches_whatever_its_case_and_is_not_flagged():
    # given
    await make_service(name="Fridge repair", category="appliances", tiers=1)
    async with session_scope() as s:
        s.add(ApplianceModel(category="appliances", brand="Samsung", model="RT38"))
    # when
    made = await open_ticket(await customer(), brand="SAMSUNG", model="rt38")
    # then
    assert (made.model_unlisted, made.flagged_reason) == (False, None)
    assert await escalations() == []
    assert await operator_alerts() == []


async def test_adding_the_model_clears_the_flag_and_resolves_the_escalation_once():
    # given: two tickets naming an unlisted model, one in another category
    await make_service(name="Fridge repair", category="appliances", tiers=1)
    await make_service(name="Cooler install", category="cooling", tiers=1)
    admin = await make_user("ops@example.com", role="admin")
    ada = await customer()
    fridge = await open_ticket(ada, brand="LG", model="GN-B202")
    cooler = await open_ticket(ada, category="cooling", brand="LG", model="GN-B202")
    # when: an admin adds it to the appliances list, twice, in another case
    async with session_scope() as s:
        first = await ticket.add_appliance_model(s, category="appliances", brand="lg", model="gn-b202",
                                                 admin_user_id=admin.id)
    async with session_scope() as s:
        again = await ticket.add_appliance_model(s, category="appliances", brand="LG", model="GN-B202",
                                                 admin_user_id=admin.id)
    # then: one list row; the appliances ticket is cleared and its escalation resolved; the other stays
    async with session_scope() as s:
        listed = (await s.scalars(select(ApplianceModel))).all()
        rows = {t.id: (t.model_unlisted, t.flagged_reason) for t in (await s.scalars(select(Ticket))).all()}
        resolved_by = (await s.scalars(select(Escalation.resolved_by_user_id).order_by(Escalation.id))).all()
    assert [(m.category, m.brand, m.model) for m in listed] == [("appliances", "lg", "gn-b202")]
    assert first.id == again.id
    assert rows == {fridge.id: (False, None), cooler.id: (True, "Model not listed: LG GN-B202")}
    assert await escalations() == [("model_unlisted", f"ticket:{fridge.id}", True),
                                   ("model_unlisted", f"ticket:{cooler.id}", False)]
    assert resolved_by == [admin.id, None]


# --- suggestions -----------------------------------------------------------------------------------


async def test_suggestions_are_the_free_slots_inside_the_preferred_windows():
    # given: two providers near the ticket (open 08:00-18:00 in Douala, i.e. 07:00-17:00 UTC), one far
    service, tiers = await make_service(name="Fridge repair", category="appliances", tiers=1)
    near = await fridge_provider("Ayo Fix", (service, tiers), km_north=1)
    nearer = await fridge_provider("Bola Cool", (service, tiers), km_north=0.5)
    await fridge_provider("Gata Far", (service, tiers), km_north=40)
    ada = await customer()
    await hold(nearer, await customer("ben@example.com"), at(9))  # Bola is taken at 09:00 UTC
    made = await open_ticket(ada, preferred_windows=[(at(9), at(11)), (at(15), at(16))])
    # when
    async with session_scope() as s:
        found = await ticket.suggest_slots(s, made.id, viewer=ada, now=NOW)
    # then: each window's earliest free slot per provider, by start then distance
    assert found.matched_preferred is True
    assert [(s.provider.id, s.service_id, s.slot) for s in found.slots] == [
        (near.provider.id, service.id, Slot(at(9), at(10))),
        (nearer.provider.id, service.id, Slot(at(10), at(11))),
        (nearer.provider.id, service.id, Slot(at(15), at(16))),
        (near.provider.id, service.id, Slot(at(15), at(16))),
    ]


async def test_when_no_window_matches_the_nearest_free_slots_are_suggested_instead():
    # given: the customer prefers 04:00-06:00 in Douala, when nobody works
    service, tiers = await make_service(name="Fridge repair", category="appliances", tiers=1)
    near = await fridge_provider("Ayo Fix", (service, tiers), km_north=1)
    nearer = await fridge_provider("Bola Cool", (service, tiers), km_north=0.5)
    await fridge_provider("Gata Far", (service, tiers), km_north=40)
    await bookable_provider("Femi Plumbs", latitude=DOUALA[0], longitude=DOUALA[1])  # another category
    ada = await customer()
    made = await open_ticket(ada, preferred_windows=[(at(3), at(5))])
    # when: asked at 07:30 UTC on that day
    async with session_scope() as s:
        found = await ticket.suggest_slots(s, made.id, viewer=ada, first=3, now=at(7, 30))
    # then: the earliest free slots of the matching providers after now, by start then distance
    assert found.matched_preferred is False
    assert [(s.provider.id, s.service_id, s.slot) for s in found.slots] == [
        (nearer.provider.id, service.id, Slot(at(8), at(9))),
        (near.provider.id, service.id, Slot(at(8), at(9))),
        (nearer.provider.id, service.id, Slot(at(9), at(10))),
    ]


async def test_only_the_tickets_customer_or_an_admin_gets_suggestions_while_it_is_open():
    # given
    await make_service(name="Fridge repair", category="appliances", tiers=1)
    ada, ben = await customer(), await customer("ben@example.com")
    admin = await make_user("ops@example.com", role="admin")
    made = await open_ticket(ada)
    # when
    async with session_scope() as s:
        as_admin = await ticket.suggest_slots(s, made.id, viewer=admin, now=NOW)
        with pytest.raises(DomainError) as caught:
            await ticket.suggest_slots(s, made.id, viewer=ben, now=NOW)
    async with session_scope() as s:
        await ticket.cancel_ticket(s, made.id, actor=ada)
    async with session_scope() as s:
        with pytest.raises(DomainError) as closed:
            await ticket.suggest_slots(s, made.id, viewer=ada, now=NOW)
    # then: nobody takes the category nearby, so nothing to suggest; nothing for a cancelled ticket
    assert as_admin == ticket.Suggestions(False, [])
    assert (caught.value.code, caught.value.field) == ("FORBIDDEN", "ticketId")
    assert (closed.value.code, closed.value.field, closed.value.message) == (
        "TICKET_CLOSED", "ticketId", "This ticket is cancelled")


# --- tickets nobody takes --------------------------------------------------------------------------


async def test_a_stale_ticket_is_escalated_once_and_one_with_a_paid_visit_is_not():
    # given: three tickets: one without visits, one with a held visit only, one with a paid visit
    service, tiers = await make_service(name="Fridge repair", category="appliances", tiers=1)
    b = await fridge_provider("Ayo Fix", (service, tiers))
    ada = await customer()
    lonely = await open_ticket(ada)
    held_only = await open_ticket(ada)
    taken = await open_ticket(ada)
    await hold(b, ada, at(9), ticket_id=held_only.id)
    paid = await hold(b, ada, at(11), ticket_id=taken.id)
    await checkout_and_pay(paid.id, ada, now=at(0) - timedelta(days=7))
    wait = timedelta(seconds=get_settings().ticket_escalation_seconds)
    async with session_scope() as s:
        first_created, created = (await s.execute(select(func.min(Ticket.created_at), func.max(Ticket.created_at)))).one()
    # when: the sweeper runs just before the wait is over, after it, and again
    early = await ticket.escalate_stale_tickets(now=first_created + wait - timedelta(seconds=1))
    late = await ticket.escalate_stale_tickets(now=created + wait + timedelta(seconds=1))
    again = await ticket.escalate_stale_tickets(now=created + wait + timedelta(hours=1))
    # then
    assert (early, late, again) == (0, 2, 0)
    assert await escalations() == [("ticket_unassigned", f"ticket:{lonely.id}", False),
                                   ("ticket_unassigned", f"ticket:{held_only.id}", False)]
    assert sorted(await operator_alerts()) == sorted(
        f"[Odim operations] Escalation: ticket unassigned on {t.reference}" for t in (lonely, held_only))
    async with session_scope() as s:
        marked = dict((await s.execute(select(Ticket.id, Ticket.escalated_at))).all())
    assert marked == {lonely.id: created + wait + timedelta(seconds=1),
                      held_only.id: created + wait + timedelta(seconds=1), taken.id: None}


# --- cancelling and listing ------------------------------------------------------------------------


async def test_a_ticket_with_a_held_visit_cannot_be_cancelled_until_the_visit_is():
    # given
    service, tiers = await make_service(name="Fridge repair", category="appliances", tiers=1)
    b = await fridge_provider("Ayo Fix", (service, tiers))
    ada, ben = await customer(), await customer("ben@example.com")
    made = await open_ticket(ada)
    visit = await hold(b, ada, at(9), ticket_id=made.id)
    # when: ben tries, then ada tries with the visit held, then after letting the hold go
    errors = []
    for who in (ben, ada):
        try:
            async with session_scope() as s:
                await ticket.cancel_ticket(s, made.id, actor=who)
        except DomainError as exc:
            errors.append((exc.code, exc.field))
    async with session_scope() as s:
        still_open = (await s.get(Ticket, made.id)).status
    async with session_scope() as s:
        await booking.change_status(s, visit.id, "cancelled_by_customer", actor=ada)
    async with session_scope() as s:
        cancelled = (await ticket.cancel_ticket(s, made.id, actor=ada)).status
    async with session_scope() as s:
        again = (await ticket.cancel_ticket(s, made.id, actor=ada)).status
    # then
    assert errors == [("FORBIDDEN", "ticketId"), ("TICKET_HAS_OPEN_VISIT", "ticketId")]
    assert (still_open, cancelled, again) == ("open", "cancelled", "cancelled")


async def test_customers_list_their_own_tickets_and_admins_all_newest_first():
    # given
    await make_service(name="Fridge repair", category="appliances", tiers=1)
    ada, ben = await customer(), await customer("ben@example.com")
    admin = await make_user("ops@example.com", role="admin")
    a1, b1, a2, a3 = (await open_ticket(ada), await open_ticket(ben), await open_ticket(ada), await open_ticket(ada))
    # when
    async with session_scope() as s:
        page1, more1 = await ticket.list_tickets(s, ada, first=2)
        page2, more2 = await ticket.list_tickets(s, ada, first=2, after=pagination.encode("Ticket", page1[-1].id))
        everything, more_all = await ticket.list_tickets(s, admin, first=10)
        found = await ticket.visits(s, [a1.id, b1.id])
    # then
    assert ([t.id for t in page1], more1, [t.id for t in page2], more2) == ([a3.id, a2.id], True, [a1.id], False)
    assert ([t.id for t in everything], more_all) == ([a3.id, a2.id, b1.id, a1.id], False)
    assert found == {a1.id: [], b1.id: []}


# --- urgent tickets --------------------------------------------------------------------------------


async def test_an_urgent_tickets_visit_is_priced_with_the_urgent_surcharge():
    # given: a 10,000 XAF visit; one urgent ticket and one ordinary ticket
    service, tiers = await make_service(name="Fridge repair", category="appliances", tiers=1)
    b = await fridge_provider("Ayo Fix", (service, tiers))
    ada = await customer()
    urgent = await open_ticket(ada, urgent=True)
    ordinary = await open_ticket(ada)
    urgent_visit = await hold(b, ada, at(9), ticket_id=urgent.id)
    ordinary_visit = await hold(b, ada, at(11), ticket_id=ordinary.id)
    # when
    orders = {}
    for name, visit in (("urgent", urgent_visit), ("ordinary", ordinary_visit)):
        async with session_scope() as s:
            out = await booking.checkout(s, visit.id, customer=ada, now=at(0) - timedelta(days=7))
            orders[name] = out.order.id
    # then: 25 % (settings.ticket_urgent_surcharge_bps) on top for the urgent one only
    assert get_settings().ticket_urgent_surcharge_bps == 2500
    async with session_scope() as s:
        urgent_order = await s.get(ServiceRequest, orders["urgent"])
        ordinary_order = await s.get(ServiceRequest, orders["ordinary"])
        linked = (await s.get(Booking, urgent_visit.id)).service_request_id
    assert (urgent_order.urgent_surcharge_minor, urgent_order.amount_minor, urgent_order.currency) == (2500, 12500, "XAF")
    assert [(line.kind, line.amount_minor) for line in escrow.receipt_lines(urgent_order)] == [
        ("price", 10000), ("urgent_surcharge", 2500), ("total", 12500)]
    assert (ordinary_order.urgent_surcharge_minor, ordinary_order.amount_minor) == (0, 10000)
    assert [(line.kind, line.amount_minor) for line in escrow.receipt_lines(ordinary_order)] == [
        ("price", 10000), ("total", 10000)]
    assert linked == urgent_order.id

"""The field: a provider who cannot make a visit (substitution offers to qualified, free
providers nearby; first accept wins; admins alerted when nobody accepts in time) and a customer not
at home (no-show after the wait, which frees the provider's time and flags the visit for an admin).
Real PostgreSQL, Redis and SMTP sink."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select

import workers  # noqa: F401  (configures the broker outbox.relay dispatches to)
from domain.bookings import booking, substitution
from domain.bookings import locks as booking_locks
from domain.shared import outbox
from domain.shared.errors import DomainError
from models import Booking, BookingStatusChange, Email, Escalation, ServiceRequest, SubstitutionOffer, User
from models.db import session_scope
from settings import get_settings
from tests.support.bookings import MONDAY, Bookable, bookable_provider, checkout_and_pay, customer, hold, status_of
from tests.support.factories import make_service, run_worker
from tests.support.statements import count_statements

# 10:00 in Douala (UTC+1), inside every provider's default 08:00-18:00 plan.
VISIT = MONDAY + timedelta(days=7, hours=9)
DOUALA = (4.0511, 9.7679)


async def fridge_service():
    return await make_service(name="Fridge repair", category="appliances", tiers=1)


async def provider_at(name: str, service, *, km_north: float = 0.0, **kw) -> Bookable:
    """A bookable provider ``km_north`` kilometres north of Douala's centre (1 degree of latitude is about 111 km)."""
    return await bookable_provider(name, service=service, latitude=DOUALA[0] + km_north / 111.0,
                                   longitude=DOUALA[1], categories=["appliances"], **kw)


async def accepted_visit(b: Bookable, who: User, start=VISIT) -> int:
    """A visit of ``b`` held, paid and accepted by its provider; returns the booking id."""
    held = await hold(b, who, start)
    await checkout_and_pay(held.id, who, now=start - timedelta(days=7))
    async with session_scope() as s:
        await booking.change_status(s, held.id, "accepted", actor=b.provider_user)
    return held.id


async def report_cannot_make_it(b: Bookable, booking_id: int) -> None:
    async with session_scope() as s:
        await booking.change_status(s, booking_id, "cannot_make_it", actor=b.provider_user, note="Van broke down")


async def offers_of(booking_id: int) -> dict[int, str]:
    async with session_scope() as s:
        rows = (await s.scalars(select(SubstitutionOffer).where(SubstitutionOffer.booking_id == booking_id))).all()
    return {r.provider_id: r.status for r in rows}


async def emails(kind: str) -> list[tuple[str, str]]:
    async with session_scope() as s:
        rows = (await s.scalars(select(Email).where(Email.kind == kind).order_by(Email.id))).all()
    return [(r.to_address, r.subject) for r in rows]


async def escalations() -> list[tuple[str, str, int | None]]:
    async with session_scope() as s:
        rows = (await s.scalars(select(Escalation).order_by(Escalation.id))).all()
    return [(r.kind, r.subject, r.resolved_at and 1) for r in rows]


async def history_count(booking_id: int) -> int:
    async with session_scope() as s:
        return await s.scalar(select(func.count()).select_from(BookingStatusChange)
                              .where(BookingStatusChange.booking_id == booking_id))


def subject(reference: str) -> str:
    return f"Odim: can you take visit {reference} on 2027-03-08 10:00 (Africa/Douala)?"


# --- cannot make it: who gets the offer ------------------------------------------------------------


async def test_cannot_make_it_offers_the_visit_to_near_qualified_free_providers_only():
    # given: the visit's provider and, around it, providers who should and should not be asked
    service = await fridge_service()
    original = await provider_at("Ayo Fix", service)
    near_free = await provider_at("Bola Cool", service, km_north=2)
    nearer_free = await provider_at("Chidi Frost", service, km_north=1)
    busy = await provider_at("Dede Busy", service, km_north=1.5)
    off_duty = await provider_at("Efe Evenings", service, km_north=1.5, hours=(14, 20))
    unqualified = await provider_at("Femi Plumbs", None, km_north=1)  # takes another service only
    far = await provider_at("Gata Far", service, km_north=40)  # beyond the 25 km radius
    ada, other = await customer(), await customer("ben@example.com")
    visit_id = await accepted_visit(original, ada)
    await hold(busy, other, VISIT + timedelta(minutes=0))  # Dede is held at the same time
    # when
    await report_cannot_make_it(original, visit_id)
    # then: only the near, qualified, free providers are offered it, nearest first, and emailed
    async with session_scope() as s:
        visit = await s.get(Booking, visit_id)
    assert await status_of(visit_id) == "cannot_make_it"
    assert await offers_of(visit_id) == {nearer_free.provider.id: "offered", near_free.provider.id: "offered"}
    assert await emails("substitution_offer") == [
        ("chidi.frost@example.com", subject(visit.reference)), ("bola.cool@example.com", subject(visit.reference))]
    assert await escalations() == []
    assert {busy.provider.id, off_duty.provider.id, unqualified.provider.id, far.provider.id}.isdisjoint(
        await offers_of(visit_id))


async def test_a_visit_nobody_can_take_is_escalated_at_once():
    # given: a visit whose provider is the only one taking the service nearby
    service = await fridge_service()
    original = await provider_at("Ayo Fix", service)
    await provider_at("Gata Far", service, km_north=40)
    ada = await customer()
    visit_id = await accepted_visit(original, ada)
    # when
    await report_cannot_make_it(original, visit_id)
    # then: no offer, an escalation and an operator alert
    async with session_scope() as s:
        reference = (await s.get(Booking, visit_id)).reference
    assert await offers_of(visit_id) == {}
    assert await emails("substitution_offer") == []
    assert await escalations() == [("substitution_unanswered", f"booking:{visit_id}", None)]
    assert await emails("operator_alert") == [
        (get_settings().operator_email, f"[Odim operations] Escalation: substitution unanswered on {reference}")]


async def test_offers_for_provider_lists_open_offers_until_the_visit_is_taken():
    # given: two substitutes offered the same visit
    service = await fridge_service()
    original = await provider_at("Ayo Fix", service)
    first, second = await provider_at("Bola Cool", service, km_north=1), await provider_at("Chidi Frost", service, km_north=2)
    visit_id = await accepted_visit(original, await customer())
    await report_cannot_make_it(original, visit_id)
    async with session_scope() as s:
        before = await substitution.offers_for_provider(s, second.provider.id)
    # when: the first one takes it
    async with session_scope() as s:
        await booking.take_over(s, visit_id, actor=first.provider_user)
    # then: the second one's app no longer lists it
    async with session_scope() as s:
        after = await substitution.offers_for_provider(s, second.provider.id)
    assert [(o.provider_id, b.id) for o, b in before] == [(second.provider.id, visit_id)]
    assert after == []
    assert await offers_of(visit_id) == {first.provider.id: "accepted", second.provider.id: "lost"}




async def test_finding_substitutes_takes_the_same_statements_for_one_and_five_candidates():
    # given: in Douala a visit with one possible substitute; in Yaounde (250 km away) one with five
    service = await fridge_service()
    douala = await provider_at("Ayo Fix", service)
    await provider_at("Bola Cool", service, km_north=1)
    yaounde = await bookable_provider("Yao Fix", service=service, latitude=3.848, longitude=11.502)
    for i in range(5):
        await bookable_provider(f"Yao Sub{i}", service=service, latitude=3.848 + (i + 1) / 111.0, longitude=11.502)
    ada = await customer()
    one_id, five_id = await accepted_visit(douala, ada), await accepted_visit(yaounde, ada)
    counted = {}
    # when: each visit is offered to its substitutes
    for name, visit_id in (("one", one_id), ("five", five_id)):
        async with session_scope() as s:
            visit = await booking_locks.lock_booking(s, visit_id)
            with count_statements() as statements:
                offers = await substitution.offer_substitution(s, visit)
        counted[name] = (len(offers), sum(q.startswith("SELECT") for q in statements),
                         sum(q.startswith("INSERT INTO substitution_offers") for q in statements),
                         sum(q.startswith("INSERT INTO emails") for q in statements))
    # then: the same 6 reads (origin, candidates, plans, bookings, the new offers, the service) and
    # one insert of all offers; only the emails grow with the number of substitutes (each email: the
    # recipient's email preferences, then its insert)
    assert counted == {"one": (1, 6 + 1, 1, 1), "five": (5, 6 + 5, 1, 5)}


# --- first accept wins -----------------------------------------------------------------------------


async def test_two_substitutes_accepting_at_once_make_exactly_one_winner():
    # given: a visit offered to two substitutes
    service = await fridge_service()
    original = await provider_at("Ayo Fix", service)
    bola, chidi = await provider_at("Bola Cool", service, km_north=1), await provider_at("Chidi Frost", service, km_north=2)
    visit_id = await accepted_visit(original, await customer())
    await report_cannot_make_it(original, visit_id)
    history_before = await history_count(visit_id)

    async def accept(who: Bookable) -> tuple[str, int]:
        try:
            async with session_scope() as s:
                await booking.take_over(s, visit_id, actor=who.provider_user)
            return "won", who.provider.id
        except DomainError as exc:
            return exc.code, who.provider.id

    # when: both accept concurrently, each on its own connection
    outcomes = await asyncio.gather(accept(bola), accept(chidi))
    # then: exactly one wins; the other is told it is taken; the order follows the winner
    codes = sorted(code for code, _ in outcomes)
    winner = next(pid for code, pid in outcomes if code == "won")
    loser = next(pid for code, pid in outcomes if code != "won")
    assert codes == ["SUBSTITUTION_TAKEN", "won"]
    async with session_scope() as s:
        visit = await s.get(Booking, visit_id)
        order = await s.get(ServiceRequest, visit.service_request_id)
        taken = (await s.scalars(select(BookingStatusChange).where(
            BookingStatusChange.booking_id == visit_id, BookingStatusChange.from_status == "cannot_make_it"))).all()
    assert (visit.status, visit.provider_id, visit.substitution_due_at) == ("accepted", winner, None)
    assert order.assigned_provider_id == winner
    assert [(h.to_status, h.actor_type) for h in taken] == [("accepted", "provider")]
    assert await history_count(visit_id) == history_before + 1
    assert await offers_of(visit_id) == {winner: "accepted", loser: "lost"}


async def test_a_substitute_who_got_busy_meanwhile_is_refused_and_nothing_changes():
    # given: Bola is offered the visit, then another customer holds Bola at the same time
    service = await fridge_service()
    original = await provider_at("Ayo Fix", service)
    bola = await provider_at("Bola Cool", service, km_north=1)
    visit_id = await accepted_visit(original, await customer())
    await report_cannot_make_it(original, visit_id)
    await hold(bola, await customer("ben@example.com"), VISIT)
    history_before = await history_count(visit_id)
    # when
    try:
        async with session_scope() as s:
            await booking.take_over(s, visit_id, actor=bola.provider_user)
        outcome = "taken over"
    except DomainError as exc:
        outcome = exc.code
    # then
    assert outcome == "SLOT_UNAVAILABLE"
    async with session_scope() as s:
        visit = await s.get(Booking, visit_id)
    assert (visit.status, visit.provider_id) == ("cannot_make_it", original.provider.id)
    assert await history_count(visit_id) == history_before
    assert await offers_of(visit_id) == {bola.provider.id: "offered"}


# --- nobody accepts by the deadline ----------------------------------------------------------------


async def test_nobody_accepting_by_the_deadline_escalates_once_and_expires_the_offers(mailbox):
    # given: a visit offered to two substitutes who do not answer
    service = await fridge_service()
    original = await provider_at("Ayo Fix", service)
    bola, chidi = await provider_at("Bola Cool", service, km_north=1), await provider_at("Chidi Frost", service, km_north=2)
    visit_id = await accepted_visit(original, await customer())
    await report_cannot_make_it(original, visit_id)
    async with session_scope() as s:
        visit = await s.get(Booking, visit_id)
    due = visit.substitution_due_at
    # when: the sweeper runs just before the deadline, after it, and again
    early = await substitution.escalate_unanswered(now=due - timedelta(seconds=1))
    offers_before_deadline = await offers_of(visit_id)
    late = await substitution.escalate_unanswered(now=due + timedelta(seconds=1))
    again = await substitution.escalate_unanswered(now=due + timedelta(minutes=5))
    await outbox.relay()
    await run_worker()
    # then: one escalation, one operator email delivered, the offers expired, the visit still waiting
    alert = f"[Odim operations] Escalation: substitution unanswered on {visit.reference}"
    assert (early, late, again) == (0, 1, 0)
    assert offers_before_deadline == {bola.provider.id: "offered", chidi.provider.id: "offered"}
    assert await offers_of(visit_id) == {bola.provider.id: "expired", chidi.provider.id: "expired"}
    assert await escalations() == [("substitution_unanswered", f"booking:{visit_id}", None)]
    assert await emails("operator_alert") == [(get_settings().operator_email, alert)]
    assert [str(m["Subject"]).strip() for m in mailbox() if m["To"] == get_settings().operator_email] == [alert]
    assert await status_of(visit_id) == "cannot_make_it"
    async with session_scope() as s:
        assert await substitution.offers_for_provider(s, bola.provider.id) == []


# --- the customer is not at home -------------------------------------------------------------------


async def arrived_visit(b: Bookable, who: User) -> int:
    visit_id = await accepted_visit(b, who)
    for status in ("en_route", "arrived"):
        async with session_scope() as s:
            await booking.change_status(s, visit_id, status, actor=b.provider_user, now=VISIT)
    return visit_id


async def test_a_no_show_reported_before_the_wait_is_refused_and_nothing_changes():
    # given: the provider arrived at 10:00 (the wait is 15 minutes by default)
    service = await fridge_service()
    b = await provider_at("Ayo Fix", service)
    visit_id = await arrived_visit(b, await customer())
    history_before = await history_count(visit_id)
    alerts_before = await emails("operator_alert")
    # when: it reports nobody home after 14 minutes 59 seconds
    try:
        async with session_scope() as s:
            await booking.change_status(s, visit_id, "customer_no_show", actor=b.provider_user,
                                        now=VISIT + timedelta(minutes=14, seconds=59))
        outcome = None
    except DomainError as exc:
        outcome = (exc.code, exc.field, exc.message)
    # then
    assert outcome == ("INVALID_TRANSITION", "status", "Wait 15 minutes after arriving before reporting that nobody is home")
    assert await status_of(visit_id) == "arrived"
    assert await history_count(visit_id) == history_before
    assert await escalations() == []
    assert await emails("operator_alert") == alerts_before == []


async def test_a_no_show_after_the_wait_frees_the_slot_and_flags_the_visit():
    # given: the provider arrived at 10:00
    service = await fridge_service()
    b = await provider_at("Ayo Fix", service)
    visit_id = await arrived_visit(b, await customer())
    # when: it reports nobody home after exactly 15 minutes
    async with session_scope() as s:
        await booking.change_status(s, visit_id, "customer_no_show", actor=b.provider_user,
                                    now=VISIT + timedelta(minutes=15))
    # then: the visit is flagged for an admin and the provider's time is free for another customer
    async with session_scope() as s:
        reference = (await s.get(Booking, visit_id)).reference
    assert await status_of(visit_id) == "customer_no_show"
    assert await escalations() == [("customer_no_show", f"booking:{visit_id}", None)]
    assert await emails("operator_alert") == [
        (get_settings().operator_email, f"[Odim operations] Escalation: customer no show on {reference}")]
    other = await hold(b, await customer("ben@example.com"), VISIT, now=VISIT - timedelta(hours=1))
    assert (other.status, other.provider_id, other.starts_at) == ("held", b.provider.id, VISIT)

"""Root fields of bookings: slot search and a provider's availability, bookings and their life from
hold to review, tickets and their slot suggestions, substitution offers, escalations, the transition
table, status events by query and the live ``bookingStatusChanged`` (served by shared fan-out too)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Annotated

import strawberry

from resolvers import live as live_resolvers
from resolvers.bookings import availability as availability_resolvers
from resolvers.bookings import escalations as escalation_resolvers
from resolvers.bookings import lifecycle as booking_resolvers
from resolvers.bookings import substitution as substitution_resolvers
from resolvers.bookings import tickets as ticket_resolvers
from resolvers.bookings.availability import LocalSlot
from resolvers.ids import encode_id
from resolvers.pagination import page_size
from schema.bookings.availability import (
    AvailableProvider,
    ClearDateExceptionInput,
    ClearDateExceptionPayload,
    ProviderAvailability,
    SetBookingRulesInput,
    SetBookingRulesPayload,
    SetDateExceptionInput,
    SetDateExceptionPayload,
    SetProviderTimeZoneInput,
    SetProviderTimeZonePayload,
    SetServiceSlotInput,
    SetServiceSlotPayload,
    SetWeeklyPlanInput,
    SetWeeklyPlanPayload,
    availability_and_errors,
    provider_of_hit,
)
from schema.bookings.escalations import (
    Escalation,
    EscalationConnection,
    EscalationEdge,
    EscalationKind,
    ResolveEscalationInput,
    ResolveEscalationPayload,
    escalation_errors,
)
from schema.bookings.lifecycle import (
    BookFollowUpInput,
    BookFollowUpPayload,
    BookingTransition,
    ChangeBookingStatusInput,
    ChangeBookingStatusPayload,
    CheckoutBookingInput,
    CheckoutBookingPayload,
    HoldSlotInput,
    HoldSlotPayload,
    OpenBookingDisputeInput,
    OpenBookingDisputePayload,
    ReviewBookingInput,
    ReviewBookingPayload,
    booking_errors,
    booking_or_none,
)
from schema.bookings.substitution import (
    SubstitutionOffer,
    SubstitutionOfferStatus,
    TakeOverBookingInput,
    TakeOverBookingPayload,
)
from schema.bookings.tickets import (
    AddApplianceModelInput,
    AddApplianceModelPayload,
    ApplianceModel,
    CancelTicketInput,
    CancelTicketPayload,
    CreateTicketInput,
    CreateTicketPayload,
    SuggestedSlot,
    TicketSlotSuggestions,
    ticket_errors,
)
from schema.bookings.types import (
    BookableSlot,
    Booking,
    BookingActorType,
    BookingConnection,
    BookingEdge,
    BookingStatus,
    BookingStatusEvent,
    Ticket,
    TicketConnection,
    TicketEdge,
)
from schema.money.fees import FeeQuote
from schema.shared.common import GeoPointInput, page_info
from schema.shared.live import events, shared_field


@strawberry.type
class Query:
    @strawberry.field(description="Status changes of a booking after the event id `since` (from the hold when null), "
                      "oldest first, at most `first` (<= 100). Its customer, its provider and admins only.")
    async def booking_status_events_since(
        self, info: strawberry.Info, booking_id: strawberry.ID, since: strawberry.ID | None = None,
        first: int | None = 100,
    ) -> list[BookingStatusEvent]:
        size = page_size(first, 100)
        opened = await live_resolvers.open_booking(info.context, booking_id, since, field="since")
        return [BookingStatusEvent.of(e) for e in await live_resolvers.since(opened, size)]

    @strawberry.field(description="Free slots of a provider for a service starting in [from, to), earliest first, "
                      "computed from its weekly plan, date exceptions, notice, horizon, buffers and live bookings. "
                      "Bad input (unknown zone: INVALID_TIME_ZONE on timeZone; window: INVALID_WINDOW; a service it "
                      "does not book: SERVICE_NOT_BOOKABLE) is a top-level error with `extensions.code` and "
                      "`extensions.field`.")
    async def available_slots(
        self, info: strawberry.Info,
        provider_id: strawberry.ID,
        service_id: strawberry.ID,
        from_: Annotated[datetime, strawberry.argument(name="from", description="Inclusive, with a UTC offset.")],
        to: Annotated[datetime, strawberry.argument(description="Exclusive; at most 31 days after `from`.")],
        time_zone: Annotated[str | None, strawberry.argument(
            description="IANA zone to show local times in (yours); default the provider's.")] = None,
    ) -> list[BookableSlot]:
        slots = await availability_resolvers.available_slots(
            info.context, provider_id=provider_id, service_id=service_id, window_start=from_, window_end=to,
            time_zone=time_zone,
        )
        return [BookableSlot.of(s) for s in slots]

    @strawberry.field(description="Providers near a point with at least one free slot in [from, to), nearest first, "
                      "each with its earliest free slot. Bad input is a top-level error with `extensions.code` and "
                      "`extensions.field`.")
    async def providers_available(
        self, info: strawberry.Info,
        near: GeoPointInput,
        radius_km: Annotated[float, strawberry.argument(description="0 < radiusKm <= 100.")],
        from_: Annotated[datetime, strawberry.argument(name="from", description="Inclusive, with a UTC offset.")],
        to: Annotated[datetime, strawberry.argument(description="Exclusive; at most 31 days after `from`.")],
        category: str | None = None,
        service_id: Annotated[strawberry.ID | None, strawberry.argument(
            description="Only this service; else any of the provider's (of `category` when given).")] = None,
        first: Annotated[int | None, strawberry.argument(description="At most 100.")] = 20,
        time_zone: Annotated[str | None, strawberry.argument(
            description="IANA zone to show `firstSlot` in; default each provider's.")] = None,
    ) -> list[AvailableProvider]:
        found = await availability_resolvers.providers_available(
            info.context, latitude=near.latitude, longitude=near.longitude, radius_km=radius_km, category=category,
            service_id=service_id, window_start=from_, window_end=to, first=first, time_zone=time_zone,
        )
        return [
            AvailableProvider(provider=provider_of_hit(f.hit.provider), distance_meters=f.hit.provider.distance_m,
                              service_id=strawberry.ID(encode_id("Service", f.hit.service_id)),
                              first_slot=BookableSlot.of(f.first_slot))
            for f in found
        ]

    @strawberry.field(description="A booking by global id; null when it does not exist or you are not its customer, "
                      "its provider or an admin.")
    async def booking(self, info: strawberry.Info, id: strawberry.ID) -> Booking | None:
        found = await booking_resolvers.booking(info.context, booking_id=id)
        return Booking.of(found) if found else None

    @strawberry.field(description="Your bookings, newest first: as a customer the visits you booked, as a provider "
                      "also the visits booked with you; admins see all. Log in first (UNAUTHENTICATED otherwise).")
    async def my_bookings(
        self, info: strawberry.Info, status: BookingStatus | None = None,
        first: Annotated[int | None, strawberry.argument(description="At most 100.")] = 20, after: str | None = None,
    ) -> BookingConnection:
        page = await booking_resolvers.my_bookings(
            info.context, status=status.value if status else None, first=first, after=after
        )
        edges = [BookingEdge(cursor=c, node=Booking.of(b)) for b, c in page.items]
        return BookingConnection(edges=edges, page_info=page_info(edges, has_next=page.has_next_page,
                                                                  has_previous=after is not None))

    @strawberry.field(description="Provider accounts: your time zone, weekly plan, exceptions of the next 60 days, "
                      "booking rules and bookable services (FORBIDDEN for other accounts).")
    async def my_availability(self, info: strawberry.Info) -> ProviderAvailability:
        return ProviderAvailability.of(await availability_resolvers.my_availability(info.context))

    @strawberry.field(description="A ticket by global id; null unless you are its customer, an admin or the "
                      "provider of one of its visits.")
    async def ticket(self, info: strawberry.Info, id: strawberry.ID) -> Ticket | None:
        found = await ticket_resolvers.get_ticket(info.context, ticket_id=id)
        return Ticket.of(found) if found else None

    @strawberry.field(description="Your tickets, newest first (admins: all tickets).")
    async def my_tickets(
        self, info: strawberry.Info, first: Annotated[int | None, strawberry.argument(description="At most 100.")] = 20,
        after: str | None = None,
    ) -> TicketConnection:
        page = await ticket_resolvers.my_tickets(info.context, first=first, after=after)
        edges = [TicketEdge(cursor=c, node=Ticket.of(t)) for t, c in page.items]
        return TicketConnection(edges=edges, page_info=page_info(edges, has_next=page.has_next_page,
                                                                 has_previous=after is not None))

    @strawberry.field(description="Free slots of matching providers near a ticket inside its preferred windows, or, "
                      "when none is free then, the nearest free slots after now (`matchedPreferred` false). The "
                      "ticket's customer or an admin.")
    async def ticket_slot_suggestions(
        self, info: strawberry.Info, ticket_id: strawberry.ID,
        first: Annotated[int | None, strawberry.argument(description="At most 100.")] = 5,
        time_zone: Annotated[str | None, strawberry.argument(
            description="IANA zone to show the slots in; default each provider's.")] = None,
    ) -> TicketSlotSuggestions:
        found = await ticket_resolvers.ticket_slot_suggestions(
            info.context, ticket_id=ticket_id, first=first, time_zone=time_zone
        )
        return TicketSlotSuggestions(matched_preferred=found.matched_preferred, slots=[
            SuggestedSlot(provider=provider_of_hit(hit), distance_meters=hit.distance_m,
                          service_id=strawberry.ID(encode_id("Service", service_id)), slot=BookableSlot.of(slot))
            for hit, service_id, slot in found.slots
        ])

    @strawberry.field(description="Provider accounts: open offers of visits other providers cannot make, soonest "
                      "visit first.")
    async def my_substitution_offers(self, info: strawberry.Info) -> list[SubstitutionOffer]:
        rows = await substitution_resolvers.my_substitution_offers(info.context)
        return [
            SubstitutionOffer(
                id=strawberry.ID(encode_id("SubstitutionOffer", o.id)), status=SubstitutionOfferStatus(o.status),
                offered_at=o.created_at, booking_id=strawberry.ID(encode_id("Booking", b.id)),
                booking_reference=b.reference, slot=BookableSlot.of(LocalSlot(b.starts_at, b.ends_at, b.time_zone)),
                expires_at=b.substitution_due_at, _service_id=b.service_id,
            )
            for o, b in rows
        ]

    @strawberry.field(description="Admin: escalations newest first (open ones only unless `openOnly` is false).")
    async def escalations(
        self, info: strawberry.Info, open_only: bool = True, kind: EscalationKind | None = None,
        first: Annotated[int | None, strawberry.argument(description="At most 100.")] = 20, after: str | None = None,
    ) -> EscalationConnection:
        rows, has_next = await escalation_resolvers.escalations(
            info.context, open_only=open_only, kind=kind.value if kind else None, first=first, after=after
        )
        edges = [EscalationEdge(cursor=c, node=Escalation.of(e)) for e, c in rows]
        return EscalationConnection(edges=edges, page_info=page_info(edges, has_next=has_next,
                                                                     has_previous=after is not None))

    @strawberry.field(description="The booking transition table, for clients to draw: every allowed (from, to) with "
                      "who may make it.")
    def booking_state_machine(self) -> list[BookingTransition]:
        return [
            BookingTransition(from_=BookingStatus(frm), to=BookingStatus(to),
                              actors=[BookingActorType(a) for a in actors], description=description)
            for frm, to, actors, description in booking_resolvers.state_machine()
        ]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Logged-in customers: hold a free slot for 10 minutes while you pay (guests "
                         "cannot book yet). A slot someone else holds or booked comes back as SLOT_UNAVAILABLE.")
    async def hold_slot(self, info: strawberry.Info, input: HoldSlotInput) -> HoldSlotPayload:
        r = await booking_resolvers.hold_slot(
            info.context, provider_id=input.provider_id, service_id=input.service_id, start=input.start,
            tier_id=input.tier_id, currency=input.currency, ticket_id=input.ticket_id, note=input.note,
            idempotency_key=input.idempotency_key,
        )
        return HoldSlotPayload(booking=booking_or_none(r.booking), errors=booking_errors(r.errors))

    @strawberry.mutation(description="The booking's customer: open the order and the gateway's checkout for a HELD "
                         "booking (again during the hold: the same checkout). Paying moves the booking to PAID.")
    async def checkout_booking(self, info: strawberry.Info, input: CheckoutBookingInput) -> CheckoutBookingPayload:
        r = await booking_resolvers.checkout_booking(info.context, booking_id=input.booking_id)
        return CheckoutBookingPayload(
            booking=booking_or_none(r.booking), checkout_url=r.checkout_url,
            fee_breakdown=FeeQuote.of(r.fee_breakdown) if r.fee_breakdown else None, errors=booking_errors(r.errors),
        )

    @strawberry.mutation(description="Move a booking along `bookingStateMachine` as its customer, its provider or "
                         "an admin. A transition you may not make from the current status is INVALID_TRANSITION and "
                         "changes nothing.")
    async def change_booking_status(
        self, info: strawberry.Info, input: ChangeBookingStatusInput
    ) -> ChangeBookingStatusPayload:
        r = await booking_resolvers.change_status(
            info.context, booking_id=input.booking_id, status=input.status.value, note=input.note
        )
        return ChangeBookingStatusPayload(booking=booking_or_none(r.booking), errors=booking_errors(r.errors))

    @strawberry.mutation(description="The provider (or an admin): the visit in progress needs another one; book it "
                         "at a free slot of the same provider and service, on the same order and ticket.")
    async def book_follow_up(self, info: strawberry.Info, input: BookFollowUpInput) -> BookFollowUpPayload:
        r = await booking_resolvers.book_follow_up(
            info.context, booking_id=input.booking_id, start=input.start, note=input.note
        )
        return BookFollowUpPayload(booking=booking_or_none(r.booking), follow_up=booking_or_none(r.follow_up),
                                   errors=booking_errors(r.errors))

    @strawberry.mutation(description="The customer (within the dispute window) or an admin disputes a COMPLETED "
                         "visit: its order's money is held until an admin resolves the dispute.")
    async def open_booking_dispute(
        self, info: strawberry.Info, input: OpenBookingDisputeInput
    ) -> OpenBookingDisputePayload:
        r = await booking_resolvers.open_dispute(info.context, booking_id=input.booking_id, reason=input.reason)
        return OpenBookingDisputePayload(booking=booking_or_none(r.booking), errors=booking_errors(r.errors))

    @strawberry.mutation(description="The booking's customer reviews a COMPLETED visit.")
    async def review_booking(self, info: strawberry.Info, input: ReviewBookingInput) -> ReviewBookingPayload:
        r = await booking_resolvers.review(
            info.context, booking_id=input.booking_id, rating=input.rating, comment=input.comment
        )
        return ReviewBookingPayload(booking=booking_or_none(r.booking), errors=booking_errors(r.errors))

    @strawberry.mutation(description="Providers: accept a substitution offer (the first to accept takes the visit; "
                         "later ones get SUBSTITUTION_TAKEN). Admins: give a CANNOT_MAKE_IT visit to `providerId`.")
    async def take_over_booking(self, info: strawberry.Info, input: TakeOverBookingInput) -> TakeOverBookingPayload:
        r = await substitution_resolvers.take_over(
            info.context, booking_id=input.booking_id, provider_id=input.provider_id
        )
        return TakeOverBookingPayload(booking=booking_or_none(r.booking), errors=booking_errors(r.errors))

    @strawberry.mutation(description="Provider accounts: replace your weekly plan (local times in your time zone).")
    async def set_weekly_plan(self, info: strawberry.Info, input: SetWeeklyPlanInput) -> SetWeeklyPlanPayload:
        r = await availability_resolvers.set_weekly_plan(
            info.context, ranges=[(x.weekday.value, x.start, x.end) for x in input.ranges]
        )
        availability, errors = availability_and_errors(r)
        return SetWeeklyPlanPayload(availability=availability, errors=errors)

    @strawberry.mutation(description="Provider accounts: replace one date's plan (extra hours, other hours, or a "
                         "day off).")
    async def set_date_exception(self, info: strawberry.Info, input: SetDateExceptionInput) -> SetDateExceptionPayload:
        r = await availability_resolvers.set_date_exception(
            info.context, on_date=input.on_date, ranges=[(x.start, x.end) for x in input.ranges]
        )
        availability, errors = availability_and_errors(r)
        return SetDateExceptionPayload(availability=availability, errors=errors)

    @strawberry.mutation(description="Provider accounts: the weekly plan applies again on that date.")
    async def clear_date_exception(
        self, info: strawberry.Info, input: ClearDateExceptionInput
    ) -> ClearDateExceptionPayload:
        r = await availability_resolvers.clear_date_exception(info.context, on_date=input.on_date)
        availability, errors = availability_and_errors(r)
        return ClearDateExceptionPayload(availability=availability, cleared=r.changed, errors=errors)

    @strawberry.mutation(description="Provider accounts: minimum notice, buffer between bookings and booking "
                         "horizon.")
    async def set_booking_rules(self, info: strawberry.Info, input: SetBookingRulesInput) -> SetBookingRulesPayload:
        r = await availability_resolvers.set_booking_rules(
            info.context, min_notice_minutes=input.min_notice_minutes, buffer_minutes=input.buffer_minutes,
            horizon_days=input.horizon_days,
        )
        availability, errors = availability_and_errors(r)
        return SetBookingRulesPayload(availability=availability, errors=errors)

    @strawberry.mutation(description="Provider accounts: take bookings for a catalogue service with this slot "
                         "length (or stop).")
    async def set_service_slot(self, info: strawberry.Info, input: SetServiceSlotInput) -> SetServiceSlotPayload:
        r = await availability_resolvers.set_service_slot(
            info.context, service_id=input.service_id, slot_minutes=input.slot_minutes, active=input.active
        )
        availability, errors = availability_and_errors(r)
        return SetServiceSlotPayload(availability=availability, errors=errors)

    @strawberry.mutation(description="Provider accounts: the IANA zone your plan is read in (existing bookings keep "
                         "theirs).")
    async def set_provider_time_zone(
        self, info: strawberry.Info, input: SetProviderTimeZoneInput
    ) -> SetProviderTimeZonePayload:
        r = await availability_resolvers.set_time_zone(info.context, time_zone=input.time_zone)
        availability, errors = availability_and_errors(r)
        return SetProviderTimeZonePayload(availability=availability, errors=errors)

    @strawberry.mutation(description="Logged-in customers: describe a job; then hold a slot for it "
                         "(`ticketSlotSuggestions`, `holdSlot` with `ticketId`).")
    async def create_ticket(self, info: strawberry.Info, input: CreateTicketInput) -> CreateTicketPayload:
        r = await ticket_resolvers.create_ticket(
            info.context, category=input.category, service_id=input.service_id, appliance=input.appliance,
            brand=input.brand, model=input.model, description=input.description,
            preferred_windows=[(w.start, w.end) for w in input.preferred_windows], urgent=input.urgent,
            latitude=input.location.latitude, longitude=input.location.longitude, address=input.address,
        )
        return CreateTicketPayload(ticket=Ticket.of(r.ticket) if r.ticket else None, errors=ticket_errors(r.errors))

    @strawberry.mutation(description="The ticket's customer or an admin cancels it (cancel its live visit first).")
    async def cancel_ticket(self, info: strawberry.Info, input: CancelTicketInput) -> CancelTicketPayload:
        r = await ticket_resolvers.cancel_ticket(info.context, ticket_id=input.ticket_id)
        return CancelTicketPayload(ticket=Ticket.of(r.ticket) if r.ticket else None, errors=ticket_errors(r.errors))

    @strawberry.mutation(description="Admin: mark an escalation handled (idempotent).")
    async def resolve_escalation(
        self, info: strawberry.Info, input: ResolveEscalationInput
    ) -> ResolveEscalationPayload:
        r = await escalation_resolvers.resolve_escalation(info.context, escalation_id=input.escalation_id)
        return ResolveEscalationPayload(escalation=Escalation.of(r.escalation) if r.escalation else None,
                                        errors=escalation_errors(r.errors))

    @strawberry.mutation(description="Admin: add an appliance model to a category's list (idempotent); tickets "
                         "naming it are no longer flagged.")
    async def add_appliance_model(
        self, info: strawberry.Info, input: AddApplianceModelInput
    ) -> AddApplianceModelPayload:
        r = await ticket_resolvers.add_appliance_model(
            info.context, category=input.category, brand=input.brand, model=input.model
        )
        m = r.model
        model = ApplianceModel(id=strawberry.ID(encode_id("ApplianceModel", m.id)), category=m.category, brand=m.brand,
                               model=m.model) if m is not None else None
        return AddApplianceModelPayload(appliance_model=model, errors=ticket_errors(r.errors))


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Status changes of a booking: its customer, its provider and admins only "
                             "(FORBIDDEN for anyone else, UNAUTHENTICATED without a token in `connection_init`). "
                             "`after`: the `id` of the last event you saw.")
    async def booking_status_changed(
        self, info: strawberry.Info, booking_id: strawberry.ID, after: strawberry.ID | None = None
    ) -> AsyncGenerator[BookingStatusEvent, None]:
        opened = await live_resolvers.open_booking(info.context, booking_id, after)
        async for event in events(opened, BookingStatusEvent.of):
            yield event


shared_field("bookingStatusChanged",
             lambda ctx, a: live_resolvers.open_booking(ctx, a["bookingId"], a.get("after")), BookingStatusEvent.of)

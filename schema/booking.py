"""Bookings in GraphQL (issue 4): free slots and availability search, holds, checkout, the booking
state machine, a provider's availability, tickets and their slot suggestions, substitution offers,
escalations and the live ``bookingStatusChanged`` events.

Root fields are the module-level resolvers below, wired into schema/query.py, schema/mutation.py and
schema/subscription.py with ``field``/``mutation``/``subscription`` (described by their docstrings).
Instants are ``DateTime`` (UTC offsets accepted on input, UTC on output); local times are ISO 8601
strings with the offset of the zone named next to them; times of day are ``"HH:MM"`` strings.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from datetime import date, datetime
from enum import Enum
from typing import Annotated

import strawberry
from strawberry import relay

from domain.bookings import booking as booking_domain
from domain.bookings import ticket as ticket_domain
from domain.bookings.errors import BookingsErrorCode
from domain.catalogue.errors import CatalogueErrorCode
from domain.orders.errors import OrdersErrorCode
from domain.providers.availability import DateException as DomainDateException
from domain.providers.availability import ServiceSlot as DomainServiceSlot
from domain.providers.errors import ProvidersErrorCode
from domain.providers.provider import NearbyProvider as NearbyHit
from domain.reviews.errors import ReviewsErrorCode
from domain.shared.errors import CommonErrorCode
from models import Booking as BookingModel
from models import BookingStatusChange
from models import Escalation as EscalationModel
from models import Ticket as TicketModel
from resolvers import loaders
from resolvers.bookings import availability as availability_resolvers
from resolvers.bookings import escalations as escalation_resolvers
from resolvers.bookings import lifecycle as booking_resolvers
from resolvers.bookings import substitution as substitution_resolvers
from resolvers.bookings import tickets as ticket_resolvers
from resolvers.bookings.availability import AvailabilityResult, AvailabilityView, LocalSlot
from resolvers.ids import encode_id
from resolvers.messaging import chat as chat_resolvers
from resolvers.orders import contract as contract_resolvers
from resolvers.orders.service_request import ServiceRequestView
from schema.catalogue import Service, ServiceTier
from schema.chat import Conversation
from schema.common import GeoPoint, GeoPointInput, coded_errors, error_code_enum, page_info
from schema.contract import Contract, contract_or_none
from schema.money import FeeQuote
from schema.provider import Provider
from schema.service_request import ServiceRequest


def _doc(resolver: Callable) -> str:
    """The resolver's docstring as one paragraph: the field's description."""
    return " ".join(inspect.cleandoc(resolver.__doc__ or "").split())


def field(resolver: Callable):
    """A root Query field for one of the resolvers below, described by its docstring."""
    return strawberry.field(resolver=resolver, description=_doc(resolver))


def mutation(resolver: Callable):
    """A root Mutation field for one of the resolvers below, described by its docstring."""
    return strawberry.mutation(resolver=resolver, description=_doc(resolver))


# --- enums ----------------------------------------------------------------------------------------


@strawberry.enum(description="Where a booking (one visit) is in its state machine; `bookingStateMachine` lists "
                 "the transitions between them. HELD, PAID, ACCEPTED, EN_ROUTE, ARRIVED and IN_PROGRESS occupy "
                 "the provider's time.")
class BookingStatus(Enum):
    HELD = "held"
    PAYMENT_EXPIRED = "payment_expired"
    PAID = "paid"
    DECLINED = "declined"
    EXPIRED = "expired"
    ACCEPTED = "accepted"
    EN_ROUTE = "en_route"
    ARRIVED = "arrived"
    IN_PROGRESS = "in_progress"
    NEEDS_FOLLOW_UP = "needs_follow_up"
    COMPLETED = "completed"
    CANCELLED_BY_CUSTOMER = "cancelled_by_customer"
    CANCELLED_BY_PROVIDER = "cancelled_by_provider"
    CANCELLED_BY_ADMIN = "cancelled_by_admin"
    CANNOT_MAKE_IT = "cannot_make_it"
    CUSTOMER_NO_SHOW = "customer_no_show"
    DISPUTED = "disputed"
    RESOLVED = "resolved"
    REVIEWED = "reviewed"


@strawberry.enum(description="Who made (or may make) a booking transition. SYSTEM: timers and payments.")
class BookingActorType(Enum):
    CUSTOMER = "customer"
    PROVIDER = "provider"
    ADMIN = "admin"
    SYSTEM = "system"


@strawberry.enum(description="A day of the week of a provider's plan, in the provider's time zone.")
class Weekday(Enum):
    MONDAY = 0
    TUESDAY = 1
    WEDNESDAY = 2
    THURSDAY = 3
    FRIDAY = 4
    SATURDAY = 5
    SUNDAY = 6


@strawberry.enum(description="OPEN: no visit scheduled yet; SCHEDULED: a visit was accepted; CLOSED: done; "
                 "CANCELLED by its customer or an admin.")
class TicketStatus(Enum):
    OPEN = "open"
    SCHEDULED = "scheduled"
    CLOSED = "closed"
    CANCELLED = "cancelled"


@strawberry.enum(description="OFFERED: open, the first provider to accept takes the visit; ACCEPTED: you took it; "
                 "LOST: another provider took it first; EXPIRED: nobody took it in time.")
class SubstitutionOfferStatus(Enum):
    OFFERED = "offered"
    ACCEPTED = "accepted"
    LOST = "lost"
    EXPIRED = "expired"


@strawberry.enum(description="What an operator must look at: a ticket nobody took, a visit no substitute took, a "
                 "customer not at home, an appliance model missing from the list.")
class EscalationKind(Enum):
    TICKET_UNASSIGNED = "ticket_unassigned"
    SUBSTITUTION_UNANSWERED = "substitution_unanswered"
    CUSTOMER_NO_SHOW = "customer_no_show"
    MODEL_UNLISTED = "model_unlisted"


# --- errors ---------------------------------------------------------------------------------------


BookingErrorCode = error_code_enum("BookingErrorCode", [
    BookingsErrorCode.SLOT_UNAVAILABLE, ProvidersErrorCode.SLOT_NOT_OFFERED,
    ProvidersErrorCode.SERVICE_NOT_BOOKABLE, BookingsErrorCode.PROVIDER_NOT_BOOKABLE,
    ProvidersErrorCode.PROVIDER_SUSPENDED, ReviewsErrorCode.NOT_REVIEWABLE,
    ReviewsErrorCode.REVIEW_WINDOW_CLOSED, ReviewsErrorCode.ALREADY_REVIEWED, BookingsErrorCode.HOLD_EXPIRED,
    CommonErrorCode.IDEMPOTENCY_KEY_REUSED, CommonErrorCode.INVALID_TRANSITION,
    BookingsErrorCode.SUBSTITUTION_TAKEN, CommonErrorCode.SERVICE_NOT_FOUND, CatalogueErrorCode.TIER_NOT_FOUND,
    CatalogueErrorCode.TIER_REQUIRED, CatalogueErrorCode.CURRENCY_NOT_OFFERED, BookingsErrorCode.TICKET_CLOSED,
    CommonErrorCode.NOT_FOUND, CommonErrorCode.REQUIRED, CommonErrorCode.TOO_LONG,
    BookingsErrorCode.INVALID_DATETIME, ReviewsErrorCode.INVALID_RATING, OrdersErrorCode.NOT_DISPUTABLE,
    OrdersErrorCode.DISPUTE_ALREADY_OPEN, OrdersErrorCode.GATEWAY_UNAVAILABLE, CommonErrorCode.RATE_LIMITED,
    OrdersErrorCode.PAYMENT_GATEWAY_ERROR, OrdersErrorCode.CONTRACT_NOT_ACCEPTED, CommonErrorCode.INVALID_ID,
    CommonErrorCode.INVALID,
], description="SLOT_UNAVAILABLE: another booking or hold overlaps that time (buffers included); "
                 "SLOT_NOT_OFFERED: not a slot of the provider's plan, or inside its minimum notice or beyond its "
                 "horizon; HOLD_EXPIRED: hold the slot again; INVALID_TRANSITION: not allowed from the current "
                 "status for you (nothing changed); SUBSTITUTION_TAKEN: another provider took the visit first; "
                 "GATEWAY_UNAVAILABLE: retry in a little while (nothing written); PAYMENT_GATEWAY_ERROR: the "
                 "gateway refused the checkout. RATE_LIMITED: too many holds from your account; retry after the HTTP "
                 "Retry-After seconds (nothing written). CONTRACT_NOT_ACCEPTED: work cannot start (IN_PROGRESS) "
                 "before the customer and the provider both accept the visit's current contract (nothing changed). "
                 "PROVIDER_SUSPENDED: the provider is suspended (two strikes or an operator) and takes no new work. "
                 "reviewBooking: REVIEW_WINDOW_CLOSED (more than the review window after completion), ALREADY_REVIEWED, "
                 "NOT_REVIEWABLE (not paid).")


@strawberry.type
class BookingError:
    field: str | None = strawberry.field(description="The input field it is about (camelCase), or null.")
    code: BookingErrorCode
    message: str = strawberry.field(description="For people; switch on `code`.")


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


TicketErrorCode = error_code_enum("TicketErrorCode", [
    CommonErrorCode.REQUIRED, CommonErrorCode.TOO_LONG, BookingsErrorCode.UNKNOWN_CATEGORY,
    BookingsErrorCode.SERVICE_NOT_IN_CATEGORY, CommonErrorCode.INVALID_WINDOW,
    BookingsErrorCode.TOO_MANY_WINDOWS, ProvidersErrorCode.INVALID_LOCATION,
    BookingsErrorCode.TICKET_HAS_OPEN_VISIT, BookingsErrorCode.TICKET_CLOSED, CommonErrorCode.NOT_FOUND,
    CommonErrorCode.INVALID_ID, CommonErrorCode.INVALID,
], description="Ticket and appliance-model errors. INVALID_WINDOW: a preferred window is in the past, "
                 "ends before it starts or is too wide (field `preferredWindows.<i>.start|end`); UNKNOWN_CATEGORY: no "
                 "service is offered in that category; TICKET_HAS_OPEN_VISIT: cancel the ticket's visit first.")


@strawberry.type
class TicketError:
    field: str | None = strawberry.field(description="The input field it is about, e.g. `preferredWindows.0.end`.")
    code: TicketErrorCode
    message: str = strawberry.field(description="For people; switch on `code`.")


EscalationErrorCode = error_code_enum("EscalationErrorCode", [
    CommonErrorCode.NOT_FOUND, CommonErrorCode.INVALID_ID, CommonErrorCode.INVALID,
])


@strawberry.type
class EscalationError:
    field: str | None = strawberry.field(description="The input field it is about, or null.")
    code: EscalationErrorCode
    message: str = strawberry.field(description="For people; switch on `code`.")


def booking_errors(errors) -> list[BookingError]:
    return coded_errors(BookingErrorCode, BookingError, errors)


def availability_errors(errors) -> list[AvailabilityError]:
    return coded_errors(AvailabilityErrorCode, AvailabilityError, errors)


def ticket_errors(errors) -> list[TicketError]:
    return coded_errors(TicketErrorCode, TicketError, errors)


def escalation_errors(errors) -> list[EscalationError]:
    return coded_errors(EscalationErrorCode, EscalationError, errors)


# --- slots ----------------------------------------------------------------------------------------


@strawberry.type(description="A free slot `[start, end)`. `start`/`end` are instants; `localStart`/`localEnd` are "
                 "the same instants as ISO 8601 with the UTC offset in force in `timeZone` at that instant.")
class BookableSlot:
    start: datetime = strawberry.field(description="The slot's first instant (UTC); pass it to `holdSlot`.")
    end: datetime = strawberry.field(description="The instant the slot ends (UTC, exclusive).")
    local_start: str = strawberry.field(description="`start` in `timeZone`, e.g. 2027-03-01T13:30:00+05:30.")
    local_end: str = strawberry.field(description="`end` in `timeZone`.")
    time_zone: str = strawberry.field(description="IANA zone of the local times: the asker's, else the provider's.")

    @classmethod
    def of(cls, s: LocalSlot) -> "BookableSlot":
        return cls(start=s.start, end=s.end, local_start=s.local(s.start), local_end=s.local(s.end),
                   time_zone=s.time_zone)


def _provider_of_hit(h: NearbyHit) -> Provider:
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


@strawberry.type(description="A free slot of a provider matching a ticket.")
class SuggestedSlot:
    provider: Provider
    distance_meters: float = strawberry.field(description="From the ticket's location, in metres.")
    service_id: strawberry.ID = strawberry.field(description="The service to hold the slot for (global id).")
    slot: BookableSlot


@strawberry.type(description="Slots to offer for a ticket. `matchedPreferred` is false when no provider is free in "
                 "the ticket's preferred windows: `slots` are then the nearest free slots of matching providers.")
class TicketSlotSuggestions:
    matched_preferred: bool
    slots: list[SuggestedSlot]


# --- the state machine ----------------------------------------------------------------------------


@strawberry.type(description="One row of the booking transition table.")
class BookingTransition:
    from_: BookingStatus = strawberry.field(name="from", description="The status it leaves.")
    to: BookingStatus = strawberry.field(description="The status it enters.")
    actors: list[BookingActorType] = strawberry.field(description="Who may make it.")
    description: str = strawberry.field(description="What it means and its effect (refunds, offers, alerts).")


@strawberry.type(description="One status change of a booking (never edited).")
class BookingHistoryEntry:
    from_: BookingStatus | None = strawberry.field(name="from", description="Null for the first entry (the hold).")
    to: BookingStatus = strawberry.field(description="The status it entered.")
    actor_type: BookingActorType = strawberry.field(description="Who made the change.")
    note: str = strawberry.field(description="Why, when someone said (or what the system did).")
    at: datetime = strawberry.field(description="When (UTC).")

    @classmethod
    def of(cls, h: BookingStatusChange) -> "BookingHistoryEntry":
        return cls(from_=BookingStatus(h.from_status) if h.from_status else None, to=BookingStatus(h.to_status),
                   actor_type=BookingActorType(h.actor_type), note=h.note, at=h.created_at)


@strawberry.type(description="A status change pushed to `bookingStatusChanged` subscribers.")
class BookingStatusEvent:
    id: strawberry.ID = strawberry.field(description="This event's id: pass the last one you saw as `after` (or "
                                         "`since`) to resume without gaps.")
    booking_id: strawberry.ID = strawberry.field(description="The booking's global id.")
    reference: str = strawberry.field(description="The booking's reference, e.g. BKG-7K3Q-9XPA.")
    status: BookingStatus = strawberry.field(description="The status it entered.")
    previous_status: BookingStatus | None = strawberry.field(description="Null for the hold itself.")
    status_label: str = strawberry.field(description="The new status in words, for people.")
    actor_type: BookingActorType = strawberry.field(description="Who made the change.")
    note: str = strawberry.field(description="The note given with the change, if any.")
    at: datetime = strawberry.field(description="When (UTC).")

    @classmethod
    def of(cls, e: dict) -> "BookingStatusEvent":
        return cls(
            id=strawberry.ID(encode_id("BookingStatusEvent", e["id"])),
            booking_id=strawberry.ID(encode_id("Booking", e["bookingId"])), reference=e["reference"],
            status=BookingStatus(e["status"]),
            previous_status=BookingStatus(e["previousStatus"]) if e.get("previousStatus") else None,
            status_label=booking_domain.STATUS_LABELS[e["status"]], actor_type=BookingActorType(e["actorType"]),
            note=e.get("note", ""), at=datetime.fromisoformat(e["at"]),
        )


# --- bookings and tickets -------------------------------------------------------------------------


@strawberry.type(description="A visit: one slot of a provider's time for one service, paid through its order. "
                 "Visible to its customer, its provider and admins.")
class Booking(relay.Node):
    id: relay.NodeID[int]
    reference: str = strawberry.field(description="Human-friendly reference, e.g. BKG-7K3Q-9XPA.")
    status: BookingStatus
    status_label: str = strawberry.field(description="The status in words, for people.")
    start: datetime = strawberry.field(description="The visit's first instant (UTC).")
    end: datetime = strawberry.field(description="The instant the visit's slot ends (UTC).")
    time_zone: str = strawberry.field(description="The provider's IANA zone when it was booked.")
    local_start: str = strawberry.field(description="`start` in `timeZone` (ISO 8601 with offset).")
    hold_expires_at: datetime | None = strawberry.field(
        description="HELD: pay before this instant or the slot is released; null otherwise."
    )
    response_due_at: datetime | None = strawberry.field(
        description="PAID: the provider must accept by then, else the booking expires with a full refund."
    )
    note: str = strawberry.field(description="The customer's note to the provider.")
    review_rating: int | None = strawberry.field(description="1-5 stars once REVIEWED.")
    review_comment: str | None
    created_at: datetime
    _model: strawberry.Private[BookingModel]

    @classmethod
    def of(cls, b: BookingModel) -> "Booking":
        local = LocalSlot(b.starts_at, b.ends_at, b.time_zone)
        return cls(
            id=b.id, reference=b.reference, status=BookingStatus(b.status),
            status_label=booking_domain.STATUS_LABELS[b.status], start=b.starts_at, end=b.ends_at,
            time_zone=b.time_zone, local_start=local.local(b.starts_at), hold_expires_at=b.hold_expires_at,
            response_due_at=b.response_due_at, note=b.customer_note, review_rating=b.review_rating,
            review_comment=b.review_comment, created_at=b.created_at, _model=b,
        )

    @strawberry.field(description="The provider doing the visit.")
    async def provider(self, info: strawberry.Info) -> Provider | None:
        view = await loaders.provider_views(info.context).load(self._model.provider_id)
        return Provider.of(view) if view else None

    @strawberry.field(description="The catalogue service booked.")
    async def service(self, info: strawberry.Info) -> Service | None:
        found = await loaders.services(info.context).load(self._model.service_id)
        return Service.of(found) if found else None

    @strawberry.field(description="The tier of the service booked (its price is what the order charged).")
    async def tier(self, info: strawberry.Info) -> ServiceTier | None:
        found = await loaders.services(info.context).load(self._model.service_id)
        tier = next((t for t in found.tiers if t.id == self._model.tier_id), None) if found else None
        return ServiceTier.of(tier) if tier else None

    @strawberry.field(description="The customer's job this visit belongs to, if any.")
    async def ticket(self, info: strawberry.Info) -> Ticket | None:
        if self._model.ticket_id is None:
            return None
        found = await loaders.tickets(info.context).load(self._model.ticket_id)
        return Ticket.of(found) if found else None

    @strawberry.field(description="For a follow-up visit: the visit that needed it (null if you may not see it).")
    async def parent_booking(self, info: strawberry.Info) -> Booking | None:
        if self._model.parent_booking_id is None:
            return None
        found = await booking_resolvers.booking_nodes(info.context, [self._model.parent_booking_id])
        return Booking.of(found[0]) if found[0] else None

    @strawberry.field(description="The order paying for the visit (receipt, settlement, disputes); null before "
                      "checkout. Follow-up visits share their first visit's order.")
    async def order(self, info: strawberry.Info) -> ServiceRequest | None:
        if self._model.service_request_id is None:
            return None
        found = await loaders.service_requests(info.context).load(self._model.service_request_id)
        return ServiceRequest.of(ServiceRequestView(found, True)) if found else None

    @strawberry.field(description="The current version of the visit's contract with its acceptances (made when the "
                      "visit is paid; a new version when its terms change, e.g. another provider takes it over); "
                      "null before payment.")
    async def contract(self, info: strawberry.Info) -> Contract | None:
        return contract_or_none(await contract_resolvers.of_booking(info.context, self._model.id))

    @strawberry.field(description="The visit's chat between its customer, its provider and admins (created on "
                      "first access).")
    async def conversation(self, info: strawberry.Info) -> Conversation | None:
        found = await chat_resolvers.booking_conversation(info.context, self._model.id)
        return Conversation.of(found) if found else None

    @strawberry.field(description="Every status change, oldest first.")
    async def history(self, info: strawberry.Info) -> list[BookingHistoryEntry]:
        rows = await loaders.booking_histories(info.context).load(self._model.id)
        return [BookingHistoryEntry.of(h) for h in rows]

    @strawberry.field(description="The statuses YOU may move this booking to now, per `bookingStateMachine` and "
                      "your role on it (customer, provider or admin). DISPUTED, REVIEWED and NEEDS_FOLLOW_UP go "
                      "through `openBookingDispute`, `reviewBooking` and `bookFollowUp`; guards such as the "
                      "no-show wait are checked when you try.")
    async def allowed_transitions(self, info: strawberry.Info) -> list[BookingStatus]:
        return [BookingStatus(s) for s in await booking_resolvers.allowed_transitions(info.context, self._model)]

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False):
        found = await booking_resolvers.booking_nodes(info.context, [int(i) for i in node_ids])
        return [cls.of(b) if b else None for b in found]


@strawberry.type
class BookingEdge:
    cursor: str
    node: Booking


@strawberry.type
class BookingConnection:
    edges: list[BookingEdge]
    page_info: relay.PageInfo


@strawberry.type(description="A time window `[start, end)` (instants).")
class TimeWindow:
    start: datetime = strawberry.field(description="Inclusive (UTC).")
    end: datetime = strawberry.field(description="Exclusive (UTC).")


@strawberry.type(description="The customer's job (an appliance or a problem); each visit for it is a booking. "
                 "Visible to its customer, admins and the providers of its visits.")
class Ticket(relay.Node):
    id: relay.NodeID[int]
    reference: str = strawberry.field(description="Human-friendly reference, e.g. TKT-7K3Q-9XPA.")
    status: TicketStatus
    category: str = strawberry.field(description="Catalogue category, e.g. plumbing.")
    appliance: str = strawberry.field(description="The appliance or problem, free text.")
    brand: str | None
    model: str | None
    model_unlisted: bool = strawberry.field(
        description="The brand and model are not in the list: kept as typed, flagged for an admin to add."
    )
    description: str
    preferred_windows: list[TimeWindow] = strawberry.field(description="When the customer would like the visit.")
    urgent: bool = strawberry.field(description="Urgent visits carry the urgency surcharge.")
    address: str
    created_at: datetime
    escalated_at: datetime | None = strawberry.field(
        description="When it was escalated to admins for staying unassigned too long."
    )
    _model: strawberry.Private[TicketModel]

    @classmethod
    def of(cls, t: TicketModel) -> "Ticket":
        windows = [TimeWindow(start=start, end=end) for start, end in ticket_domain.windows_of(t)]
        return cls(
            id=t.id, reference=t.reference, status=TicketStatus(t.status), category=t.category,
            appliance=t.appliance, brand=t.brand, model=t.model, model_unlisted=t.model_unlisted,
            description=t.description, preferred_windows=windows, urgent=t.urgent, address=t.address,
            created_at=t.created_at, escalated_at=t.escalated_at, _model=t,
        )

    @strawberry.field(description="The catalogue service asked for, if the customer chose one.")
    async def service(self, info: strawberry.Info) -> Service | None:
        if self._model.service_id is None:
            return None
        found = await loaders.services(info.context).load(self._model.service_id)
        return Service.of(found) if found else None

    @strawberry.field(description="Where the work is (WGS84).")
    async def location(self, info: strawberry.Info) -> GeoPoint | None:
        point = await loaders.ticket_locations(info.context).load(self._model.id)
        return GeoPoint(latitude=point.latitude, longitude=point.longitude) if point else None

    @strawberry.field(description="The ticket's chat between its customer, the providers of its paid or accepted "
                      "visits and admins (created on first access); null if you are not one of them.")
    async def conversation(self, info: strawberry.Info) -> Conversation | None:
        found = await chat_resolvers.ticket_conversation(info.context, self._model.id)
        return Conversation.of(found) if found else None

    @strawberry.field(description="Its visits you may see, by start time.")
    async def visits(self, info: strawberry.Info) -> list[Booking]:
        rows = await loaders.visits_by_ticket(info.context).load(self._model.id)
        return [Booking.of(b) for b in rows if await booking_resolvers.viewer_actor_type(info.context, b)]

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False):
        found = await ticket_resolvers.ticket_nodes(info.context, [int(i) for i in node_ids])
        return [cls.of(t) if t else None for t in found]


@strawberry.type
class TicketEdge:
    cursor: str
    node: Ticket


@strawberry.type
class TicketConnection:
    edges: list[TicketEdge]
    page_info: relay.PageInfo


@strawberry.type(description="A known appliance model of a category (tickets naming others are flagged).")
class ApplianceModel:
    id: strawberry.ID = strawberry.field(description="Global id (ApplianceModel).")
    category: str = strawberry.field(description="Catalogue category, e.g. plumbing.")
    brand: str = strawberry.field(description="As first added (names match case-insensitively).")
    model: str = strawberry.field(description="As first added (names match case-insensitively).")


@strawberry.type(description="A visit whose provider cannot make it, offered to you: accept with "
                 "`takeOverBooking(bookingId)`; the first provider to accept takes it.")
class SubstitutionOffer:
    id: strawberry.ID = strawberry.field(description="Global id (SubstitutionOffer).")
    status: SubstitutionOfferStatus
    offered_at: datetime = strawberry.field(description="When it was offered to you (UTC).")
    booking_id: strawberry.ID = strawberry.field(description="The visit's global id (for `takeOverBooking`).")
    booking_reference: str = strawberry.field(description="The visit's reference, e.g. BKG-7K3Q-9XPA.")
    slot: BookableSlot = strawberry.field(description="The visit's time, in the zone it was booked in.")
    expires_at: datetime | None = strawberry.field(description="After this, admins are alerted instead.")
    _service_id: strawberry.Private[int]

    @strawberry.field(description="The service to perform.")
    async def service(self, info: strawberry.Info) -> Service | None:
        found = await loaders.services(info.context).load(self._service_id)
        return Service.of(found) if found else None


@strawberry.type(description="Something an operator must look at (admins only).")
class Escalation(relay.Node):
    id: relay.NodeID[int]
    kind: EscalationKind
    subject: str = strawberry.field(description="`ticket:<id>` or `booking:<id>`.")
    note: str = strawberry.field(description="What happened, for the operator.")
    created_at: datetime
    resolved_at: datetime | None = strawberry.field(description="When an admin marked it handled; null while open.")
    _model: strawberry.Private[EscalationModel]

    @classmethod
    def of(cls, e: EscalationModel) -> "Escalation":
        return cls(id=e.id, kind=EscalationKind(e.kind), subject=e.subject, note=e.note, created_at=e.created_at,
                   resolved_at=e.resolved_at, _model=e)

    @strawberry.field(description="The ticket it is about (also set for a booking's escalation on a ticket).")
    async def ticket(self, info: strawberry.Info) -> Ticket | None:
        if self._model.ticket_id is None:
            return None
        found = await loaders.tickets(info.context).load(self._model.ticket_id)
        return Ticket.of(found) if found else None

    @strawberry.field(description="The visit it is about, if any.")
    async def booking(self, info: strawberry.Info) -> Booking | None:
        if self._model.booking_id is None:
            return None
        found = await loaders.bookings(info.context).load(self._model.booking_id)
        return Booking.of(found) if found else None

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False):
        found = await escalation_resolvers.escalation_nodes(info.context, [int(i) for i in node_ids])
        return [cls.of(e) if e else None for e in found]


@strawberry.type
class EscalationEdge:
    cursor: str
    node: Escalation


@strawberry.type
class EscalationConnection:
    edges: list[EscalationEdge]
    page_info: relay.PageInfo


# --- a provider's availability --------------------------------------------------------------------


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


# --- queries ---------------------------------------------------------------------------------------


async def available_slots(
    info: strawberry.Info,
    provider_id: strawberry.ID,
    service_id: strawberry.ID,
    from_: Annotated[datetime, strawberry.argument(name="from", description="Inclusive, with a UTC offset.")],
    to: Annotated[datetime, strawberry.argument(description="Exclusive; at most 31 days after `from`.")],
    time_zone: Annotated[str | None, strawberry.argument(
        description="IANA zone to show local times in (yours); default the provider's.")] = None,
) -> list[BookableSlot]:
    """Free slots of a provider for a service starting in [from, to), earliest first, computed from its weekly
    plan, date exceptions, notice, horizon, buffers and live bookings. Bad input (unknown zone: INVALID_TIME_ZONE
    on timeZone; window: INVALID_WINDOW; a service it does not book: SERVICE_NOT_BOOKABLE) is a top-level error
    with `extensions.code` and `extensions.field`."""
    slots = await availability_resolvers.available_slots(
        info.context, provider_id=provider_id, service_id=service_id, window_start=from_, window_end=to,
        time_zone=time_zone,
    )
    return [BookableSlot.of(s) for s in slots]


async def providers_available(
    info: strawberry.Info,
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
    """Providers near a point with at least one free slot in [from, to), nearest first, each with its earliest
    free slot. Bad input is a top-level error with `extensions.code` and `extensions.field`."""
    found = await availability_resolvers.providers_available(
        info.context, latitude=near.latitude, longitude=near.longitude, radius_km=radius_km, category=category,
        service_id=service_id, window_start=from_, window_end=to, first=first, time_zone=time_zone,
    )
    return [
        AvailableProvider(provider=_provider_of_hit(f.hit.provider), distance_meters=f.hit.provider.distance_m,
                          service_id=strawberry.ID(encode_id("Service", f.hit.service_id)),
                          first_slot=BookableSlot.of(f.first_slot))
        for f in found
    ]


async def booking(info: strawberry.Info, id: strawberry.ID) -> Booking | None:
    """A booking by global id; null when it does not exist or you are not its customer, its provider or an
    admin."""
    found = await booking_resolvers.booking(info.context, booking_id=id)
    return Booking.of(found) if found else None


async def my_bookings(
    info: strawberry.Info, status: BookingStatus | None = None,
    first: Annotated[int | None, strawberry.argument(description="At most 100.")] = 20, after: str | None = None,
) -> BookingConnection:
    """Your bookings, newest first: as a customer the visits you booked, as a provider also the visits booked with
    you; admins see all. Log in first (UNAUTHENTICATED otherwise)."""
    page = await booking_resolvers.my_bookings(
        info.context, status=status.value if status else None, first=first, after=after
    )
    edges = [BookingEdge(cursor=c, node=Booking.of(b)) for b, c in page.items]
    return BookingConnection(edges=edges, page_info=page_info(edges, has_next=page.has_next_page,
                                                              has_previous=after is not None))


async def my_availability(info: strawberry.Info) -> ProviderAvailability:
    """Provider accounts: your time zone, weekly plan, exceptions of the next 60 days, booking rules and bookable
    services (FORBIDDEN for other accounts)."""
    return ProviderAvailability.of(await availability_resolvers.my_availability(info.context))


async def ticket(info: strawberry.Info, id: strawberry.ID) -> Ticket | None:
    """A ticket by global id; null unless you are its customer, an admin or the provider of one of its visits."""
    found = await ticket_resolvers.get_ticket(info.context, ticket_id=id)
    return Ticket.of(found) if found else None


async def my_tickets(
    info: strawberry.Info, first: Annotated[int | None, strawberry.argument(description="At most 100.")] = 20,
    after: str | None = None,
) -> TicketConnection:
    """Your tickets, newest first (admins: all tickets)."""
    page = await ticket_resolvers.my_tickets(info.context, first=first, after=after)
    edges = [TicketEdge(cursor=c, node=Ticket.of(t)) for t, c in page.items]
    return TicketConnection(edges=edges, page_info=page_info(edges, has_next=page.has_next_page,
                                                             has_previous=after is not None))


async def ticket_slot_suggestions(
    info: strawberry.Info, ticket_id: strawberry.ID,
    first: Annotated[int | None, strawberry.argument(description="At most 100.")] = 5,
    time_zone: Annotated[str | None, strawberry.argument(
        description="IANA zone to show the slots in; default each provider's.")] = None,
) -> TicketSlotSuggestions:
    """Free slots of matching providers near a ticket inside its preferred windows, or, when none is free then,
    the nearest free slots after now (`matchedPreferred` false). The ticket's customer or an admin."""
    found = await ticket_resolvers.ticket_slot_suggestions(
        info.context, ticket_id=ticket_id, first=first, time_zone=time_zone
    )
    return TicketSlotSuggestions(matched_preferred=found.matched_preferred, slots=[
        SuggestedSlot(provider=_provider_of_hit(hit), distance_meters=hit.distance_m,
                      service_id=strawberry.ID(encode_id("Service", service_id)), slot=BookableSlot.of(slot))
        for hit, service_id, slot in found.slots
    ])


async def my_substitution_offers(info: strawberry.Info) -> list[SubstitutionOffer]:
    """Provider accounts: open offers of visits other providers cannot make, soonest visit first."""
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


async def escalations(
    info: strawberry.Info, open_only: bool = True, kind: EscalationKind | None = None,
    first: Annotated[int | None, strawberry.argument(description="At most 100.")] = 20, after: str | None = None,
) -> EscalationConnection:
    """Admin: escalations newest first (open ones only unless `openOnly` is false)."""
    rows, has_next = await escalation_resolvers.escalations(
        info.context, open_only=open_only, kind=kind.value if kind else None, first=first, after=after
    )
    edges = [EscalationEdge(cursor=c, node=Escalation.of(e)) for e, c in rows]
    return EscalationConnection(edges=edges, page_info=page_info(edges, has_next=has_next,
                                                                 has_previous=after is not None))


def booking_state_machine() -> list[BookingTransition]:
    """The booking transition table, for clients to draw: every allowed (from, to) with who may make it."""
    return [
        BookingTransition(from_=BookingStatus(frm), to=BookingStatus(to),
                          actors=[BookingActorType(a) for a in actors], description=description)
        for frm, to, actors, description in booking_resolvers.state_machine()
    ]


# --- mutations: bookings --------------------------------------------------------------------------


@strawberry.input
class HoldSlotInput:
    provider_id: strawberry.ID
    service_id: strawberry.ID
    start: datetime = strawberry.field(description="A slot's `start` from `availableSlots` (any UTC offset).")
    tier_id: strawberry.ID | None = strawberry.field(default=None, description="Required when the service has several tiers.")
    currency: str | None = strawberry.field(default=None, description="ISO 4217; defaults to the platform currency (XAF).")
    ticket_id: strawberry.ID | None = strawberry.field(default=None, description="Your ticket this visit is for.")
    note: str | None = strawberry.field(default=None, description="For the provider; at most 2000 characters.")
    idempotency_key: str | None = strawberry.field(
        default=None, description="Retry-safe key (1-120 chars): the same key returns the same booking."
    )


@strawberry.type
class HoldSlotPayload:
    booking: Booking | None = strawberry.field(description="HELD until `holdExpiresAt`: check out before then.")
    errors: list[BookingError]


@strawberry.input
class CheckoutBookingInput:
    booking_id: strawberry.ID


@strawberry.type
class CheckoutBookingPayload:
    booking: Booking | None
    checkout_url: str | None = strawberry.field(description="Open it to pay (the gateway's hosted checkout page).")
    fee_breakdown: FeeQuote | None = strawberry.field(description="What you pay: the fee lines of the order.")
    errors: list[BookingError]


@strawberry.input
class ChangeBookingStatusInput:
    booking_id: strawberry.ID
    status: BookingStatus = strawberry.field(description="One of the booking's `allowedTransitions`.")
    note: str | None = strawberry.field(default=None, description="Kept in the history; at most 2000 characters.")


@strawberry.type
class ChangeBookingStatusPayload:
    booking: Booking | None
    errors: list[BookingError]


@strawberry.input
class BookFollowUpInput:
    booking_id: strawberry.ID = strawberry.field(description="The visit IN_PROGRESS that needs another one.")
    start: datetime = strawberry.field(description="A free slot's `start` of the same provider and service.")
    note: str | None = strawberry.field(default=None, description="Why; kept in the history (2000 characters).")


@strawberry.type
class BookFollowUpPayload:
    booking: Booking | None = strawberry.field(description="The first visit, now NEEDS_FOLLOW_UP.")
    follow_up: Booking | None = strawberry.field(description="The new visit, ACCEPTED, paid by the same order.")
    errors: list[BookingError]


@strawberry.input
class OpenBookingDisputeInput:
    booking_id: strawberry.ID
    reason: str = strawberry.field(description="What went wrong, 1 to 2000 characters.")


@strawberry.type
class OpenBookingDisputePayload:
    booking: Booking | None = strawberry.field(description="DISPUTED; its order holds the open dispute.")
    errors: list[BookingError]


@strawberry.input
class ReviewBookingInput:
    booking_id: strawberry.ID
    rating: int = strawberry.field(description="1 to 5 stars.")
    comment: str | None = strawberry.field(default=None, description="At most 2000 characters.")


@strawberry.type
class ReviewBookingPayload:
    booking: Booking | None
    errors: list[BookingError]


@strawberry.input
class TakeOverBookingInput:
    booking_id: strawberry.ID
    provider_id: strawberry.ID | None = strawberry.field(
        default=None, description="Admins: the provider who takes the visit. Providers: omit (you take it)."
    )


@strawberry.type
class TakeOverBookingPayload:
    booking: Booking | None = strawberry.field(description="ACCEPTED by its new provider.")
    errors: list[BookingError]


def _booking(b: BookingModel | None) -> Booking | None:
    return Booking.of(b) if b is not None else None


async def hold_slot(info: strawberry.Info, input: HoldSlotInput) -> HoldSlotPayload:
    """Logged-in customers: hold a free slot for 10 minutes while you pay (guests cannot book yet). A slot someone
    else holds or booked comes back as SLOT_UNAVAILABLE."""
    r = await booking_resolvers.hold_slot(
        info.context, provider_id=input.provider_id, service_id=input.service_id, start=input.start,
        tier_id=input.tier_id, currency=input.currency, ticket_id=input.ticket_id, note=input.note,
        idempotency_key=input.idempotency_key,
    )
    return HoldSlotPayload(booking=_booking(r.booking), errors=booking_errors(r.errors))


async def checkout_booking(info: strawberry.Info, input: CheckoutBookingInput) -> CheckoutBookingPayload:
    """The booking's customer: open the order and the gateway's checkout for a HELD booking (again during the hold:
    the same checkout). Paying moves the booking to PAID."""
    r = await booking_resolvers.checkout_booking(info.context, booking_id=input.booking_id)
    return CheckoutBookingPayload(
        booking=_booking(r.booking), checkout_url=r.checkout_url,
        fee_breakdown=FeeQuote.of(r.fee_breakdown) if r.fee_breakdown else None, errors=booking_errors(r.errors),
    )


async def change_booking_status(info: strawberry.Info, input: ChangeBookingStatusInput) -> ChangeBookingStatusPayload:
    """Move a booking along `bookingStateMachine` as its customer, its provider or an admin. A transition you may
    not make from the current status is INVALID_TRANSITION and changes nothing."""
    r = await booking_resolvers.change_status(
        info.context, booking_id=input.booking_id, status=input.status.value, note=input.note
    )
    return ChangeBookingStatusPayload(booking=_booking(r.booking), errors=booking_errors(r.errors))


async def book_follow_up(info: strawberry.Info, input: BookFollowUpInput) -> BookFollowUpPayload:
    """The provider (or an admin): the visit in progress needs another one; book it at a free slot of the same
    provider and service, on the same order and ticket."""
    r = await booking_resolvers.book_follow_up(
        info.context, booking_id=input.booking_id, start=input.start, note=input.note
    )
    return BookFollowUpPayload(booking=_booking(r.booking), follow_up=_booking(r.follow_up),
                               errors=booking_errors(r.errors))


async def open_booking_dispute(info: strawberry.Info, input: OpenBookingDisputeInput) -> OpenBookingDisputePayload:
    """The customer (within the dispute window) or an admin disputes a COMPLETED visit: its order's money is held
    until an admin resolves the dispute."""
    r = await booking_resolvers.open_dispute(info.context, booking_id=input.booking_id, reason=input.reason)
    return OpenBookingDisputePayload(booking=_booking(r.booking), errors=booking_errors(r.errors))


async def review_booking(info: strawberry.Info, input: ReviewBookingInput) -> ReviewBookingPayload:
    """The booking's customer reviews a COMPLETED visit."""
    r = await booking_resolvers.review(
        info.context, booking_id=input.booking_id, rating=input.rating, comment=input.comment
    )
    return ReviewBookingPayload(booking=_booking(r.booking), errors=booking_errors(r.errors))


async def take_over_booking(info: strawberry.Info, input: TakeOverBookingInput) -> TakeOverBookingPayload:
    """Providers: accept a substitution offer (the first to accept takes the visit; later ones get
    SUBSTITUTION_TAKEN). Admins: give a CANNOT_MAKE_IT visit to `providerId`."""
    r = await substitution_resolvers.take_over(info.context, booking_id=input.booking_id, provider_id=input.provider_id)
    return TakeOverBookingPayload(booking=_booking(r.booking), errors=booking_errors(r.errors))


# --- mutations: a provider's availability ---------------------------------------------------------


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


def _availability(r: AvailabilityResult) -> tuple[ProviderAvailability | None, list[AvailabilityError]]:
    return (ProviderAvailability.of(r.availability) if r.availability else None), availability_errors(r.errors)


async def set_weekly_plan(info: strawberry.Info, input: SetWeeklyPlanInput) -> SetWeeklyPlanPayload:
    """Provider accounts: replace your weekly plan (local times in your time zone)."""
    r = await availability_resolvers.set_weekly_plan(
        info.context, ranges=[(x.weekday.value, x.start, x.end) for x in input.ranges]
    )
    availability, errors = _availability(r)
    return SetWeeklyPlanPayload(availability=availability, errors=errors)


async def set_date_exception(info: strawberry.Info, input: SetDateExceptionInput) -> SetDateExceptionPayload:
    """Provider accounts: replace one date's plan (extra hours, other hours, or a day off)."""
    r = await availability_resolvers.set_date_exception(
        info.context, on_date=input.on_date, ranges=[(x.start, x.end) for x in input.ranges]
    )
    availability, errors = _availability(r)
    return SetDateExceptionPayload(availability=availability, errors=errors)


async def clear_date_exception(info: strawberry.Info, input: ClearDateExceptionInput) -> ClearDateExceptionPayload:
    """Provider accounts: the weekly plan applies again on that date."""
    r = await availability_resolvers.clear_date_exception(info.context, on_date=input.on_date)
    availability, errors = _availability(r)
    return ClearDateExceptionPayload(availability=availability, cleared=r.changed, errors=errors)


async def set_booking_rules(info: strawberry.Info, input: SetBookingRulesInput) -> SetBookingRulesPayload:
    """Provider accounts: minimum notice, buffer between bookings and booking horizon."""
    r = await availability_resolvers.set_booking_rules(
        info.context, min_notice_minutes=input.min_notice_minutes, buffer_minutes=input.buffer_minutes,
        horizon_days=input.horizon_days,
    )
    availability, errors = _availability(r)
    return SetBookingRulesPayload(availability=availability, errors=errors)


async def set_service_slot(info: strawberry.Info, input: SetServiceSlotInput) -> SetServiceSlotPayload:
    """Provider accounts: take bookings for a catalogue service with this slot length (or stop)."""
    r = await availability_resolvers.set_service_slot(
        info.context, service_id=input.service_id, slot_minutes=input.slot_minutes, active=input.active
    )
    availability, errors = _availability(r)
    return SetServiceSlotPayload(availability=availability, errors=errors)


async def set_provider_time_zone(
    info: strawberry.Info, input: SetProviderTimeZoneInput
) -> SetProviderTimeZonePayload:
    """Provider accounts: the IANA zone your plan is read in (existing bookings keep theirs)."""
    r = await availability_resolvers.set_time_zone(info.context, time_zone=input.time_zone)
    availability, errors = _availability(r)
    return SetProviderTimeZonePayload(availability=availability, errors=errors)


# --- mutations: tickets and escalations -----------------------------------------------------------


@strawberry.input
class TimeWindowInput:
    start: datetime = strawberry.field(description="With a UTC offset; in the future.")
    end: datetime = strawberry.field(description="After `start`.")


@strawberry.input
class CreateTicketInput:
    category: str = strawberry.field(description="A catalogue category, e.g. plumbing.")
    appliance: str = strawberry.field(description="The appliance or problem, e.g. washing machine.")
    location: GeoPointInput = strawberry.field(description="Where the work is.")
    service_id: strawberry.ID | None = strawberry.field(default=None, description="A service of that category.")
    brand: str | None = strawberry.field(default=None, description="At most 80 characters; required with a model.")
    model: str | None = strawberry.field(
        default=None, description="Free text when not in the list (the ticket is then flagged for an admin)."
    )
    description: str | None = strawberry.field(default=None, description="What is wrong; at most 5000 characters.")
    preferred_windows: list[TimeWindowInput] = strawberry.field(
        default_factory=list, description="When you would like the visit; at most 10."
    )
    urgent: bool = strawberry.field(default=False, description="Urgent visits carry the urgency surcharge.")
    address: str | None = strawberry.field(default=None, description="For the provider; at most 500 characters.")


@strawberry.type
class CreateTicketPayload:
    ticket: Ticket | None
    errors: list[TicketError]


@strawberry.input
class CancelTicketInput:
    ticket_id: strawberry.ID


@strawberry.type
class CancelTicketPayload:
    ticket: Ticket | None
    errors: list[TicketError]


@strawberry.input
class ResolveEscalationInput:
    escalation_id: strawberry.ID


@strawberry.type
class ResolveEscalationPayload:
    escalation: Escalation | None
    errors: list[EscalationError]


@strawberry.input
class AddApplianceModelInput:
    category: str = strawberry.field(description="A catalogue category, e.g. plumbing.")
    brand: str = strawberry.field(description="At most 80 characters.")
    model: str = strawberry.field(description="At most 120 characters.")


@strawberry.type
class AddApplianceModelPayload:
    appliance_model: ApplianceModel | None
    errors: list[TicketError]


async def create_ticket(info: strawberry.Info, input: CreateTicketInput) -> CreateTicketPayload:
    """Logged-in customers: describe a job; then hold a slot for it (`ticketSlotSuggestions`, `holdSlot` with
    `ticketId`)."""
    r = await ticket_resolvers.create_ticket(
        info.context, category=input.category, service_id=input.service_id, appliance=input.appliance,
        brand=input.brand, model=input.model, description=input.description,
        preferred_windows=[(w.start, w.end) for w in input.preferred_windows], urgent=input.urgent,
        latitude=input.location.latitude, longitude=input.location.longitude, address=input.address,
    )
    return CreateTicketPayload(ticket=Ticket.of(r.ticket) if r.ticket else None, errors=ticket_errors(r.errors))


async def cancel_ticket(info: strawberry.Info, input: CancelTicketInput) -> CancelTicketPayload:
    """The ticket's customer or an admin cancels it (cancel its live visit first)."""
    r = await ticket_resolvers.cancel_ticket(info.context, ticket_id=input.ticket_id)
    return CancelTicketPayload(ticket=Ticket.of(r.ticket) if r.ticket else None, errors=ticket_errors(r.errors))


async def resolve_escalation(info: strawberry.Info, input: ResolveEscalationInput) -> ResolveEscalationPayload:
    """Admin: mark an escalation handled (idempotent)."""
    r = await escalation_resolvers.resolve_escalation(info.context, escalation_id=input.escalation_id)
    return ResolveEscalationPayload(escalation=Escalation.of(r.escalation) if r.escalation else None,
                                    errors=escalation_errors(r.errors))


async def add_appliance_model(info: strawberry.Info, input: AddApplianceModelInput) -> AddApplianceModelPayload:
    """Admin: add an appliance model to a category's list (idempotent); tickets naming it are no longer flagged."""
    r = await ticket_resolvers.add_appliance_model(
        info.context, category=input.category, brand=input.brand, model=input.model
    )
    m = r.model
    model = ApplianceModel(id=strawberry.ID(encode_id("ApplianceModel", m.id)), category=m.category, brand=m.brand,
                           model=m.model) if m is not None else None
    return AddApplianceModelPayload(appliance_model=model, errors=ticket_errors(r.errors))

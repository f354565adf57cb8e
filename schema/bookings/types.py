"""The bookings' object types and enums: Booking (a visit) with its history and status events, Ticket
(the customer's job), the bookable slot and the time window. Inputs, payloads and errors are in the
modules of their concern (availability, lifecycle, tickets, substitution, escalations)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import Enum

import strawberry
from strawberry import relay

from domain.bookings import booking as booking_domain
from domain.bookings import ticket as ticket_domain
from models import Booking as BookingModel
from models import BookingStatusChange
from models import Ticket as TicketModel
from resolvers import loaders
from resolvers.bookings import lifecycle as booking_resolvers
from resolvers.bookings import tickets as ticket_resolvers
from resolvers.bookings.availability import LocalSlot
from resolvers.ids import encode_id
from resolvers.messaging import chat as chat_resolvers
from resolvers.orders import contract as contract_resolvers
from resolvers.orders.service_request import ServiceRequestView
from schema.catalogue.services import Service, ServiceTier
from schema.messaging.chat import Conversation
from schema.orders.contract import Contract, contract_or_none
from schema.orders.service_request import ServiceRequest
from schema.providers.provider import Provider
from schema.shared.common import GeoPoint


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


@strawberry.enum(description="OPEN: no visit scheduled yet; SCHEDULED: a visit was accepted; CLOSED: done; "
                 "CANCELLED by its customer or an admin.")
class TicketStatus(Enum):
    OPEN = "open"
    SCHEDULED = "scheduled"
    CLOSED = "closed"
    CANCELLED = "cancelled"


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

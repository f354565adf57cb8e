"""Tickets in GraphQL: slot suggestions for a ticket, known appliance models, and the inputs, payloads
and TicketError codes of ``createTicket``, ``cancelTicket`` and ``addApplianceModel`` (the Ticket
type itself: schema/bookings/types.py)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from domain.bookings.errors import BookingsErrorCode
from domain.providers.errors import ProvidersErrorCode
from domain.shared.errors import CommonErrorCode
from schema.bookings.types import BookableSlot, Ticket
from schema.providers.provider import Provider
from schema.shared.common import GeoPointInput, coded_errors, error_code_enum

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


def ticket_errors(errors) -> list[TicketError]:
    return coded_errors(TicketErrorCode, TicketError, errors)


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


@strawberry.type(description="A known appliance model of a category (tickets naming others are flagged).")
class ApplianceModel:
    id: strawberry.ID = strawberry.field(description="Global id (ApplianceModel).")
    category: str = strawberry.field(description="Catalogue category, e.g. plumbing.")
    brand: str = strawberry.field(description="As first added (names match case-insensitively).")
    model: str = strawberry.field(description="As first added (names match case-insensitively).")


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
class AddApplianceModelInput:
    category: str = strawberry.field(description="A catalogue category, e.g. plumbing.")
    brand: str = strawberry.field(description="At most 80 characters.")
    model: str = strawberry.field(description="At most 120 characters.")


@strawberry.type
class AddApplianceModelPayload:
    appliance_model: ApplianceModel | None
    errors: list[TicketError]

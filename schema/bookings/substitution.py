"""Substitution in GraphQL: a visit whose provider cannot make it, offered to other providers
(``mySubstitutionOffers``), and the input and payload of ``takeOverBooking``."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from resolvers import loaders
from schema.bookings.lifecycle import BookingError
from schema.bookings.types import BookableSlot, Booking
from schema.catalogue.services import Service


@strawberry.enum(description="OFFERED: open, the first provider to accept takes the visit; ACCEPTED: you took it; "
                 "LOST: another provider took it first; EXPIRED: nobody took it in time.")
class SubstitutionOfferStatus(Enum):
    OFFERED = "offered"
    ACCEPTED = "accepted"
    LOST = "lost"
    EXPIRED = "expired"


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

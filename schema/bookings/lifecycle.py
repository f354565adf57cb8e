"""A booking's life in GraphQL: the transition table (``bookingStateMachine``), and the inputs,
payloads and BookingError codes of holding a slot, checkout, status changes, follow-up visits,
disputes and reviews of a visit (and of ``takeOverBooking``, schema/bookings/substitution.py)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from domain.bookings.errors import BookingsErrorCode
from domain.catalogue.errors import CatalogueErrorCode
from domain.orders.errors import OrdersErrorCode
from domain.providers.errors import ProvidersErrorCode
from domain.reviews.errors import ReviewsErrorCode
from domain.shared.errors import CommonErrorCode
from models import Booking as BookingModel
from schema.bookings.types import Booking, BookingActorType, BookingStatus
from schema.money.fees import FeeQuote
from schema.shared.common import coded_errors, error_code_enum

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


def booking_errors(errors) -> list[BookingError]:
    return coded_errors(BookingErrorCode, BookingError, errors)


@strawberry.type(description="One row of the booking transition table.")
class BookingTransition:
    from_: BookingStatus = strawberry.field(name="from", description="The status it leaves.")
    to: BookingStatus = strawberry.field(description="The status it enters.")
    actors: list[BookingActorType] = strawberry.field(description="Who may make it.")
    description: str = strawberry.field(description="What it means and its effect (refunds, offers, alerts).")


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


def booking_or_none(b: BookingModel | None) -> Booking | None:
    return Booking.of(b) if b is not None else None

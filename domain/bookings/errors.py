"""Error codes of the bookings context: one StrEnum, the single source of the codes its typed errors
carry (the GraphQL error-code enums are generated from these; schema/shared/common.py ``error_code_enum``)."""

from __future__ import annotations

from enum import StrEnum


class BookingsErrorCode(StrEnum):
    """Codes of holds, the booking state machine, tickets and substitution."""

    HOLD_EXPIRED = "HOLD_EXPIRED"
    INVALID_DATETIME = "INVALID_DATETIME"
    PROVIDER_NOT_BOOKABLE = "PROVIDER_NOT_BOOKABLE"
    SERVICE_NOT_IN_CATEGORY = "SERVICE_NOT_IN_CATEGORY"
    SLOT_UNAVAILABLE = "SLOT_UNAVAILABLE"
    SUBSTITUTION_TAKEN = "SUBSTITUTION_TAKEN"
    TICKET_CLOSED = "TICKET_CLOSED"
    TICKET_HAS_OPEN_VISIT = "TICKET_HAS_OPEN_VISIT"
    TOO_MANY_WINDOWS = "TOO_MANY_WINDOWS"
    UNKNOWN_CATEGORY = "UNKNOWN_CATEGORY"

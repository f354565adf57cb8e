"""Base class of the typed, expected failures that resolvers map to payload errors."""

from __future__ import annotations

from enum import StrEnum


class CommonErrorCode(StrEnum):
    """Codes every context may raise, and the API's own (INVALID_ID, RATE_LIMITED, UNAUTHENTICATED)."""

    DEAD_LETTER_NOT_OPEN = "DEAD_LETTER_NOT_OPEN"
    FORBIDDEN = "FORBIDDEN"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    INVALID = "INVALID"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    INVALID_CURSOR = "INVALID_CURSOR"
    INVALID_ID = "INVALID_ID"
    INVALID_INPUT = "INVALID_INPUT"
    INVALID_KIND = "INVALID_KIND"
    INVALID_PAGE_SIZE = "INVALID_PAGE_SIZE"
    INVALID_TOKEN = "INVALID_TOKEN"
    INVALID_TRANSITION = "INVALID_TRANSITION"
    INVALID_WINDOW = "INVALID_WINDOW"
    LIVE_UNAVAILABLE = "LIVE_UNAVAILABLE"
    NOT_FOUND = "NOT_FOUND"
    RATE_LIMITED = "RATE_LIMITED"
    REQUIRED = "REQUIRED"
    SERVICE_NOT_FOUND = "SERVICE_NOT_FOUND"
    STORAGE_UNAVAILABLE = "STORAGE_UNAVAILABLE"
    TOO_LONG = "TOO_LONG"
    TOO_MANY = "TOO_MANY"
    UNAUTHENTICATED = "UNAUTHENTICATED"


class DomainError(Exception):
    """An expected failure. ``code`` is the SCREAMING_SNAKE error code clients switch on,
    ``field`` the camelCase input field it is about (None for the whole input)."""

    code: str = CommonErrorCode.INVALID
    field: str | None = None

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if field is not None:
            self.field = field
        if code is not None:
            self.code = code


class NotFound(DomainError):
    code = CommonErrorCode.NOT_FOUND


class Forbidden(DomainError):
    """The caller may not do this to this object (mapped to a top-level FORBIDDEN error)."""

    code = CommonErrorCode.FORBIDDEN

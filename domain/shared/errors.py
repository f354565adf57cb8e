"""Base class of the typed, expected failures that resolvers map to payload errors."""

from __future__ import annotations


class DomainError(Exception):
    """An expected failure. ``code`` is the SCREAMING_SNAKE error code clients switch on,
    ``field`` the camelCase input field it is about (None for the whole input)."""

    code: str = "INVALID"
    field: str | None = None

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if field is not None:
            self.field = field
        if code is not None:
            self.code = code


class NotFound(DomainError):
    code = "NOT_FOUND"


class Forbidden(DomainError):
    """The caller may not do this to this object (mapped to a top-level FORBIDDEN error)."""

    code = "FORBIDDEN"

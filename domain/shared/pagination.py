"""Opaque keyset cursors over a row id, for lists ordered by id (newest first).

A cursor is ``base64url("<kind>:<id>")``: the kind stops a cursor of one list being used on
another. ``decode`` raises ``InvalidCursor`` (code ``INVALID_CURSOR``, field ``after``)."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from domain.shared.errors import CommonErrorCode, DomainError

MAX_ROW_ID = 2**63 - 1  # ids are PostgreSQL bigints


class InvalidCursor(DomainError):
    code = CommonErrorCode.INVALID_CURSOR
    field = "after"


def encode(kind: str, row_id: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{row_id}".encode()).decode()


def row_id(text: str) -> int:
    """A row id read from a cursor: 1 .. 2**63-1. Raises ValueError otherwise (a larger one reached
    PostgreSQL as a bigint parameter and failed there: INTERNAL_SERVER_ERROR, found by the fuzzer)."""
    value = int(text)
    if not 0 < value <= MAX_ROW_ID:
        raise ValueError(text)
    return value


def timestamp(text: str) -> datetime:
    """A timezone-aware UTC instant read from a cursor. Raises ValueError for a naive or unparsable
    one, or one PostgreSQL cannot hold once in UTC (``9999-12-31T23:59:59-23:00`` failed in the
    driver as an INTERNAL_SERVER_ERROR)."""
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        raise ValueError(text)
    try:
        return at.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(text) from exc


def decode(kind: str, cursor: str) -> int:
    try:
        prefix, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if prefix != kind:
            raise ValueError(prefix)
        return row_id(value)
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise InvalidCursor("Malformed cursor") from exc


def encode_at(at: datetime, ident: int) -> str:
    """Cursor of a list ordered by ``(instant, id)``: ``base64url("<ISO 8601>|<id>")``."""
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{ident}".encode()).decode()


def decode_at(cursor: str) -> tuple[datetime, int]:
    """The ``(instant, id)`` inside a cursor made by ``encode_at``. Raises ``InvalidCursor``."""
    try:
        at, ident = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return timestamp(at), row_id(ident)
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise InvalidCursor("Malformed cursor") from exc

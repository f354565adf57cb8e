"""Opaque keyset cursors over a row id, for lists ordered by id (newest first).

A cursor is ``base64url("<kind>:<id>")``: the kind stops a cursor of one list being used on
another. ``decode`` raises ``InvalidCursor`` (code ``INVALID_CURSOR``, field ``after``)."""

from __future__ import annotations

import base64
import binascii

from domain.errors import DomainError


class InvalidCursor(DomainError):
    code = "INVALID_CURSOR"
    field = "after"


def encode(kind: str, row_id: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{row_id}".encode()).decode()


def decode(kind: str, cursor: str) -> int:
    try:
        prefix, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if prefix != kind:
            raise ValueError(prefix)
        return int(value)
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise InvalidCursor("Malformed cursor") from exc

"""Relay global IDs (``base64("TypeName:123")``) in inputs; raw integers are accepted too."""

from __future__ import annotations

import base64
import binascii
import re

from domain.shared.errors import CommonErrorCode, DomainError


class InvalidId(DomainError):
    code = CommonErrorCode.INVALID_ID


# A database id: ASCII digits only (str.isdigit() also takes "²" and "１", which int() refuses or
# reads), at most a PostgreSQL bigint; anything else reached SQL and failed there as an unexpected
# error (INTERNAL_SERVER_ERROR for "1180591620717411303424": found by the fuzzer, tests/system/fuzzing.py).
_DB_ID = re.compile(r"[0-9]{1,19}")
MAX_DB_ID = 2**63 - 1


def _db_id(text: str) -> int | None:
    return int(text) if _DB_ID.fullmatch(text) and int(text) <= MAX_DB_ID else None


def decode_id(value: str | int, type_name: str, *, field: str) -> int:
    """The database id (a bigint: at most 2**63-1) inside global ID ``value`` of ``type_name``, or a raw
    number in that range. Raises ``InvalidId`` otherwise."""
    raw = str(value).strip()
    if (ident := _db_id(raw)) is not None:
        return ident
    try:
        decoded = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True).decode()
        kind, _, ident_text = decoded.partition(":")
        if kind == type_name and (ident := _db_id(ident_text)) is not None:
            return ident
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise InvalidId(f"Not a {type_name} id", field=field)


def encode_id(type_name: str, ident: int) -> str:
    return base64.b64encode(f"{type_name}:{ident}".encode()).decode()


def optional_id(value: str | None, type_name: str, *, field: str) -> int | None:
    """``decode_id`` of an optional input: None when ``value`` is null or empty."""
    return decode_id(value, type_name, field=field) if value else None

"""Relay global IDs (``base64("TypeName:123")``) in inputs; raw integers are accepted too."""

from __future__ import annotations

import base64
import binascii

from domain.errors import DomainError


class InvalidId(DomainError):
    code = "INVALID_ID"


def decode_id(value: str | int, type_name: str, *, field: str) -> int:
    """The database id inside global ID ``value`` of ``type_name``. Raises ``InvalidId``."""
    raw = str(value).strip()
    if raw.isdigit():
        return int(raw)
    try:
        decoded = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True).decode()
        kind, _, ident = decoded.partition(":")
        if kind == type_name and ident.isdigit():
            return int(ident)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise InvalidId(f"Not a {type_name} id", field=field)


def encode_id(type_name: str, ident: int) -> str:
    return base64.b64encode(f"{type_name}:{ident}".encode()).decode()

"""Mapping of typed domain errors to payload errors ``{field, code, message}``."""

from __future__ import annotations

from dataclasses import dataclass

from domain.shared.errors import DomainError, Forbidden
from resolvers.context import forbidden


@dataclass(frozen=True)
class PayloadError:
    field: str | None
    code: str
    message: str


def to_payload_error(exc: DomainError) -> PayloadError:
    """Forbidden becomes a top-level FORBIDDEN error (CONVENTIONS.md); everything else a payload error."""
    if isinstance(exc, Forbidden):
        raise forbidden(exc.message) from exc
    return PayloadError(field=exc.field, code=exc.code, message=exc.message)

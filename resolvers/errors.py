"""Mapping of typed domain errors to what the API answers: payload errors ``{field, code, message}``
for mutations (``to_payload_error``, ``write``), typed top-level errors for queries (``bad_input``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from graphql import GraphQLError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.shared import outbox
from domain.shared.errors import DomainError, Forbidden
from models.db import session_scope
from resolvers.context import forbidden

T = TypeVar("T")


@dataclass(frozen=True)
class PayloadError:
    field: str | None
    code: str
    message: str


def to_payload_error(exc: DomainError) -> PayloadError:
    """Forbidden becomes a top-level FORBIDDEN error (docs/conventions.md); everything else a payload error."""
    if isinstance(exc, Forbidden):
        raise forbidden(exc.message) from exc
    return PayloadError(field=exc.field, code=exc.code, message=exc.message)


def bad_input(exc: DomainError) -> GraphQLError:
    """Queries have no payload: bad input is a top-level error with the domain code and field."""
    return GraphQLError(exc.message, extensions={"code": exc.code, "field": exc.field})


async def write(op: Callable[[AsyncSession], Awaitable[T]]) -> tuple[T | None, list[PayloadError]]:
    """Run ``op`` in its own transaction. A ``DomainError`` rolls everything back and becomes the
    payload's error (``Forbidden``: a top-level FORBIDDEN); on success the outbox is relayed after
    commit (status events, emails)."""
    try:
        async with session_scope() as session:
            out = await op(session)
    except DomainError as exc:
        return None, [to_payload_error(exc)]
    await outbox.relay_quietly()
    return out, []

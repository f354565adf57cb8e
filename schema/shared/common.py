"""Shared GraphQL types: money, points, page info, payload errors."""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum, StrEnum

import strawberry
import structlog
from strawberry import relay

from domain.shared.money import Money as DomainMoney
from settings import get_settings

log = structlog.get_logger(__name__)


@strawberry.type(description="An amount in integer minor units of an ISO 4217 currency (XAF has none).")
class Money:
    amount_minor: int
    currency: str
    formatted: str

    @classmethod
    def of(cls, amount_minor: int, currency: str) -> "Money":
        return cls(amount_minor=amount_minor, currency=currency, formatted=DomainMoney(amount_minor, currency).formatted())


@strawberry.type(description="WGS84 point in degrees.")
class GeoPoint:
    latitude: float
    longitude: float


@strawberry.input(description="WGS84 point in degrees: latitude in [-90, 90], longitude in [-180, 180].")
class GeoPointInput:
    latitude: float
    longitude: float


def error_code_enum(name: str, codes: Iterable[StrEnum], *, description: str | None = None) -> type[Enum]:
    """The GraphQL enum ``name`` of the error codes a mutation's payload may carry, generated from the
    domain's code StrEnums (``domain/<context>/errors.py``, ``domain/shared/errors.py``): values and their
    order are ``codes``. One source for every code: the domain raises it, this lists it."""
    members = [(str(code), str(code)) for code in codes]
    if len({m for m, _ in members}) != len(members):
        raise ValueError(f"{name}: a code is listed twice")
    return strawberry.enum(Enum(name, members), description=description)


class UnlistedErrorCode(AssertionError):
    """A mutation produced an error code its payload's enum does not list (a defect: add the code to the
    enum, generated from the domain's codes). Raised in development and tests; production logs it and
    answers ``INVALID``."""


def coded_errors(enum_cls, error_cls, errors) -> list:
    """Payload errors ``error_cls(field, code, message)`` from resolver ``PayloadError``s. A code the
    payload's enum does not list raises ``UnlistedErrorCode`` in development and tests (so the test that
    reaches it fails); in production it is logged as ``error_code.unlisted`` and answered as ``INVALID``."""
    out = []
    for e in errors:
        if e.code in enum_cls.__members__:
            code = enum_cls[e.code]
        else:
            if get_settings().environment in ("development", "test"):
                raise UnlistedErrorCode(f"{enum_cls.__name__} does not list {e.code} (field {e.field}): add it")
            log.error("error_code.unlisted", enum=enum_cls.__name__, code=e.code, field=e.field)
            code = enum_cls.INVALID
        out.append(error_cls(field=e.field, code=code, message=e.message))
    return out


def page_info(edges: list, *, has_next: bool, has_previous: bool) -> relay.PageInfo:
    """Relay PageInfo for a page of ``edges`` (objects with a ``cursor``)."""
    return relay.PageInfo(
        has_next_page=has_next, has_previous_page=has_previous,
        start_cursor=edges[0].cursor if edges else None, end_cursor=edges[-1].cursor if edges else None,
    )

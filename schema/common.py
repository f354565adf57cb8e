"""Shared GraphQL types: money, points, page info, payload errors."""

from __future__ import annotations

import strawberry
from strawberry import relay

from domain.shared.money import Money as DomainMoney


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


def coded_errors(enum_cls, error_cls, errors) -> list:
    """Payload errors ``error_cls(field, code, message)`` from resolver ``PayloadError``s; a code the
    domain's enum does not list becomes ``INVALID`` (so a new domain error never breaks the schema)."""
    return [
        error_cls(field=e.field, code=enum_cls[e.code] if e.code in enum_cls.__members__ else enum_cls.INVALID,
                  message=e.message)
        for e in errors
    ]


def page_info(edges: list, *, has_next: bool, has_previous: bool) -> relay.PageInfo:
    """Relay PageInfo for a page of ``edges`` (objects with a ``cursor``)."""
    return relay.PageInfo(
        has_next_page=has_next, has_previous_page=has_previous,
        start_cursor=edges[0].cursor if edges else None, end_cursor=edges[-1].cursor if edges else None,
    )

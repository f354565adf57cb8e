"""Discovery resolvers: ranked provider search (public) and the provider's urgent-jobs switch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.providers import discovery
from domain.providers import provider as provider_domain
from domain.shared.errors import DomainError
from models.db import session_scope
from resolvers.context import Context
from resolvers.errors import PayloadError, bad_input, to_payload_error
from resolvers.pagination import page_size


async def search_providers(
    ctx: Context, *, latitude: float, longitude: float, radius_km: float, category: str | None,
    min_price_minor: int | None, max_price_minor: int | None, currency: str | None, min_rating: float | None,
    available_from: datetime | None, available_to: datetime | None, urgent: bool, first: int | None,
    after: str | None,
) -> discovery.SearchPage:
    """Anyone may search (no personal data in a hit). Bad input is a top-level error with the
    domain's code and field (INVALID_LOCATION, INVALID_RADIUS, INVALID_FILTER, INVALID_CURSOR,
    INVALID_PAGE_SIZE)."""
    try:
        point = provider_domain.GeoPoint(latitude, longitude)
        size = page_size(first)
        filters = discovery.SearchFilters(
            category=category, min_price_minor=min_price_minor, max_price_minor=max_price_minor, currency=currency,
            min_rating=min_rating, available_from=available_from, available_to=available_to, urgent=bool(urgent),
        )
        async with ctx.db() as session:
            return await discovery.search_providers(session, point, radius_km * 1000.0, filters, first=size,
                                                    after=after)
    except DomainError as exc:
        raise bad_input(exc) from exc


@dataclass
class AcceptsUrgentResult:
    accepts_urgent: bool | None
    errors: list[PayloadError]


async def set_accepts_urgent(ctx: Context, *, accepts_urgent: bool) -> AcceptsUrgentResult:
    """The calling provider says whether it takes urgent jobs; its cached searches are invalidated
    after commit. NOT_A_PROVIDER for an account without a provider profile."""
    user = await ctx.require_user()
    try:
        async with session_scope() as session:
            provider_id = await discovery.set_accepts_urgent(session, user.id, accepts_urgent)
    except DomainError as exc:
        return AcceptsUrgentResult(None, [to_payload_error(exc)])
    await discovery.invalidate_provider(provider_id)
    return AcceptsUrgentResult(accepts_urgent, [])

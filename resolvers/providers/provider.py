"""Provider resolvers: geosearch, verification (admin), availability (provider)."""

from __future__ import annotations

from dataclasses import dataclass

from domain.providers import discovery
from domain.providers import provider as provider_domain
from domain.shared.errors import DomainError
from models import Provider
from models.db import session_scope
from resolvers import loaders
from resolvers.context import Context
from resolvers.errors import PayloadError, bad_input, to_payload_error
from resolvers.ids import decode_id
from resolvers.pagination import page_size


async def providers_nearby(
    ctx: Context, *, latitude: float, longitude: float, radius_km: float, category: str | None,
    first: int | None, after: str | None,
) -> tuple[list[provider_domain.NearbyProvider], bool]:
    try:
        point = provider_domain.GeoPoint(latitude, longitude)
        size = page_size(first)
        async with ctx.db() as session:
            return await provider_domain.providers_nearby(
                session, point, radius_km * 1000.0, category=category or None, first=size, after=after
            )
    except DomainError as exc:
        raise bad_input(exc) from exc


@dataclass
class ProviderResult:
    provider: Provider | None
    errors: list[PayloadError]


async def verify_provider(ctx: Context, *, provider_id: str) -> ProviderResult:
    await ctx.require_admin()
    try:
        async with session_scope() as session:
            provider = await provider_domain.verify_provider(
                session, decode_id(provider_id, "Provider", field="providerId")
            )
    except DomainError as exc:
        return ProviderResult(None, [to_payload_error(exc)])
    await discovery.invalidate_provider(provider.id)  # after commit: cached searches around it miss
    return ProviderResult(provider, [])


async def set_availability(
    ctx: Context, *, available: bool, latitude: float | None, longitude: float | None
) -> ProviderResult:
    user = await ctx.require_user()
    try:
        location = None
        if latitude is not None and longitude is not None:
            location = provider_domain.GeoPoint(latitude, longitude)
        async with session_scope() as session:
            provider = await provider_domain.set_availability(
                session, user.id, available=available, location=location
            )
    except DomainError as exc:
        return ProviderResult(None, [to_payload_error(exc)])
    await discovery.invalidate_provider(provider.id)  # after commit: cached searches around it miss
    return ProviderResult(provider, [])


async def provider_view(ctx: Context, provider_id: int) -> provider_domain.ProviderView | None:
    return await loaders.provider_views(ctx).load(provider_id)

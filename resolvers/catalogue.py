"""Catalogue resolvers."""

from __future__ import annotations

from domain.catalogue import services as catalogue
from models import Service, ServiceTier
from resolvers.context import Context


async def services(ctx: Context, *, category: str | None) -> list[Service]:
    """Active services with tiers and prices (3 statements)."""
    async with ctx.db() as session:
        return await catalogue.list_services(session, category=category or None)


async def tier_nodes(ctx: Context, ids: list[int]) -> list[ServiceTier | None]:
    async with ctx.db() as session:
        found = {t.id: t for t in await catalogue.get_tiers(session, ids)}
    return [found.get(i) for i in ids]


async def service_nodes(ctx: Context, ids: list[int]) -> list[Service | None]:
    async with ctx.db() as session:
        found = {s.id: s for s in await catalogue.get_services(session, ids)}
    return [found.get(i) for i in ids]

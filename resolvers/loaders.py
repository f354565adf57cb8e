"""Per-request DataLoaders: related objects load in one statement per kind, whatever the page size."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from strawberry.dataloader import DataLoader

from domain import catalogue
from domain import provider as provider_domain
from domain import service_request as sr_domain
from models import Conversation, ServiceTier
from resolvers.context import Context


def _loader(ctx: Context, name: str, batch: Callable[[list[Any]], Any]) -> DataLoader:
    loader = ctx.loaders.get(name)
    if loader is None:
        loader = DataLoader(load_fn=batch)
        ctx.loaders[name] = loader
    return loader


def _by_id(ctx: Context, name: str, model: type) -> DataLoader:
    async def batch(ids: list[int]) -> list[Any]:
        async with ctx.db() as session:
            rows = (await session.scalars(select(model).where(model.id.in_(ids)))).all()
        found = {row.id: row for row in rows}
        return [found.get(i) for i in ids]

    return _loader(ctx, name, batch)


def services(ctx: Context) -> DataLoader:
    """Services with their tiers and prices loaded."""

    async def batch(ids: list[int]) -> list[Any]:
        async with ctx.db() as session:
            found = {s.id: s for s in await catalogue.get_services(session, ids)}
        return [found.get(i) for i in ids]

    return _loader(ctx, "services", batch)


def tiers(ctx: Context) -> DataLoader:
    return _by_id(ctx, "tiers", ServiceTier)


def provider_views(ctx: Context) -> DataLoader:
    async def batch(ids: list[int]) -> list[Any]:
        async with ctx.db() as session:
            found = await provider_domain.provider_views(session, ids)
        return [found.get(i) for i in ids]

    return _loader(ctx, "provider_views", batch)


def timelines(ctx: Context) -> DataLoader:
    async def batch(ids: list[int]) -> list[Any]:
        async with ctx.db() as session:
            found = await sr_domain.timelines(session, ids)
        return [found[i] for i in ids]

    return _loader(ctx, "timelines", batch)


def conversations_by_request(ctx: Context) -> DataLoader:
    async def batch(ids: list[int]) -> list[Any]:
        async with ctx.db() as session:
            rows = (await session.scalars(select(Conversation).where(Conversation.service_request_id.in_(ids)))).all()
        found = {row.service_request_id: row for row in rows}
        return [found.get(i) for i in ids]

    return _loader(ctx, "conversations_by_request", batch)

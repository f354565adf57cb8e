"""The service catalogue: services with tiers, prices per currency and features."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from models import Service, ServiceTier


async def list_services(session: AsyncSession, *, category: str | None = None) -> list[Service]:
    """Active services (optionally of one ``category`` slug) ordered by category then name, with
    ``tiers`` and each tier's ``prices`` loaded: exactly 3 SQL statements whatever the size."""
    stmt = (
        select(Service)
        .where(Service.active.is_(True))
        .options(selectinload(Service.tiers).selectinload(ServiceTier.prices))
        .order_by(Service.category, Service.name, Service.id)
    )
    if category:
        stmt = stmt.where(Service.category == category)
    return list((await session.scalars(stmt)).all())


async def get_tiers(session: AsyncSession, ids: list[int]) -> list[ServiceTier]:
    """Tiers by id with their prices loaded (missing ids are simply absent); 2 statements."""
    stmt = select(ServiceTier).where(ServiceTier.id.in_(ids)).options(selectinload(ServiceTier.prices))
    return list((await session.scalars(stmt)).all())


async def get_services(session: AsyncSession, ids: list[int]) -> list[Service]:
    """Services by id with tiers and prices loaded (missing ids are simply absent)."""
    stmt = (
        select(Service)
        .where(Service.id.in_(ids))
        .options(selectinload(Service.tiers).selectinload(ServiceTier.prices))
    )
    return list((await session.scalars(stmt)).all())

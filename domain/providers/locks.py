"""Provider row locks (position 2 of the lock order in domain/shared/locks.py): every write that changes
a provider's plan, puts a booking on its time, or changes its standing or rating aggregates takes the
provider's row first."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from domain.shared.errors import NotFound
from domain.shared.locks import lock_row
from models import Provider


async def lock_provider(session: AsyncSession, provider_id: int) -> Provider:
    """The provider, row-locked until commit. Raises ``NotFound`` (field providerId)."""
    provider = await lock_row(session, Provider, provider_id)
    if provider is None:
        raise NotFound("No such provider", field="providerId")
    return provider


async def lock_provider_if_any(session: AsyncSession, provider_id: int) -> Provider | None:
    """The provider, row-locked until commit, or None when there is no such provider."""
    return await lock_row(session, Provider, provider_id)

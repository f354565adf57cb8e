"""Order row locks (position 4 of the lock order in domain/shared/locks.py, after the provider and the
payment being confirmed): every change of an order's status, assignment or money holds its row."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from domain.shared.errors import NotFound
from domain.shared.locks import lock_row
from models import ServiceRequest


async def lock_request(session: AsyncSession, request_id: int) -> ServiceRequest:
    """The order, row-locked for the rest of the transaction. Raises ``NotFound`` (field id)."""
    request = await lock_row(session, ServiceRequest, request_id)
    if request is None:
        raise NotFound("No such service request", field="id")
    return request

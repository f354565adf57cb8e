"""Operator CSV exports that stream (issue 7): never a whole table in memory.

``service_requests_csv`` writes the admin request table (the same filters as ``serviceRequests``,
domain/service_request.py ``filter_conditions``) oldest first, through ``domain.audit.stream_csv``: a
server-side cursor read in batches, cells defused against formula injection. Columns hold no personal
data (no names, emails, phones or addresses): the export identifies customers by account id only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from sqlalchemy import and_, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from domain import audit
from domain.service_request import RequestFilter, filter_conditions
from models import ServiceRequest

REQUEST_CSV_COLUMNS = (
    "reference", "created_at", "updated_at", "status", "service_id", "tier_id", "currency", "amount_minor",
    "price_minor", "guest_surcharge_minor", "assigned_provider_id", "customer_user_id", "affiliate_code",
)
"""The request export's columns, in order: instants in ISO 8601 UTC, amounts in minor units of
``currency``, ids as database ids, empty cells for nulls."""


def _where(flt: RequestFilter):
    conditions = filter_conditions(flt)
    return and_(*conditions) if conditions else true()


async def count_service_requests(session: AsyncSession, flt: RequestFilter) -> int:
    """How many requests ``flt`` matches (for a progress bar's total)."""
    return int(await session.scalar(select(func.count()).select_from(ServiceRequest).where(_where(flt))) or 0)


def service_requests_csv(
    flt: RequestFilter, *, batch_rows: int, on_rows: Callable[[int], None] | None = None
) -> AsyncIterator[str]:
    """The requests ``flt`` matches, oldest first (by id), as CSV chunks: the header
    (``REQUEST_CSV_COLUMNS``), then one chunk per ``batch_rows`` rows; ``on_rows(n)`` per chunk."""
    table = ServiceRequest.__table__.c
    stmt = select(*(table[c] for c in REQUEST_CSV_COLUMNS)).where(_where(flt)).order_by(ServiceRequest.id)
    return audit.stream_csv(stmt, REQUEST_CSV_COLUMNS, batch_rows=batch_rows, on_rows=on_rows)

"""Operator CSV exports that stream: never a whole table in memory.

Three exports, each a SELECT streamed through ``domain.audit.stream_csv`` (a server-side cursor read
in batches, cells defused against formula injection):

- ``service_requests_csv``: the admin request table (the same filters as ``serviceRequests``,
  domain/orders/service_request.py ``filter_conditions``), oldest first.
- ``ledger_csv``: the journal, one row per ledger entry with its transaction and account, in posting
  order; every transaction's entries sum to zero per currency (double entry), so an accountant can
  rebuild any balance or report (domain/operations/reports.py) from the file.
- ``payouts_csv``: payouts with their status and gateway reference, for reconciliation against the
  gateway's statement.

Columns hold no personal data (no names, emails, phones, addresses or payout account numbers):
customers and providers appear by database id only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from domain.orders.service_request import RequestFilter, filter_conditions
from domain.shared import audit
from models import LedgerAccount, LedgerEntry, LedgerTransaction, Payout, ServiceRequest

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


@dataclass(frozen=True)
class PeriodFilter:
    """The ledger and payout exports' filter, all optional: ``start`` / ``end`` bound the row's time
    as ``[start, end)`` (aware datetimes: the entry's posting time, the payout's creation time),
    ``currency`` an ISO 4217 code."""

    start: datetime | None = None
    end: datetime | None = None
    currency: str | None = None


def _period(f: PeriodFilter, at, currency) -> list:
    return [c for c in (at >= f.start if f.start else None, at < f.end if f.end else None,
                        currency == f.currency if f.currency else None) if c is not None]


LEDGER_CSV_COLUMNS = (
    "entry_id", "posted_at", "transaction_id", "transaction_kind", "order_reference", "account_key",
    "account_kind", "owner_type", "owner_id", "currency", "amount_minor", "balance_after_minor",
)
"""The journal export's columns: one row per ledger entry; ``amount_minor`` is signed as posted
(domain/money/ledger.py: a transaction's entries sum to zero per currency), ``balance_after_minor`` the
account's balance after it;
``order_reference`` empty for transactions without an order (payouts, adjustments)."""


def ledger_rows(f: PeriodFilter) -> Select:
    """The journal SELECT for ``f`` in posting order (entry id), columns ``LEDGER_CSV_COLUMNS``."""
    return (
        select(LedgerEntry.id, LedgerEntry.created_at, LedgerTransaction.id, LedgerTransaction.kind,
               ServiceRequest.reference, LedgerAccount.key, LedgerAccount.kind, LedgerAccount.owner_type,
               LedgerAccount.owner_id, LedgerEntry.currency, LedgerEntry.amount_minor, LedgerEntry.balance_after_minor)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .outerjoin(ServiceRequest, ServiceRequest.id == LedgerTransaction.service_request_id)
        .where(*_period(f, LedgerEntry.created_at, LedgerEntry.currency))
        .order_by(LedgerEntry.id)
    )


PAYOUT_CSV_COLUMNS = (
    "reference", "created_at", "provider_id", "gateway", "currency", "amount_minor", "status", "gateway_id",
    "attempts", "sent_at", "settled_at", "failure_reason",
)
"""The payout export's columns (no destination: account numbers are personal data)."""


def payout_rows(f: PeriodFilter) -> Select:
    """The payouts SELECT for ``f``, oldest first, columns ``PAYOUT_CSV_COLUMNS``."""
    table = Payout.__table__.c
    return (select(*(table[c] for c in PAYOUT_CSV_COLUMNS))
            .where(*_period(f, Payout.created_at, Payout.currency)).order_by(Payout.id))


async def count_rows(session: AsyncSession, stmt: Select) -> int:
    """How many rows ``stmt`` returns (a progress bar's total), one statement."""
    return int(await session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0)


def ledger_csv(f: PeriodFilter, *, batch_rows: int, on_rows: Callable[[int], None] | None = None) -> AsyncIterator[str]:
    """The journal for ``f`` as CSV chunks (header ``LEDGER_CSV_COLUMNS``, then one per batch)."""
    return audit.stream_csv(ledger_rows(f), LEDGER_CSV_COLUMNS, batch_rows=batch_rows, on_rows=on_rows)


def payouts_csv(f: PeriodFilter, *, batch_rows: int, on_rows: Callable[[int], None] | None = None) -> AsyncIterator[str]:
    """The payouts for ``f`` as CSV chunks (header ``PAYOUT_CSV_COLUMNS``, then one per batch)."""
    return audit.stream_csv(payout_rows(f), PAYOUT_CSV_COLUMNS, batch_rows=batch_rows, on_rows=on_rows)

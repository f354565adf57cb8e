"""Reconciliation (admins): runs against the gateways (run now, the latest reports, by id) and the
payments flagged for review."""

from __future__ import annotations

from dataclasses import dataclass

from domain.orders import reconciliation
from domain.shared import outbox
from domain.shared.errors import CommonErrorCode
from models import Payment, ReconciliationRun
from models.db import session_scope
from resolvers.context import Context
from resolvers.errors import PayloadError
from resolvers.pagination import page_size
from settings import get_settings


async def reconciliation_runs(ctx: Context, *, first: int | None) -> list[ReconciliationRun]:
    """Admin: the latest runs, newest first."""
    await ctx.require_admin()
    size = page_size(first, 10)
    async with ctx.db() as session:
        return await reconciliation.list_runs(session, first=size)


@dataclass
class RunResult:
    run: ReconciliationRun | None
    errors: list[PayloadError]


async def run_reconciliation(ctx: Context, *, older_than_seconds: int | None) -> RunResult:
    """Admin: one reconciliation run now (``reconciliation.run``: asks the gateways about
    everything pending longer than ``older_than_seconds``, default settings.reconcile_after_seconds).
    The run manages its own transactions; jobs it queued are relayed afterwards."""
    await ctx.require_admin()
    if older_than_seconds is not None and older_than_seconds < 0:
        return RunResult(None, [PayloadError("olderThanSeconds", CommonErrorCode.INVALID, "olderThanSeconds cannot be negative")])
    run_id = await reconciliation.run(
        older_than_seconds=get_settings().reconcile_after_seconds if older_than_seconds is None else older_than_seconds
    )
    await outbox.relay_quietly()
    async with session_scope() as session:
        found = await session.get(ReconciliationRun, run_id)
    return RunResult(found, [])


async def reconciliation_run_nodes(ctx: Context, ids: list[int]) -> list[ReconciliationRun | None]:
    viewer = await ctx.viewer()
    if viewer is None or viewer.role != "admin":
        return [None] * len(ids)
    async with ctx.db() as session:
        return [await session.get(ReconciliationRun, i) for i in ids]


async def flagged_payments(ctx: Context) -> list[Payment]:
    """Admin: payments held for review (the gateway reported another amount or currency)."""
    await ctx.require_admin()
    async with ctx.db() as session:
        return await reconciliation.flagged_payments(session)

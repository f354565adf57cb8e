"""Operations resolvers (admin only): dead letters (list, replay, discard) and reconciliation
(run, report, flagged payments)."""

from __future__ import annotations

from dataclasses import dataclass

from domain.orders import reconciliation
from domain.shared import dead_letter, outbox
from domain.shared.errors import CommonErrorCode, DomainError
from models import DeadLetter, Payment, ReconciliationRun
from models.db import session_scope
from resolvers.context import Context
from resolvers.errors import PayloadError, to_payload_error
from resolvers.ids import decode_id
from resolvers.provider import bad_input, page_size
from settings import get_settings


async def dead_letters(
    ctx: Context, *, status: str | None, first: int | None, after: str | None
) -> tuple[list[tuple[DeadLetter, str]], bool]:
    """Admin: dead letters newest first, keyset-paginated (one statement)."""
    await ctx.require_admin()
    try:
        size = page_size(first)
        async with ctx.db() as session:
            return await dead_letter.list_dead_letters(session, status=status, first=size, after=after)
    except DomainError as exc:
        raise bad_input(exc) from exc


@dataclass
class DeadLetterResult:
    letter: DeadLetter | None
    errors: list[PayloadError]


async def replay_dead_letter(ctx: Context, *, dead_letter_id: str) -> DeadLetterResult:
    """Admin: re-enqueue the dead letter's job (after commit, via the outbox). Replaying one that is
    not open returns it unchanged (idempotent)."""
    admin = await ctx.require_admin()
    try:
        ident = decode_id(dead_letter_id, "DeadLetter", field="id")
        async with session_scope() as session:
            letter = await dead_letter.replay(session, ident, admin_user_id=admin.id)
    except DomainError as exc:
        return DeadLetterResult(None, [to_payload_error(exc)])
    await outbox.relay_quietly()
    return DeadLetterResult(letter, [])


async def discard_dead_letter(ctx: Context, *, dead_letter_id: str) -> DeadLetterResult:
    """Admin: mark an open dead letter discarded (``DEAD_LETTER_NOT_OPEN`` otherwise)."""
    admin = await ctx.require_admin()
    try:
        ident = decode_id(dead_letter_id, "DeadLetter", field="id")
        async with session_scope() as session:
            letter = await dead_letter.discard(session, ident, admin_user_id=admin.id)
    except DomainError as exc:
        return DeadLetterResult(None, [to_payload_error(exc)])
    return DeadLetterResult(letter, [])


async def dead_letter_nodes(ctx: Context, ids: list[int]) -> list[DeadLetter | None]:
    """Dead letters by global id: admins only (others get null)."""
    viewer = await ctx.viewer()
    if viewer is None or viewer.role != "admin":
        return [None] * len(ids)
    async with ctx.db() as session:
        return [await session.get(DeadLetter, i) for i in ids]


# --- reconciliation -------------------------------------------------------------------------------


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


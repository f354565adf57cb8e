"""Escalations (admins): what an operator must look at, listed, read by id and marked handled."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from domain.orders import escalation
from domain.shared import pagination
from domain.shared.errors import DomainError
from models import Escalation
from resolvers import loaders
from resolvers.context import Context
from resolvers.errors import PayloadError, bad_input, write
from resolvers.ids import decode_id
from resolvers.pagination import page_size

# The keyset cursor kind of domain.orders.escalation.list_escalations.
ESCALATION_CURSOR = "Escalation"


async def escalations(
    ctx: Context, *, open_only: bool, kind: str | None, first: int | None, after: str | None
) -> tuple[list[tuple[Escalation, str]], bool]:
    """Admin: escalations newest first, keyset on id (one statement)."""
    await ctx.require_admin()
    try:
        size = page_size(first)
        async with ctx.db() as session:
            rows, has_next = await escalation.list_escalations(
                session, open_only=open_only, kind=kind, first=size, after=after
            )
    except DomainError as exc:
        raise bad_input(exc) from exc
    return [(e, pagination.encode(ESCALATION_CURSOR, e.id)) for e in rows], has_next


async def escalation_nodes(ctx: Context, ids: list[int]) -> list[Escalation | None]:
    """Escalations by id: admins only (null for anyone else)."""
    viewer = await ctx.viewer()
    if viewer is None or viewer.role != "admin":
        return [None] * len(ids)
    return await loaders.escalations(ctx).load_many(ids)


@dataclass
class EscalationResult:
    escalation: Escalation | None
    errors: list[PayloadError]


async def resolve_escalation(ctx: Context, *, escalation_id: str) -> EscalationResult:
    """Admin: mark an escalation handled (idempotent)."""
    admin = await ctx.require_admin()

    async def op(session: AsyncSession) -> Escalation:
        ident = decode_id(escalation_id, "Escalation", field="escalationId")
        return await escalation.resolve(session, ident, admin_user_id=admin.id)

    resolved, errors = await write(op)
    return EscalationResult(resolved, errors)

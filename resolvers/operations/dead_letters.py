"""Dead letters (admins): jobs whose retries ran out, listed, replayed, discarded, read by id."""

from __future__ import annotations

from dataclasses import dataclass

from domain.shared import dead_letter, outbox
from domain.shared.errors import DomainError
from models import DeadLetter
from models.db import session_scope
from resolvers.context import Context
from resolvers.errors import PayloadError, bad_input, to_payload_error
from resolvers.ids import decode_id
from resolvers.pagination import page_size


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

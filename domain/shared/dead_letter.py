"""Dead letters: jobs whose retries ran out, kept in PostgreSQL for an admin to read, replay or discard.

Dramatiq's own dead-letter set (``<queue>.XQ``) is neither durable nor queryable and is purged
after 7 days (docs/pitfalls.md), so the actors record their failures here instead
(``workers.deadletter.guarded``): every failed attempt updates the source's ``last_error``; the
last one (``attempts == max_retries + 1``) or a failure retrying cannot fix writes a
``dead_letters`` row with the payload, headers, attempt count, error and traceback, and marks a
webhook's inbox row ``dead_lettered_at`` so the stalled-work sweeper leaves it alone.

A replay re-enqueues the same actor with the same arguments through the outbox; since every
actor is idempotent (the inbox's ``processed_at``, a refund's or payout's status), replaying twice,
or replaying work that meanwhile succeeded, changes nothing more. Replaying a dead letter that
is not open is a no-op that returns it as it is.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.shared import outbox, pagination
from domain.shared.errors import CommonErrorCode, DomainError, NotFound
from models import DeadLetter, WebhookEvent
from models.db import session_scope

# Which table a dead letter's ``source_id`` points to, per actor.
SOURCES = {"process_webhook": "webhook", "send_refund": "refund", "send_payout": "payout", "send_email": "email"}


class DeadLetterNotOpen(DomainError):
    code = CommonErrorCode.DEAD_LETTER_NOT_OPEN
    field = "id"


async def record_failure(
    *, actor: str, queue: str, args: dict, error: BaseException, traceback_text: str, attempts: int, final: bool
) -> int | None:
    """Record one failed attempt of ``actor(**args)`` in its own transaction (the job's own
    transaction rolled back). Returns the dead letter's id when ``final``, else None."""
    source_type = SOURCES.get(actor)
    source_id = next((int(v) for k, v in args.items() if k.endswith("_id") and isinstance(v, int)), None)
    message = f"{type(error).__name__}: {error}"[:4000]
    async with session_scope() as session:
        payload = headers = None
        if source_type == "webhook" and source_id is not None:
            inbox = await session.get(WebhookEvent, source_id)
            if inbox is not None:
                inbox.last_error = message
                payload, headers = inbox.payload, inbox.headers
                if final:
                    inbox.dead_lettered_at = datetime.now(UTC)
        if not final:
            return None
        letter = DeadLetter(
            actor=actor, queue=queue, args=args, source_type=source_type, source_id=source_id, payload=payload,
            headers=headers, attempts=attempts, last_error=message, traceback=traceback_text[-20_000:], status="open",
        )
        session.add(letter)
        await session.flush()
        return letter.id


async def replay(session: AsyncSession, dead_letter_id: int, *, admin_user_id: int) -> DeadLetter:
    """Re-enqueue an open dead letter's job (after commit, via the outbox) and mark it replayed.
    Raises ``NotFound``; a dead letter already replayed or discarded is returned unchanged."""
    letter = await session.scalar(select(DeadLetter).where(DeadLetter.id == dead_letter_id).with_for_update(key_share=True))
    if letter is None:
        raise NotFound("No such dead letter", field="id")
    if letter.status != "open":
        return letter
    if letter.source_type == "webhook" and letter.source_id is not None:
        await session.execute(
            update(WebhookEvent).where(WebhookEvent.id == letter.source_id).values(dead_lettered_at=None)
        )
    outbox.enqueue_actor(session, letter.actor, queue=letter.queue, **letter.args)
    letter.status = "replayed"
    letter.resolved_at = datetime.now(UTC)
    letter.resolved_by_user_id = admin_user_id
    return letter


async def discard(session: AsyncSession, dead_letter_id: int, *, admin_user_id: int) -> DeadLetter:
    """Mark an open dead letter discarded (an admin decided nothing more is to be done).
    Raises ``NotFound``, ``DeadLetterNotOpen``."""
    letter = await session.scalar(select(DeadLetter).where(DeadLetter.id == dead_letter_id).with_for_update(key_share=True))
    if letter is None:
        raise NotFound("No such dead letter", field="id")
    if letter.status != "open":
        raise DeadLetterNotOpen(f"This dead letter is already {letter.status}")
    letter.status = "discarded"
    letter.resolved_at = datetime.now(UTC)
    letter.resolved_by_user_id = admin_user_id
    return letter


async def list_dead_letters(
    session: AsyncSession, *, status: str | None, first: int, after: str | None
) -> tuple[list[tuple[DeadLetter, str]], bool]:
    """Newest first, keyset-paginated on id. Returns ``([(letter, cursor)], has_next_page)``."""
    stmt = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(first + 1)
    if status is not None:
        stmt = stmt.where(DeadLetter.status == status)
    if after:
        stmt = stmt.where(DeadLetter.id < pagination.decode("dead_letter", after))
    rows = (await session.scalars(stmt)).all()
    return [(r, pagination.encode("dead_letter", r.id)) for r in rows[:first]], len(rows) > first

"""Escalations: what an admin must look at in the field (a ticket nobody took, a visit nobody
substitutes, a customer not at home, an unlisted appliance model). One open row per kind and
subject (a partial unique index); opening one emails the operator."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.messaging import feed, notification
from domain.shared import pagination
from domain.shared.errors import CommonErrorCode, DomainError, NotFound
from models import Booking, Escalation, Ticket
from models.bookings import ESCALATION_KINDS
from settings import get_settings


async def escalate(
    session: AsyncSession, kind: str, *, booking: Booking | None = None, ticket: Ticket | None = None, note: str = ""
) -> Escalation | None:
    """Open an escalation of ``kind`` (models.booking.ESCALATION_KINDS) on a booking or a ticket and
    alert the operator by email, in the caller's transaction. Returns None when one is already open."""
    if kind not in ESCALATION_KINDS:
        raise ValueError(f"unknown escalation kind {kind!r}")
    subject = f"booking:{booking.id}" if booking is not None else f"ticket:{ticket.id}" if ticket is not None else "-"
    existing = await session.scalar(
        select(Escalation.id).where(Escalation.kind == kind, Escalation.subject == subject, Escalation.resolved_at.is_(None))
    )
    if existing is not None:
        return None
    row = Escalation(
        kind=kind, subject=subject, booking_id=booking.id if booking else None,
        ticket_id=ticket.id if ticket else booking.ticket_id if booking else None, note=note,
    )
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        return None  # a concurrent scan opened it first
    what = booking.reference if booking is not None else ticket.reference if ticket is not None else subject
    await notification.queue_email(
        session, dedupe_key=f"escalation:{row.id}", kind="operator_alert", to=get_settings().operator_email,
        template="operator_alert",
        context={"subject": f"Escalation: {kind.replace('_', ' ')} on {what}", "body": note or kind},
    )
    await feed.escalation_opened(session, row, what=what)
    return row


async def list_escalations(
    session: AsyncSession, *, open_only: bool = True, kind: str | None = None, first: int = 20, after: str | None = None
) -> tuple[list[Escalation], bool]:
    """Escalations, newest first, keyset-paginated on id. Returns ``(rows, has_next)``."""
    stmt = select(Escalation).order_by(Escalation.id.desc()).limit(first + 1)
    if open_only:
        stmt = stmt.where(Escalation.resolved_at.is_(None))
    if kind is not None:
        if kind not in ESCALATION_KINDS:
            raise DomainError(f"Unknown escalation kind {kind}", field="kind", code=CommonErrorCode.INVALID_KIND)
        stmt = stmt.where(Escalation.kind == kind)
    if after:
        stmt = stmt.where(Escalation.id < pagination.decode("Escalation", after))
    rows = list((await session.scalars(stmt)).all())
    return rows[:first], len(rows) > first


async def resolve(session: AsyncSession, escalation_id: int, *, admin_user_id: int) -> Escalation:
    """Mark an escalation handled (idempotent). Raises ``NotFound``."""
    row = await session.scalar(select(Escalation).where(Escalation.id == escalation_id).with_for_update(key_share=True))
    if row is None:
        raise NotFound("No such escalation", field="escalationId")
    if row.resolved_at is None:
        row.resolved_at = datetime.now(UTC)
        row.resolved_by_user_id = admin_user_id
    return row

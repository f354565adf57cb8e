"""In-app notification resolvers: the viewer's feed, unread count, polling since a cursor, mark read.
Every call reads or changes only the logged-in viewer's own notifications (UNAUTHENTICATED when
anonymous)."""

from __future__ import annotations

from dataclasses import dataclass

from domain.messaging import feed
from domain.shared.errors import CommonErrorCode, DomainError
from models import Notification
from models.db import session_scope
from resolvers.context import Context
from resolvers.errors import PayloadError, bad_input, to_payload_error
from resolvers.ids import decode_id
from resolvers.pagination import page_size

MAX_MARK_IDS = 100


async def notifications(
    ctx: Context, *, first: int | None, after: str | None, unread_only: bool
) -> tuple[list[tuple[Notification, str]], bool]:
    """The viewer's notifications, newest first (one statement). Bad cursor or page size: top-level
    INVALID_CURSOR / INVALID_PAGE_SIZE errors."""
    viewer = await ctx.require_user()
    try:
        size = page_size(first)
        async with ctx.db() as session:
            return await feed.list_notifications(session, viewer.id, first=size, after=after, unread_only=unread_only)
    except DomainError as exc:
        raise bad_input(exc) from exc


async def unread_count(ctx: Context) -> int:
    """How many of the viewer's notifications are unread."""
    viewer = await ctx.require_user()
    async with ctx.db() as session:
        return await feed.unread_count(session, viewer.id)


def decode_after(since: str | None, field: str = "since") -> int:
    """The notification id inside global id ``since`` (a Notification's), 0 for None. Raises
    ``InvalidId``."""
    return 0 if since is None else decode_id(since, "Notification", field=field)


async def since(ctx: Context, *, since: str | None, first: int | None) -> list[dict]:
    """The viewer's notifications after ``since``, oldest first, as stream payloads (for polling)."""
    viewer = await ctx.require_user()
    try:
        size = page_size(first, 100)
        after = decode_after(since)
        async with ctx.db() as session:
            return await feed.notifications_since(session, viewer.id, after, size)
    except DomainError as exc:
        raise bad_input(exc) from exc


@dataclass
class MarkReadResult:
    marked_count: int
    unread_count: int
    errors: list[PayloadError]


async def mark_read(ctx: Context, *, ids: list[str] | None, up_to: str | None) -> MarkReadResult:
    """Mark the viewer's notifications in ``ids`` (at most 100) and/or with an id up to ``up_to``
    read. Ids of other users' notifications are ignored like unknown ones (nothing tells whether
    they exist). Errors, with nothing changed: REQUIRED (neither given), TOO_MANY, INVALID_ID."""
    viewer = await ctx.require_user()
    try:
        if not ids and up_to is None:
            raise DomainError("Give the ids to mark read, or upTo", field="ids", code=CommonErrorCode.REQUIRED)
        if ids and len(ids) > MAX_MARK_IDS:
            raise DomainError(f"At most {MAX_MARK_IDS} ids at once; use upTo for more", field="ids", code=CommonErrorCode.TOO_MANY)
        wanted = [decode_id(i, "Notification", field="ids") for i in ids or []]
        limit = decode_id(up_to, "Notification", field="upTo") if up_to is not None else None
    except DomainError as exc:
        return MarkReadResult(0, await unread_count(ctx), [to_payload_error(exc)])
    async with session_scope() as session:
        marked = await feed.mark_read(session, viewer.id, ids=wanted, up_to=limit)
        unread = await feed.unread_count(session, viewer.id)
    return MarkReadResult(marked, unread, [])


async def notification_nodes(ctx: Context, ids: list[int]) -> list[Notification | None]:
    """Notifications by global id: the viewer's own only (others' and anonymous callers get null)."""
    viewer = await ctx.viewer()
    if viewer is None:
        return [None] * len(ids)
    async with ctx.db() as session:
        own = await feed.get_own(session, viewer.id, ids)
    return [own.get(i) for i in ids]

"""Opening the resumable live streams: authorise the viewer once, decode the `after` cursor, and
describe the stream (pub/sub channel + how to read it back from PostgreSQL) for ``live.follow``.

Used by both subscription paths of the schema (Strawberry's per-subscriber execution and the
shared fan-out of schema/fanout.py) and by the polling queries (`...Since`), so the three agree on
who may see what and on the cursors.

Cursors are the global ids of the events themselves: ``ChatMessage``, ``ServiceRequestStatusEvent``,
``BookingStatusEvent`` and ``Notification`` ids. ``after: null`` means "from now on" for
subscriptions (nothing is replayed) and "from the beginning" for polling queries.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from graphql import GraphQLError

from domain.bookings import booking as booking_domain
from domain.messaging import chat, presence
from domain.messaging import feed as feed_domain
from domain.orders import service_request as sr_domain
from domain.shared import live
from domain.shared.errors import DomainError
from models.db import session_scope
from resolvers.bookings.lifecycle import authorise_subscription as authorise_booking
from resolvers.context import Context
from resolvers.errors import bad_input
from resolvers.ids import decode_id
from resolvers.messaging.chat import authorise_subscription as authorise_conversation
from resolvers.orders.service_request import require_reference

PRESENCE_SECONDS = 30  # a chat subscriber marks itself present this often (the key lives 60 s)


@dataclass(frozen=True)
class Opened:
    """An authorised stream: ``after`` is the last id the client has (None: it has nothing yet);
    ``heartbeat`` (if any) runs every PRESENCE_SECONDS while the subscription lives, ``farewell``
    when it ends (chat: the participant stops counting as present at once)."""

    stream: live.Stream
    after: int | None
    heartbeat: Callable[[], Awaitable[None]] | None = None
    farewell: Callable[[], Awaitable[None]] | None = None  # run once when the subscription ends


def _stream(channel: str, reader: Callable, latest: Callable, key: object) -> live.Stream:
    """A stream whose ``since`` and ``latest`` run ``reader(session, key, after, limit)`` and
    ``latest(session, key)`` in sessions of their own."""

    async def since(after: int, limit: int) -> list[dict]:
        async with session_scope() as session:
            return await reader(session, key, after, limit)

    async def newest() -> int:
        async with session_scope() as session:
            return await latest(session, key)

    return live.Stream(channel, since, newest)


def _cursor(value: str | None, type_name: str, field: str = "after") -> int | None:
    if value is None or value == "":
        return None
    try:
        return decode_id(value, type_name, field=field)
    except DomainError as exc:
        raise bad_input(exc) from exc


async def open_chat(ctx: Context, conversation_id: str, after: str | None, *, field: str = "after") -> Opened:
    """A conversation's messages for one of its participants. UNAUTHENTICATED, FORBIDDEN (not a
    participant, or no such conversation), BAD_USER_INPUT (malformed ids)."""
    cursor = _cursor(after, "ChatMessage", field)
    cid = await authorise_conversation(ctx, conversation_id)
    user = await ctx.require_user()

    async def heartbeat() -> None:
        await presence.touch(cid, user.id)

    stream = _stream(live.conversation_channel(cid), chat.messages_since, chat.latest_message_id, cid)
    return Opened(stream, cursor, heartbeat)


async def open_service_request(ctx: Context, reference: str, after: str | None, *, field: str = "after") -> Opened:
    """A service request's status changes for anyone with its reference (public tracking: the
    events hold no personal data). NOT_FOUND for an unknown reference."""
    cursor = _cursor(after, "ServiceRequestStatusEvent", field)
    reference = require_reference(reference)
    try:
        async with session_scope() as session:
            found = await sr_domain.get_by_reference(session, reference)
    finally:
        await ctx.close()
    if found is None:
        raise GraphQLError("No service request with this reference", extensions={"code": "NOT_FOUND", "field": "reference"})
    stream = _stream(
        live.service_request_channel(reference), sr_domain.status_events_since, sr_domain.latest_status_event_id,
        reference,
    )
    return Opened(stream, cursor)


async def open_booking(ctx: Context, booking_id: str, after: str | None, *, field: str = "after") -> Opened:
    """A booking's status changes for its customer, its provider and admins (FORBIDDEN otherwise)."""
    cursor = _cursor(after, "BookingStatusEvent", field)
    ident = await authorise_booking(ctx, booking_id)
    stream = _stream(
        live.booking_channel(ident), booking_domain.status_events_since, booking_domain.latest_status_event_id, ident
    )
    return Opened(stream, cursor)


async def open_notifications(ctx: Context, after: str | None, *, field: str = "after") -> Opened:
    """The viewer's own in-app notifications (UNAUTHENTICATED when anonymous)."""
    cursor = _cursor(after, "Notification", field)
    user = await ctx.require_user()
    await ctx.close()
    stream = _stream(
        live.notification_channel(user.id), feed_domain.notifications_since, feed_domain.latest_id,
        user.id,
    )
    return Opened(stream, cursor)


async def _beat(heartbeat: Callable[[], Awaitable[None]]) -> None:
    while True:
        with contextlib.suppress(Exception):  # Redis down: presence is best effort
            await heartbeat()
        await asyncio.sleep(PRESENCE_SECONDS)


@contextlib.asynccontextmanager
async def heartbeating(opened: Opened) -> AsyncIterator[None]:
    """Run ``opened.heartbeat`` in the background for the life of the block."""
    if opened.heartbeat is None:
        yield
        return
    task = asyncio.create_task(_beat(opened.heartbeat), name="live-heartbeat")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if opened.farewell is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(opened.farewell())


async def events(opened: Opened) -> AsyncIterator[dict]:
    """Every event after ``opened.after`` exactly once and in order, then live ones (``live.follow``);
    from now on when ``after`` is None."""
    async with heartbeating(opened):
        async for event in live.follow(opened.stream, opened.after):
            yield event


async def since(opened: Opened, first: int) -> list[dict]:
    """Polling: at most ``first`` events after ``opened.after`` (from the beginning when None)."""
    return await opened.stream.since(opened.after or 0, first)


"""Chat: one conversation per service request, booking or ticket, between the subject's customer,
its provider(s) and admins.

Participants (``participant_ids``; admins take part by role, in every conversation, read and write):

* a service request's conversation: its customer account (guests have none: they cannot chat) and
  the account of its assigned provider (none until one is assigned);
* a booking's conversation: its customer and the account of its provider *now* (a substitute who
  takes the visit over replaces the provider who could not make it);
* a ticket's conversation: its customer and the account of every provider with a visit on it in
  ``CHAT_VISIT_STATUSES``: paid (the provider is asked to accept), accepted and every status after
  that. Not: a hold not yet paid, a visit the provider declined, let expire or could not make it,
  nor a cancelled visit. So a provider who took part in the job keeps reading its history, and one
  who only ever saw a request does not.

Nobody else may read, post, mark read or subscribe: ``can_access`` / ``get_conversation`` are the
single check (the live subscription uses ``get_conversation`` too).

Messages: plain text, 1..4000 characters after trimming, stored and returned verbatim (clients
render them as text; the API never builds markup from them). A conversation is a resumable stream
(domain/shared/live.py): ``send_message`` locks the conversation row ``FOR NO KEY UPDATE`` so that ids are
in commit order within it, stores ``prev_id`` (the conversation's previous message, 0 for the first)
and publishes ``MessageView.payload()`` after commit; ``messages_since`` returns the same dicts.

Booking and ticket conversations are created lazily, on first access (``conversations_for``);
service request conversations are created with the order (domain/orders/service_request.py).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime

import structlog
from sqlalchemy import func, select, tuple_, union
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.messaging import feed, presence
from domain.messaging.errors import MessagingErrorCode
from domain.messaging.events import ChatMessageEvent
from domain.shared import live, outbox, pagination, ratelimit
from domain.shared.errors import CommonErrorCode, DomainError, Forbidden, NotFound
from models import Booking, ChatMessage, ChatRead, Conversation, Provider, ServiceRequest, Ticket, User
from settings import get_settings

log = structlog.get_logger(__name__)

MAX_BODY = 4000
NOTIFICATION_PREVIEW = 140  # characters of the message in an offline participant's notification
# Visits whose provider takes part in its ticket's conversation (module docstring).
CHAT_VISIT_STATUSES = (
    "paid", "accepted", "en_route", "arrived", "in_progress", "needs_follow_up", "completed",
    "customer_no_show", "disputed", "resolved", "reviewed",
)
SUBJECT_KINDS = ("service_request", "booking", "ticket")


class EmptyMessage(DomainError):
    code = MessagingErrorCode.EMPTY
    field = "body"


class MessageTooLong(DomainError):
    code = CommonErrorCode.TOO_LONG
    field = "body"


class RateLimited(DomainError):
    """Too many messages from one account (setting ``chat_rate_limit``); ``retry_after_seconds``
    (an int >= 1) is how long until the next message is accepted."""

    code = CommonErrorCode.RATE_LIMITED

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(f"You are sending messages too fast: wait {retry_after_seconds} s and send again")
        self.retry_after_seconds = retry_after_seconds


class MessageNotInConversation(NotFound):
    field = "upTo"


@dataclass(frozen=True)
class MessageView:
    """A message as the API and the live stream show it. ``created_at``: ISO 8601 UTC; ``prev_id``:
    the id of the conversation's previous message, 0 for the first."""

    id: int
    conversation_id: int
    sender_user_id: int
    sender_name: str
    body: str
    created_at: str
    prev_id: int = 0

    def event(self) -> ChatMessageEvent:
        """The published event (``ChatMessageEvent``): every field above, snake_case, plus ``"prev"``
        (= ``prev_id``) for the generic stream follower of domain/shared/live.py."""
        return ChatMessageEvent(**asdict(self), prev=self.prev_id)

    def payload(self) -> dict:
        """``event()`` as the JSON object published (and returned by ``messages_since``)."""
        return self.event().payload()

    @classmethod
    def from_payload(cls, payload: dict) -> MessageView:
        """The view back from a ``payload()`` dict (extra keys such as ``prev`` are ignored)."""
        return cls(**{f.name: payload[f.name] for f in fields(cls) if f.name in payload})


@dataclass(frozen=True)
class ReadReceipt:
    """How far ``user_id`` read ``conversation_id``: up to message ``last_read_message_id``, at ``read_at``."""

    conversation_id: int
    user_id: int
    last_read_message_id: int
    read_at: datetime


def _view(message: ChatMessage, sender_name: str) -> MessageView:
    return MessageView(message.id, message.conversation_id, message.sender_user_id, sender_name, message.body,
                       message.created_at.astimezone(UTC).isoformat(), message.prev_id)


# --- who takes part ------------------------------------------------------------------------------


def subject_of(conversation: Conversation) -> tuple[str, int]:
    """``(kind, id)`` of what the conversation is about: kind in ``SUBJECT_KINDS``."""
    if conversation.service_request_id is not None:
        return "service_request", conversation.service_request_id
    if conversation.booking_id is not None:
        return "booking", conversation.booking_id
    return "ticket", conversation.ticket_id  # type: ignore[return-value]


async def ticket_participants(session: AsyncSession, ticket_ids: list[int]) -> dict[int, set[int]]:
    """Per ticket: its customer account and the accounts of the providers of its visits in
    ``CHAT_VISIT_STATUSES``. One statement whatever the number of tickets."""
    out: dict[int, set[int]] = {i: set() for i in ticket_ids}
    if not ticket_ids:
        return out
    rows = (await session.execute(union(
        select(Ticket.id, Ticket.customer_user_id).where(Ticket.id.in_(ticket_ids)),
        select(Booking.ticket_id, Provider.user_id).join(Provider, Provider.id == Booking.provider_id).where(
            Booking.ticket_id.in_(ticket_ids), Booking.status.in_(CHAT_VISIT_STATUSES)),
    ))).all()
    for ticket_id, user_id in rows:
        out[ticket_id].add(user_id)
    return out


async def participant_ids(session: AsyncSession, conversation: Conversation) -> set[int]:
    """The user ids of the conversation's customer and provider account(s) (module docstring);
    admins are not listed (they take part by role). One statement."""
    kind, subject_id = subject_of(conversation)
    if kind == "ticket":
        return (await ticket_participants(session, [subject_id]))[subject_id]
    model = ServiceRequest if kind == "service_request" else Booking
    provider_column = ServiceRequest.assigned_provider_id if kind == "service_request" else Booking.provider_id
    row = (await session.execute(
        select(model.customer_user_id, Provider.user_id)
        .select_from(model).outerjoin(Provider, Provider.id == provider_column)
        .where(model.id == subject_id)
    )).first()
    return {u for u in (row or ()) if u is not None}


async def can_access(session: AsyncSession, conversation: Conversation, user: User | None) -> bool:
    """May ``user`` read, post, mark read and subscribe? Admins always; customers and providers
    when they are participants (module docstring); anonymous callers never."""
    if user is None:
        return False
    if user.role == "admin":
        return True
    return user.id in await participant_ids(session, conversation)


async def get_conversation(session: AsyncSession, conversation_id: int, user: User | None) -> Conversation:
    """The conversation if ``user`` may access it. Raises ``NotFound`` or ``Forbidden`` (not a participant)."""
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFound("No such conversation", field="conversationId")
    if not await can_access(session, conversation, user):
        raise Forbidden("You are not a participant of this conversation")
    return conversation


async def conversations_for(session: AsyncSession, kind: str, subject_ids: list[int]) -> dict[int, Conversation]:
    """The conversation of each service request, booking or ticket (``kind`` in ``SUBJECT_KINDS``)
    in ``subject_ids``, created when missing (lazily, on first access; concurrent creators agree on
    one row through the unique constraint). No authorisation here: callers pass subjects the viewer
    may see and check ``can_access`` where that is not the same rule (tickets). One statement when
    they all exist, three otherwise. The caller commits."""
    if kind not in SUBJECT_KINDS:
        raise ValueError(f"unknown conversation subject {kind!r}")
    column = getattr(Conversation, f"{kind}_id")
    wanted = sorted(set(subject_ids))
    if not wanted:
        return {}
    found = {getattr(c, f"{kind}_id"): c for c in (await session.scalars(select(Conversation).where(column.in_(wanted)))).all()}
    missing = [i for i in wanted if i not in found]
    if missing:
        await session.execute(
            insert(Conversation).values([{f"{kind}_id": i} for i in missing]).on_conflict_do_nothing(index_elements=[column.key])
        )
        for c in (await session.scalars(select(Conversation).where(column.in_(missing)))).all():
            found[getattr(c, f"{kind}_id")] = c
    return found


# --- sending ---------------------------------------------------------------------------------------

async def check_rate(user_id: int) -> None:
    """Count one message of ``user_id`` against ``chat_rate_limit`` (moving window, every
    conversation together; domain/shared/ratelimit.py). Raises ``RateLimited`` when over it (the attempt is
    not counted). When Redis is unreachable the message is let through (fail open) and a warning is
    logged: losing Redis must not stop the chat (docs/architecture.md)."""
    try:
        wait = await ratelimit.hit(get_settings().chat_rate_limit, "chat_send", str(user_id))
    except ratelimit.RateLimitUnavailable as exc:
        log.warning("chat.rate_limit_unavailable", user_id=user_id, error=str(exc))
        return
    if wait is not None:
        raise RateLimited(wait)


def _first_name(user: User) -> str:
    parts = user.full_name.split()
    return parts[0] if parts else "a participant"


async def send_message(session: AsyncSession, user: User, conversation_id: int, body: str) -> MessageView:
    """Store a message from ``user`` (1-4000 characters after trimming, kept as plain text) and
    publish ``MessageView.payload()`` on ``live.conversation_channel`` after commit.

    Holds the conversation row ``FOR NO KEY UPDATE`` from reading the previous message id to commit,
    so ids are in commit order within the conversation and ``prev_id`` is exact. Each other
    participant (customer and provider accounts, and admins who already posted here) who is not
    present (domain/messaging/presence.py) gets an in-app ``chat_message`` notification in the same transaction.

    Raises ``EmptyMessage``, ``MessageTooLong``, ``NotFound``, ``Forbidden``, ``RateLimited``
    (setting ``chat_rate_limit``, per account); on any error nothing is stored."""
    text = body.strip()
    if not text:
        raise EmptyMessage("Message is empty")
    if len(text) > MAX_BODY:
        raise MessageTooLong(f"Messages are limited to {MAX_BODY} characters")
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFound("No such conversation", field="conversationId")
    participants = await participant_ids(session, conversation)
    if user.role != "admin" and user.id not in participants:
        raise Forbidden("You are not a participant of this conversation")
    await check_rate(user.id)
    conversation = await session.scalar(
        select(Conversation).where(Conversation.id == conversation_id)
        .with_for_update(key_share=True).execution_options(populate_existing=True)
    )
    assert conversation is not None  # conversations are never deleted
    message = ChatMessage(conversation_id=conversation_id, sender_user_id=user.id, body=text,
                          prev_id=conversation.last_message_id or 0)
    session.add(message)
    await session.flush()
    conversation.last_message_id = message.id
    # Transaction start times (now()) of concurrent senders may be out of commit order: never go back.
    conversation.last_activity_at = max(conversation.last_activity_at, message.created_at)
    view = _view(message, user.full_name)
    outbox.publish_event(session, live.conversation_channel(conversation_id), view.event())
    await _notify_offline(session, conversation_id, user, participants, text)
    return view


async def _notify_offline(
    session: AsyncSession, conversation_id: int, sender: User, participants: set[int], text: str
) -> None:
    admins_who_posted = set((await session.scalars(
        select(ChatMessage.sender_user_id).distinct().join(User, User.id == ChatMessage.sender_user_id)
        .where(ChatMessage.conversation_id == conversation_id, User.role == "admin")
    )).all())
    recipients = (participants | admins_who_posted) - {sender.id}
    if not recipients:
        return
    here = await presence.present(conversation_id, recipients)
    for user_id in sorted(recipients - here):
        await feed.notify(
            session, user_id, kind="chat_message", title=f"New message from {_first_name(sender)}",
            body=text[:NOTIFICATION_PREVIEW], subject_type="Conversation", subject_id=conversation_id,
        )


# --- reading ---------------------------------------------------------------------------------------


async def messages_since(session: AsyncSession, conversation_id: int, after: int, limit: int) -> list[dict]:
    """The payloads (``MessageView.payload()``, exactly as published) of the conversation's messages
    with id > ``after``, oldest first, at most ``limit``. No authorisation (callers use
    ``get_conversation``). One statement."""
    views = await _messages(session, conversation_id, after=after, limit=limit)
    return [v.payload() for v in views]


async def latest_message_id(session: AsyncSession, conversation_id: int) -> int:
    """The id of the conversation's newest committed message, 0 when it has none (or does not
    exist): the stream's ``latest``. One statement."""
    found = await session.scalar(select(Conversation.last_message_id).where(Conversation.id == conversation_id))
    return found or 0


async def _messages(session: AsyncSession, conversation_id: int, *, after: int, limit: int) -> list[MessageView]:
    rows = (await session.execute(
        select(ChatMessage, User.full_name).join(User, User.id == ChatMessage.sender_user_id)
        .where(ChatMessage.conversation_id == conversation_id, ChatMessage.id > after)
        .order_by(ChatMessage.id).limit(limit)
    )).all()
    return [_view(m, name) for m, name in rows]


async def messages_after(session: AsyncSession, conversation_id: int, after: int, limit: int) -> list[MessageView]:
    """``messages_since`` as views (the polling query). One statement."""
    return await _messages(session, conversation_id, after=after, limit=limit)


async def list_messages(
    session: AsyncSession, conversation_id: int, *, first: int = 50, after: int | None = None,
    before: int | None = None,
) -> tuple[list[MessageView], bool, bool]:
    """A page of messages, oldest first in the page. With ``after`` (a message id): the ``first``
    messages after it; with ``before``: the ``first`` messages just before it; with neither: the
    latest ``first``. Returns ``(messages, has_next_page, has_previous_page)``; keyset on the
    message id, one statement."""
    stmt = select(ChatMessage, User.full_name).join(User, User.id == ChatMessage.sender_user_id).where(
        ChatMessage.conversation_id == conversation_id
    )
    if after is not None:
        stmt = stmt.where(ChatMessage.id > after).order_by(ChatMessage.id.asc())
    else:
        if before is not None:
            stmt = stmt.where(ChatMessage.id < before)
        stmt = stmt.order_by(ChatMessage.id.desc())
    rows = (await session.execute(stmt.limit(first + 1))).all()
    more = len(rows) > first
    views = [_view(m, name) for m, name in rows[:first]]
    if after is not None:
        return views, more, True
    views.reverse()
    return views, before is not None, more


async def messages_by_id(session: AsyncSession, message_ids: list[int]) -> dict[int, MessageView]:
    """Messages by id (e.g. conversations' last messages), one statement. No authorisation."""
    if not message_ids:
        return {}
    rows = (await session.execute(
        select(ChatMessage, User.full_name).join(User, User.id == ChatMessage.sender_user_id)
        .where(ChatMessage.id.in_(message_ids))
    )).all()
    return {m.id: _view(m, name) for m, name in rows}


# --- read receipts and unread counts ------------------------------------------------------------------


async def mark_read(
    session: AsyncSession, user: User, conversation_id: int, *, up_to: int | None = None,
    now: datetime | None = None,
) -> ReadReceipt | None:
    """Record that ``user`` read the conversation up to message ``up_to`` (default: its latest
    message), at ``now``. Never moves backwards: an older ``up_to`` leaves the receipt as it was.
    Returns the receipt as it is now (None when nothing was ever read and there is nothing to read).
    Raises ``NotFound``, ``Forbidden``, ``MessageNotInConversation`` (``up_to`` is not a message of
    this conversation)."""
    conversation = await get_conversation(session, conversation_id, user)
    if up_to is None:
        up_to = conversation.last_message_id
    elif not await session.scalar(select(func.count()).select_from(ChatMessage).where(
            ChatMessage.id == up_to, ChatMessage.conversation_id == conversation_id)):
        raise MessageNotInConversation("No such message in this conversation")
    if up_to is not None:
        stmt = insert(ChatRead).values(
            conversation_id=conversation_id, user_id=user.id, last_read_message_id=up_to,
            read_at=now or datetime.now(UTC),
        )
        await session.execute(stmt.on_conflict_do_update(
            index_elements=[ChatRead.conversation_id, ChatRead.user_id],
            set_={"last_read_message_id": stmt.excluded.last_read_message_id, "read_at": stmt.excluded.read_at},
            where=ChatRead.last_read_message_id < stmt.excluded.last_read_message_id,
        ))
    row = await session.scalar(
        select(ChatRead).where(ChatRead.conversation_id == conversation_id, ChatRead.user_id == user.id)
        .execution_options(populate_existing=True)
    )
    return ReadReceipt(row.conversation_id, row.user_id, row.last_read_message_id, row.read_at) if row else None


async def read_receipts(session: AsyncSession, conversation_ids: list[int]) -> dict[int, list[ReadReceipt]]:
    """Every receipt of each conversation, by user id. One statement."""
    out: dict[int, list[ReadReceipt]] = {i: [] for i in conversation_ids}
    if not conversation_ids:
        return out
    rows = (await session.scalars(
        select(ChatRead).where(ChatRead.conversation_id.in_(conversation_ids))
        .order_by(ChatRead.conversation_id, ChatRead.user_id)
    )).all()
    for r in rows:
        out[r.conversation_id].append(ReadReceipt(r.conversation_id, r.user_id, r.last_read_message_id, r.read_at))
    return out


async def unread_counts(session: AsyncSession, user_id: int, conversation_ids: list[int]) -> dict[int, int]:
    """Per conversation: messages by others after ``user_id``'s last read message (all of them when
    it never marked the conversation read). One statement for any number of conversations."""
    out = dict.fromkeys(conversation_ids, 0)
    if not conversation_ids:
        return out
    rows = (await session.execute(
        select(ChatMessage.conversation_id, func.count())
        .select_from(ChatMessage)
        .outerjoin(ChatRead, (ChatRead.conversation_id == ChatMessage.conversation_id) & (ChatRead.user_id == user_id))
        .where(
            ChatMessage.conversation_id.in_(conversation_ids), ChatMessage.sender_user_id != user_id,
            ChatMessage.id > func.coalesce(ChatRead.last_read_message_id, 0),
        )
        .group_by(ChatMessage.conversation_id)
    )).all()
    out.update({cid: count for cid, count in rows})
    return out


# --- the viewer's conversations ----------------------------------------------------------------------


class InvalidConversationCursor(DomainError):
    code = CommonErrorCode.INVALID_CURSOR
    field = "after"


def encode_conversation_cursor(conversation: Conversation) -> str:
    """Opaque keyset cursor of ``my_conversations``: the conversation's activity instant and id."""
    raw = f"Conversation:{conversation.last_activity_at.astimezone(UTC).isoformat()}|{conversation.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_conversation_cursor(cursor: str) -> tuple[datetime, int]:
    """Raises ``InvalidConversationCursor``."""
    try:
        kind, _, rest = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        at, _, ident = rest.partition("|")
        if kind != "Conversation":
            raise ValueError(kind)
        return pagination.timestamp(at), pagination.row_id(ident)  # bounded: both reach SQL
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise InvalidConversationCursor("Malformed cursor") from exc


def _mine(user_id: int):
    """The ids of the conversations ``user_id`` takes part in as a customer or a provider."""
    providers = select(Provider.id).where(Provider.user_id == user_id).scalar_subquery()
    return union(
        select(Conversation.id).join(ServiceRequest, ServiceRequest.id == Conversation.service_request_id).where(
            (ServiceRequest.customer_user_id == user_id) | ServiceRequest.assigned_provider_id.in_(providers)),
        select(Conversation.id).join(Booking, Booking.id == Conversation.booking_id).where(
            (Booking.customer_user_id == user_id) | Booking.provider_id.in_(providers)),
        select(Conversation.id).join(Ticket, Ticket.id == Conversation.ticket_id).where(
            Ticket.customer_user_id == user_id),
        select(Conversation.id).join(Booking, Booking.ticket_id == Conversation.ticket_id).where(
            Booking.provider_id.in_(providers), Booking.status.in_(CHAT_VISIT_STATUSES)),
    )


async def my_conversations(
    session: AsyncSession, viewer: User, *, first: int = 20, after: str | None = None
) -> tuple[list[tuple[Conversation, str]], bool]:
    """The conversations ``viewer`` takes part in (admins: all), most recent activity (last message,
    else creation) first, keyset-paginated on ``(last_activity_at, id)``. Returns
    ``([(conversation, cursor)], has_next_page)``. One statement. Raises ``InvalidConversationCursor``."""
    stmt = select(Conversation)
    if viewer.role != "admin":
        stmt = stmt.where(Conversation.id.in_(_mine(viewer.id)))
    if after:
        at, ident = decode_conversation_cursor(after)
        stmt = stmt.where(tuple_(Conversation.last_activity_at, Conversation.id) < tuple_(at, ident))
    rows = (await session.scalars(
        stmt.order_by(Conversation.last_activity_at.desc(), Conversation.id.desc()).limit(first + 1)
    )).all()
    return [(c, encode_conversation_cursor(c)) for c in rows[:first]], len(rows) > first


"""In-app notifications: each user's feed, a resumable stream in the sense of
domain/shared/live.py.

Writing. Business code calls ``notify`` (or ``notify_admins``) inside its own transaction. That only
buffers the notification on the session; nothing is written until the transaction commits, and a
rolled-back transaction (or a rolled-back savepoint around the call) creates nothing. At commit, a
``before_commit`` listener on the ORM ``Session`` (it runs inside the AsyncSession's greenlet, so it
may emit SQL through the sync API) does, as the transaction's last steps:

1. flush the transaction's own pending changes, so their row locks are taken *before* the feed locks;
2. ``SELECT ... FOR KEY SHARE`` the recipients' ``users`` rows (the lock the notifications' foreign
   key takes anyway), then ``pg_advisory_xact_lock(FEED_LOCK_NAMESPACE, user_id)`` per recipient in
   ascending user id order. Every writer takes these locks last, in the same order, and holds no
   other lock it will wait for afterwards: no deadlock between feed writers, whatever order the
   business code called ``notify`` in;
3. read each recipient's newest notification id (``prev``), insert the notifications, and add one
   outbox event per notification on ``live.notification_channel(user_id)`` (published after commit).

The advisory lock is held until commit, so per user, ids are in commit order and every payload's
``prev`` is the id of that user's previous notification (the stream contract of domain/shared/live.py).

Payload (published, and returned by ``notifications_since``)::

    {"id": int, "prev": int (0: first), "userId": int, "kind": str, "title": str, "body": str,
     "subjectType": str | None, "subjectId": int | None,
     "createdAt": ISO 8601 UTC str, "readAt": ISO 8601 UTC str | None}

``readAt`` is None when published; ``notifications_since`` gives its current value.

Who is told what (the hooks below; the actor who made a change is never told about it):

* a service request's status change: its customer (when it has an account) and its assigned
  provider's account. Orders of bookings are left out: their visits' booking notifications say it;
* a booking's status change: its customer and its provider's account. A hold (``held``) is not
  notified, and ``disputed``/``resolved`` are told as ``dispute`` notifications;
* a payout sent, paid or failed: the provider's account;
* a dispute opened or resolved: the order's customer, its provider's account and every admin;
* an escalation opened: every admin;
* a chat message to a participant who is offline: domain/messaging/chat.py calls ``notify``.

Titles and bodies are short plain text with references and status labels, never another person's
contact details.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from sqlalchemy import event, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction, aliased

from domain.messaging.events import NotificationEvent
from domain.shared import live, outbox, pagination
from domain.shared.money import Money
from models import Booking, Dispute, Escalation, Payout, Provider, ServiceRequest, User
from models.messaging.feed import NOTIFICATION_KINDS, SUBJECT_TYPES, Notification

log = structlog.get_logger(__name__)

# First key of the two-key ``pg_advisory_xact_lock(int, int)``: the feed's per-user locks. The second
# key is the user id (an int4: user ids stay below 2**31).
FEED_LOCK_NAMESPACE = 50_006
MAX_TITLE = 200
MAX_BODY = 1000
_PENDING = "odim.feed.pending"  # key in Session.info


@dataclass(frozen=True)
class _Pending:
    user_id: int
    kind: str
    title: str
    body: str
    subject_type: str | None
    subject_id: int | None
    # The innermost transaction open when ``notify`` was called: rolling it back drops this entry.
    transaction: SessionTransaction | None


def _sync(session: AsyncSession | Session) -> Session:
    return session.sync_session if isinstance(session, AsyncSession) else session


async def notify(
    session: AsyncSession, user_id: int, *, kind: str, title: str, body: str,
    subject_type: str | None = None, subject_id: int | None = None,
) -> None:
    """Notify user ``user_id`` when the caller's transaction commits (nothing if it rolls back).

    ``kind``: one of ``models.feed.NOTIFICATION_KINDS`` (service_request_status, booking_status,
    chat_message, payout, dispute, escalation). ``title`` (at most 200 characters) and ``body`` (at
    most 1,000; longer is cut with an ellipsis) are plain text, shown as text by clients.
    ``subject_type`` + ``subject_id``: the related object, a GraphQL type of
    ``models.feed.SUBJECT_TYPES`` (ServiceRequest, Booking, Payout, Dispute, Escalation,
    Conversation) and its database id, both or neither. Raises ``ValueError`` for an unknown kind
    or subject type (a programming error). Emits no SQL: see the module docstring."""
    if kind not in NOTIFICATION_KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    if (subject_type is None) != (subject_id is None) or (subject_type is not None and subject_type not in SUBJECT_TYPES):
        raise ValueError(f"bad notification subject {subject_type!r} {subject_id!r}")
    sync = _sync(session)
    pending = sync.info.setdefault(_PENDING, [])
    pending.append(_Pending(
        user_id=int(user_id), kind=kind, title=_cut(title.strip(), MAX_TITLE), body=_cut(body.strip(), MAX_BODY),
        subject_type=subject_type, subject_id=subject_id,
        transaction=sync.get_nested_transaction() or sync.get_transaction(),
    ))


async def notify_admins(
    session: AsyncSession, *, kind: str, title: str, body: str, subject_type: str | None = None,
    subject_id: int | None = None, exclude_user_id: int | None = None,
) -> int:
    """``notify`` every admin account (but ``exclude_user_id``, the admin who acted) on commit;
    returns how many were notified. One statement (the admins' ids)."""
    admins = (await session.scalars(select(User.id).where(User.role == "admin").order_by(User.id))).all()
    count = 0
    for admin_id in admins:
        if admin_id != exclude_user_id:
            await notify(session, admin_id, kind=kind, title=title, body=body,
                         subject_type=subject_type, subject_id=subject_id)
            count += 1
    return count


def _cut(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def live_event(row: Notification, prev: int) -> NotificationEvent:
    """The stream event of notification ``row`` (``NotificationEvent``)."""
    return NotificationEvent(
        id=row.id, prev=prev, userId=row.user_id, kind=row.kind, title=row.title, body=row.body,
        subjectType=row.subject_type, subjectId=row.subject_id,
        createdAt=_iso(row.created_at), readAt=_iso(row.read_at),
    )


def payload(row: Notification, prev: int) -> dict:
    """The stream payload of notification ``row`` (keys of ``NotificationEvent``)."""
    return live_event(row, prev).payload()


# --- writing at commit ------------------------------------------------------------------------------


def _inside(transaction: SessionTransaction | None, ended: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ended:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    """A rolled-back savepoint drops what was notified inside it; a rolled-back transaction, all."""
    pending = session.info.get(_PENDING)
    if not pending:
        return
    if previous_transaction.parent is None:
        session.info.pop(_PENDING, None)
        return
    session.info[_PENDING] = [p for p in pending if not _inside(p.transaction, previous_transaction)]


@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction: SessionTransaction) -> None:
    """Whatever ended the transaction (commit, rollback, close), its notifications are done with."""
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    """Insert the transaction's buffered notifications (see the module docstring for the locks).
    A savepoint's release fires this event too: the notifications wait for the real commit."""
    if not session.info.get(_PENDING) or session.get_nested_transaction() is not None:
        return
    pending: list[_Pending] = session.info.pop(_PENDING)
    session.flush()
    wanted = sorted({p.user_id for p in pending})
    existing = set(session.scalars(
        select(User.id).where(User.id.in_(wanted)).order_by(User.id).with_for_update(read=True, key_share=True)
    ).all())
    users = [u for u in wanted if u in existing]
    if len(users) < len(wanted):
        log.warning("feed.unknown_users", user_ids=sorted(set(wanted) - existing))
    if not users:
        return
    # One statement; unnest yields the array in order, so the locks are taken in ascending user id.
    session.execute(
        text("SELECT count(pg_advisory_xact_lock(:ns, u)) FROM unnest(CAST(:users AS int[])) AS u"),
        {"ns": FEED_LOCK_NAMESPACE, "users": users},
    )
    newest = dict(session.execute(
        select(User.id, select(func.coalesce(func.max(Notification.id), 0))
               .where(Notification.user_id == User.id).scalar_subquery())
        .where(User.id.in_(users))
    ).all())
    rows = [p for p in pending if p.user_id in existing]
    inserted = session.scalars(
        insert(Notification).returning(Notification, sort_by_parameter_order=True),
        [{"user_id": p.user_id, "kind": p.kind, "title": p.title, "body": p.body,
          "subject_type": p.subject_type, "subject_id": p.subject_id} for p in rows],
    ).all()
    for row in sorted(inserted, key=lambda n: n.id):
        prev = newest[row.user_id]
        outbox.publish_event(session, live.notification_channel(row.user_id), live_event(row, prev))
        newest[row.user_id] = row.id


# --- reading ------------------------------------------------------------------------------------------


async def notifications_since(session: AsyncSession, user_id: int, after: int, limit: int) -> list[dict]:
    """The payloads (module docstring) of user ``user_id``'s notifications with id > ``after``,
    oldest first, at most ``limit``: the same dicts that were published, with ``readAt`` as it is
    now. One statement (``prev`` by an index probe per row)."""
    earlier = aliased(Notification)
    prev = (
        select(func.coalesce(func.max(earlier.id), 0))
        .where(earlier.user_id == Notification.user_id, earlier.id < Notification.id)
        .scalar_subquery()
    )
    rows = (await session.execute(
        select(Notification, prev)
        .where(Notification.user_id == user_id, Notification.id > after)
        .order_by(Notification.id)
        .limit(limit)
    )).all()
    return [payload(row, p) for row, p in rows]


async def latest_id(session: AsyncSession, user_id: int) -> int:
    """The id of user ``user_id``'s newest notification, 0 when none (a stream's ``latest``)."""
    return await session.scalar(
        select(func.coalesce(func.max(Notification.id), 0)).where(Notification.user_id == user_id)
    ) or 0


async def list_notifications(
    session: AsyncSession, user_id: int, *, first: int, after: str | None = None, unread_only: bool = False
) -> tuple[list[tuple[Notification, str]], bool]:
    """User ``user_id``'s notifications newest first, keyset-paginated on id (cursor kind
    ``notification``), optionally unread only. Returns ``([(notification, cursor)], has_next_page)``.
    One statement. Raises ``pagination.InvalidCursor``."""
    stmt = select(Notification).where(Notification.user_id == user_id)
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    if after:
        stmt = stmt.where(Notification.id < pagination.decode("notification", after))
    rows = (await session.scalars(stmt.order_by(Notification.id.desc()).limit(first + 1))).all()
    return [(n, pagination.encode("notification", n.id)) for n in rows[:first]], len(rows) > first


async def unread_count(session: AsyncSession, user_id: int) -> int:
    """How many of user ``user_id``'s notifications are unread (the partial index on unread rows)."""
    return await session.scalar(
        select(func.count()).select_from(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
    ) or 0


async def mark_read(
    session: AsyncSession, user_id: int, *, ids: list[int] | None = None, up_to: int | None = None,
    now: datetime | None = None,
) -> int:
    """Mark read user ``user_id``'s unread notifications whose id is in ``ids`` or at most ``up_to``.
    Other users' notifications are never touched: their ids are ignored like unknown ids. Returns
    how many were marked (already read ones are left as they were). One statement."""
    conditions = []
    if ids:
        conditions.append(Notification.id.in_(ids))
    if up_to is not None:
        conditions.append(Notification.id <= up_to)
    if not conditions:
        return 0
    result = await session.execute(
        update(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None), or_(*conditions))
        .values(read_at=now or datetime.now(UTC))
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


async def get_own(session: AsyncSession, user_id: int, notification_ids: list[int]) -> dict[int, Notification]:
    """User ``user_id``'s notifications among ``notification_ids`` (others' are left out)."""
    rows = (await session.scalars(
        select(Notification).where(Notification.user_id == user_id, Notification.id.in_(notification_ids))
    )).all()
    return {n.id: n for n in rows}


# --- hooks: who is told what --------------------------------------------------------------------------


async def _provider_user(session: AsyncSession, provider_id: int | None) -> int | None:
    if provider_id is None:
        return None
    return await session.scalar(select(Provider.user_id).where(Provider.id == provider_id))


async def service_request_status_changed(
    session: AsyncSession, request: ServiceRequest, *, status_label: str, actor_user_id: int | None
) -> None:
    """Tell the customer (an account) and the assigned provider's account that ``request`` is now
    ``status_label``; not the actor. (Orders of bookings are not announced: their visits' changes are,
    through ``booking_status_changed``; the order kind decides, domain/orders/kinds.py.)"""
    ref = request.reference
    title = f"Request {ref}: {status_label}"
    customer = request.customer_user_id
    if customer is not None and customer != actor_user_id:
        await notify(session, customer, kind="service_request_status", title=title,
                     body=f"Your request {ref} is now: {status_label}.",
                     subject_type="ServiceRequest", subject_id=request.id)
    provider_user = await _provider_user(session, request.assigned_provider_id)
    if provider_user is not None and provider_user not in (actor_user_id, customer):
        await notify(session, provider_user, kind="service_request_status", title=title,
                     body=f"Request {ref}, assigned to you, is now: {status_label}.",
                     subject_type="ServiceRequest", subject_id=request.id)


NOT_NOTIFIED_BOOKING_STATUSES = frozenset({"held", "disputed", "resolved"})


async def booking_status_changed(
    session: AsyncSession, booking: Booking, *, to_status: str, status_label: str, actor_user_id: int | None
) -> None:
    """Tell the booking's customer and its provider's account that it is now ``status_label``; not
    the actor. Holds, and ``disputed``/``resolved`` (told as dispute notifications), are left out."""
    if to_status in NOT_NOTIFIED_BOOKING_STATUSES:
        return
    ref = booking.reference
    title = f"Booking {ref}: {status_label}"
    customer = booking.customer_user_id
    if customer != actor_user_id:
        await notify(session, customer, kind="booking_status", title=title,
                     body=f"Your booking {ref} is now: {status_label}.", subject_type="Booking", subject_id=booking.id)
    provider_user = await _provider_user(session, booking.provider_id)
    if provider_user is not None and provider_user not in (actor_user_id, customer):
        await notify(session, provider_user, kind="booking_status", title=title,
                     body=f"Booking {ref} with you is now: {status_label}.", subject_type="Booking",
                     subject_id=booking.id)


PAYOUT_TEXT = {
    "sent": ("Payout {ref} sent", "Your payout {ref} of {amount} is on its way."),
    "paid": ("Payout {ref} paid", "Your payout {ref} of {amount} was paid."),
    "failed": ("Payout {ref} failed",
               "Your payout {ref} of {amount} failed. The money is back in your available balance and goes "
               "out with the next payout; check your payout destination."),
}


async def payout_status_changed(session: AsyncSession, payout: Payout) -> None:
    """Tell the provider's account that ``payout`` is now sent, paid or failed (other statuses:
    nothing)."""
    wording = PAYOUT_TEXT.get(payout.status)
    user_id = await _provider_user(session, payout.provider_id) if wording else None
    if wording is None or user_id is None:
        return
    values = {"ref": payout.reference, "amount": Money(payout.amount_minor, payout.currency).formatted()}
    await notify(session, user_id, kind="payout", title=wording[0].format(**values), body=wording[1].format(**values),
                 subject_type="Payout", subject_id=payout.id)


async def dispute_changed(
    session: AsyncSession, dispute: Dispute, request: ServiceRequest, *, state: str, actor_user_id: int | None,
    customer_detail: str = "",
) -> None:
    """``state`` "opened" or "resolved": tell the order's customer (``customer_detail`` added to its
    text), the order's provider's account and every admin; not the actor."""
    ref = request.reference
    title = f"Dispute on {ref} {state}"
    told: set[int | None] = {None, actor_user_id}
    customer = request.customer_user_id
    if customer not in told:
        await notify(session, customer, kind="dispute", title=title,
                     body=f"The dispute on your request {ref} is {state}. {customer_detail}".strip(),
                     subject_type="Dispute", subject_id=dispute.id)
        told.add(customer)
    provider_user = await _provider_user(session, request.assigned_provider_id)
    if provider_user not in told:
        provider_text = (
            f"A dispute was opened on request {ref}. Its payment to you is held until it is settled."
            if state == "opened" else f"The dispute on request {ref} was settled ({_resolution(dispute)})."
        )
        await notify(session, provider_user, kind="dispute", title=title, body=provider_text,
                     subject_type="Dispute", subject_id=dispute.id)
        told.add(provider_user)
    admin_text = (
        f"Dispute {dispute.id} opened on request {ref}: {dispute.reason}" if state == "opened"
        else f"Dispute {dispute.id} on request {ref} resolved: {_resolution(dispute)}."
    )
    admins = (await session.scalars(select(User.id).where(User.role == "admin").order_by(User.id))).all()
    for admin_id in admins:
        if admin_id not in told:
            await notify(session, admin_id, kind="dispute", title=title, body=admin_text,
                         subject_type="Dispute", subject_id=dispute.id)


def _resolution(dispute: Dispute) -> str:
    return {"release": "payment released", "refund_full": "refunded in full",
            "refund_partial": "partly refunded"}.get(dispute.resolution or "", dispute.resolution or "")


async def escalation_opened(session: AsyncSession, escalation: Escalation, *, what: str) -> None:
    """Tell every admin about a new escalation on ``what`` (a booking's or a ticket's reference)."""
    await notify_admins(
        session, kind="escalation", title=f"Escalation: {escalation.kind.replace('_', ' ')} on {what}",
        body=escalation.note or escalation.kind.replace("_", " "), subject_type="Escalation", subject_id=escalation.id,
    )

"""Data protection: key rotation of the data encrypted at rest, and a customer's data export and
erasure (GDPR articles 15, 17 and 20 style).

Key rotation (``rotate_keys``). Every column registered by models/crypto.py is walked in batches
in primary-key order; values not under ``settings.encryption_key_id`` are decrypted with the key
they name and encrypted again under the current one. Each batch is its own transaction and locks
its rows (``FOR NO KEY UPDATE``), so a concurrent write is never lost, the run can be interrupted
at any time and a second run picks up what is left. A value that does not decrypt (its key id is
no longer in the settings, or it was tampered with) is counted as failed and left alone. Then the
application document files (models/crypto.py ``encrypt_bytes``) whose row names another key, or
none (stored in plain before 0015), are re-sealed in place (``_rotate_document_files``).

Export (``export_customer_data``): a JSON-ready dict of what Odim holds about one customer: the
account, its orders (those of the account and the guest orders bought with its email), bookings,
tickets, payments, refunds, disputes, chat messages of its conversations, in-app notifications,
emails sent to it, email preferences, sign-in sessions, reviews by and (once published) about it,
and its provider applications. No secrets: no password hash, MFA
secret, token hashes, gateway payloads or other people's personal data.

Erasure (``delete_customer_account``): anonymises the customer's personal fields everywhere
(name "Deleted user", an address under ``.invalid`` that can never receive mail or sign in,
phones, addresses and free texts cleared, messages blanked), makes the password unusable, revokes
every session, drops feed, preferences and one-time tokens, and keeps the money (ledger, orders'
amounts, payments, refunds) and the audit log intact. Refused with ``OpenOrdersExist`` while an
order, booking or ticket of the customer is unfinished or disputed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import and_, case, delete, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.identity.user import revoke_all_sessions, verify_password
from domain.operations.errors import OperationsErrorCode
from domain.shared import audit
from domain.shared.errors import CommonErrorCode, DomainError, NotFound
from gateways.storage import StorageError, get_storage
from models import (
    AccountToken,
    AuthSession,
    Booking,
    BookingStatusChange,
    ChatMessage,
    Conversation,
    Dispute,
    Email,
    EmailSuppression,
    Notification,
    NotificationPreference,
    Payment,
    Refund,
    Review,
    Service,
    ServiceRequest,
    ServiceRequestStatusChange,
    Ticket,
    User,
)
from models.bookings import LIVE_STATUSES
from models.crypto import (
    ENCRYPTED_COLUMNS,
    DecryptionError,
    blind_index,
    current_key_id,
    decrypt,
    decrypt_bytes,
    encrypt,
    encrypt_bytes,
    is_encrypted_bytes,
)
from models.db import get_sessionmaker
from models.providers.onboarding import ApplicationDocument, ProviderApplication

log = structlog.get_logger("odim.privacy")

DELETED_NAME = "Deleted user"
UNUSABLE_PASSWORD_HASH = "!deleted"  # not a PHC string: argon2 verification always fails
FINAL_ORDER_STATUSES = ("completed", "cancelled")
OPEN_TICKET_STATUSES = ("open", "scheduled")
EXPORT_FORMAT = "odim.customer-data/1"


# --- key rotation --------------------------------------------------------------------------------


@dataclass
class ColumnRotation:
    """What a rotation did to one column: values ``rotated`` to the current key, values that
    ``failed`` to decrypt (left as they were), and ``batches`` committed."""

    rotated: int = 0
    failed: int = 0
    batches: int = 0


@dataclass
class RotationReport:
    """Per ``"table.column"``; ``key_id`` is the key everything was re-encrypted under; ``seconds`` wall time."""

    key_id: str
    columns: dict[str, ColumnRotation] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rotated(self) -> int:
        return sum(c.rotated for c in self.columns.values())

    @property
    def failed(self) -> int:
        return sum(c.failed for c in self.columns.values())


async def _primary_key(session: AsyncSession, table: str) -> str:
    """The single-column primary key of ``table`` (from the catalogue)."""
    return await session.scalar(text(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "WHERE i.indrelid = CAST(:t AS regclass) AND i.indisprimary"
    ), {"t": table})


async def rotate_keys(
    *, batch_size: int = 500, on_batch: Callable[[str, ColumnRotation], None] | None = None,
) -> RotationReport:
    """Re-encrypt every encrypted value not under ``settings.encryption_key_id`` (see the module
    docstring). ``batch_size`` rows per transaction; ``on_batch(column, counts so far)`` is called
    after each commit (the CLI prints progress). Returns the counts per column."""
    started = time.perf_counter()
    kid = current_key_id()
    prefix = f"v1:{kid}:"
    report = RotationReport(key_id=kid)
    maker = get_sessionmaker()
    for table, column in ENCRYPTED_COLUMNS:
        name = f"{table}.{column}"
        counts = report.columns.setdefault(name, ColumnRotation())
        async with maker() as session:
            pk = await _primary_key(session, table)
        last: Any = None
        while True:
            async with maker() as session, session.begin():
                after = "" if last is None else f"AND {pk} > :last"
                rows = (await session.execute(text(
                    f"SELECT {pk}, {column} FROM {table} WHERE {column} IS NOT NULL "
                    f"AND NOT starts_with({column}, :prefix) {after} ORDER BY {pk} LIMIT :n FOR NO KEY UPDATE"
                ), {"prefix": prefix, "last": last, "n": batch_size})).all()
                if not rows:
                    break
                last = rows[-1][0]
                updates = []
                for key, stored in rows:
                    try:
                        updates.append({"k": key, "v": encrypt(decrypt(stored, name), name, key_id=kid)})
                    except DecryptionError:
                        counts.failed += 1
                        log.warning("privacy.rotate.undecryptable", column=name, row=str(key))
                if updates:
                    await session.execute(text(f"UPDATE {table} SET {column} = :v WHERE {pk} = :k"), updates)
                counts.rotated += len(updates)
                counts.batches += 1
            if on_batch is not None:
                on_batch(name, counts)
    await _rotate_document_files(kid, report.columns.setdefault(FILES, ColumnRotation()), batch_size, on_batch)
    report.seconds = time.perf_counter() - started
    log.info("privacy.rotate.done", key_id=kid, rotated=report.rotated, failed=report.failed)
    return report


FILES = "application_documents.file"
"""The rotation report's and ``key_ids_in_use``'s name for the stored document files."""


async def _rotate_document_files(
    kid: str, counts: ColumnRotation, batch_size: int, on_batch: Callable[[str, ColumnRotation], None] | None,
) -> None:
    """Re-seal every application document file not under ``kid`` (and seal files stored in plain
    before 0015), ``batch_size`` rows per transaction, rows locked. The file is replaced first (an
    atomic replace on disk, one PUT on S3), then its row says ``kid``: a crash in between leaves a
    file sealed under ``kid`` whose row names the old key, which still opens (the file names its own
    key) and is re-sealed by the next run. A missing or undecryptable file is counted as failed."""
    storage = get_storage()
    last = 0
    while True:
        async with get_sessionmaker()() as session, session.begin():
            docs = (await session.scalars(
                select(ApplicationDocument)
                .where(ApplicationDocument.id > last,
                       or_(ApplicationDocument.file_key_id.is_(None), ApplicationDocument.file_key_id != kid))
                .order_by(ApplicationDocument.id).limit(batch_size).with_for_update(key_share=True)
            )).all()
            if not docs:
                break
            last = docs[-1].id
            for doc in docs:
                try:
                    stored = await storage.get(doc.storage_key)
                    plain = decrypt_bytes(stored, doc.storage_key) if is_encrypted_bytes(stored) else stored
                    await storage.put(doc.storage_key, encrypt_bytes(plain, doc.storage_key, key_id=kid),
                                      doc.content_type)
                except (StorageError, DecryptionError) as exc:
                    counts.failed += 1
                    log.warning("privacy.rotate.file_failed", document_id=doc.id, error=str(exc))
                    continue
                doc.file_key_id = kid
                counts.rotated += 1
            counts.batches += 1
        if on_batch is not None:
            on_batch(FILES, counts)


async def key_ids_in_use() -> dict[str, dict[str, int]]:
    """``{"table.column": {key id: values}}``: which keys the stored values name (to tell when a
    retired key may be removed from the settings: when no column names it any more), and
    ``"application_documents.file"``: the keys the stored document files are sealed under (``plain``:
    stored before encryption at rest)."""
    out: dict[str, dict[str, int]] = {}
    async with get_sessionmaker()() as session:
        for table, column in ENCRYPTED_COLUMNS:
            rows = (await session.execute(text(
                f"SELECT split_part({column}, ':', 2) AS kid, count(*) FROM {table} "
                f"WHERE {column} IS NOT NULL GROUP BY 1 ORDER BY 1"
            ))).all()
            out[f"{table}.{column}"] = {kid: n for kid, n in rows}
        kid = func.coalesce(ApplicationDocument.file_key_id, "plain").label("kid")
        files = (await session.execute(select(kid, func.count()).group_by(kid).order_by(kid))).all()
        out[FILES] = {kid: n for kid, n in files}
    return out


# --- export and erasure --------------------------------------------------------------------------


class NotACustomer(DomainError):
    code = OperationsErrorCode.NOT_A_CUSTOMER
    field = "userId"


class WrongPassword(DomainError):
    code = CommonErrorCode.INVALID_CREDENTIALS
    field = "password"


class OpenOrdersExist(DomainError):
    code = OperationsErrorCode.OPEN_ORDERS
    field = None


class AccountDeleted(DomainError):
    code = OperationsErrorCode.ACCOUNT_DELETED
    field = None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _requests_of(user: User):
    """SQL clause: the customer's orders: its account's and the guest orders bought with its email."""
    return or_(
        ServiceRequest.customer_user_id == user.id,
        and_(ServiceRequest.customer_user_id.is_(None),
             ServiceRequest.customer_email_bidx == blind_index(user.email, "email")),
    )


async def _customer(session: AsyncSession, user_id: int, *, lock: bool = False) -> User:
    query = select(User).where(User.id == user_id)
    if lock:
        query = query.with_for_update()
    user = await session.scalar(query)
    if user is None:
        raise NotFound("No such account", field="userId")
    if user.role != "customer":
        raise NotACustomer("Only customer accounts can be exported or deleted here")
    return user


async def export_customer_data(session: AsyncSession, user_id: int) -> dict[str, Any]:
    """Everything Odim holds about customer ``user_id`` as a JSON-ready dict (keys camelCase,
    instants ISO 8601 UTC, money in minor units with its currency): ``format``, ``exportedAt``,
    ``account``, ``serviceRequests`` (each with its ``statusHistory``), ``bookings``, ``tickets``,
    ``payments``, ``refunds``, ``disputes``, ``messages``, ``notifications``, ``emails``,
    ``emailPreferences``, ``sessions``, ``reviews`` (those she wrote, and the published ones about her:
    an unpublished review by a provider stays blind until publication, as everywhere) and
    ``providerApplications`` (business details, status, decision and her documents' names, types,
    sizes and SHA-256; the files themselves are not inlined). Raises ``NotFound``, ``NotACustomer``."""
    user = await _customer(session, user_id)
    requests = (await session.execute(
        select(ServiceRequest, Service.name).join(Service, Service.id == ServiceRequest.service_id)
        .where(_requests_of(user)).order_by(ServiceRequest.id)
    )).all()
    request_ids = [r.id for r, _ in requests]
    refs = {r.id: r.reference for r, _ in requests}
    history: dict[int, list[dict]] = {}
    for change in (await session.scalars(
        select(ServiceRequestStatusChange).where(ServiceRequestStatusChange.service_request_id.in_(request_ids))
        .order_by(ServiceRequestStatusChange.id)
    )).all():
        history.setdefault(change.service_request_id, []).append(
            {"from": change.from_status, "to": change.to_status, "by": change.actor_type, "at": _iso(change.created_at)}
        )
    bookings = (await session.scalars(
        select(Booking).where(Booking.customer_user_id == user.id).order_by(Booking.id))).all()
    booking_history: dict[int, list[dict]] = {}
    for change in (await session.scalars(
        select(BookingStatusChange).where(BookingStatusChange.booking_id.in_([b.id for b in bookings]))
        .order_by(BookingStatusChange.id)
    )).all():
        booking_history.setdefault(change.booking_id, []).append(
            {"from": change.from_status, "to": change.to_status, "by": change.actor_type, "at": _iso(change.created_at)}
        )
    tickets = (await session.scalars(select(Ticket).where(Ticket.customer_user_id == user.id).order_by(Ticket.id))).all()
    payments = (await session.scalars(
        select(Payment).where(Payment.service_request_id.in_(request_ids)).order_by(Payment.id))).all()
    refunds = (await session.scalars(
        select(Refund).where(Refund.service_request_id.in_(request_ids)).order_by(Refund.id))).all()
    disputes = (await session.scalars(
        select(Dispute).where(Dispute.service_request_id.in_(request_ids)).order_by(Dispute.id))).all()
    conversations = select(Conversation.id).where(or_(
        Conversation.service_request_id.in_(request_ids),
        Conversation.booking_id.in_([b.id for b in bookings]),
        Conversation.ticket_id.in_([t.id for t in tickets]),
    ))
    messages = (await session.scalars(
        select(ChatMessage).where(ChatMessage.conversation_id.in_(conversations)).order_by(ChatMessage.id))).all()
    notifications = (await session.scalars(
        select(Notification).where(Notification.user_id == user.id).order_by(Notification.id))).all()
    emails = (await session.scalars(
        select(Email).where(or_(Email.user_id == user.id, Email.to_address_bidx == blind_index(user.email, "email")))
        .order_by(Email.id))).all()
    prefs = (await session.scalars(
        select(NotificationPreference).where(NotificationPreference.user_id == user.id)
        .order_by(NotificationPreference.kind))).all()
    opted_out = await session.scalar(
        select(func.count()).select_from(EmailSuppression)
        .where(EmailSuppression.address_bidx == blind_index(user.email, "email")))
    sessions = (await session.scalars(
        select(AuthSession).where(AuthSession.user_id == user.id).order_by(AuthSession.id))).all()
    reviews = (await session.scalars(select(Review).where(or_(
        Review.author_user_id == user.id,
        and_(Review.customer_user_id == user.id, Review.author_role == "provider", Review.published_at.is_not(None)),
    )).order_by(Review.id))).all()
    booking_refs = {b.id: b.reference for b in bookings}
    applications = (await session.scalars(
        select(ProviderApplication).where(ProviderApplication.user_id == user.id).order_by(ProviderApplication.id))).all()
    documents: dict[int, list[dict]] = {}
    for d in (await session.scalars(
        select(ApplicationDocument).where(ApplicationDocument.application_id.in_([a.id for a in applications]))
        .order_by(ApplicationDocument.id)
    )).all():
        documents.setdefault(d.application_id, []).append({
            "kind": d.kind, "filename": d.original_filename, "contentType": d.content_type,
            "sizeBytes": d.size_bytes, "sha256": d.sha256, "uploadedAt": _iso(d.uploaded_at),
        })
    return {
        "format": EXPORT_FORMAT,
        "exportedAt": _iso(datetime.now(UTC)),
        "account": {
            "id": user.id, "email": user.email, "fullName": user.full_name, "phone": user.phone, "role": user.role,
            "createdAt": _iso(user.created_at), "emailVerifiedAt": _iso(user.email_verified_at),
            "mfaEnabled": user.mfa_enabled_at is not None,
        },
        "serviceRequests": [{
            "reference": r.reference, "kind": r.kind, "service": name, "status": r.status,
            "boughtAs": "account" if r.customer_user_id == user.id else "guest",
            "customer": {"fullName": r.customer_name, "email": r.customer_email, "phone": r.customer_phone},
            "requirements": r.requirements, "amountMinor": r.amount_minor, "currency": r.currency,
            "priceMinor": r.price_minor, "guestSurchargeMinor": r.guest_surcharge_minor,
            "capturedMinor": r.captured_minor, "refundedMinor": r.refunded_minor,
            "createdAt": _iso(r.created_at), "paidAt": _iso(r.paid_at), "completedAt": _iso(r.completed_at),
            "statusHistory": history.get(r.id, []),
        } for r, name in requests],
        "bookings": [{
            "reference": b.reference, "status": b.status, "startsAt": _iso(b.starts_at), "endsAt": _iso(b.ends_at),
            "timeZone": b.time_zone, "currency": b.currency, "order": refs.get(b.service_request_id),
            "customerNote": b.customer_note, "reviewRating": b.review_rating, "reviewComment": b.review_comment,
            "createdAt": _iso(b.created_at), "statusHistory": booking_history.get(b.id, []),
        } for b in bookings],
        "tickets": [{
            "reference": t.reference, "category": t.category, "appliance": t.appliance, "brand": t.brand,
            "model": t.model, "description": t.description, "address": t.address, "urgent": t.urgent,
            "preferredWindows": t.preferred_windows, "status": t.status, "createdAt": _iso(t.created_at),
        } for t in tickets],
        "payments": [{
            "reference": p.reference, "order": refs.get(p.service_request_id), "gateway": p.gateway,
            "amountMinor": p.amount_minor, "currency": p.currency, "status": p.status,
            "createdAt": _iso(p.created_at), "completedAt": _iso(p.completed_at),
        } for p in payments],
        "refunds": [{
            "reference": f.reference, "order": refs.get(f.service_request_id), "amountMinor": f.amount_minor,
            "currency": f.currency, "status": f.status, "reason": f.reason, "createdAt": _iso(f.created_at),
        } for f in refunds],
        "disputes": [{
            "order": refs.get(d.service_request_id), "status": d.status, "reason": d.reason,
            "resolution": d.resolution, "refundMinor": d.refund_minor, "createdAt": _iso(d.created_at),
            "resolvedAt": _iso(d.resolved_at),
        } for d in disputes],
        "messages": [{
            "conversation": m.conversation_id, "fromMe": m.sender_user_id == user.id, "body": m.body,
            "sentAt": _iso(m.created_at),
        } for m in messages],
        "notifications": [{
            "kind": n.kind, "title": n.title, "body": n.body, "createdAt": _iso(n.created_at), "readAt": _iso(n.read_at),
        } for n in notifications],
        "emails": [{
            "kind": e.kind, "to": e.to_address, "subject": e.subject, "status": e.status,
            "createdAt": _iso(e.created_at), "sentAt": _iso(e.sent_at),
        } for e in emails],
        "emailPreferences": {"optedOut": bool(opted_out), "kinds": {p.kind: p.email for p in prefs}},
        "sessions": [{
            "createdAt": _iso(s.created_at), "lastUsedAt": _iso(s.last_used_at), "userAgent": s.user_agent,
            "revokedAt": _iso(s.revoked_at), "mfa": s.mfa,
        } for s in sessions],
        "reviews": [{
            "byMe": r.author_user_id == user.id, "authorRole": r.author_role,
            "order": refs.get(r.service_request_id), "booking": booking_refs.get(r.booking_id),
            "rating": r.rating, "text": r.text, "createdAt": _iso(r.created_at), "publishedAt": _iso(r.published_at),
        } for r in reviews],
        "providerApplications": [{
            "status": a.status, "businessName": a.business_name, "registrationNumber": a.registration_number,
            "phone": a.phone, "address": a.address, "city": a.city, "countryCode": a.country_code,
            "categories": list(a.categories), "serviceRadiusKm": a.service_radius_km,
            "decisionReason": a.decision_reason, "createdAt": _iso(a.created_at),
            "submittedAt": _iso(a.submitted_at), "decidedAt": _iso(a.decided_at),
            "documents": documents.get(a.id, []),
        } for a in applications],
    }


@dataclass(frozen=True)
class DeletionReport:
    """What an erasure changed: ``user_id``, orders (``requests``), ``bookings``, ``tickets``,
    chat ``messages`` blanked, ``emails`` scrubbed, ``sessions`` revoked, ``document_keys`` of the
    provider-application documents to delete from storage."""

    user_id: int
    requests: int
    bookings: int
    tickets: int
    messages: int
    emails: int
    sessions: int
    # Storage keys of the provider-application documents whose rows were deleted: the caller deletes
    # the files once the transaction has committed (a rollback must not lose them).
    document_keys: list[str] = field(default_factory=list)


def deleted_address(user_id: int) -> str:
    """The address an erased account keeps: unique, under the ``.invalid`` TLD (RFC 2606: never
    delivered), refused by registration (email-validator rejects special-use domains)."""
    return f"deleted-{user_id}@deleted.invalid"


async def _open_orders(session: AsyncSession, user: User) -> list[str]:
    """References of the customer's unfinished or disputed orders, live bookings and open tickets."""
    open_requests = (await session.scalars(
        select(ServiceRequest.reference).where(_requests_of(user), or_(
            ServiceRequest.status.notin_(FINAL_ORDER_STATUSES),
            ServiceRequest.id.in_(select(Dispute.service_request_id).where(Dispute.status == "open")),
        )).order_by(ServiceRequest.id)
    )).all()
    live_bookings = (await session.scalars(
        select(Booking.reference).where(Booking.customer_user_id == user.id, Booking.status.in_(LIVE_STATUSES))
        .order_by(Booking.id)
    )).all()
    open_tickets = (await session.scalars(
        select(Ticket.reference).where(Ticket.customer_user_id == user.id, Ticket.status.in_(OPEN_TICKET_STATUSES))
        .order_by(Ticket.id)
    )).all()
    return [*open_requests, *live_bookings, *open_tickets]


async def delete_customer_account(
    session: AsyncSession, user_id: int, *, password: str | None = None, by: str = "self",
) -> DeletionReport:
    """Erase customer ``user_id`` (see the module docstring) in the caller's transaction. ``by``:
    "self" (then ``password`` must match) or "admin". Raises ``NotFound``, ``NotACustomer``,
    ``WrongPassword``, ``AccountDeleted`` (already erased) or ``OpenOrdersExist`` (message names the
    references); nothing is written then."""
    user = await _customer(session, user_id, lock=True)
    if user.deleted_at is not None:
        raise AccountDeleted("This account has already been deleted")
    if by == "self" and (password is None or not verify_password(user.password_hash, password)):
        raise WrongPassword("Password is incorrect")
    blocking = await _open_orders(session, user)
    if blocking:
        shown = ", ".join(blocking[:10]) + (" ..." if len(blocking) > 10 else "")
        raise OpenOrdersExist(
            f"Finish or cancel these first (orders, bookings or tickets still open or disputed): {shown}"
        )
    old_bidx = blind_index(user.email, "email")
    placeholder = deleted_address(user.id)
    placeholder_bidx = blind_index(placeholder, "email")
    request_ids = (await session.scalars(select(ServiceRequest.id).where(_requests_of(user)))).all()

    await session.execute(
        update(ServiceRequest).where(ServiceRequest.id.in_(request_ids))
        .values(customer_name=DELETED_NAME, customer_email=placeholder, customer_email_bidx=placeholder_bidx,
                customer_phone=None, requirements="")
    )
    # Guest orders' idempotency scope named the address's blind index: no longer linkable to it.
    await session.execute(
        update(ServiceRequest).where(ServiceRequest.id.in_(request_ids), ServiceRequest.customer_user_id.is_(None))
        .values(idempotency_scope=None, idempotency_key=None)
    )
    bookings = await session.execute(
        update(Booking).where(Booking.customer_user_id == user.id).values(customer_note="", review_comment=None)
    )
    # The texts of the reviews this customer wrote (the stars stay: they are the providers' aggregates).
    await session.execute(update(Review).where(Review.author_user_id == user.id).values(text=""))
    tickets = await session.execute(
        update(Ticket).where(Ticket.customer_user_id == user.id)
        .values(address="", description="", location=func.ST_GeogFromText("SRID=4326;POINT(0 0)"))
    )
    messages = await session.execute(
        update(ChatMessage).where(ChatMessage.sender_user_id == user.id).values(body="(deleted)")
    )
    emails = await session.execute(
        update(Email).where(or_(Email.user_id == user.id, Email.to_address_bidx == old_bidx))
        .values(to_address=placeholder, to_address_bidx=placeholder_bidx, body_text="", body_html="",
                list_unsubscribe=None,
                # Mail not sent yet never goes out (the send_email actor skips suppressed mail).
                status=case((Email.status.in_(("queued", "failed")), "suppressed"), else_=Email.status))
    )
    # The opt-out keeps holding for the address by its blind index; the address itself goes.
    await session.execute(update(EmailSuppression).where(EmailSuppression.address_bidx == old_bidx).values(address=None))
    await session.execute(delete(Notification).where(Notification.user_id == user.id))
    await session.execute(delete(NotificationPreference).where(NotificationPreference.user_id == user.id))
    await session.execute(delete(AccountToken).where(AccountToken.user_id == user.id))
    sessions = await revoke_all_sessions(session, user.id, "account_deleted")
    # A customer's provider application (never approved: approval makes the account a provider) goes
    # too: its personal fields are blanked and its documents deleted (files after commit).
    application_ids = select(ProviderApplication.id).where(ProviderApplication.user_id == user.id)
    document_keys = list((await session.scalars(
        delete(ApplicationDocument).where(ApplicationDocument.application_id.in_(application_ids))
        .returning(ApplicationDocument.storage_key)
    )).all())
    await session.execute(
        update(ProviderApplication).where(ProviderApplication.user_id == user.id)
        .values(business_name=None, registration_number=None, phone=None, address=None)
    )

    user.full_name = DELETED_NAME
    user.email = placeholder
    user.phone = None
    user.password_hash = UNUSABLE_PASSWORD_HASH
    user.mfa_secret = None
    user.mfa_enabled_at = None
    user.email_verified_at = None
    user.deleted_at = datetime.now(UTC)
    await session.flush()
    report = DeletionReport(
        user_id=user.id, requests=len(request_ids), bookings=bookings.rowcount, tickets=tickets.rowcount,
        messages=messages.rowcount, emails=emails.rowcount, sessions=sessions, document_keys=document_keys,
    )
    await audit.record(
        session, action="privacy.account.deleted", subject_type="User", subject_id=user.id,
        details={"by": by, "requests": report.requests, "bookings": report.bookings, "tickets": report.tickets,
                 "messages": report.messages, "mails": report.emails, "sessions": report.sessions,
                 "documents": len(report.document_keys)},
    )
    log.info("privacy.account.deleted", user_id=user.id, by=by)
    return report

"""The append-only audit log (models/shared/audit.py): writing rows, the request metadata they carry,
and reading them back (admin list, CSV export).

Writing. ``record(session, ...)`` inserts one row in the caller's database transaction, so the
row commits or rolls back with the business change it describes (a ledger posting, an admin
decision). ``record_detached(...)`` writes the same row in its own short transaction, committed at
once, for events whose business transaction rolls back or never existed (a refused login, a
permission denial); it never raises.

Request metadata. Who acted, from which IP and in which request comes from a ContextVar that the
API binds once per GraphQL operation (``bind``; schema/audit.py's ``AuditExtension``) and resets
afterwards (``reset``). Explicit ``actor_id``/``actor_role`` arguments override it; outside a
request (workers, the scheduler, the CLI) the actor is empty unless given.

Privacy. ``details`` holds ids, codes and amounts, never personal data: keys that name
personal data (email, phone, address, password, token, secret, account number) are refused with
``PersonalDataInAudit``. Values are normalised to JSON (anything else through ``str``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Callable, Iterable
from contextvars import ContextVar, Token
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import Select, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.shared import pagination
from domain.shared.errors import CommonErrorCode, DomainError
from models import AuditEntry
from models.db import get_sessionmaker, session_scope
from models.shared.audit import AUDIT_OUTCOMES

log = structlog.get_logger("odim.audit")

CURSOR_KIND = "audit"


class PersonalDataInAudit(ValueError):
    """``details`` carries a key that names personal data (a programming error)."""


class InvalidAuditFilter(DomainError):
    code = CommonErrorCode.INVALID
    field = "filter"


@dataclass(frozen=True)
class RequestMeta:
    """What the current request says about itself: ``request_id`` (hex), client ``ip`` (text form
    of an IPv4/IPv6 address or None), the token's ``actor_id`` (users.id) and ``actor_role``."""

    request_id: str | None = None
    ip: str | None = None
    actor_id: int | None = None
    actor_role: str | None = None


_EMPTY = RequestMeta()
_META: ContextVar[RequestMeta | None] = ContextVar("odim_audit_request", default=None)
_UNSET: Any = object()


def bind(
    *, request_id: str | None = _UNSET, ip: str | None = _UNSET, actor_id: int | None = _UNSET,
    actor_role: str | None = _UNSET,
) -> Token:
    """Set (merge) the current request's metadata for the rows written from now on in this task and
    the tasks it starts. Fields not passed keep their value. Returns a token for ``reset`` (call it
    when the operation ends: in-process test clients run requests in the test's own task)."""
    changes = {k: v for k, v in (("request_id", request_id), ("ip", ip), ("actor_id", actor_id),
                                 ("actor_role", actor_role)) if v is not _UNSET}
    return _META.set(replace(_META.get() or _EMPTY, **changes))


def reset(token: Token) -> None:
    """Restore the metadata ``bind`` replaced. A token from another context is ignored."""
    try:
        _META.reset(token)
    except ValueError:
        pass


def current() -> RequestMeta:
    """The metadata bound for the running task (empty outside a request)."""
    return _META.get() or _EMPTY


_PERSONAL_KEYS = ("email", "phone", "address", "password", "token", "secret", "accountnumber", "iban")


def _check_keys(value: Any) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            folded = str(key).lower().replace("_", "")
            # A flag or a count under such a key (``email: true`` for the email channel) is not
            # personal data; text or structures under it may be.
            if any(word in folded for word in _PERSONAL_KEYS) and not isinstance(inner, bool | int | float | None):
                raise PersonalDataInAudit(f"audit details must not carry personal data (key {key!r})")
            _check_keys(inner)
    elif isinstance(value, list | tuple):
        for inner in value:
            _check_keys(inner)


def _row(
    action: str, subject_type: str | None, subject_id: str | int | None, outcome: str, details: dict | None,
    actor_id: int | None, actor_role: str | None,
) -> dict[str, Any]:
    if outcome not in AUDIT_OUTCOMES:
        raise ValueError(f"audit outcome must be one of {AUDIT_OUTCOMES}, not {outcome!r}")
    if not action or action != action.strip() or " " in action:
        raise ValueError(f"audit action must be a dotted name, not {action!r}")
    clean = json.loads(json.dumps(details or {}, default=str))
    _check_keys(clean)
    meta = current()
    return {
        "action": action, "outcome": outcome,
        "actor_id": meta.actor_id if actor_id is _UNSET else actor_id,
        "actor_role": meta.actor_role if actor_role is _UNSET else actor_role,
        "ip": meta.ip, "request_id": meta.request_id,
        "subject_type": subject_type, "subject_id": None if subject_id is None else str(subject_id),
        "details": clean,
    }


async def record(
    session: AsyncSession, *, action: str, subject_type: str | None = None, subject_id: str | int | None = None,
    outcome: str = "ok", details: dict | None = None, actor_id: int | None = _UNSET, actor_role: str | None = _UNSET,
) -> None:
    """Insert one audit row in the caller's transaction (one INSERT statement; it commits or rolls
    back with the caller's change). ``action``: dotted lowercase (``money.payment_captured``,
    ``admin.refundServiceRequest``, ``auth.login.failed``); ``outcome``: ok | failed | denied; ``subject_id``
    is stored as text. Actor, IP and request id default to the bound request's (``bind``); pass
    ``actor_id=None`` for an anonymous actor explicitly. Raises ``ValueError`` on a bad outcome or
    action and ``PersonalDataInAudit`` when ``details`` names personal data."""
    await session.execute(
        insert(AuditEntry).values(_row(action, subject_type, subject_id, outcome, details, actor_id, actor_role))
    )


async def record_detached(
    *, action: str, subject_type: str | None = None, subject_id: str | int | None = None, outcome: str = "ok",
    details: dict | None = None, actor_id: int | None = _UNSET, actor_role: str | None = _UNSET,
) -> None:
    """``record`` in a transaction of its own, committed at once: for failures and denials whose
    business transaction rolls back. Never raises: a failure to write is logged (with the action)
    and swallowed, so auditing a refusal cannot turn it into a 500."""
    try:
        row = _row(action, subject_type, subject_id, outcome, details, actor_id, actor_role)
        async with session_scope() as session:
            await session.execute(insert(AuditEntry).values(row))
    except Exception:
        log.exception("audit.write_failed", action=action, outcome=outcome)


# --- reading ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilter:
    """Filters of the admin list and the export, all optional and combined with AND: exact
    ``action`` or ``action_prefix`` (e.g. ``money.``), ``actor_id`` (users.id), ``subject_type`` and
    ``subject_id`` (text), ``outcome``, and ``occurred_from`` (inclusive) / ``occurred_to`` (exclusive),
    timezone-aware."""

    action: str | None = None
    action_prefix: str | None = None
    actor_id: int | None = None
    subject_type: str | None = None
    subject_id: str | None = None
    outcome: str | None = None
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None

    def validate(self) -> None:
        """Raises ``InvalidAuditFilter`` on an unknown outcome, a naive datetime or an empty range."""
        if self.outcome is not None and self.outcome not in AUDIT_OUTCOMES:
            raise InvalidAuditFilter(f"outcome must be one of {', '.join(AUDIT_OUTCOMES)}", field="outcome")
        for name, value in (("from", self.occurred_from), ("to", self.occurred_to)):
            if value is not None and value.tzinfo is None:
                raise InvalidAuditFilter("Give a time zone (e.g. 2026-11-22T10:00:00Z)", field=name)
        if self.occurred_from and self.occurred_to and self.occurred_from >= self.occurred_to:
            raise InvalidAuditFilter("from must be before to", field="from")


def _filtered(stmt: Select, f: AuditFilter) -> Select:
    f.validate()
    if f.action is not None:
        stmt = stmt.where(AuditEntry.action == f.action)
    if f.action_prefix:
        stmt = stmt.where(AuditEntry.action.startswith(f.action_prefix, autoescape=True))
    if f.actor_id is not None:
        stmt = stmt.where(AuditEntry.actor_id == f.actor_id)
    if f.subject_type is not None:
        stmt = stmt.where(AuditEntry.subject_type == f.subject_type)
    if f.subject_id is not None:
        stmt = stmt.where(AuditEntry.subject_id == f.subject_id)
    if f.outcome is not None:
        stmt = stmt.where(AuditEntry.outcome == f.outcome)
    if f.occurred_from is not None:
        stmt = stmt.where(AuditEntry.occurred_at >= f.occurred_from)
    if f.occurred_to is not None:
        stmt = stmt.where(AuditEntry.occurred_at < f.occurred_to)
    return stmt


async def list_entries(
    session: AsyncSession, f: AuditFilter, *, first: int, after: str | None
) -> tuple[list[tuple[AuditEntry, str]], bool]:
    """Newest first (id DESC), keyset-paginated on id, one statement. Returns
    ``([(entry, cursor)], has_next_page)``. Raises ``InvalidCursor`` and ``InvalidAuditFilter``."""
    stmt = _filtered(select(AuditEntry), f).order_by(AuditEntry.id.desc()).limit(first + 1)
    if after:
        stmt = stmt.where(AuditEntry.id < pagination.decode(CURSOR_KIND, after))
    rows = (await session.scalars(stmt)).all()
    return [(r, pagination.encode(CURSOR_KIND, r.id)) for r in rows[:first]], len(rows) > first


async def count_entries(session: AsyncSession, f: AuditFilter) -> int:
    """How many rows match ``f`` (the CLI's progress total; not used by the API: it scans)."""
    return int(await session.scalar(_filtered(select(func.count()).select_from(AuditEntry), f)) or 0)


# --- CSV export ------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "id", "occurred_at", "action", "outcome", "actor_id", "actor_role", "ip", "request_id", "subject_type",
    "subject_id", "details",
)
"""The export's fixed columns, in order: ``occurred_at`` in ISO 8601 UTC, ``details`` as compact JSON,
empty cells for nulls."""

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """One cell as text, defused against CSV (formula) injection: a cell starting with ``= + - @``
    (or a tab or carriage return) gets a leading ``'`` so spreadsheets show it as text (OWASP "CSV
    Injection"). Numbers are written as they are: a negative amount is data, not a formula, and
    "-11000" must stay a number for the accountant. Quoting and embedded newlines are left to the
    csv module."""
    if value is None:
        return ""
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    else:
        text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def csv_line(values: Iterable[Any]) -> str:
    """One CSV record (``\\r\\n``-terminated, RFC 4180 quoting) of defused cells."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow([csv_cell(v) for v in values])
    return buffer.getvalue()


async def export_csv(
    f: AuditFilter, *, batch_rows: int, on_rows: Callable[[int], None] | None = None
) -> AsyncIterator[str]:
    """The rows matching ``f``, newest first, as CSV text chunks: the header, then one chunk per
    ``batch_rows`` rows (``on_rows(n)`` is called with each chunk's row count, for progress bars).
    Reads through a server-side cursor (``yield_per``) in its own transaction, so memory stays at
    one batch whatever the table size. Raises ``InvalidAuditFilter`` before the first chunk when
    the filter is invalid."""
    stmt = _filtered(select(*(AuditEntry.__table__.c[c] for c in CSV_COLUMNS)), f).order_by(AuditEntry.id.desc())
    async for chunk in stream_csv(stmt, CSV_COLUMNS, batch_rows=batch_rows, on_rows=on_rows):
        yield chunk


async def stream_csv(
    stmt: Select, header: Iterable[str], *, batch_rows: int, on_rows: Callable[[int], None] | None = None
) -> AsyncIterator[str]:
    """Any SELECT as CSV text chunks: ``header`` first, then one chunk of defused cells
    (``csv_cell``) per ``batch_rows`` rows, read through a server-side cursor (``yield_per``) in its
    own transaction, so memory stays at one batch whatever the table size. ``on_rows(n)`` is called
    with each chunk's row count (progress bars). Shared by every CSV export (audit log, requests)."""
    yield csv_line(header)
    async with get_sessionmaker()() as session, session.begin():
        result = await session.stream(stmt.execution_options(yield_per=batch_rows))
        async for rows in result.partitions():
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            for row in rows:
                writer.writerow([csv_cell(v) for v in row])
            if on_rows is not None:
                on_rows(len(rows))
            yield buffer.getvalue()

"""The audit log for admins: the ``auditLog`` list, audit rows by id (``node``) and the streamed CSV
export (``GET /admin/audit.csv``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from domain.shared import audit
from domain.shared.errors import DomainError
from models import AuditEntry
from resolvers.context import Context
from resolvers.errors import bad_input
from resolvers.ids import decode_id
from resolvers.operations.exports import admin_csv_export
from resolvers.pagination import page_size
from settings import get_settings


def audit_filter(
    *, action: str | None = None, action_prefix: str | None = None, actor_id: str | int | None = None,
    subject_type: str | None = None, subject_id: str | None = None, outcome: str | None = None,
    occurred_from: datetime | None = None, occurred_to: datetime | None = None,
) -> audit.AuditFilter:
    """The domain filter from API values: ``actor_id`` is a User global id or a raw id. Raises
    ``InvalidId`` and ``InvalidAuditFilter``."""
    f = audit.AuditFilter(
        action=action or None, action_prefix=action_prefix or None,
        actor_id=decode_id(actor_id, "User", field="actorId") if actor_id not in (None, "") else None,
        subject_type=subject_type or None, subject_id=subject_id or None, outcome=outcome,
        occurred_from=occurred_from, occurred_to=occurred_to,
    )
    f.validate()
    return f


async def audit_log(
    ctx: Context, *, filter_: dict[str, Any], first: int | None, after: str | None
) -> tuple[list[tuple[AuditEntry, str]], bool]:
    """Admin: audit rows newest first, keyset-paginated. Two statements (the viewer, the page).
    FORBIDDEN for anyone else; bad filters or cursors are top-level errors with their code."""
    await ctx.require_admin()
    size = page_size(first)
    try:
        f = audit_filter(**filter_)
        async with ctx.db() as session:
            return await audit.list_entries(session, f, first=size, after=after)
    except DomainError as exc:
        raise bad_input(exc) from exc


# --- CSV export --------------------------------------------------------------------------------------

_QUERY_FILTERS = {
    "action": "action", "actionPrefix": "action_prefix", "actorId": "actor_id", "subjectType": "subject_type",
    "subjectId": "subject_id", "outcome": "outcome", "from": "occurred_from", "to": "occurred_to",
}


def _filter_from_query(params: Mapping[str, str]) -> audit.AuditFilter:
    values: dict[str, Any] = {}
    for name, key in _QUERY_FILTERS.items():
        raw = params.get(name)
        if raw in (None, ""):
            continue
        if key in ("occurred_from", "occurred_to"):
            try:
                values[key] = datetime.fromisoformat(raw)
            except ValueError:
                raise audit.InvalidAuditFilter(f"{name} must be an ISO 8601 time", field=name) from None
        elif key == "outcome":
            values[key] = raw.lower()
        else:
            values[key] = raw
    return audit_filter(**values)


async def export_audit_csv(request: Request) -> Response:
    """``GET /admin/audit.csv?<filters>`` with ``Authorization: Bearer <admin token>``: the matching
    rows, newest first, as CSV (``domain.shared.audit.CSV_COLUMNS``), streamed in batches of
    ``settings.audit_export_batch_rows`` from a server-side cursor. Filters (query parameters, all
    optional): action, actionPrefix, actorId, subjectType, subjectId, outcome (ok|failed|denied),
    from, to (ISO 8601 with a zone). 401 without a valid token, 403 for non-admins (both audited as
    ``authz.denied``), 400 on a bad filter; the export itself is audited as ``admin.exportAuditLog``."""
    return await admin_csv_export(
        request, operation="GET /admin/audit.csv", action="admin.exportAuditLog", filename="audit-log.csv",
        parse=_filter_from_query,
        rows=lambda f: audit.export_csv(f, batch_rows=get_settings().audit_export_batch_rows),
    )


async def audit_entry_nodes(ctx: Context, ids: list[int]) -> list[AuditEntry | None]:
    """Audit rows by global id (``node``): admins only, null for everyone else (as for other admin objects)."""
    viewer = await ctx.viewer()
    if viewer is None or viewer.role != "admin":
        return [None] * len(ids)
    async with ctx.db() as session:
        return [await session.get(AuditEntry, i) for i in ids]

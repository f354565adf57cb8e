"""Audit log at the API edge: binding each operation's request metadata, recording permission
denials, the admin ``auditLog`` list and the streamed CSV export (``GET /admin/audit.csv``).

The rows themselves are written by ``domain.audit``; this module only knows requests and tokens.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Callable, Mapping
from contextvars import Token
from datetime import datetime
from typing import Any

from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from domain.shared import audit
from domain.shared.errors import DomainError
from models import AuditEntry
from resolvers.context import Context, bearer_token
from resolvers.ids import decode_id
from resolvers.provider import bad_input, page_size
from settings import get_settings

DENIAL_CODES = ("FORBIDDEN", "UNAUTHENTICATED")


def client_ip(request: Any) -> str | None:
    """The peer address of an HTTP request or WebSocket (text form), or None when there is none or it
    is not an IP address (Starlette's test client says ``testclient``)."""
    client = getattr(request, "client", None)
    host = getattr(client, "host", None)
    if not host:
        return None
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def bind_context(ctx: Context) -> Token:
    """Bind the request id, client IP and the token's user id and role (``ctx.claims``; none for
    anonymous callers and invalid tokens) for the audit rows written during this operation. Returns
    the token for ``audit.reset``."""
    claims = getattr(ctx, "claims", None)
    return audit.bind(
        request_id=getattr(ctx, "request_id", None), ip=client_ip(getattr(ctx, "request", None)),
        actor_id=claims.user_id if claims else None, actor_role=claims.role if claims else None,
    )


def denial_code(error: GraphQLError) -> str | None:
    """``FORBIDDEN`` or ``UNAUTHENTICATED`` when ``error`` is a permission refusal, else None."""
    code = (error.extensions or {}).get("code")
    return code if code in DENIAL_CODES else None


async def record_denial(ctx: Any, *, code: str, operation: str | None, path: str | None, transport: str) -> None:
    """One ``authz.denied`` row (outcome ``denied``), committed at once whatever happens to the
    request. Details: the operation name, the field path, the code and the transport (http, ws,
    csv). The actor comes from the token when it decoded (an expired token has no actor). Never
    raises."""
    claims = getattr(ctx, "claims", None)
    token = bind_context(ctx)
    try:
        await audit.record_detached(
            action="authz.denied", outcome="denied", actor_id=claims.user_id if claims else None,
            actor_role=claims.role if claims else None,
            details={"operation": operation, "path": path, "code": code, "transport": transport},
        )
    finally:
        audit.reset(token)


def error_path(error: GraphQLError) -> str | None:
    """``a.b.0.c`` from a GraphQL error's path (None for errors outside execution)."""
    return ".".join(str(p) for p in error.path) if error.path else None


async def record_denials(
    ctx: Any, errors: list[GraphQLError] | None, *, operation: str | None, transport: str,
    default_path: str | None = None,
) -> int:
    """``record_denial`` for each permission refusal among ``errors``; returns how many were recorded.
    ``default_path`` stands for errors without a path (a subscription refused while opening its stream)."""
    recorded = 0
    for error in errors or ():
        code = denial_code(error)
        if code is not None:
            await record_denial(ctx, code=code, operation=operation, path=error_path(error) or default_path,
                                transport=transport)
            recorded += 1
    return recorded


# --- admin list ------------------------------------------------------------------------------------


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
    rows, newest first, as CSV (``domain.audit.CSV_COLUMNS``), streamed in batches of
    ``settings.audit_export_batch_rows`` from a server-side cursor. Filters (query parameters, all
    optional): action, actionPrefix, actorId, subjectType, subjectId, outcome (ok|failed|denied),
    from, to (ISO 8601 with a zone). 401 without a valid token, 403 for non-admins (both audited as
    ``authz.denied``), 400 on a bad filter; the export itself is audited as ``admin.exportAuditLog``."""
    return await admin_csv_export(
        request, operation="GET /admin/audit.csv", action="admin.exportAuditLog", filename="audit-log.csv",
        parse=_filter_from_query,
        rows=lambda f: audit.export_csv(f, batch_rows=get_settings().audit_export_batch_rows),
    )


async def admin_csv_export(
    request: Request, *, operation: str, action: str, filename: str,
    parse: Callable[[Mapping[str, str]], Any], rows: Callable[[Any], AsyncIterator[str]],
) -> Response:
    """The shared shape of the admin CSV endpoints: the bearer token must be an admin's (with MFA):
    401 / 403 otherwise, both audited as ``authz.denied``; ``parse(query_params)`` gives the filter
    (a ``DomainError`` is a 400 naming the field); the export is audited as ``action`` with the
    filter; then ``rows(filter)`` is streamed as ``text/csv`` named ``filename``."""
    ctx = Context(request=request)
    ctx.authenticate(bearer_token(request.headers.get("authorization")))
    try:
        await ctx.require_admin()
    except GraphQLError as error:
        code = denial_code(error) or "FORBIDDEN"
        await record_denial(ctx, code=code, operation=operation, path=None, transport="http")
        return JSONResponse({"error": error.message, "code": code},
                            status_code=401 if code == "UNAUTHENTICATED" else 403)
    finally:
        await ctx.close()
    try:
        f = parse(request.query_params)
    except DomainError as exc:
        return JSONResponse({"error": exc.message, "code": exc.code, "field": exc.field}, status_code=400)
    token = bind_context(ctx)
    try:
        await audit.record_detached(
            action=action, details={"filter": {k: str(v) for k, v in vars(f).items() if v is not None}},
        )
    finally:
        audit.reset(token)
    return StreamingResponse(
        rows(f), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


async def audit_entry_nodes(ctx: Context, ids: list[int]) -> list[AuditEntry | None]:
    """Audit rows by global id (``node``): admins only, null for everyone else (as for other admin objects)."""
    viewer = await ctx.viewer()
    if viewer is None or viewer.role != "admin":
        return [None] * len(ids)
    async with ctx.db() as session:
        return [await session.get(AuditEntry, i) for i in ids]

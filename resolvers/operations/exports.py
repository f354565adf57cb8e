"""The operators' streamed CSV endpoints (domain/operations/exports.py): ``GET /admin/service-requests.csv``,
``GET /admin/ledger.csv`` and ``GET /admin/payouts.csv``. Each needs an admin's bearer token (401 /
403 audited), answers 400 naming a bad parameter, audits the export with its filter and streams
batches of ``settings.audit_export_batch_rows`` rows from a server-side cursor: ``admin_csv_export``,
the shape of every admin CSV endpoint (``GET /admin/audit.csv`` too: resolvers/operations/audit_log.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from typing import Any

from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from domain.operations import exports
from domain.operations.exports import PeriodFilter
from domain.orders.service_request import RequestFilter
from domain.shared import audit
from domain.shared.errors import CommonErrorCode, DomainError
from models.orders.service_request import SERVICE_REQUEST_STATUSES
from resolvers.audit import bind_context, denial_code, record_denial
from resolvers.context import Context, bearer_token
from resolvers.ids import decode_id
from settings import get_settings


def _instant(raw: str, name: str) -> datetime:
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        raise DomainError(f"{name} must be an ISO 8601 time with a zone", field=name, code=CommonErrorCode.INVALID_INPUT) from None
    if at.tzinfo is None:
        raise DomainError(f"{name} must be an ISO 8601 time with a zone", field=name, code=CommonErrorCode.INVALID_INPUT)
    return at


def request_filter_from_query(params: Mapping[str, str]) -> RequestFilter:
    """The request filter from query parameters (all optional): ``serviceId`` and
    ``assignedProviderId`` (global or raw ids), ``status`` (e.g. COMPLETED), ``from`` / ``to`` (ISO 8601
    with a zone, ``[from, to)`` on the creation time). Raises ``DomainError`` naming the parameter."""
    status = (params.get("status") or "").strip().lower() or None
    if status is not None and status not in SERVICE_REQUEST_STATUSES:
        raise DomainError(f"status must be one of {', '.join(s.upper() for s in SERVICE_REQUEST_STATUSES)}",
                          field="status", code=CommonErrorCode.INVALID_INPUT)
    service, provider = params.get("serviceId"), params.get("assignedProviderId")
    return RequestFilter(
        service_id=decode_id(service, "Service", field="serviceId") if service else None,
        status=status,
        created_from=_instant(params["from"], "from") if params.get("from") else None,
        created_to=_instant(params["to"], "to") if params.get("to") else None,
        assigned_provider_id=decode_id(provider, "Provider", field="assignedProviderId") if provider else None,
    )


async def export_service_requests_csv(request: Request) -> Response:
    """``GET /admin/service-requests.csv?<filters>`` with ``Authorization: Bearer <admin token>``: the
    matching requests, oldest first, as CSV (``domain.operations.exports.REQUEST_CSV_COLUMNS``), streamed in
    batches of ``settings.audit_export_batch_rows`` from a server-side cursor. 401 / 403 (audited as
    ``authz.denied``), 400 on a bad filter; the export is audited as ``admin.exportServiceRequests``."""
    return await admin_csv_export(
        request, operation="GET /admin/service-requests.csv", action="admin.exportServiceRequests",
        filename="service-requests.csv", parse=request_filter_from_query,
        rows=lambda f: exports.service_requests_csv(f, batch_rows=get_settings().audit_export_batch_rows),
    )


def period_filter_from_query(params: Mapping[str, str]) -> PeriodFilter:
    """The ledger and payout filter from query parameters (all optional): ``from`` / ``to`` (ISO 8601
    with a zone, ``[from, to)``) and ``currency`` (three letters, e.g. XAF). Raises ``DomainError``
    naming the parameter."""
    currency = (params.get("currency") or "").strip().upper() or None
    if currency is not None and not (len(currency) == 3 and currency.isascii() and currency.isalpha()):
        raise DomainError("currency must be an ISO 4217 code such as XAF", field="currency", code=CommonErrorCode.INVALID_INPUT)
    f = PeriodFilter(
        start=_instant(params["from"], "from") if params.get("from") else None,
        end=_instant(params["to"], "to") if params.get("to") else None,
        currency=currency,
    )
    if f.start and f.end and f.start >= f.end:
        raise DomainError("from must be before to", field="to", code=CommonErrorCode.INVALID_INPUT)
    return f


async def export_ledger_csv(request: Request) -> Response:
    """``GET /admin/ledger.csv?from=&to=&currency=``: the journal, one row per ledger entry in posting
    order (``domain.operations.exports.LEDGER_CSV_COLUMNS``); audited as ``admin.exportLedger``."""
    return await admin_csv_export(
        request, operation="GET /admin/ledger.csv", action="admin.exportLedger", filename="ledger.csv",
        parse=period_filter_from_query,
        rows=lambda f: exports.ledger_csv(f, batch_rows=get_settings().audit_export_batch_rows),
    )


async def export_payouts_csv(request: Request) -> Response:
    """``GET /admin/payouts.csv?from=&to=&currency=``: payouts created in the period, oldest first
    (``domain.operations.exports.PAYOUT_CSV_COLUMNS``); audited as ``admin.exportPayouts``."""
    return await admin_csv_export(
        request, operation="GET /admin/payouts.csv", action="admin.exportPayouts", filename="payouts.csv",
        parse=period_filter_from_query,
        rows=lambda f: exports.payouts_csv(f, batch_rows=get_settings().audit_export_batch_rows),
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

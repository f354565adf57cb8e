"""Prometheus metrics of the API surface, and the answer given when PostgreSQL is unreachable.

Exposed by ``/metrics`` (server.py; prometheus_client's text format):

- ``odim_graphql_operation_seconds{operation, type}``: histogram of GraphQL query/mutation
  execution time (parse to result), seconds. ``operation`` is the client's operation name,
  ``anonymous`` without one, ``other`` once ``settings.metrics_max_operation_names`` distinct
  names were seen by this process or for a name that is not a plain GraphQL name (labels stay
  bounded whatever clients send); ``type`` is ``query``, ``mutation`` or ``unknown`` (unparsable).
- ``odim_graphql_errors_total{code, operation}``: top-level GraphQL errors by
  ``extensions.code`` after masking (``INTERNAL_SERVER_ERROR``, ``SERVICE_UNAVAILABLE``,
  ``FORBIDDEN`` ...; ``GRAPHQL_VALIDATION_FAILED`` for parse and validation errors).
- ``odim_http_request_seconds{route, method, status}``: histogram of HTTP request time per route
  template (``/webhooks/{gateway}``), seconds; unmatched paths are ``route="unmatched"``.
- ``odim_queue_depth{queue, state}``, ``odim_outbox_pending``, ``odim_outbox_oldest_age_seconds``,
  ``odim_webhooks_pending``, ``odim_webhook_oldest_pending_age_seconds``: sampled at scrape time
  (domain/operations/health.py ``backlog``) with a short timeout; a source that does not answer is left out.
- From domain/shared/metrics.py: ``odim_payment_outcomes_total{gateway, outcome}``,
  ``odim_webhook_lag_seconds{gateway}``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import structlog
from graphql import GraphQLError
from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension

from domain.operations import health
from settings import get_settings

log = structlog.get_logger("odim.graphql")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

GRAPHQL_SECONDS = Histogram(
    "odim_graphql_operation_seconds", "GraphQL query/mutation execution time, seconds",
    ["operation", "type"], buckets=LATENCY_BUCKETS,
)
GRAPHQL_ERRORS = Counter(
    "odim_graphql_errors_total", "Top-level GraphQL errors after masking, by extensions.code", ["code", "operation"]
)
HTTP_SECONDS = Histogram(
    "odim_http_request_seconds", "HTTP request time per route template, seconds",
    ["route", "method", "status"], buckets=LATENCY_BUCKETS,
)

_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,63}$")
_CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,47}$")
_seen_names: set[str] = set()


def operation_label(name: str | None) -> str:
    """The ``operation`` label for a client's operation name (see the module docstring)."""
    if not name:
        return "anonymous"
    if name in _seen_names:
        return name
    if not _NAME.match(name) or len(_seen_names) >= get_settings().metrics_max_operation_names:
        return "other"
    _seen_names.add(name)
    return name


def _error_code(error: Any, executed: bool) -> str:
    code = (getattr(error, "extensions", None) or {}).get("code")
    if isinstance(code, str) and _CODE.match(code):
        return code
    return "UNCODED" if executed else "GRAPHQL_VALIDATION_FAILED"


class OperationMetrics(SchemaExtension):
    """Times each query and mutation and counts its top-level errors by code, then logs one
    ``graphql.operation`` line (operation, type, milliseconds, error codes; the request id joins
    from the log context). List it BEFORE the masking extension: its ``on_operation`` exits last and
    so sees the masked codes. Subscriptions are not timed (they last as long as the client wants)."""

    async def on_operation(self) -> Iterator[None]:  # type: ignore[override]
        started = time.perf_counter()
        failure: BaseException | None = None
        try:
            yield
        except BaseException as exc:  # a syntax error is raised through the hook, not returned
            failure = exc
            raise
        finally:
            self._record(time.perf_counter() - started, failure)

    def _record(self, elapsed: float, failure: BaseException | None) -> None:
        ec = self.execution_context
        try:
            kind = ec.operation_type.value
        except Exception:  # no parsable document: a syntax error
            kind = "unknown"
        if kind == "subscription":
            return
        name = operation_label(ec.operation_name)
        GRAPHQL_SECONDS.labels(name, kind).observe(elapsed)
        result = ec.result
        errors: list[Any] = list(getattr(result, "errors", None) or [])
        executed = result is not None and getattr(result, "data", None) is not None
        codes = [_error_code(e, executed) for e in errors]
        if failure is not None and not codes:
            codes = [_error_code(failure, False) if isinstance(failure, GraphQLError) else "INTERNAL_SERVER_ERROR"]
        for code in codes:
            GRAPHQL_ERRORS.labels(code, name).inc()
        log.info("graphql.operation", operation=name, type=kind, ms=round(elapsed * 1000, 2), errors=codes or None)


class _HttpMetrics:
    """ASGI middleware timing every HTTP request per route template (outermost, so it sees the
    final status). WebSocket and lifespan scopes pass through untouched."""

    def __init__(self, app: ASGIApp, routes: list[Any]) -> None:
        self.app = app
        self.routes = routes

    def _route(self, scope: Scope) -> str:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return getattr(route, "path", "unmatched")
        return "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            HTTP_SECONDS.labels(self._route(scope), scope.get("method", ""), str(status)).observe(
                time.perf_counter() - started
            )


class _BacklogCollector(Collector):
    """Queue depths and lags, sampled when Prometheus scrapes (see ``health.backlog``). The sample
    is taken by ``metrics_endpoint`` before rendering, as collectors cannot await."""

    def __init__(self) -> None:
        self.sample: health.Backlog | None = None

    def collect(self):
        sample = self.sample
        if sample is None:
            return
        depth = GaugeMetricFamily("odim_queue_depth", "Dramatiq messages waiting in Redis", labels=["queue", "state"])
        for (queue, state), n in sorted(sample.queues.items()):
            depth.add_metric([queue, state], n)
        yield depth
        for name, doc, value in (
            ("odim_outbox_pending", "Outbox rows not yet dispatched to Redis", sample.outbox_pending),
            ("odim_outbox_oldest_age_seconds", "Age of the oldest undispatched outbox row, seconds",
             sample.outbox_oldest_age_seconds),
            ("odim_webhooks_pending", "Stored webhooks not yet processed (dead-lettered excluded)",
             sample.webhooks_pending),
            ("odim_webhook_oldest_pending_age_seconds", "Age of the oldest unprocessed stored webhook, seconds",
             sample.webhooks_oldest_age_seconds),
        ):
            if value is not None:
                yield GaugeMetricFamily(name, doc, value=value)


BACKLOG = _BacklogCollector()
REGISTRY.register(BACKLOG)


async def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics``: samples the backlog (bounded by ``metrics_sample_timeout_seconds``), then
    renders the default registry in Prometheus' text format."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    BACKLOG.sample = await health.backlog()
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def unavailable_response() -> JSONResponse:
    """503 + ``Retry-After`` for a plain HTTP route whose dependency (PostgreSQL) is unreachable."""
    retry = get_settings().unavailable_retry_after_seconds
    return JSONResponse(
        {"error": "service temporarily unavailable", "code": "SERVICE_UNAVAILABLE", "retryable": True,
         "retryAfterSeconds": retry},
        status_code=503, headers={"Retry-After": str(retry)},
    )


async def _unavailable_handler(request: Request, exc: Exception) -> Response:
    if not health.dependency_unavailable(exc):
        raise exc
    log.warning("http.dependency_unavailable", path=request.url.path, error=type(exc).__name__)
    return unavailable_response()


def instrument(app: Starlette) -> Starlette:
    """Add the HTTP latency middleware (outermost) and map "PostgreSQL unreachable" exceptions
    escaping plain routes (webhooks, pages) to ``unavailable_response()`` instead of a bare 500.
    Call once, before the app serves its first request; returns ``app``."""
    import asyncpg.exceptions
    import sqlalchemy.exc

    app.add_middleware(_HttpMetrics, routes=app.routes)
    for exc_class in (sqlalchemy.exc.DBAPIError, sqlalchemy.exc.TimeoutError, asyncpg.exceptions.PostgresError,
                      asyncpg.exceptions.InterfaceError, OSError):
        app.add_exception_handler(exc_class, _unavailable_handler)
    return app

"""The ASGI app: /graphql (HTTP + WebSocket), /webhooks/{gateway}, the sandbox checkout pages,
/healthz, /readyz, /metrics. Run with ``odim serve`` (uvicorn)."""

from __future__ import annotations

import contextlib
import time
from datetime import timedelta
from typing import Any

import structlog
from graphql import GraphQLError
from prometheus_client import Counter
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

import workers  # noqa: F401  (configures the Dramatiq broker the outbox dispatches to)
from domain.operations import health
from domain.orders import payment as payment_domain
from domain.orders import service_request as sr_domain
from domain.shared import live, outbox
from domain.shared.money import Money
from gateways import registry, sandbox
from gateways.base import InvalidSignature
from models.db import dispose_engine, session_scope
from resolvers import audit as audit_resolvers
from resolvers.context import Context, bearer_token
from resolvers.messaging.email import unsubscribe_endpoint
from resolvers.operations.audit_log import export_audit_csv
from resolvers.operations.exports import export_ledger_csv, export_payouts_csv, export_service_requests_csv
from resolvers.orders import contract as contract_resolvers
from resolvers.providers import onboarding as onboarding_resolvers
from schema import http as http_hardening
from schema import observability, schema
from schema.fanout import FanoutTransportWSHandler
from settings import configure_logging, get_settings

log = structlog.get_logger("odim.server")

WEBHOOKS = Counter("odim_webhooks_total", "Webhooks received", ["gateway", "outcome"])


class OdimGraphQL(GraphQL):
    graphql_transport_ws_handler_class = FanoutTransportWSHandler

    async def get_context(self, request: Any, response: Any = None) -> Context:
        ctx = Context(request=request, response=response)
        ctx.request_id = request.scope.get("state", {}).get("request_id") or ctx.request_id  # schema/http.py
        if request.scope["type"] == "http":
            ctx.authenticate(bearer_token(request.headers.get("authorization")))
        return ctx

    async def on_ws_connect(self, context: Context) -> None:
        """Token from ``connection_init`` as ``{"token": ...}`` or ``{"Authorization": "Bearer ..."}``;
        an expired or invalid token closes the socket with 4403. No token: anonymous (tracking only)."""
        params = context.connection_params or {}
        if not isinstance(params, dict):
            raise ConnectionRejectionError({"message": "connection_init payload must be an object"})
        token = params.get("token") or bearer_token(params.get("Authorization") or params.get("authorization"))
        context.authenticate(token)
        reason = context.auth_error
        if reason is None and context.claims is not None:
            try:  # a signed-out or revoked sign-in is refused here too (one statement)
                await context.viewer(allow_without_mfa=True)
            except GraphQLError as exc:
                reason = exc.message
            finally:
                await context.close()
        if reason is not None:
            await audit_resolvers.record_denial(context, code="UNAUTHENTICATED", operation="connection_init",
                                                path=None, transport="ws")
            raise ConnectionRejectionError({"message": reason})


def graphql_app() -> OdimGraphQL:
    settings = get_settings()
    return OdimGraphQL(
        schema,
        graphql_ide="graphiql" if settings.graphql_ide else None,
        # graphql-ws (legacy) let clients skip on_ws_connect (GHSA-vpwc-v33q-mq89): transport-ws only.
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        allowed_origins=settings.allowed_origins,
        keep_alive=True,
        keep_alive_interval=settings.ws_keep_alive_seconds,
        connection_init_wait_timeout=timedelta(seconds=10),
        max_subscriptions_per_connection=settings.ws_max_subscriptions,
        # GraphQL multipart request spec (document uploads). Strawberry leaves it off because
        # a multipart/form-data POST is a "simple" cross-site request a browser sends WITH cookies (CSRF).
        # Safe here: Odim authenticates with bearer tokens in the Authorization header, never cookies, so
        # a forged cross-site form carries no credentials. Body size: schema/http.py BodySizeLimitMiddleware.
        multipart_uploads_enabled=True,
    )


async def webhook(request: Request) -> Response:
    """Verify over the raw body, store in the inbox, queue processing after commit, answer fast.
    401 on a bad signature (nothing stored); 200 for new and duplicate events alike."""
    name = request.path_params["gateway"]
    try:
        gateway = registry.get_gateway(name)
    except registry.UnknownGateway:
        return JSONResponse({"error": "unknown gateway"}, status_code=404)
    raw = await request.body()
    try:
        async with session_scope() as session:
            event, stored = await payment_domain.receive_webhook(session, gateway, request.headers, raw)
    except InvalidSignature as exc:
        WEBHOOKS.labels(name, "bad_signature").inc()
        log.warning("webhook.bad_signature", gateway=name, reason=str(exc))
        return JSONResponse({"error": "invalid signature"}, status_code=401)
    WEBHOOKS.labels(name, "stored" if stored else "duplicate").inc()
    if stored:
        await outbox.relay_quietly()
    return JSONResponse({"received": True, "duplicate": not stored})


async def sandbox_checkout(request: Request) -> Response:
    """The sandbox gateway's hosted page (GET) and its Pay/Decline form (POST): the sandbox records
    the outcome (a settled payment stays settled), then sends the signed webhook."""
    try:
        details = sandbox.parse_checkout(request.path_params["token"])
    except sandbox.InvalidCheckout as exc:
        return HTMLResponse(f"<!doctype html><p>{exc}</p>", status_code=404)
    amount = Money(details.amount_minor, details.currency).formatted()
    if request.method == "GET":
        return HTMLResponse(sandbox.render_checkout_page(details, amount))
    form = await request.form()
    outcome = form.get("outcome")
    if outcome not in sandbox.EVENT_TYPES:
        return HTMLResponse(sandbox.render_checkout_page(details, amount, "Choose Pay or Decline."), status_code=400)
    settled = await sandbox.record_checkout_outcome(details, str(outcome))
    outcome = "paid" if settled == "succeeded" else "declined"
    raw, headers = sandbox.build_event(details, outcome)
    status = await sandbox.deliver_event(raw, headers)
    if not 200 <= status < 300:
        return HTMLResponse(sandbox.render_checkout_page(details, amount, f"The merchant did not accept the "
                                                         f"notification (HTTP {status}); try again."), status_code=502)
    message = "Payment approved. You can close this page." if outcome == "paid" else "Payment declined. No money was taken."
    return HTMLResponse(sandbox.render_checkout_page(details, amount, message))


async def track_page(request: Request) -> Response:
    """The tracking link of the emails: status, next step and timeline for anyone with the reference;
    the customer's own details only with a valid signed ``token`` (guests)."""
    import html

    reference = request.path_params["reference"].strip().upper()
    async with session_scope() as session:
        found = await sr_domain.get_by_reference(session, reference)
        if found is None:
            return HTMLResponse("<!doctype html><p>No request with this reference.</p>", status_code=404)
        history = (await sr_domain.timelines(session, [found.id]))[found.id]
        private = await sr_domain.can_see_private(session, found, None, request.query_params.get("token"))
    e = html.escape
    rows = "".join(
        f"<li>{e(h.created_at.strftime('%Y-%m-%d %H:%M UTC'))}: {e(sr_domain.STATUS_LABELS[h.to_status])}"
        f"{' — ' + e(h.note) if h.note else ''}</li>" for h in history
    )
    details = (
        f"<p>For {e(found.customer_name)} ({e(found.customer_email)})</p>" if private else ""
    )
    return HTMLResponse(
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{e(reference)}</title></head>"
        f"<body style='font-family:system-ui;max-width:36rem;margin:2rem auto'><h1>{e(reference)}</h1>"
        f"<h2>{e(sr_domain.STATUS_LABELS[found.status])}</h2><p>{e(sr_domain.NEXT_STEPS[found.status])}</p>"
        f"{details}<ol>{rows}</ol></body></html>"
    )


async def payment_return(request: Request) -> Response:
    """Where a gateway sends the customer back after its checkout page. The payment is checked with
    the gateway by reference right away (the webhook may come later); the page says where it
    stands and links to the request's public tracking page. No personal data is shown."""
    import html

    from domain.orders import reconciliation

    reference = request.path_params["reference"]
    status = await reconciliation.check_payment(reference)
    if status == "unknown":
        return HTMLResponse("<!doctype html><p>No payment with this reference.</p>", status_code=404)
    async with session_scope() as session:
        request_ref = await payment_domain.request_reference_for_payment(session, reference)
    message = {
        "completed": "Thank you: your payment is confirmed.",
        "failed": "The payment did not go through. No money was taken; you can try again from your purchase.",
    }.get(status, "Thank you: we are confirming your payment with the payment provider. This can take a minute.")
    e = html.escape
    return HTMLResponse(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Payment</title></head>"
        "<body style='font-family:system-ui;max-width:36rem;margin:2rem auto'>"
        f"<h1>{e(message)}</h1><p>Request <a href='/track/{e(request_ref or '')}'>{e(request_ref or '')}</a></p>"
        "</body></html>"
    )


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def readyz(request: Request) -> Response:
    """200 when PostgreSQL and Redis answer, migrations are at head and the live bus is connected;
    503 otherwise. Body: ``{"postgresql": "ok", "migrations": "ok", "redis": "ok", "live": "ok"}``,
    a failing check holding its reason instead of "ok" (domain/operations/health.py)."""
    found = await health.readiness()
    return JSONResponse(found.checks, status_code=200 if found.ready else 503)


async def metrics(request: Request) -> Response:
    """Prometheus text format; names and meanings in schema/observability.py."""
    return await observability.metrics_endpoint(request)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette):
    started = time.monotonic()
    health.migration_heads()  # read the migration head once, at startup (for /readyz)
    await live.bus.connect()
    log.info("server.started", seconds=round(time.monotonic() - started, 3))
    try:
        yield
    finally:
        await live.bus.disconnect()
        await dispose_engine()


def create_app() -> Starlette:
    gql = graphql_app()
    settings = get_settings()
    return Starlette(
        middleware=[
            # Outermost first (schema/http.py): headers and request id on every response, 429 and 413 too.
            Middleware(http_hardening.SecurityHeadersMiddleware),
            Middleware(http_hardening.RequestIdMiddleware),
            # Browser clients on other origins (React dev servers, admin consoles): same list as the
            # WebSocket origin check. Tokens travel in the Authorization header, never in cookies.
            Middleware(CORSMiddleware, allow_origins=settings.allowed_origins, allow_methods=["GET", "POST"],
                       allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
                       expose_headers=["X-Request-ID", "Retry-After"], max_age=600),
            Middleware(http_hardening.PublicRateLimitMiddleware),
            Middleware(http_hardening.BodySizeLimitMiddleware),
        ],
        routes=[
            Route("/graphql", gql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", gql),
            Route("/webhooks/{gateway}", webhook, methods=["POST"]),
            Route("/sandbox/checkout/{token}", sandbox_checkout, methods=["GET", "POST"]),
            Route("/track/{reference}", track_page),
            Route("/payments/{reference}/return", payment_return),
            Route("/email/unsubscribe", unsubscribe_endpoint, methods=["GET", "POST"]),
            Route("/admin/audit.csv", export_audit_csv, methods=["GET"]),
            Route("/admin/service-requests.csv", export_service_requests_csv, methods=["GET"]),
            Route("/admin/ledger.csv", export_ledger_csv, methods=["GET"]),
            Route("/admin/payouts.csv", export_payouts_csv, methods=["GET"]),
            Route("/admin/application-documents/{document_id}", onboarding_resolvers.download_document,
                  methods=["GET"]),
            Route("/contracts/{contract_id}.pdf", contract_resolvers.download_pdf, methods=["GET"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
        ],
        lifespan=lifespan,
    )


configure_logging()
app = observability.instrument(create_app())  # HTTP latency per route; 503 when PostgreSQL is down

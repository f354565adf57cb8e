"""HTTP hardening middleware, plain ASGI (no BaseHTTPMiddleware: nothing is buffered).

``server.create_app`` stacks them, outermost first: ``SecurityHeadersMiddleware``,
``RequestIdMiddleware``, CORS, ``PublicRateLimitMiddleware``, ``BodySizeLimitMiddleware``. So every
response, 429 and 413 included, carries the security headers, the request id and (for allowed
origins) the CORS headers a browser needs to read it.

Error bodies are GraphQL-shaped: ``{"errors": [{"message": ..., "extensions": {"code": ...}}]}``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import structlog
from starlette.datastructures import MutableHeaders

from domain.shared import ratelimit
from resolvers.ratelimit import client_ip
from settings import get_settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = structlog.get_logger("odim.http")

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# Every response: no framing, no MIME sniffing, no referrer, no sharing of our browsing context.
BASE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
# JSON and our own small HTML pages (inline styles, a same-origin form on the sandbox checkout).
DEFAULT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
               "base-uri 'none'; frame-ancestors 'none'")
# Strawberry's GraphiQL page (GET /graphql, only when settings.graphql_ide): its inline bootstrap
# script and the pinned, SRI-checked bundles it loads from unpkg.com; queries over HTTP and WebSocket.
GRAPHIQL_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://unpkg.com; "
                "style-src 'self' 'unsafe-inline' https://unpkg.com; font-src 'self' data: https://unpkg.com; "
                "img-src 'self' data:; connect-src 'self' ws: wss:; form-action 'self'; base-uri 'none'; "
                "frame-ancestors 'none'")


def graphql_error_body(message: str, code: str, **extensions: Any) -> bytes:
    """A GraphQL-over-HTTP style error document (JSON bytes)."""
    return json.dumps({"errors": [{"message": message, "extensions": {"code": code, **extensions}}]}).encode()


async def send_json_error(send: Send, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    """Send a complete JSON response (``status``, ``body``) on ``send``."""
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _is_graphiql(scope: Scope) -> bool:
    return scope.get("path") == "/graphql" and scope.get("method") == "GET" and bool(get_settings().graphql_ide)


class SecurityHeadersMiddleware:
    """Adds ``BASE_HEADERS`` and a Content-Security-Policy to every HTTP response (headers the app
    already set are kept), plus ``Strict-Transport-Security`` in production
    (``hsts_max_age_seconds``). The CSP is ``DEFAULT_CSP``, or ``GRAPHIQL_CSP`` on GET /graphql while
    GraphiQL is enabled."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = get_settings()
        extra = dict(BASE_HEADERS)
        extra["Content-Security-Policy"] = GRAPHIQL_CSP if _is_graphiql(scope) else DEFAULT_CSP
        if settings.environment == "production":
            extra["Strict-Transport-Security"] = f"max-age={settings.hsts_max_age_seconds}; includeSubDomains"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequestIdMiddleware:
    """Gives each HTTP request and WebSocket connection a request id: the incoming ``X-Request-ID``
    when sane (1-64 characters of ``[A-Za-z0-9_-]``), else a new uuid4 hex. It is stored in
    ``scope["state"]["request_id"]`` (``request.state.request_id``; the GraphQL context's
    ``request_id``), returned in the ``X-Request-ID`` response header, and bound to structlog's
    context variables for the request, so every log line of it carries ``request_id``. Also stores
    the caller's IP (``resolvers.ratelimit.client_ip``) in ``scope["state"]["client_ip"]``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = next((v.decode("latin-1") for k, v in scope.get("headers") or () if k == b"x-request-id"), "")
        request_id = incoming if _SANE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["client_ip"] = client_ip(scope)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await self.app(scope, receive, send_with_id)


class PublicRateLimitMiddleware:
    """At most ``rate_limit_public`` HTTP requests to /graphql per client IP (moving window on
    Redis; seed requirement: 100 per minute). Over it: HTTP 429, ``Retry-After: <seconds>`` and
    ``{"errors": [{"message", "extensions": {"code": "RATE_LIMITED", "retryAfterSeconds": N}}]}``;
    the request never reaches GraphQL. CORS preflights (OPTIONS) are not counted. Redis down: the
    request goes through (fail open, logged), after at most ``chat_redis_timeout_seconds``."""

    def __init__(self, app: ASGIApp, path: str = "/graphql") -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != self.path or scope.get("method") == "OPTIONS":
            await self.app(scope, receive, send)
            return
        ip = (scope.get("state") or {}).get("client_ip") or client_ip(scope)
        try:
            wait = await ratelimit.hit(get_settings().rate_limit_public, "odim_public_ip", ip)
        except ratelimit.RateLimitUnavailable as exc:
            log.warning("ratelimit.unavailable", bucket="public", fails="open", error=str(exc))
            wait = None
        if wait is None:
            await self.app(scope, receive, send)
            return
        log.info("ratelimit.refused", bucket="public", retry_after_seconds=wait)
        body = graphql_error_body(f"Too many requests from your address: try again in {wait} s", "RATE_LIMITED",
                                  retryAfterSeconds=wait)
        await send_json_error(send, 429, body, {"Retry-After": str(wait)})


class _BodyTooLarge(Exception):
    pass


def _body_limit(scope: Scope) -> int:
    """``max_request_body_bytes``, except for multipart/form-data POSTs to /graphql (provider
    onboarding's document uploads): those may carry one file of ``upload_max_bytes`` plus
    ``upload_multipart_overhead_bytes`` of operations, map and part headers. A larger file within that
    room reaches the resolver, which refuses it with a typed FILE_TOO_LARGE error; beyond it, 413 as
    for any request."""
    settings = get_settings()
    if scope.get("path") == "/graphql" and scope.get("method") == "POST":
        content_type = next((v for k, v in scope.get("headers") or () if k == b"content-type"), b"")
        if content_type.split(b";")[0].strip().lower() == b"multipart/form-data":
            return max(settings.max_request_body_bytes,
                       settings.upload_max_bytes + settings.upload_multipart_overhead_bytes)
    return settings.max_request_body_bytes


class BodySizeLimitMiddleware:
    """Refuses HTTP request bodies over ``max_request_body_bytes`` with 413 and a GraphQL-style
    ``REQUEST_TOO_LARGE`` error. A declared ``Content-Length`` over the limit is refused before
    reading; otherwise the bytes actually received are counted (chunked or lying clients), and
    the request is cut off as soon as they pass the limit."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = _body_limit(scope)
        body = graphql_error_body(f"Request body too large: at most {limit} bytes", "REQUEST_TOO_LARGE",
                                  maxBytes=limit)
        declared = next((v for k, v in scope.get("headers") or () if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await send_json_error(send, 413, body, {"Connection": "close"})
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if started:  # the app answered before reading it all; nothing more to say
                return
            await send_json_error(send, 413, body, {"Connection": "close"})

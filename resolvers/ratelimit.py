"""Per-account and per-IP rate limits for sensitive mutations.

``limit(ctx, bucket, key)`` counts one attempt in a bucket and answers None (go on) or the seconds to
wait. Buckets and their settings (``limits`` notation, moving window on Redis, domain/shared/ratelimit.py):

========================  =====================================  =================================  ===========
bucket                    per key (email or account)             per client IP                      Redis down
========================  =====================================  =================================  ===========
``login``                 ``rate_limit_login`` (10/minute)       ``rate_limit_login_ip`` (30/min)   closed
``register``              ``rate_limit_register`` (5/hour)       ``rate_limit_register_ip``         closed
``password_reset``        ``rate_limit_password_reset`` (5/hour) ``rate_limit_password_reset_ip``   closed
``purchase``              ``rate_limit_purchase`` (20/minute)    (the public per-IP limit only)     open
========================  =====================================  =================================  ===========

Fail closed: an attacker who can take Redis down must not get unlimited password guesses, so login,
register and password reset are refused ("retry in ``rate_limit_closed_retry_seconds``") while
Redis is unreachable. Everything else fails open: losing Redis must not stop the shop (docs/architecture.md).
Either way a dead Redis costs at most ``chat_redis_timeout_seconds`` (no hang).

The client IP (``client_ip``) is the socket peer, or the left-most ``X-Forwarded-For`` entry when
the peer is one of ``trusted_proxies``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import structlog

from domain.shared import ratelimit
from domain.shared.errors import CommonErrorCode
from resolvers.errors import PayloadError
from settings import get_settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Bucket:
    per_key: str  # settings attribute of the per-key rule
    per_ip: str | None  # settings attribute of the per-IP rule, or None
    fail_closed: bool


BUCKETS: dict[str, Bucket] = {
    "login": Bucket("rate_limit_login", "rate_limit_login_ip", fail_closed=True),
    "register": Bucket("rate_limit_register", "rate_limit_register_ip", fail_closed=True),
    "password_reset": Bucket("rate_limit_password_reset", "rate_limit_password_reset_ip", fail_closed=True),
    "purchase": Bucket("rate_limit_purchase", None, fail_closed=False),
}


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _is_trusted(peer: str) -> bool:
    proxies = get_settings().trusted_proxies
    if not proxies:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in net for net in _networks(tuple(proxies)))


def client_ip(scope: dict[str, Any]) -> str:
    """The caller's IP address for an ASGI HTTP/WebSocket ``scope``: the socket peer
    (``scope["client"][0]``), or the left-most ``X-Forwarded-For`` entry when the peer is in
    ``trusted_proxies`` (the header is ignored from anyone else: clients can write anything in it).
    "unknown" when the server gives no peer address."""
    client = scope.get("client")
    peer = client[0] if client else "unknown"
    if _is_trusted(peer):
        for name, value in scope.get("headers") or ():
            if name == b"x-forwarded-for":
                first = value.decode("latin-1").split(",")[0].strip()
                try:
                    return str(ipaddress.ip_address(first))
                except ValueError:
                    break
    return peer


def request_client_ip(ctx: Any) -> str | None:
    """``client_ip`` of the context's request (set once per request by the middleware in
    ``scope["state"]["client_ip"]``), or None without a request (tests calling resolvers directly)."""
    request = getattr(ctx, "request", None)
    scope = getattr(request, "scope", None)
    if not scope:
        return None
    cached = (scope.get("state") or {}).get("client_ip")
    return cached or client_ip(scope)


def _mark_response(ctx: Any, wait: int) -> None:
    """HTTP 429 and ``Retry-After: wait`` on the response of an HTTP request (WebSockets: nothing)."""
    response = getattr(ctx, "response", None)
    if response is not None and hasattr(response, "status_code") and hasattr(response, "headers"):
        response.status_code = 429
        response.headers["Retry-After"] = str(wait)


async def limit(ctx: Any, bucket: str, key: str) -> int | None:
    """Count one attempt of ``key`` (an email address, or "user:<id>") in ``bucket`` (a key of
    ``BUCKETS``), and of the caller's IP where the bucket has a per-IP rule. Returns None when
    allowed; otherwise the whole seconds (>= 1) to wait, after setting HTTP 429 and ``Retry-After``
    on ``ctx.response``. Keys are compared trimmed and case-folded, and reach Redis only hashed.

    Redis unreachable: fail-closed buckets return ``rate_limit_closed_retry_seconds``; the others
    return None. Raises KeyError for an unknown bucket."""
    spec = BUCKETS[bucket]
    settings = get_settings()
    checks = [(getattr(settings, spec.per_key), bucket, key.strip().casefold())]
    ip = request_client_ip(ctx)
    if spec.per_ip is not None and ip is not None:
        checks.append((getattr(settings, spec.per_ip), f"{bucket}_ip", ip))
    for rule, namespace, value in checks:
        try:
            wait = await ratelimit.hit(rule, f"odim_{namespace}", value)
        except ratelimit.RateLimitUnavailable as exc:
            log.warning("ratelimit.unavailable", bucket=bucket, fails="closed" if spec.fail_closed else "open",
                        error=str(exc))
            if not spec.fail_closed:
                return None
            wait = settings.rate_limit_closed_retry_seconds
        if wait is not None:
            log.info("ratelimit.refused", bucket=bucket, scope=namespace, retry_after_seconds=wait)
            _mark_response(ctx, wait)
            return wait
    return None


def rate_limited_error(wait: int, what: str = "attempts") -> PayloadError:
    """The payload error of a refused attempt: code RATE_LIMITED, no field, a message giving the wait."""
    return PayloadError(field=None, code=CommonErrorCode.RATE_LIMITED, message=f"Too many {what}: try again in {wait} s")

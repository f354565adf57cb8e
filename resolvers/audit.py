"""Audit at the API edge, for every context: binding each operation's request metadata and recording
permission denials (``authz.denied``). The admin ``auditLog`` list and ``GET /admin/audit.csv`` are
resolvers/operations/audit_log.py.

The rows themselves are written by ``domain.shared.audit``; this module only knows requests and tokens.
"""

from __future__ import annotations

import ipaddress
from contextvars import Token
from typing import Any

from graphql import GraphQLError

from domain.shared import audit
from resolvers.context import Context

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

"""Schema extensions: error masking with request ids, and the per-operation DB session."""

from __future__ import annotations

from collections.abc import Iterator

import structlog
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, SchemaExtension

from domain.operations import health
from settings import get_settings

log = structlog.get_logger("odim.graphql")


def _is_expected(error: GraphQLError) -> bool:
    """Errors we raised on purpose (GraphQLError with a code) and GraphQL's own validation and
    syntax errors are shown; anything else is an unexpected exception and is masked."""
    original = error.original_error
    return original is None or isinstance(original, GraphQLError)


class MaskUnexpectedErrors(MaskErrors):
    """Masks unexpected errors as "Internal server error (request id ...)" after logging the
    stack trace with the request id and user id; expected errors pass through."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=lambda e: not _is_expected(e))

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        ctx = self.execution_context.context
        request_id = getattr(ctx, "request_id", None)
        claims = getattr(ctx, "claims", None)
        if health.dependency_unavailable(error.original_error):
            return unavailable_error(error, ctx, request_id)
        log.error(
            "graphql.unexpected_error", request_id=request_id, user_id=claims.user_id if claims else None,
            path=error.path, exc_info=error.original_error,
        )
        return GraphQLError(
            message=f"Internal server error (request id {request_id})",
            nodes=error.nodes, source=error.source, positions=error.positions, path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
        )


def unavailable_error(error: GraphQLError, ctx: object, request_id: str | None) -> GraphQLError:
    """PostgreSQL unreachable or restarting (``health.dependency_unavailable``): a retryable, typed
    error ``SERVICE_UNAVAILABLE`` (extensions ``retryable: true``, ``retryAfterSeconds``) instead
    of a masked internal error, and over HTTP status 503 with ``Retry-After``. A mutation that gets
    it wrote nothing, or all of it if the commit went through before the connection dropped:
    retry it with the same ``idempotencyKey``."""
    retry = get_settings().unavailable_retry_after_seconds
    log.warning("graphql.dependency_unavailable", request_id=request_id, path=error.path,
                error=type(error.original_error).__name__)
    response = getattr(ctx, "response", None)
    if response is not None and hasattr(response, "headers"):
        response.status_code = 503
        response.headers["Retry-After"] = str(retry)
    return GraphQLError(
        message=f"Service temporarily unavailable; retry in {retry} seconds (request id {request_id})",
        nodes=error.nodes, source=error.source, positions=error.positions, path=error.path,
        extensions={"code": "SERVICE_UNAVAILABLE", "retryable": True, "retryAfterSeconds": retry, "requestId": request_id},
    )


class DbSessionExtension(SchemaExtension):
    """Closes the context's lazy DB session when a query or mutation ends (subscriptions manage
    their own sessions per event)."""

    async def on_operation(self) -> Iterator[None]:  # type: ignore[override]
        yield
        close = getattr(self.execution_context.context, "close", None)
        if close is not None:
            try:
                await close()
            except Exception as exc:  # a connection lost with PostgreSQL: the pool discards it
                if not health.dependency_unavailable(exc):
                    raise
                log.warning("graphql.session_close_failed", error=type(exc).__name__)

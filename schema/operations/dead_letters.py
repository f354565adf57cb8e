"""Dead letters in GraphQL (admins): jobs whose retries ran out, and the inputs, payloads and error codes
of ``replayDeadLetter`` and ``discardDeadLetter`` (root fields: schema/operations/root.py)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import Enum

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from domain.shared.errors import CommonErrorCode
from models import DeadLetter as DeadLetterModel
from resolvers.operations import dead_letters as dead_letter_resolvers
from schema.shared.common import coded_errors, error_code_enum, page_info


@strawberry.enum
class DeadLetterStatus(Enum):
    OPEN = "open"
    REPLAYED = "replayed"
    DISCARDED = "discarded"


@strawberry.type(description="A job whose retries ran out, kept for an admin to read, replay or discard.")
class DeadLetter(relay.Node):
    id: relay.NodeID[int]
    actor: str = strawberry.field(description="The Dramatiq actor, e.g. process_webhook, send_refund.")
    queue: str
    args: JSON = strawberry.field(description="The actor's keyword arguments (a replay sends the same).")
    source_type: str | None = strawberry.field(description="webhook, refund, payout or email.")
    source_id: int | None = strawberry.field(description="Database id of the source row.")
    attempts: int
    last_error: str
    traceback: str
    payload: JSON | None = strawberry.field(description="The source's payload, e.g. the webhook body.")
    status: DeadLetterStatus
    created_at: datetime
    resolved_at: datetime | None

    @classmethod
    def of(cls, d: DeadLetterModel) -> "DeadLetter":
        return cls(
            id=d.id, actor=d.actor, queue=d.queue, args=d.args, source_type=d.source_type, source_id=d.source_id,
            attempts=d.attempts, last_error=d.last_error, traceback=d.traceback, payload=d.payload,
            status=DeadLetterStatus(d.status), created_at=d.created_at, resolved_at=d.resolved_at,
        )

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False):
        found = await dead_letter_resolvers.dead_letter_nodes(info.context, [int(i) for i in node_ids])
        return [cls.of(d) if d else None for d in found]


@strawberry.type
class DeadLetterEdge:
    cursor: str
    node: DeadLetter


@strawberry.type
class DeadLetterConnection:
    edges: list[DeadLetterEdge]
    page_info: relay.PageInfo


def dead_letter_connection(rows: list[tuple[DeadLetterModel, str]], has_next: bool, had_cursor: bool) -> DeadLetterConnection:
    edges = [DeadLetterEdge(cursor=c, node=DeadLetter.of(d)) for d, c in rows]
    return DeadLetterConnection(edges=edges, page_info=page_info(edges, has_next=has_next, has_previous=had_cursor))


DeadLetterErrorCode = error_code_enum("DeadLetterErrorCode", [
    CommonErrorCode.NOT_FOUND, CommonErrorCode.DEAD_LETTER_NOT_OPEN, CommonErrorCode.INVALID_ID,
    CommonErrorCode.INVALID,
])


@strawberry.type
class DeadLetterError:
    field: str | None
    code: DeadLetterErrorCode
    message: str


def dead_letter_errors(errors) -> list[DeadLetterError]:
    return coded_errors(DeadLetterErrorCode, DeadLetterError, errors)


@strawberry.input
class ReplayDeadLetterInput:
    id: strawberry.ID


@strawberry.type
class ReplayDeadLetterPayload:
    dead_letter: DeadLetter | None
    errors: list[DeadLetterError]


@strawberry.input
class DiscardDeadLetterInput:
    id: strawberry.ID


@strawberry.type
class DiscardDeadLetterPayload:
    dead_letter: DeadLetter | None
    errors: list[DeadLetterError]

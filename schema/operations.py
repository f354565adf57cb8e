"""Operations in GraphQL (admins only): dead letters and reconciliation reports."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import Enum

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from domain.shared.errors import CommonErrorCode
from models import DeadLetter as DeadLetterModel
from models import Payment as PaymentModel
from models import ReconciliationItem as ItemModel
from models import ReconciliationRun as RunModel
from resolvers import loaders
from resolvers.operations import dead_letters as dead_letter_resolvers
from resolvers.operations import reconciliation as reconciliation_resolvers
from schema.common import Money, coded_errors, error_code_enum, page_info


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


# --- reconciliation -------------------------------------------------------------------------------


@strawberry.enum
class ReconciliationOutcome(Enum):
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    MISMATCH = "mismatch"
    ERROR = "error"


def _money(amount: int | None, currency: str | None) -> Money | None:
    return Money.of(amount, currency) if amount is not None and currency else None


@strawberry.type(description="One payment, refund or payout asked about: our view and the gateway's.")
class ReconciliationItem:
    object_type: str = strawberry.field(description="payment, refund or payout.")
    reference: str
    gateway: str
    our_status: str
    gateway_status: str | None
    our_amount: Money | None
    gateway_amount: Money | None
    outcome: ReconciliationOutcome
    detail: str

    @classmethod
    def of(cls, i: ItemModel) -> "ReconciliationItem":
        return cls(
            object_type=i.object_type, reference=i.reference, gateway=i.gateway, our_status=i.our_status,
            gateway_status=i.gateway_status, our_amount=_money(i.our_amount_minor, i.our_currency),
            gateway_amount=_money(i.gateway_amount_minor, i.gateway_currency or i.our_currency),
            outcome=ReconciliationOutcome(i.outcome), detail=i.detail,
        )


@strawberry.type(description="A reconciliation run: everything pending past the threshold, asked at its gateway.")
class ReconciliationRun(relay.Node):
    id: relay.NodeID[int]
    started_at: datetime
    finished_at: datetime | None
    checked: int
    updated: int
    mismatches: int
    gateway_errors: int = strawberry.field(description="Objects the gateway could not be asked about (asked again next run).")

    @classmethod
    def of(cls, r: RunModel) -> "ReconciliationRun":
        return cls(id=r.id, started_at=r.started_at, finished_at=r.finished_at, checked=r.checked, updated=r.updated,
                   mismatches=r.mismatches, gateway_errors=r.errors)

    @strawberry.field(description="Mismatches and errors first.")
    async def items(self, info: strawberry.Info) -> list[ReconciliationItem]:
        return [ReconciliationItem.of(i) for i in await loaders.reconciliation_items(info.context).load(int(self.id))]

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False):
        found = await reconciliation_resolvers.reconciliation_run_nodes(info.context, [int(i) for i in node_ids])
        return [cls.of(r) if r else None for r in found]


@strawberry.type(description="A payment held for an admin: the gateway reported another amount or currency.")
class FlaggedPayment:
    reference: str
    gateway: str
    amount: Money
    status: str
    review_reason: str
    created_at: datetime
    service_request_reference: str | None

    @classmethod
    def of(cls, p: PaymentModel, request_reference: str | None) -> "FlaggedPayment":
        return cls(reference=p.reference, gateway=p.gateway, amount=Money.of(p.amount_minor, p.currency),
                   status=p.status, review_reason=p.review_reason or "", created_at=p.created_at,
                   service_request_reference=request_reference)


ReconciliationErrorCode = error_code_enum("ReconciliationErrorCode", [
    CommonErrorCode.INVALID,
])


@strawberry.type
class ReconciliationError:
    field: str | None
    code: ReconciliationErrorCode
    message: str


@strawberry.input
class RunReconciliationInput:
    older_than_seconds: int | None = strawberry.field(
        default=None, description="Ask about objects pending longer than this (default: the configured threshold)."
    )


@strawberry.type
class RunReconciliationPayload:
    run: ReconciliationRun | None
    errors: list[ReconciliationError]


def reconciliation_errors(errors) -> list[ReconciliationError]:
    return coded_errors(ReconciliationErrorCode, ReconciliationError, errors)

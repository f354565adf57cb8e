"""Reconciliation in GraphQL (admins): runs against the gateways with their items, the payments flagged
for review, and the input, payload and error codes of ``runReconciliation`` (root fields:
schema/operations/root.py)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import Enum

import strawberry
from strawberry import relay

from domain.shared.errors import CommonErrorCode
from models import Payment as PaymentModel
from models import ReconciliationItem as ItemModel
from models import ReconciliationRun as RunModel
from resolvers import loaders
from resolvers.operations import reconciliation as reconciliation_resolvers
from schema.shared.common import Money, coded_errors, error_code_enum


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

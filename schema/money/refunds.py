"""An order's money after purchase in GraphQL: the customer's receipt, the settlement (admins and the
assigned provider), refunds, and the input, payload and error codes of ``refundServiceRequest``.
Amounts are ``Money`` (integer minor units + currency)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry import relay

from domain.money.errors import MoneyErrorCode
from domain.money.escrow import Settlement as SettlementFigures
from domain.shared.errors import CommonErrorCode
from models import Refund as RefundModel
from resolvers.money import refunds as refund_resolvers
from resolvers.money.refunds import ReceiptView
from schema.money.fees import ReceiptLine
from schema.shared.common import Money, coded_errors, error_code_enum

if TYPE_CHECKING:
    from schema.orders.service_request import ServiceRequest


@strawberry.enum
class RefundStatus(Enum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@strawberry.type(description="Money going back to the customer through the gateway the payment came from.")
class Refund(relay.Node):
    id: relay.NodeID[int]
    reference: str
    amount: Money
    status: RefundStatus
    reason: str
    failure_reason: str | None
    created_at: datetime
    settled_at: datetime | None

    @classmethod
    def of(cls, r: RefundModel) -> "Refund":
        return cls(
            id=r.id, reference=r.reference, amount=Money.of(r.amount_minor, r.currency), status=RefundStatus(r.status),
            reason=r.reason, failure_reason=r.failure_reason, created_at=r.created_at, settled_at=r.settled_at,
        )

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False):
        found = await refund_resolvers.refund_nodes(info.context, [int(i) for i in node_ids])
        return [cls.of(r) if r else None for r in found]


@strawberry.type(description="The customer's receipt of a paid order: the fee lines snapshotted at purchase, "
                 "then refunds and the net paid.")
class Receipt:
    payment_reference: str | None
    paid_at: datetime | None
    lines: list[ReceiptLine]
    total: Money
    refunded: Money
    net_paid: Money
    _request_id: strawberry.Private[int]

    @classmethod
    def of(cls, v: ReceiptView) -> "Receipt":
        return cls(
            payment_reference=v.payment_reference, paid_at=v.paid_at,
            lines=[ReceiptLine.of(line, v.currency) for line in v.lines], total=Money.of(v.total_minor, v.currency),
            refunded=Money.of(v.refunded_minor, v.currency), net_paid=Money.of(v.net_paid_minor, v.currency),
            _request_id=v.request_id,
        )

    @strawberry.field(description="Refunds of this order, oldest first.")
    async def refunds(self, info: strawberry.Info) -> list[Refund]:
        return [Refund.of(r) for r in await refund_resolvers.refunds_of(info.context, self._request_id)]


@strawberry.type(description="How an order's money splits (admins and the assigned provider only). Before "
                 "release: the split the fee snapshot plans for the whole order; after release: what each "
                 "party got, less later refunds.")
class Settlement:
    released: bool
    released_at: datetime | None
    release_due_at: datetime | None = strawberry.field(
        description="When escrow is released automatically if no dispute is opened (provider-completed orders)."
    )
    commission_rate_bps: int = strawberry.field(description="Basis points of the price (1000 = 10 %).")
    guest_surcharge_rate_bps: int
    affiliate_commission_rate_bps: int
    commission: Money
    guest_surcharge: Money
    provider_share: Money
    affiliate_commission: Money
    platform_take: Money = strawberry.field(description="Commission plus guest surcharge, less the affiliate's part.")
    escrow_held: Money = strawberry.field(description="Captured minus refunded until release, then zero.")

    @classmethod
    def of(cls, v: SettlementFigures) -> "Settlement":
        c = v.currency
        return cls(
            released=v.released, released_at=v.released_at, release_due_at=v.release_due_at,
            commission_rate_bps=v.commission_bps, guest_surcharge_rate_bps=v.guest_surcharge_bps,
            affiliate_commission_rate_bps=v.affiliate_commission_bps, commission=Money.of(v.commission_minor, c),
            guest_surcharge=Money.of(v.guest_surcharge_minor, c), provider_share=Money.of(v.provider_share_minor, c),
            affiliate_commission=Money.of(v.affiliate_commission_minor, c),
            platform_take=Money.of(v.platform_take_minor, c), escrow_held=Money.of(v.escrow_held_minor, c),
        )


RefundErrorCode = error_code_enum("RefundErrorCode", [
    CommonErrorCode.NOT_FOUND, MoneyErrorCode.NOT_REFUNDABLE, MoneyErrorCode.REFUND_EXCEEDS_CAPTURED,
    CommonErrorCode.INVALID_AMOUNT, CommonErrorCode.REQUIRED, CommonErrorCode.IDEMPOTENCY_KEY_REUSED,
    CommonErrorCode.INVALID_ID, CommonErrorCode.INVALID,
])


@strawberry.type
class RefundError:
    field: str | None
    code: RefundErrorCode
    message: str


@strawberry.input
class RefundServiceRequestInput:
    service_request_id: strawberry.ID
    amount: int | None = strawberry.field(
        default=None, description="Minor units of the order's currency; null refunds everything still refundable."
    )
    reason: str = strawberry.field(description="Sent to the customer.")
    idempotency_key: str | None = strawberry.field(
        default=None, description="Retry-safe key (1-120 chars): the same key and input return the same refund; "
        "another input gives IDEMPOTENCY_KEY_REUSED."
    )


@strawberry.type
class RefundServiceRequestPayload:
    refund: Refund | None
    service_request: Annotated["ServiceRequest", strawberry.lazy("schema.orders.service_request")] | None
    errors: list[RefundError]


def refund_errors(errors) -> list[RefundError]:
    return coded_errors(RefundErrorCode, RefundError, errors)

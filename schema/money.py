"""Money in GraphQL: the fee preview, an order's receipt and settlement, refunds, the ledger's trial
balance and the affiliate dashboard. Amounts are ``Money`` (integer minor units + currency)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry import relay

from domain.catalogue.errors import CatalogueErrorCode
from domain.catalogue.fees import FeeBreakdown, customer_lines
from domain.catalogue.fees import ReceiptLine as DomainReceiptLine
from domain.money.affiliate import AffiliateTotals as DomainAffiliateTotals
from domain.money.errors import MoneyErrorCode
from domain.money.escrow import Settlement as SettlementFigures
from domain.shared.errors import CommonErrorCode
from models import Refund as RefundModel
from resolvers.money import fees as fee_resolvers
from resolvers.money import refunds as refund_resolvers
from resolvers.money.ledger import TrialBalance
from resolvers.money.refunds import ReceiptView
from schema.common import Money, coded_errors, error_code_enum

if TYPE_CHECKING:
    from schema.service_request import ServiceRequest


@strawberry.enum(description="What a receipt or quote line is.")
class ReceiptLineKind(Enum):
    PRICE = "price"
    URGENT_SURCHARGE = "urgent_surcharge"
    GUEST_SURCHARGE = "guest_surcharge"
    TOTAL = "total"
    REFUNDED = "refunded"
    NET_PAID = "net_paid"


@strawberry.type
class ReceiptLine:
    kind: ReceiptLineKind
    label: str
    amount: Money

    @classmethod
    def of(cls, line: DomainReceiptLine, currency: str) -> "ReceiptLine":
        return cls(kind=ReceiptLineKind(line.kind), label=line.label, amount=Money.of(line.amount_minor, currency))


@strawberry.type(description="What the customer pays for an order: the service price, the guest checkout fee "
                 "(guests only) and the total, with the lines to show. The platform's commission is not "
                 "part of it (it comes out of the provider's share).")
class FeeQuote:
    currency: str
    price: Money
    guest_surcharge: Money
    total: Money
    lines: list[ReceiptLine]

    @classmethod
    def of(cls, b: FeeBreakdown) -> "FeeQuote":
        return cls(
            currency=b.currency, price=Money.of(b.price, b.currency),
            guest_surcharge=Money.of(b.guest_surcharge, b.currency), total=Money.of(b.total, b.currency),
            lines=[ReceiptLine.of(line, b.currency) for line in customer_lines(b)],
        )


@strawberry.input
class FeeQuoteInput:
    service_id: strawberry.ID
    tier_id: strawberry.ID | None = strawberry.field(default=None, description="Required when the service has several tiers.")
    currency: str | None = strawberry.field(default=None, description="ISO 4217; defaults to the platform currency (XAF).")
    affiliate_code: str | None = None


FeeQuoteErrorCode = error_code_enum("FeeQuoteErrorCode", [
    CommonErrorCode.SERVICE_NOT_FOUND, CatalogueErrorCode.TIER_NOT_FOUND, CatalogueErrorCode.TIER_REQUIRED,
    CatalogueErrorCode.CURRENCY_NOT_OFFERED, CatalogueErrorCode.INVALID_AFFILIATE_CODE,
    CommonErrorCode.INVALID_ID, CommonErrorCode.INVALID,
])


@strawberry.type
class FeeQuoteError:
    field: str | None
    code: FeeQuoteErrorCode
    message: str


@strawberry.type(description="A fee preview, or the typed errors that prevent one (the same codes as "
                 "purchaseService's): `quote` is null exactly when `errors` is not empty.")
class FeeQuoteResult:
    quote: FeeQuote | None
    errors: list[FeeQuoteError]


def fee_quote_result(r: fee_resolvers.QuoteResult) -> FeeQuoteResult:
    return FeeQuoteResult(
        quote=FeeQuote.of(r.breakdown) if r.breakdown else None,
        errors=coded_errors(FeeQuoteErrorCode, FeeQuoteError, r.errors),
    )


# --- refunds and receipts -------------------------------------------------------------------------


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
    service_request: Annotated["ServiceRequest", strawberry.lazy("schema.service_request")] | None
    errors: list[RefundError]


def refund_errors(errors) -> list[RefundError]:
    return coded_errors(RefundErrorCode, RefundError, errors)


# --- ledger and affiliates ------------------------------------------------------------------------


@strawberry.type
class TrialBalanceLine:
    kind: str = strawberry.field(description="Account kind, e.g. escrow, provider_payable, platform_revenue.")
    currency: str
    accounts: int = strawberry.field(description="How many accounts of this kind hold this currency.")
    balance: Money


@strawberry.type(description="Balances summed per account kind and currency, and the ledger audit: each "
                 "currency's entries sum to zero, kept balances equal their entries, no forbidden negatives.")
class LedgerTrialBalance:
    lines: list[TrialBalanceLine]
    balanced: bool
    currency_sums: list[Money] = strawberry.field(description="Sum of all entries per currency (each must be 0).")
    drifted_accounts: list[str]
    negative_accounts: list[str]

    @classmethod
    def of(cls, t: TrialBalance) -> "LedgerTrialBalance":
        return cls(
            lines=[TrialBalanceLine(kind=line.kind, currency=line.currency, accounts=line.accounts,
                                    balance=Money.of(line.balance_minor, line.currency)) for line in t.lines],
            balanced=t.check.ok,
            currency_sums=[Money.of(total, currency) for currency, total in sorted(t.check.currency_sums.items())],
            drifted_accounts=t.check.drifted_accounts, negative_accounts=t.check.negative_accounts,
        )


@strawberry.type(description="What an affiliate code earned in one currency (clicks are not tracked).")
class AffiliateTotals:
    currency: str
    purchases: int = strawberry.field(description="Paid purchases attributed to the code.")
    earned: Money = strawberry.field(description="Commission on released orders.")
    reversed: Money = strawberry.field(description="Commission taken back by refunds.")
    payable: Money = strawberry.field(description="Earned minus reversed minus paid: what is owed.")

    @classmethod
    def of(cls, t: DomainAffiliateTotals) -> "AffiliateTotals":
        c = t.currency
        return cls(currency=c, purchases=t.purchases, earned=Money.of(t.earned, c), reversed=Money.of(t.reversed, c),
                   payable=Money.of(t.payable, c))

"""The fee preview and the fee lines in GraphQL: what the customer pays for an order (``feeQuote``,
the receipt lines, ``purchaseService``'s and ``checkoutBooking``'s ``feeBreakdown``). Amounts are
``Money`` (integer minor units + currency)."""

from __future__ import annotations

from enum import Enum

import strawberry

from domain.catalogue.errors import CatalogueErrorCode
from domain.catalogue.fees import FeeBreakdown, customer_lines
from domain.catalogue.fees import ReceiptLine as DomainReceiptLine
from domain.shared.errors import CommonErrorCode
from resolvers.money import fees as fee_resolvers
from schema.shared.common import Money, coded_errors, error_code_enum


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

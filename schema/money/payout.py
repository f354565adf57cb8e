"""Provider payouts in GraphQL: earnings, payouts, payout destinations (account numbers masked), and
the inputs, payloads and PayoutError codes of the payout mutations (root fields: schema/money/root.py)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import Enum

import strawberry
from strawberry import relay

from domain.identity.errors import IdentityErrorCode
from domain.money.errors import MoneyErrorCode
from domain.money.payout import EarningsSummary as DomainEarnings
from domain.money.payout import masked_destination
from domain.shared.errors import CommonErrorCode
from models import Payout as PayoutModel
from models import PayoutDestination as DestinationModel
from resolvers import loaders
from resolvers.money import payout as payout_resolvers
from resolvers.money.payout import PayoutPage
from schema.providers.provider import Provider
from schema.shared.common import Money, coded_errors, error_code_enum, page_info


def _last4(number: str | None) -> str:
    return "".join(ch for ch in (number or "") if ch.isdigit())[-4:]


@strawberry.enum
class PayoutDestinationKind(Enum):
    MOBILE_MONEY = "mobile_money"
    BANK_ACCOUNT = "bank_account"


@strawberry.type(description="Where a provider is paid. The phone or account number is never shown in full.")
class PayoutDestination(relay.Node):
    id: relay.NodeID[int]
    kind: PayoutDestinationKind
    currency: str
    country_code: str
    holder_name: str
    operator: str | None = strawberry.field(description="Mobile-money operator, e.g. mtn, orange.")
    bank_code: str | None
    number_last4: str = strawberry.field(description="Last 4 digits of the phone or account number.")
    label: str = strawberry.field(description="e.g. `MTN mobile money ****4567`, `bank account ****6789`.")
    is_default: bool
    disabled: bool
    created_at: datetime

    @classmethod
    def of(cls, d: DestinationModel) -> "PayoutDestination":
        number = d.phone if d.kind == "mobile_money" else d.account_number
        return cls(
            id=d.id, kind=PayoutDestinationKind(d.kind), currency=d.currency, country_code=d.country_code,
            holder_name=d.holder_name, operator=d.operator, bank_code=d.bank_code, number_last4=_last4(number),
            label=masked_destination({"kind": d.kind, "phone": d.phone, "operator": d.operator,
                                      "account_number": d.account_number}),
            is_default=d.is_default, disabled=d.disabled, created_at=d.created_at,
        )

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False):
        found = await payout_resolvers.destination_nodes(info.context, [int(i) for i in node_ids])
        return [cls.of(d) if d else None for d in found]


@strawberry.enum
class PayoutStatus(Enum):
    PENDING = "pending"
    SENT = "sent"
    PAID = "paid"
    FAILED = "failed"


@strawberry.type(description="Money sent to a provider's destination; `reference` is unique and never paid twice.")
class Payout(relay.Node):
    id: relay.NodeID[int]
    reference: str
    amount: Money
    status: PayoutStatus
    destination: str = strawberry.field(description="The destination it was sent to, masked.")
    gateway: str
    failure_reason: str | None
    created_at: datetime
    sent_at: datetime | None
    settled_at: datetime | None
    _provider_id: strawberry.Private[int]

    @classmethod
    def of(cls, p: PayoutModel) -> "Payout":
        return cls(
            id=p.id, reference=p.reference, amount=Money.of(p.amount_minor, p.currency), status=PayoutStatus(p.status),
            destination=masked_destination(p.destination), gateway=p.gateway, failure_reason=p.failure_reason,
            created_at=p.created_at, sent_at=p.sent_at, settled_at=p.settled_at, _provider_id=p.provider_id,
        )

    @strawberry.field
    async def provider(self, info: strawberry.Info) -> Provider | None:
        view = await loaders.provider_views(info.context).load(self._provider_id)
        return Provider.of(view) if view else None

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False):
        found = await payout_resolvers.payout_nodes(info.context, [int(i) for i in node_ids])
        return [cls.of(p) if p else None for p in found]


@strawberry.type
class PayoutEdge:
    cursor: str
    node: Payout


@strawberry.type
class PayoutConnection:
    edges: list[PayoutEdge]
    page_info: relay.PageInfo
    total_count: int


def payout_connection(page: PayoutPage, had_cursor: bool) -> PayoutConnection:
    edges = [PayoutEdge(cursor=c, node=Payout.of(p)) for p, c in page.items]
    return PayoutConnection(
        edges=edges, page_info=page_info(edges, has_next=page.has_next_page, has_previous=had_cursor),
        total_count=page.total_count,
    )


@strawberry.type(description="A provider's earnings in one currency.")
class EarningsSummary:
    currency: str
    available: Money = strawberry.field(description="Payable now (the next payout takes it).")
    held: Money = strawberry.field(description="Earned on orders with an open dispute: no payout takes it meanwhile.")
    in_payout: Money = strawberry.field(description="In a payout the gateway has not settled yet.")
    paid_out: Money

    @classmethod
    def of(cls, e: DomainEarnings) -> "EarningsSummary":
        c = e.currency
        return cls(currency=c, available=Money.of(e.available_minor, c), held=Money.of(e.held_minor, c),
                   in_payout=Money.of(e.in_payout_minor, c), paid_out=Money.of(e.paid_out_minor, c))


PayoutErrorCode = error_code_enum("PayoutErrorCode", [
    CommonErrorCode.INVALID_KIND, MoneyErrorCode.UNSUPPORTED_CURRENCY, MoneyErrorCode.INVALID_COUNTRY,
    MoneyErrorCode.CURRENCY_MISMATCH, CommonErrorCode.REQUIRED, CommonErrorCode.TOO_LONG,
    IdentityErrorCode.INVALID_PHONE, MoneyErrorCode.MOBILE_MONEY_UNAVAILABLE, MoneyErrorCode.UNKNOWN_OPERATOR,
    MoneyErrorCode.INVALID_BANK_CODE, MoneyErrorCode.INVALID_ACCOUNT_NUMBER, CommonErrorCode.NOT_FOUND,
    MoneyErrorCode.NO_PAYOUT_DESTINATION, MoneyErrorCode.BELOW_PAYOUT_MINIMUM,
    CommonErrorCode.IDEMPOTENCY_KEY_REUSED, CommonErrorCode.INVALID_ID, CommonErrorCode.INVALID,
])


@strawberry.type
class PayoutError:
    field: str | None
    code: PayoutErrorCode
    message: str


def payout_errors(errors) -> list[PayoutError]:
    return coded_errors(PayoutErrorCode, PayoutError, errors)


@strawberry.input
class RegisterPayoutDestinationInput:
    kind: PayoutDestinationKind
    currency: str = strawberry.field(description="ISO 4217, the currency of the destination's country.")
    country_code: str = strawberry.field(description="ISO 3166-1 alpha-2, e.g. CM.")
    holder_name: str
    phone: str | None = strawberry.field(default=None, description="MOBILE_MONEY: the wallet's phone number.")
    operator: str | None = strawberry.field(default=None, description="MOBILE_MONEY: e.g. mtn, orange (Cameroon).")
    bank_code: str | None = strawberry.field(default=None, description="BANK_ACCOUNT: e.g. 058 (Nigeria), an IFSC (India).")
    account_number: str | None = strawberry.field(default=None, description="BANK_ACCOUNT: digits.")
    make_default: bool = strawberry.field(default=True, description="Pay this currency's payouts here from now on.")


@strawberry.type
class RegisterPayoutDestinationPayload:
    destination: PayoutDestination | None
    errors: list[PayoutError]


@strawberry.input
class DisablePayoutDestinationInput:
    destination_id: strawberry.ID


@strawberry.type
class DisablePayoutDestinationPayload:
    destination: PayoutDestination | None
    errors: list[PayoutError]


@strawberry.input
class RequestPayoutInput:
    currency: str
    idempotency_key: str = strawberry.field(description="1-120 chars: the same key returns the same payout.")


@strawberry.type
class RequestPayoutPayload:
    payout: Payout | None
    errors: list[PayoutError]


@strawberry.input
class RunPayoutsInput:
    client_mutation_id: str | None = strawberry.field(default=None, description="Echoed back in the payload (Relay).")


@strawberry.type
class RunPayoutsPayload:
    payouts_created: int
    client_mutation_id: str | None
    errors: list[PayoutError]

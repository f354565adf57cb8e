"""Root fields of money: the fee preview, a provider's earnings, payouts and payout destinations, the
admins' payouts, payout run, refunds, ledger trial balance and the affiliate dashboard."""

from __future__ import annotations

import strawberry

from resolvers.money import fees as fee_resolvers
from resolvers.money import ledger as ledger_resolvers
from resolvers.money import payout as payout_resolvers
from resolvers.money import refunds as refund_resolvers
from schema.money.fees import FeeQuoteInput, FeeQuoteResult, fee_quote_result
from schema.money.ledger import AffiliateTotals, LedgerTrialBalance
from schema.money.payout import (
    DisablePayoutDestinationInput,
    DisablePayoutDestinationPayload,
    EarningsSummary,
    Payout,
    PayoutConnection,
    PayoutDestination,
    RegisterPayoutDestinationInput,
    RegisterPayoutDestinationPayload,
    RequestPayoutInput,
    RequestPayoutPayload,
    RunPayoutsInput,
    RunPayoutsPayload,
    payout_connection,
    payout_errors,
)
from schema.money.refunds import Refund, RefundServiceRequestInput, RefundServiceRequestPayload, refund_errors
from schema.orders.service_request import ServiceRequest


@strawberry.type
class Query:
    @strawberry.field(description="Fee preview before paying: what buying this tier costs now. Anonymous callers "
                      "are quoted as guests (with the guest checkout fee), logged-in callers without it. Bad "
                      "input comes back as typed `errors` (purchaseService's codes), never as a top-level error.")
    async def fee_quote(self, info: strawberry.Info, input: FeeQuoteInput) -> FeeQuoteResult:
        r = await fee_resolvers.fee_quote(
            info.context, service_id=input.service_id, tier_id=input.tier_id, currency=input.currency,
            affiliate_code=input.affiliate_code,
        )
        return fee_quote_result(r)

    @strawberry.field(description="Provider: earnings per currency (available, held by disputes, in payout, paid out).")
    async def my_earnings(self, info: strawberry.Info) -> list[EarningsSummary]:
        return [EarningsSummary.of(e) for e in await payout_resolvers.my_earnings(info.context)]

    @strawberry.field(description="Provider: your payouts, newest first; `first` at most 100 (default 20).")
    async def my_payouts(
        self, info: strawberry.Info, first: int | None = 20, after: str | None = None
    ) -> PayoutConnection:
        page = await payout_resolvers.my_payouts(info.context, first=first, after=after)
        return payout_connection(page, after is not None)

    @strawberry.field(description="Provider: your enabled payout destinations, oldest first (numbers masked).")
    async def my_payout_destinations(self, info: strawberry.Info) -> list[PayoutDestination]:
        return [PayoutDestination.of(d) for d in await payout_resolvers.my_destinations(info.context)]

    @strawberry.field(description="Admin: every provider's payouts, newest first; `first` at most 100 (default 20).")
    async def payouts(
        self, info: strawberry.Info, first: int | None = 20, after: str | None = None
    ) -> PayoutConnection:
        page = await payout_resolvers.all_payouts(info.context, first=first, after=after)
        return payout_connection(page, after is not None)

    @strawberry.field(description="Admin: ledger balances per account kind and currency, and whether the ledger "
                      "balances (zero-sum per currency, kept balances equal to their entries).")
    async def ledger_trial_balance(self, info: strawberry.Info) -> LedgerTrialBalance:
        return LedgerTrialBalance.of(await ledger_resolvers.trial_balance(info.context))

    @strawberry.field(description="What an affiliate code earned, per currency: admins and the affiliate's own "
                      "account only.")
    async def affiliate_dashboard(self, info: strawberry.Info, code: str) -> list[AffiliateTotals]:
        return [AffiliateTotals.of(t) for t in await ledger_resolvers.affiliate_dashboard(info.context, code=code)]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Admin: refund an order in full or in part through its payment gateway "
                         "(the customer is emailed when the gateway confirms).")
    async def refund_service_request(
        self, info: strawberry.Info, input: RefundServiceRequestInput
    ) -> RefundServiceRequestPayload:
        r = await refund_resolvers.refund_service_request(
            info.context, service_request_id=input.service_request_id, amount=input.amount, reason=input.reason,
            idempotency_key=input.idempotency_key,
        )
        return RefundServiceRequestPayload(
            refund=Refund.of(r.refund) if r.refund else None,
            service_request=ServiceRequest.of(r.request) if r.request else None, errors=refund_errors(r.errors),
        )

    @strawberry.mutation(description="Admin: run the payout batch now (every provider's payable earnings, held "
                         "ones excluded); returns how many payouts were created.")
    async def run_payouts(self, info: strawberry.Info, input: RunPayoutsInput) -> RunPayoutsPayload:
        made = await payout_resolvers.run_payouts(info.context)
        return RunPayoutsPayload(payouts_created=made, client_mutation_id=input.client_mutation_id, errors=[])

    @strawberry.mutation(description="Provider: add a payout destination (mobile money or bank account).")
    async def register_payout_destination(
        self, info: strawberry.Info, input: RegisterPayoutDestinationInput
    ) -> RegisterPayoutDestinationPayload:
        r = await payout_resolvers.register_destination(
            info.context, kind=input.kind.value, currency=input.currency, country_code=input.country_code,
            holder_name=input.holder_name, phone=input.phone, operator=input.operator, bank_code=input.bank_code,
            account_number=input.account_number, make_default=input.make_default,
        )
        return RegisterPayoutDestinationPayload(
            destination=PayoutDestination.of(r.destination) if r.destination else None, errors=payout_errors(r.errors)
        )

    @strawberry.mutation(description="Provider: stop paying to one of your destinations.")
    async def disable_payout_destination(
        self, info: strawberry.Info, input: DisablePayoutDestinationInput
    ) -> DisablePayoutDestinationPayload:
        r = await payout_resolvers.disable_destination(info.context, destination_id=input.destination_id)
        return DisablePayoutDestinationPayload(
            destination=PayoutDestination.of(r.destination) if r.destination else None, errors=payout_errors(r.errors)
        )

    @strawberry.mutation(description="Provider: pay out your whole available balance in a currency now.")
    async def request_payout(self, info: strawberry.Info, input: RequestPayoutInput) -> RequestPayoutPayload:
        r = await payout_resolvers.request_payout(
            info.context, currency=input.currency, idempotency_key=input.idempotency_key
        )
        return RequestPayoutPayload(payout=Payout.of(r.payout) if r.payout else None, errors=payout_errors(r.errors))

"""Root fields of operations: data export and account erasure, financial reports, dead letters,
reconciliation and flagged payments, and the audit log."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from resolvers import loaders
from resolvers.ids import encode_id
from resolvers.operations import audit_log as audit_log_resolvers
from resolvers.operations import dead_letters as dead_letter_resolvers
from resolvers.operations import privacy as privacy_resolvers
from resolvers.operations import reconciliation as reconciliation_resolvers
from resolvers.operations import reports as report_resolvers
from schema.operations.audit_log import AuditEntry, AuditEntryConnection, AuditEntryEdge, AuditLogFilter
from schema.operations.dead_letters import (
    DeadLetter,
    DeadLetterConnection,
    DeadLetterStatus,
    DiscardDeadLetterInput,
    DiscardDeadLetterPayload,
    ReplayDeadLetterInput,
    ReplayDeadLetterPayload,
    dead_letter_connection,
    dead_letter_errors,
)
from schema.operations.privacy import (
    EXPORT_DESCRIPTION,
    DeleteAccountPayload,
    DeleteCustomerAccountInput,
    DeleteMyAccountInput,
    deletion_payload,
)
from schema.operations.reconciliation import (
    FlaggedPayment,
    ReconciliationRun,
    RunReconciliationInput,
    RunReconciliationPayload,
    reconciliation_errors,
)
from schema.operations.reports import (
    AffiliateCommissionLine,
    DisputeReportLine,
    From,
    PayoutReport,
    ProviderEarningsLine,
    RevenueDay,
)
from schema.shared.common import Money, page_info


@strawberry.type
class Query:
    @strawberry.field(description="Customers: " + EXPORT_DESCRIPTION)
    async def my_data_export(self, info: strawberry.Info) -> JSON:
        return await privacy_resolvers.my_data_export(info.context)

    @strawberry.field(description="Admins: the data export of one customer; null when `userId` is not a customer. "
                      + EXPORT_DESCRIPTION)
    async def customer_data_export(self, info: strawberry.Info, user_id: strawberry.ID) -> JSON | None:
        return await privacy_resolvers.customer_data_export(info.context, str(user_id))

    @strawberry.field(description="Admin: platform revenue per UTC day and currency (commission, guest "
                      "surcharge, affiliate commissions, refunds, net), from the ledger.")
    async def daily_revenue(self, info: strawberry.Info, from_: From,
                            to: dt.datetime) -> list[RevenueDay]:
        return [RevenueDay.of(r) for r in await report_resolvers.daily_revenue(info.context, from_, to)]

    @strawberry.field(description="Admin: payouts created in the period per currency and status with "
                      "reconciliation status, and the ledger's payout movements.")
    async def payout_report(self, info: strawberry.Info, from_: From,
                            to: dt.datetime) -> PayoutReport:
        return PayoutReport.of(await report_resolvers.payout_report(info.context, from_, to))

    @strawberry.field(description="Admin: disputes opened in the period, open and settled, with amounts.")
    async def dispute_report(self, info: strawberry.Info, from_: From,
                             to: dt.datetime) -> list[DisputeReportLine]:
        return [DisputeReportLine(currency=x.currency, status=x.status, resolution=x.resolution, count=x.count,
                                  at_stake=Money.of(x.at_stake_minor, x.currency),
                                  refunded=Money.of(x.refunded_minor, x.currency))
                for x in await report_resolvers.dispute_report(info.context, from_, to)]

    @strawberry.field(description="Admin: provider earnings in the period (earned, refunded, paid out, payable "
                      "now), for every provider or one.")
    async def provider_earnings(self, info: strawberry.Info, from_: From,
                                to: dt.datetime,
                                provider_id: strawberry.ID | None = None) -> list[ProviderEarningsLine]:
        return [ProviderEarningsLine(provider_id=strawberry.ID(encode_id("Provider", x.provider_id)),
                                     display_name=x.display_name, currency=x.currency,
                                     earned=Money.of(x.earned_minor, x.currency),
                                     refunded=Money.of(x.refunded_minor, x.currency),
                                     paid_out=Money.of(x.paid_out_minor, x.currency),
                                     payable_now=Money.of(x.payable_now_minor, x.currency))
                for x in await report_resolvers.provider_earnings(info.context, from_, to, provider_id)]

    @strawberry.field(description="Admin: affiliate commissions in the period per affiliate code and currency.")
    async def affiliate_commissions(self, info: strawberry.Info, from_: From,
                                    to: dt.datetime) -> list[AffiliateCommissionLine]:
        return [AffiliateCommissionLine(code=x.code, currency=x.currency, earned=Money.of(x.earned_minor, x.currency),
                                        reversed=Money.of(x.reversed_minor, x.currency),
                                        net=Money.of(x.net_minor, x.currency))
                for x in await report_resolvers.affiliate_commissions(info.context, from_, to)]

    @strawberry.field(description="Admin: jobs whose retries ran out, newest first; `first` at most 100.")
    async def dead_letters(
        self, info: strawberry.Info, status: DeadLetterStatus | None = None, first: int | None = 20,
        after: str | None = None,
    ) -> DeadLetterConnection:
        rows, has_next = await dead_letter_resolvers.dead_letters(
            info.context, status=status.value if status else None, first=first, after=after
        )
        return dead_letter_connection(rows, has_next, after is not None)

    @strawberry.field(description="Admin: the latest reconciliation runs with their items, newest first.")
    async def reconciliation_runs(self, info: strawberry.Info, first: int | None = 10) -> list[ReconciliationRun]:
        runs = await reconciliation_resolvers.reconciliation_runs(info.context, first=first)
        return [ReconciliationRun.of(r) for r in runs]

    @strawberry.field(description="Admin: payments held for review because the gateway reported another amount "
                      "or currency (never captured meanwhile).")
    async def flagged_payments(self, info: strawberry.Info) -> list[FlaggedPayment]:
        payments = await reconciliation_resolvers.flagged_payments(info.context)
        requests = await loaders.service_requests(info.context).load_many([p.service_request_id for p in payments])
        return [FlaggedPayment.of(p, r.reference if r else None) for p, r in zip(payments, requests, strict=True)]

    @strawberry.field(description="Admin: the audit log, newest first (keyset pagination: pass `pageInfo.endCursor` "
                      "as `after`), with filters. FORBIDDEN for everyone else. The same rows as CSV: `GET "
                      "/admin/audit.csv` with the same filters as query parameters (`from`/`to` in ISO 8601).")
    async def audit_log(
        self, info: strawberry.Info,
        filter: AuditLogFilter | None = None,
        first: Annotated[int | None, strawberry.argument(description="At most 100.")] = 20,
        after: str | None = None,
    ) -> AuditEntryConnection:
        f = filter or AuditLogFilter()
        rows, has_next = await audit_log_resolvers.audit_log(
            info.context,
            filter_={"action": f.action, "action_prefix": f.action_prefix, "actor_id": f.actor_id,
                     "subject_type": f.subject_type, "subject_id": f.subject_id,
                     "outcome": f.outcome.value if f.outcome else None, "occurred_from": f.from_, "occurred_to": f.to},
            first=first, after=after,
        )
        edges = [AuditEntryEdge(cursor=c, node=AuditEntry.of(e)) for e, c in rows]
        return AuditEntryConnection(edges=edges, page_info=page_info(edges, has_next=has_next,
                                                                     has_previous=after is not None))


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Customers: erase your account (GDPR-style). Personal fields are anonymised, "
                         "every sign-in ends, money records and the audit log are kept. Refused (OPEN_ORDERS) while "
                         "an order, booking or ticket of yours is unfinished or disputed.")
    async def delete_my_account(self, info: strawberry.Info, input: DeleteMyAccountInput) -> DeleteAccountPayload:
        return deletion_payload(await privacy_resolvers.delete_my_account(info.context, password=input.password))

    @strawberry.mutation(description="Admins: erase a customer's account (as deleteMyAccount, without its password).")
    async def delete_customer_account(
        self, info: strawberry.Info, input: DeleteCustomerAccountInput,
    ) -> DeleteAccountPayload:
        return deletion_payload(
            await privacy_resolvers.delete_customer_account(info.context, user_id=str(input.user_id))
        )

    @strawberry.mutation(description="Admin: run a dead letter's job again (idempotent: a replayed or discarded "
                         "one is returned unchanged).")
    async def replay_dead_letter(self, info: strawberry.Info, input: ReplayDeadLetterInput) -> ReplayDeadLetterPayload:
        r = await dead_letter_resolvers.replay_dead_letter(info.context, dead_letter_id=input.id)
        return ReplayDeadLetterPayload(
            dead_letter=DeadLetter.of(r.letter) if r.letter else None, errors=dead_letter_errors(r.errors)
        )

    @strawberry.mutation(description="Admin: mark an open dead letter as needing nothing more.")
    async def discard_dead_letter(
        self, info: strawberry.Info, input: DiscardDeadLetterInput
    ) -> DiscardDeadLetterPayload:
        r = await dead_letter_resolvers.discard_dead_letter(info.context, dead_letter_id=input.id)
        return DiscardDeadLetterPayload(
            dead_letter=DeadLetter.of(r.letter) if r.letter else None, errors=dead_letter_errors(r.errors)
        )

    @strawberry.mutation(description="Admin: reconcile now: ask the gateways about every payment, refund and "
                         "payout still pending, apply their answers, flag mismatches. Returns the run's report.")
    async def run_reconciliation(
        self, info: strawberry.Info, input: RunReconciliationInput
    ) -> RunReconciliationPayload:
        r = await reconciliation_resolvers.run_reconciliation(info.context, older_than_seconds=input.older_than_seconds)
        return RunReconciliationPayload(
            run=ReconciliationRun.of(r.run) if r.run else None, errors=reconciliation_errors(r.errors)
        )

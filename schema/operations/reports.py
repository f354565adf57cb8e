"""Financial reports for the operator's console (admin only). Figures come from the ledger; see
domain/operations/reports.py for what each column means. Periods are `[from, to)` (ISO 8601 with a zone), at
most 366 days; days are UTC days. One SQL statement per report. The root fields are in
schema/operations/root.py."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import strawberry

from domain.operations import reports as domain_reports
from schema.shared.common import Money

From = Annotated[dt.datetime, strawberry.argument(name="from", description="Start, inclusive (ISO 8601 with zone).")]


@strawberry.type(description="Platform revenue of one UTC day in one currency. `net` = `released` - "
                 "`affiliateCommissions` - `refunds` + `other`; `commission` + `guestSurcharge` = `released`.")
class RevenueDay:
    day: dt.date
    currency: str
    released: Money = strawberry.field(description="The platform's part of escrow released that day.")
    commission: Money
    guest_surcharge: Money
    affiliate_commissions: Money = strawberry.field(description="Moved on to affiliates (earned minus reversed).")
    refunds: Money = strawberry.field(description="Taken back from platform revenue by refunds.")
    other: Money
    net: Money = strawberry.field(description="Sum of every platform-revenue ledger entry of the day.")

    @classmethod
    def of(cls, r: domain_reports.RevenueDay) -> RevenueDay:
        m = lambda v: Money.of(v, r.currency)  # noqa: E731
        return cls(day=r.day, currency=r.currency, released=m(r.released_minor), commission=m(r.commission_minor),
                   guest_surcharge=m(r.guest_surcharge_minor), affiliate_commissions=m(r.affiliate_commissions_minor),
                   refunds=m(r.refunds_minor), other=m(r.other_minor), net=m(r.net_minor))


@strawberry.type(description="Payouts created in the period in one currency and status. `reconciliation`: "
                 "`settled` (the gateway paid or failed it) or `awaiting_gateway` (pending or sent).")
class PayoutReportLine:
    currency: str
    status: str
    reconciliation: str
    count: int
    amount: Money


@strawberry.type(description="The ledger's payout movements in the period for one currency.")
class PayoutLedgerLine:
    currency: str
    sent: Money = strawberry.field(description="Moved into payouts in transit (payout_sent).")
    paid: Money = strawberry.field(description="Settled out to the gateway (payout_paid).")
    returned: Money = strawberry.field(description="Returned to providers after a failure (payout_failed).")
    in_transit_now: Money = strawberry.field(description="Balance of payouts in transit now.")


@strawberry.type(description="Payouts sent, failed and pending in a period, with reconciliation status and the "
                 "ledger's figures.")
class PayoutReport:
    lines: list[PayoutReportLine]
    ledger: list[PayoutLedgerLine]

    @classmethod
    def of(cls, r: domain_reports.PayoutReport) -> PayoutReport:
        return cls(
            lines=[PayoutReportLine(currency=x.currency, status=x.status, reconciliation=x.reconciliation, count=x.count,
                                    amount=Money.of(x.amount_minor, x.currency)) for x in r.lines],
            ledger=[PayoutLedgerLine(currency=x.currency, sent=Money.of(x.sent_minor, x.currency),
                                     paid=Money.of(x.paid_minor, x.currency),
                                     returned=Money.of(x.returned_minor, x.currency),
                                     in_transit_now=Money.of(x.in_transit_now_minor, x.currency)) for x in r.ledger],
        )


@strawberry.type(description="Disputes opened in the period in one currency, status and resolution.")
class DisputeReportLine:
    currency: str
    status: str
    resolution: str | None
    count: int
    at_stake: Money = strawberry.field(description="What the disputed orders' customers paid.")
    refunded: Money = strawberry.field(description="Refunds posted to the ledger for those orders since their "
                                       "dispute opened.")


@strawberry.type(description="One provider's earnings in the period for one currency (its provider_payable "
                 "ledger account).")
class ProviderEarningsLine:
    provider_id: strawberry.ID
    display_name: str
    currency: str
    earned: Money
    refunded: Money
    paid_out: Money
    payable_now: Money


@strawberry.type(description="One affiliate's commissions in the period for one currency.")
class AffiliateCommissionLine:
    code: str
    currency: str
    earned: Money
    reversed: Money
    net: Money

"""The ledger's trial balance (admins) and the affiliate dashboard in GraphQL. Amounts are ``Money``
(integer minor units + currency)."""

from __future__ import annotations

import strawberry

from domain.money.affiliate import AffiliateTotals as DomainAffiliateTotals
from resolvers.money.ledger import TrialBalance
from schema.shared.common import Money


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

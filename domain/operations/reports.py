"""Financial reports for operators, computed from the double-entry ledger.

Every figure about money comes from ``ledger_entries`` (joined to their transactions and accounts,
models/money/ledger.py), so a report can never disagree with the ledger: tests/operations/test_reports.py checks each
report's totals against direct sums over the entries and the trial balance. Periods are half-open
``[start, end)`` in UTC; a "day" is a UTC calendar day. Amounts are integers in minor units of their
currency. Each report is ONE SQL statement, whatever the number of rows.

* ``daily_revenue``: what reached ``platform_revenue`` per day and currency. ``released`` is the
  platform's part of released escrow (commission plus guest surcharge, posted as one entry by
  domain/money/escrow.py ``release``); it is split into ``commission`` and ``guest_surcharge`` in proportion
  to the order's fee rates (``commission_bps`` : ``guest_surcharge_bps``, the snapshot taken at
  purchase; the remainder of the integer division goes to commission, so the two always add up to
  ``released``). ``affiliate_commissions`` is what moved on to affiliates (earned minus reversed),
  ``refunds`` what refunds took back from the platform, ``other`` anything else, and ``net`` the sum of
  all platform-revenue entries of the day: ``net = released - affiliate_commissions - refunds + other``.
* ``payout_report``: payouts created in the period per currency and status (count, amount, from
  ``payouts``) with the ledger's view of the same period: money sent to ``payout_in_transit``, settled
  to the gateway (``payout_paid``) and returned (``payout_failed``). ``reconciliation`` says whether
  the gateway has settled the payout (paid or failed: ``settled``) or Odim still waits for it
  (pending or sent: ``awaiting_gateway``; domain/orders/reconciliation.py asks the gateway about these).
* ``dispute_report``: disputes opened in the period per currency, status and resolution: count, the
  orders' captured amounts at stake, and what was refunded through the ledger for those orders after
  the dispute opened (``refund_requested`` entries into ``refunds_payable``).
* ``provider_earnings``: per provider and currency, from the provider's ``provider_payable`` account:
  earned (escrow released to it), taken back by refunds, moved into payouts, and its balance now.
* ``affiliate_commissions``: per affiliate and currency, from ``affiliate_payable``: earned, reversed
  and net in the period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.operations.errors import OperationsErrorCode
from domain.shared.errors import DomainError

MAX_REPORT_DAYS = 366


class InvalidPeriod(DomainError):
    """``INVALID_PERIOD``: the period is empty, reversed or longer than ``MAX_REPORT_DAYS``."""

    code = OperationsErrorCode.INVALID_PERIOD
    field = "from"


def check_period(start: datetime, end: datetime) -> None:
    """Raise ``InvalidPeriod`` unless ``start < end`` (both zone-aware) and the period is at most
    ``MAX_REPORT_DAYS`` days."""
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidPeriod("Give both ends of the period with a time zone (ISO 8601)")
    if not start < end:
        raise InvalidPeriod("The period must end after it starts")
    if (end - start).days > MAX_REPORT_DAYS:
        raise InvalidPeriod(f"A report covers at most {MAX_REPORT_DAYS} days")


@dataclass(frozen=True)
class RevenueDay:
    """One UTC day and currency of platform revenue (see the module docstring), minor units."""

    day: date
    currency: str
    released_minor: int
    commission_minor: int
    guest_surcharge_minor: int
    affiliate_commissions_minor: int
    refunds_minor: int
    other_minor: int
    net_minor: int


_REVENUE = text("""
WITH e AS (
  SELECT (e.created_at AT TIME ZONE 'UTC')::date AS day, e.currency, e.amount_minor, t.kind,
         sr.commission_bps, sr.guest_surcharge_bps
  FROM ledger_entries e
  JOIN ledger_accounts a ON a.id = e.account_id
  JOIN ledger_transactions t ON t.id = e.transaction_id
  LEFT JOIN service_requests sr ON sr.id = t.service_request_id
  WHERE a.kind = 'platform_revenue' AND e.created_at >= :start AND e.created_at < :end
)
SELECT day, currency,
  COALESCE(SUM(amount_minor) FILTER (WHERE kind = 'escrow_released'), 0) AS released,
  COALESCE(SUM(CASE WHEN kind = 'escrow_released' AND COALESCE(commission_bps, 0) + COALESCE(guest_surcharge_bps, 0) > 0
                    THEN amount_minor * COALESCE(guest_surcharge_bps, 0)
                         / (COALESCE(commission_bps, 0) + COALESCE(guest_surcharge_bps, 0)) END), 0) AS surcharge,
  COALESCE(-SUM(amount_minor) FILTER (WHERE kind IN ('affiliate_commission_earned', 'affiliate_commission_reversed')), 0)
    AS affiliate,
  COALESCE(-SUM(amount_minor) FILTER (WHERE kind IN ('refund_requested', 'refund_sent')), 0) AS refunds,
  SUM(amount_minor) AS net
FROM e GROUP BY day, currency ORDER BY day, currency
""")


async def daily_revenue(session: AsyncSession, start: datetime, end: datetime) -> list[RevenueDay]:
    """Platform revenue per UTC day and currency in ``[start, end)``, oldest day first (one
    statement). Raises ``InvalidPeriod``."""
    check_period(start, end)
    rows = (await session.execute(_REVENUE, {"start": start, "end": end})).all()
    out = []
    for r in rows:
        released, surcharge, affiliate, refunds, net = (int(r.released), int(r.surcharge), int(r.affiliate),
                                                         int(r.refunds), int(r.net))
        out.append(RevenueDay(
            day=r.day, currency=r.currency, released_minor=released, commission_minor=released - surcharge,
            guest_surcharge_minor=surcharge, affiliate_commissions_minor=affiliate, refunds_minor=refunds,
            other_minor=net - released + affiliate + refunds, net_minor=net,
        ))
    return out


@dataclass(frozen=True)
class PayoutLine:
    """Payouts created in the period in one currency and status: how many and how much (minor)."""

    currency: str
    status: str
    reconciliation: str  # settled | awaiting_gateway
    count: int
    amount_minor: int


@dataclass(frozen=True)
class PayoutLedger:
    """The ledger's payout movements in the period for one currency (minor units)."""

    currency: str
    sent_minor: int  # into payout_in_transit (payout_sent)
    paid_minor: int  # settled out to the gateway (payout_paid)
    returned_minor: int  # back to provider_payable after a failure (payout_failed)
    in_transit_now_minor: int  # balance of payout_in_transit accounts now


@dataclass(frozen=True)
class PayoutReport:
    lines: list[PayoutLine]
    ledger: list[PayoutLedger]


_PAYOUTS = text("""
SELECT 'line' AS part, currency, status, count(*) AS n, SUM(amount_minor) AS amount, 0 AS a, 0 AS b, 0 AS c
FROM payouts WHERE created_at >= :start AND created_at < :end GROUP BY currency, status
UNION ALL
SELECT 'ledger', a.currency, NULL, 0,
  COALESCE(SUM(e.amount_minor) FILTER (WHERE t.kind = 'payout_sent' AND e.created_at >= :start AND e.created_at < :end), 0),
  COALESCE(-SUM(e.amount_minor) FILTER (WHERE t.kind = 'payout_paid' AND e.created_at >= :start AND e.created_at < :end), 0),
  COALESCE(-SUM(e.amount_minor) FILTER (WHERE t.kind = 'payout_failed' AND e.created_at >= :start AND e.created_at < :end), 0),
  COALESCE(SUM(e.amount_minor), 0)
FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id JOIN ledger_transactions t ON t.id = e.transaction_id
WHERE a.kind = 'payout_in_transit' GROUP BY a.currency
ORDER BY 1, 2, 3
""")


async def payout_report(session: AsyncSession, start: datetime, end: datetime) -> PayoutReport:
    """Payouts created in ``[start, end)`` per currency and status, and the ledger's payout
    movements in the same period (one statement). Raises ``InvalidPeriod``."""
    check_period(start, end)
    lines, ledger = [], []
    for r in (await session.execute(_PAYOUTS, {"start": start, "end": end})).all():
        if r.part == "line":
            lines.append(PayoutLine(currency=r.currency, status=r.status,
                                    reconciliation="settled" if r.status in ("paid", "failed") else "awaiting_gateway",
                                    count=int(r.n), amount_minor=int(r.amount)))
        else:
            ledger.append(PayoutLedger(currency=r.currency, sent_minor=int(r.amount), paid_minor=int(r.a),
                                       returned_minor=int(r.b), in_transit_now_minor=int(r.c)))
    return PayoutReport(lines, ledger)


@dataclass(frozen=True)
class DisputeLine:
    """Disputes opened in the period in one currency, status (open | resolved) and resolution
    (release | refund_full | refund_partial, None while open)."""

    currency: str
    status: str
    resolution: str | None
    count: int
    at_stake_minor: int  # what the disputed orders' customers paid
    refunded_minor: int  # refunds posted for those orders since their dispute opened (ledger)


_DISPUTES = text("""
SELECT sr.currency, d.status, d.resolution, count(*) AS n, SUM(sr.amount_minor) AS at_stake,
  COALESCE(SUM((SELECT SUM(e.amount_minor) FROM ledger_entries e
                JOIN ledger_transactions t ON t.id = e.transaction_id
                JOIN ledger_accounts a ON a.id = e.account_id
                WHERE t.service_request_id = d.service_request_id AND t.kind = 'refund_requested'
                  AND a.kind = 'refunds_payable' AND e.created_at >= d.created_at)), 0) AS refunded
FROM disputes d JOIN service_requests sr ON sr.id = d.service_request_id
WHERE d.created_at >= :start AND d.created_at < :end
GROUP BY sr.currency, d.status, d.resolution ORDER BY 1, 2, 3 NULLS FIRST
""")


async def dispute_report(session: AsyncSession, start: datetime, end: datetime) -> list[DisputeLine]:
    """Disputes opened in ``[start, end)`` by currency, status and resolution (one statement).
    Raises ``InvalidPeriod``."""
    check_period(start, end)
    return [DisputeLine(currency=r.currency, status=r.status, resolution=r.resolution, count=int(r.n),
                        at_stake_minor=int(r.at_stake), refunded_minor=int(r.refunded))
            for r in (await session.execute(_DISPUTES, {"start": start, "end": end})).all()]


@dataclass(frozen=True)
class ProviderEarningsLine:
    """One provider's ``provider_payable`` movements in the period for one currency (minor)."""

    provider_id: int
    display_name: str
    currency: str
    earned_minor: int  # released escrow credited to the provider
    refunded_minor: int  # taken back by refunds after release
    paid_out_minor: int  # moved into payouts (payout_sent minus payout_failed returns)
    payable_now_minor: int  # the account's balance now


_EARNINGS = text("""
SELECT a.owner_id AS provider_id, p.display_name, a.currency,
  COALESCE(SUM(e.amount_minor) FILTER (WHERE t.kind = 'escrow_released' AND e.created_at >= :start AND e.created_at < :end), 0) AS earned,
  COALESCE(-SUM(e.amount_minor) FILTER (WHERE t.kind = 'refund_requested' AND e.created_at >= :start AND e.created_at < :end), 0) AS refunded,
  COALESCE(-SUM(e.amount_minor) FILTER (WHERE t.kind IN ('payout_sent', 'payout_failed') AND e.created_at >= :start AND e.created_at < :end), 0) AS paid_out,
  MAX(a.balance_minor) AS payable_now
FROM ledger_accounts a
JOIN providers p ON p.id = a.owner_id
LEFT JOIN ledger_entries e ON e.account_id = a.id
LEFT JOIN ledger_transactions t ON t.id = e.transaction_id
WHERE a.kind = 'provider_payable' AND (CAST(:provider_id AS bigint) IS NULL OR a.owner_id = :provider_id)
GROUP BY a.owner_id, p.display_name, a.currency ORDER BY a.owner_id, a.currency
""")


async def provider_earnings(
    session: AsyncSession, start: datetime, end: datetime, *, provider_id: int | None = None,
) -> list[ProviderEarningsLine]:
    """Earnings per provider (or only ``provider_id``) and currency in ``[start, end)``, by provider
    id (one statement). Raises ``InvalidPeriod``."""
    check_period(start, end)
    rows = (await session.execute(_EARNINGS, {"start": start, "end": end, "provider_id": provider_id})).all()
    return [ProviderEarningsLine(provider_id=r.provider_id, display_name=r.display_name, currency=r.currency,
                                 earned_minor=int(r.earned), refunded_minor=int(r.refunded),
                                 paid_out_minor=int(r.paid_out), payable_now_minor=int(r.payable_now))
            for r in rows]


@dataclass(frozen=True)
class AffiliateCommissionLine:
    """One affiliate's commissions in the period for one currency (minor units)."""

    affiliate_id: int
    code: str
    currency: str
    earned_minor: int
    reversed_minor: int
    net_minor: int


_AFFILIATES = text("""
SELECT a.owner_id AS affiliate_id, af.code, a.currency,
  COALESCE(SUM(e.amount_minor) FILTER (WHERE t.kind = 'affiliate_commission_earned'), 0) AS earned,
  COALESCE(-SUM(e.amount_minor) FILTER (WHERE t.kind = 'affiliate_commission_reversed'), 0) AS reversed,
  COALESCE(SUM(e.amount_minor), 0) AS net
FROM ledger_entries e
JOIN ledger_accounts a ON a.id = e.account_id
JOIN ledger_transactions t ON t.id = e.transaction_id
JOIN affiliates af ON af.id = a.owner_id
WHERE a.kind = 'affiliate_payable' AND e.created_at >= :start AND e.created_at < :end
GROUP BY a.owner_id, af.code, a.currency ORDER BY af.code, a.currency
""")


async def affiliate_commissions(session: AsyncSession, start: datetime, end: datetime) -> list[AffiliateCommissionLine]:
    """Affiliate commissions per affiliate and currency in ``[start, end)``, by code (one
    statement). Raises ``InvalidPeriod``."""
    check_period(start, end)
    return [AffiliateCommissionLine(affiliate_id=r.affiliate_id, code=r.code, currency=r.currency,
                                    earned_minor=int(r.earned), reversed_minor=int(r.reversed), net_minor=int(r.net))
            for r in (await session.execute(_AFFILIATES, {"start": start, "end": end})).all()]

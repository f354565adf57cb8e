"""Fees: the one place they are computed, from the one place they are configured (settings).

Rule (the marketplace's fee policy): the platform takes a commission of the service price
(10 % by default) from the provider's share, and a guest who checks out without an account pays a
surcharge (10 % of the price by default) on top. Both rates can be overridden per service category
(settings.fee_category_overrides) and are snapshotted onto the order at purchase, so a later change
of settings never alters an old order. An affiliate's commission is a share of the price at the
affiliate's own rate, paid out of the platform's take (capped at it).

All amounts are integers in minor units; a percentage of an amount is rounded half up
(``bps_of``), the way the receipts show it.
"""

from __future__ import annotations

from dataclasses import dataclass

from settings import get_settings

BPS = 10_000


def bps_of(amount_minor: int, bps: int) -> int:
    """``amount_minor * bps / 10_000`` rounded half up (amounts and rates are non-negative)."""
    return (amount_minor * bps * 2 + BPS) // (2 * BPS)


@dataclass(frozen=True)
class FeeRates:
    commission_bps: int
    guest_surcharge_bps: int


def rates_for(category: str) -> FeeRates:
    """Commission and guest-surcharge rates for a service category (settings defaults, overridden
    by settings.fee_category_overrides[category])."""
    settings = get_settings()
    override = settings.fee_category_overrides.get(category, {})
    return FeeRates(
        commission_bps=int(override.get("commission_bps", settings.fee_commission_bps)),
        guest_surcharge_bps=int(override.get("guest_surcharge_bps", settings.fee_guest_surcharge_bps)),
    )


@dataclass(frozen=True)
class FeeBreakdown:
    """What an order costs and how it splits, in minor units of ``currency``.

    Customer side: ``price + guest_surcharge = total``. Split on completion:
    ``provider_share + platform_commission + guest_surcharge = total``, and the affiliate's
    ``affiliate_commission`` comes out of ``platform_commission + guest_surcharge``."""

    currency: str
    price: int
    guest_surcharge: int
    total: int
    commission: int
    provider_share: int
    affiliate_commission: int
    commission_bps: int
    guest_surcharge_bps: int
    affiliate_commission_bps: int
    urgent_surcharge: int = 0  # part of ``price``: an urgent ticket's surcharge (the provider's side)


def breakdown(
    price_minor: int, currency: str, *, commission_bps: int, guest_surcharge_bps: int, affiliate_commission_bps: int,
    urgent_surcharge_minor: int = 0,
) -> FeeBreakdown:
    """The breakdown for a price and a set of (snapshotted) rates. The affiliate's commission is
    capped at the platform's take so the provider's share never pays for it."""
    surcharge = bps_of(price_minor, guest_surcharge_bps)
    commission = bps_of(price_minor, commission_bps)
    affiliate = min(bps_of(price_minor, affiliate_commission_bps), commission + surcharge)
    return FeeBreakdown(
        currency=currency, price=price_minor, guest_surcharge=surcharge, total=price_minor + surcharge,
        commission=commission, provider_share=price_minor - commission, affiliate_commission=affiliate,
        commission_bps=commission_bps, guest_surcharge_bps=guest_surcharge_bps,
        affiliate_commission_bps=affiliate_commission_bps, urgent_surcharge=urgent_surcharge_minor,
    )


def quote(
    price_minor: int, currency: str, category: str, *, guest: bool, affiliate_bps: int = 0, urgent_bps: int = 0
) -> FeeBreakdown:
    """The breakdown a new order gets today (rates from settings for ``category``). ``urgent_bps``
    (an urgent ticket's visit) raises the price by that share of ``price_minor``; commission applies
    to the raised price."""
    rates = rates_for(category)
    urgent = bps_of(price_minor, urgent_bps)
    return breakdown(
        price_minor + urgent, currency, commission_bps=rates.commission_bps,
        guest_surcharge_bps=rates.guest_surcharge_bps if guest else 0, affiliate_commission_bps=affiliate_bps,
        urgent_surcharge_minor=urgent,
    )


def allocate(amount_minor: int, shares: dict[str, int]) -> dict[str, int]:
    """Split ``amount_minor`` across ``shares`` in proportion to them (largest-remainder method):
    the parts sum to ``amount_minor`` exactly and, when ``amount_minor <= sum(shares)``, no part
    exceeds its share. Raises ValueError when the amount is negative or exceeds the shares."""
    total = sum(shares.values())
    if amount_minor < 0 or amount_minor > total:
        raise ValueError(f"cannot allocate {amount_minor} over {total}")
    if total == 0:
        return {name: 0 for name in shares}
    parts = {name: share * amount_minor // total for name, share in shares.items()}
    left = amount_minor - sum(parts.values())
    by_remainder = sorted(shares, key=lambda n: (-(shares[n] * amount_minor % total), n))
    for name in by_remainder[:left]:
        parts[name] += 1
    return parts


@dataclass(frozen=True)
class ReceiptLine:
    """One line of a quote or receipt: ``kind`` is price | urgent_surcharge | guest_surcharge | total | refunded | net_paid."""

    kind: str
    label: str
    amount_minor: int


def customer_lines(b: FeeBreakdown) -> list[ReceiptLine]:
    """What the customer sees before paying and on the receipt (the commission is between the
    platform and the provider and is not on the customer's receipt)."""
    lines = [ReceiptLine("price", "Service price", b.price - b.urgent_surcharge)]
    if b.urgent_surcharge:
        lines.append(ReceiptLine("urgent_surcharge", "Urgent visit surcharge", b.urgent_surcharge))
    if b.guest_surcharge:
        lines.append(ReceiptLine(
            "guest_surcharge", f"Guest checkout fee ({b.guest_surcharge_bps / 100:g} %)", b.guest_surcharge
        ))
    lines.append(ReceiptLine("total", "Total", b.total))
    return lines

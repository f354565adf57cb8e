"""The fee preview: what buying a tier of a service would cost now (domain/catalogue/offers.py)."""

from __future__ import annotations

from dataclasses import dataclass

from domain.catalogue import fees, offers
from domain.shared.errors import DomainError
from resolvers.context import Context
from resolvers.errors import PayloadError, to_payload_error
from resolvers.ids import decode_id


@dataclass
class QuoteResult:
    breakdown: fees.FeeBreakdown | None
    errors: list[PayloadError]


async def fee_quote(
    ctx: Context, *, service_id: str, tier_id: str | None, currency: str | None, affiliate_code: str | None
) -> QuoteResult:
    """What buying this tier would cost now (``service_request.fee_quote``). Anonymous callers are
    quoted as guests (guest surcharge), logged-in callers without it. Bad input (unknown service,
    tier, currency or affiliate code) comes back as typed errors, like ``purchaseService``'s."""
    viewer = await ctx.viewer()
    try:
        sid = decode_id(service_id, "Service", field="serviceId")
        tid = decode_id(tier_id, "ServiceTier", field="tierId") if tier_id else None
        async with ctx.db() as session:
            breakdown = await offers.fee_quote(
                session, service_id=sid, tier_id=tid, currency=currency, guest=viewer is None,
                affiliate_code=affiliate_code,
            )
    except DomainError as exc:
        return QuoteResult(None, [to_payload_error(exc)])
    return QuoteResult(breakdown, [])

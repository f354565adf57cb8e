"""What is on offer: a service's tier at a price in a currency, with the affiliate's rate when a
code is given; and the fee quote a purchase of it would get (domain/catalogue/fees.py). Purchases
(domain/orders/service_request.py) and bookings' checkouts read their price here."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.catalogue import fees
from domain.catalogue.errors import CatalogueErrorCode
from domain.shared.errors import CommonErrorCode, DomainError
from models import Affiliate, Service, ServiceTier, TierPrice
from settings import get_settings


class ServiceNotFound(DomainError):
    code = CommonErrorCode.SERVICE_NOT_FOUND
    field = "serviceId"


class TierNotFound(DomainError):
    code = CatalogueErrorCode.TIER_NOT_FOUND
    field = "tierId"


class TierRequired(DomainError):
    code = CatalogueErrorCode.TIER_REQUIRED
    field = "tierId"


class CurrencyNotOffered(DomainError):
    code = CatalogueErrorCode.CURRENCY_NOT_OFFERED
    field = "currency"


class InvalidAffiliateCode(DomainError):
    code = CatalogueErrorCode.INVALID_AFFILIATE_CODE
    field = "affiliateCode"


async def offer(
    session: AsyncSession, service_id: int, tier_id: int | None, currency: str, affiliate_code: str | None
) -> tuple[Service, ServiceTier, TierPrice, int]:
    """The service, tier and price on offer, and the affiliate's rate (bps, 0 without a code).
    Raises ``ServiceNotFound``, ``TierNotFound``, ``TierRequired``, ``CurrencyNotOffered``,
    ``InvalidAffiliateCode``."""
    service = await session.get(Service, service_id)
    if service is None or not service.active:
        raise ServiceNotFound("No such service")
    tiers = (await session.scalars(select(ServiceTier).where(ServiceTier.service_id == service_id))).all()
    tier = choose_tier([t.id for t in tiers], tier_id)
    tier = next(t for t in tiers if t.id == tier)
    price = await session.get(TierPrice, (tier.id, currency))
    if price is None:
        offered = (
            await session.scalars(
                select(TierPrice.currency).where(TierPrice.tier_id == tier.id).order_by(TierPrice.currency)
            )
        ).all()
        raise not_offered(currency, offered)
    affiliate_bps = 0
    if affiliate_code is not None:
        affiliate = await session.scalar(
            select(Affiliate).where(Affiliate.code == affiliate_code, Affiliate.active.is_(True))
        )
        if affiliate is None:
            raise InvalidAffiliateCode("Unknown affiliate code")
        affiliate_bps = affiliate.commission_bps
    return service, tier, price, affiliate_bps


def choose_tier(tier_ids: list[int], tier_id: int | None) -> int:
    """The tier bought: ``tier_id`` when it is one of the service's ``tier_ids``, or the only tier when
    none is named. Raises ``TierRequired`` (several tiers, none named), ``TierNotFound``."""
    if tier_id is None:
        if len(tier_ids) != 1:
            raise TierRequired("This service has several tiers: choose one with tierId")
        return tier_ids[0]
    if tier_id not in tier_ids:
        raise TierNotFound("No such tier for this service")
    return tier_id


def not_offered(currency: str, offered: list[str]) -> CurrencyNotOffered:
    """The refusal of a tier not sold in ``currency`` (``offered``: the currencies it is sold in)."""
    return CurrencyNotOffered(f"This tier is not sold in {currency}; offered: {', '.join(sorted(offered))}")


async def fee_quote(
    session: AsyncSession, *, service_id: int, tier_id: int | None, currency: str | None, guest: bool,
    affiliate_code: str | None = None,
) -> fees.FeeBreakdown:
    """The breakdown buying this tier would get now (the fee preview before paying): the same
    lookups and errors as ``purchase_service``, nothing written."""
    currency = (currency or get_settings().default_currency).upper()
    code = affiliate_code.strip().upper() if affiliate_code and affiliate_code.strip() else None
    service, _, price, affiliate_bps = await offer(session, service_id, tier_id, currency, code)
    return fees.quote(price.amount_minor, currency, service.category, guest=guest, affiliate_bps=affiliate_bps)

"""The service catalogue in GraphQL: services and their tiers (root field ``services``:
schema/catalogue/root.py)."""

from __future__ import annotations

from collections.abc import Iterable

import strawberry
from strawberry import relay

from models import Service as ServiceModel
from models import ServiceTier as TierModel
from resolvers import catalogue as catalogue_resolvers
from schema.shared.common import Money
from settings import get_settings


@strawberry.type
class ServiceTier(relay.Node):
    id: relay.NodeID[int]
    name: str
    features: list[str]
    prices: list[Money] = strawberry.field(description="The tier's price in every currency it is sold in.")
    price: Money | None = strawberry.field(
        description="Price in the platform's default currency (XAF unless configured), or the first offered."
    )

    @classmethod
    def of(cls, tier: TierModel) -> "ServiceTier":
        prices = [Money.of(p.amount_minor, p.currency) for p in tier.prices]
        default = get_settings().default_currency
        price = next((p for p in prices if p.currency == default), prices[0] if prices else None)
        return cls(id=tier.id, name=tier.name, features=list(tier.features), prices=prices, price=price)

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False):
        tiers = await catalogue_resolvers.tier_nodes(info.context, [int(i) for i in node_ids])
        return [cls.of(t) if t else None for t in tiers]


@strawberry.type
class Service(relay.Node):
    id: relay.NodeID[int]
    slug: str
    name: str
    category: str
    description: str
    tiers: list[ServiceTier]

    @classmethod
    def of(cls, service: ServiceModel) -> "Service":
        return cls(
            id=service.id, slug=service.slug, name=service.name, category=service.category,
            description=service.description, tiers=[ServiceTier.of(t) for t in service.tiers],
        )

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False):
        services = await catalogue_resolvers.service_nodes(info.context, [int(i) for i in node_ids])
        return [cls.of(s) if s else None for s in services]

"""Root fields of the catalogue: ``services``."""

from __future__ import annotations

import strawberry

from resolvers import catalogue as catalogue_resolvers
from schema.catalogue.services import Service


@strawberry.type
class Query:
    @strawberry.field(description="The catalogue: active services with tiers, prices and features.")
    async def services(self, info: strawberry.Info, category: str | None = None) -> list[Service]:
        return [Service.of(s) for s in await catalogue_resolvers.services(info.context, category=category)]

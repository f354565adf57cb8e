"""Root Query."""

from __future__ import annotations

import strawberry
from strawberry import relay

from resolvers import catalogue as catalogue_resolvers
from resolvers import provider as provider_resolvers
from resolvers import service_request as sr_resolvers
from resolvers import user as user_resolvers
from schema.catalogue import Service
from schema.common import GeoPointInput, page_info
from schema.provider import NearbyProviderConnection, nearby_connection
from schema.service_request import (
    ServiceRequest,
    ServiceRequestConnection,
    ServiceRequestEdge,
    ServiceRequestFilter,
)
from schema.user import User


@strawberry.type
class Query:
    node: relay.Node | None = relay.node(description="Any object by its global id (null when absent or not yours).")

    @strawberry.field(description="Verified, available providers within `radiusKm` (0 < r <= 100) of `near`, "
                      "nearest first; `first` at most 100 (default 20).")
    async def providers_nearby(
        self, info: strawberry.Info, near: GeoPointInput, radius_km: float, category: str | None = None,
        first: int | None = 20, after: str | None = None,
    ) -> NearbyProviderConnection:
        hits, has_next = await provider_resolvers.providers_nearby(
            info.context, latitude=near.latitude, longitude=near.longitude, radius_km=radius_km,
            category=category, first=first, after=after,
        )
        return nearby_connection(hits, has_next, after is not None)

    @strawberry.field(description="The catalogue: active services with tiers, prices and features.")
    async def services(self, info: strawberry.Info, category: str | None = None) -> list[Service]:
        return [Service.of(s) for s in await catalogue_resolvers.services(info.context, category=category)]

    @strawberry.field(description="Track a request by reference. Personal data only for its owner, provider, "
                      "admins, or with the signed `accessToken` a guest received.")
    async def service_request(
        self, info: strawberry.Info, reference: str, access_token: str | None = None
    ) -> ServiceRequest | None:
        view = await sr_resolvers.service_request(
            info.context, reference=sr_resolvers.require_reference(reference), access_token=access_token
        )
        return ServiceRequest.of(view) if view else None

    @strawberry.field(description="Newest first. Admins: all requests; customers: their own; providers: assigned to them.")
    async def service_requests(
        self, info: strawberry.Info, filter: ServiceRequestFilter | None = None, first: int | None = 20,
        after: str | None = None,
    ) -> ServiceRequestConnection:
        f = filter or ServiceRequestFilter()
        page = await sr_resolvers.service_requests(
            info.context, service_id=f.service_id, status=f.status.value if f.status else None,
            created_from=f.created_from, created_to=f.created_to, assigned_provider_id=f.assigned_provider_id,
            first=first, after=after,
        )
        edges = [ServiceRequestEdge(cursor=c, node=ServiceRequest.of(v)) for v, c in page.items]
        return ServiceRequestConnection(
            edges=edges,
            page_info=page_info(edges, has_next=page.has_next_page, has_previous=after is not None),
            total_count=page.total_count,
        )

    @strawberry.field(description="The logged-in account, or null.")
    async def me(self, info: strawberry.Info) -> User | None:
        user = await user_resolvers.me(info.context)
        return User.of(user) if user else None

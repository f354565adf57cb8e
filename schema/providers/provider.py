"""Providers and geosearch in GraphQL: the Provider node, nearby hits, and the inputs, payloads and
ProviderError codes of verifyProvider and setAvailability (root fields: schema/providers/root.py)."""

from __future__ import annotations

from collections.abc import Iterable

import strawberry
from strawberry import relay

from domain.providers.errors import ProvidersErrorCode
from domain.providers.provider import NearbyProvider as NearbyHit
from domain.providers.provider import ProviderView, encode_cursor
from domain.shared.errors import CommonErrorCode
from resolvers.providers import provider as provider_resolvers
from schema.reviews.review import RatingSummary, ReviewConnection, provider_rating_summary, provider_reviews
from schema.shared.common import GeoPoint, GeoPointInput, coded_errors, error_code_enum, page_info


@strawberry.type
class Provider(relay.Node):
    id: relay.NodeID[int]
    display_name: str
    categories: list[str]
    rating: float = strawberry.field(description="Average review rating, 0-5 (0 when not yet reviewed).")
    review_count: int
    city: str | None
    location: GeoPoint
    verified: bool
    available: bool

    @strawberry.field(description="Published customer reviews (blind reviews appear once published), newest first; "
                      "`first` at most 100.")
    async def reviews(self, info: strawberry.Info, first: int | None = 20, after: str | None = None) -> ReviewConnection:
        return await provider_reviews(info, self.id, first, after)

    @strawberry.field(description="Average, count and 1-5 star distribution of the published customer reviews.")
    async def rating_summary(self, info: strawberry.Info) -> RatingSummary:
        return await provider_rating_summary(info, self.id)

    @classmethod
    def of(cls, view: ProviderView) -> "Provider":
        return cls(
            id=view.id, display_name=view.display_name, categories=view.categories, rating=view.rating,
            review_count=view.review_count, city=view.city,
            location=GeoPoint(latitude=view.latitude, longitude=view.longitude),
            verified=view.verified, available=view.available,
        )

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False):
        out = []
        for ident in node_ids:
            view = await provider_resolvers.provider_view(info.context, int(ident))
            out.append(cls.of(view) if view else None)
        return out


@strawberry.type(description="A geosearch hit: the provider and its distance from the search point.")
class NearbyProvider:
    distance_meters: float = strawberry.field(description="Geodesic (WGS84 spheroid) distance in metres.")
    provider: Provider


@strawberry.type
class NearbyProviderEdge:
    cursor: str
    node: NearbyProvider


@strawberry.type
class NearbyProviderConnection:
    edges: list[NearbyProviderEdge]
    page_info: relay.PageInfo


def nearby_connection(hits: list[NearbyHit], has_next: bool, had_cursor: bool) -> NearbyProviderConnection:
    edges = [
        NearbyProviderEdge(
            cursor=encode_cursor(h.knn, h.id),
            node=NearbyProvider(
                distance_meters=h.distance_m,
                provider=Provider(
                    id=h.id, display_name=h.display_name, categories=h.categories, rating=h.rating,
                    review_count=h.review_count, city=h.city,
                    location=GeoPoint(latitude=h.latitude, longitude=h.longitude), verified=True, available=True,
                ),
            ),
        )
        for h in hits
    ]
    return NearbyProviderConnection(
        edges=edges,
        page_info=page_info(edges, has_next=has_next, has_previous=had_cursor),
    )


ProviderErrorCode = error_code_enum("ProviderErrorCode", [
    CommonErrorCode.NOT_FOUND, CommonErrorCode.INVALID_ID, ProvidersErrorCode.INVALID_LOCATION,
    ProvidersErrorCode.NOT_A_PROVIDER, CommonErrorCode.INVALID,
])


@strawberry.type
class ProviderError:
    field: str | None
    code: ProviderErrorCode
    message: str


def provider_errors(errors) -> list[ProviderError]:
    return coded_errors(ProviderErrorCode, ProviderError, errors)


@strawberry.input
class VerifyProviderInput:
    provider_id: strawberry.ID


@strawberry.type
class VerifyProviderPayload:
    provider: Provider | None
    errors: list[ProviderError]


@strawberry.input
class SetAvailabilityInput:
    available: bool
    location: GeoPointInput | None = None


@strawberry.type
class SetAvailabilityPayload:
    provider: Provider | None
    errors: list[ProviderError]

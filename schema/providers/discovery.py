"""Ranked and cached discovery in GraphQL: the types of ``searchProviders`` and ``setAcceptsUrgent``
(root fields: schema/providers/root.py)."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry import relay

from domain.providers import discovery
from domain.providers.errors import ProvidersErrorCode
from domain.shared.errors import CommonErrorCode
from schema.providers.provider import Provider
from schema.shared.common import GeoPointInput, coded_errors, error_code_enum, page_info


@strawberry.input(description="A ranked provider search. Prices are minor units of `currency` (required with a "
                  "price bound); `availableFrom`/`availableTo` (both or neither, at most booking_max_window_days "
                  "apart) keep providers with a free slot starting in that window.")
class SearchProvidersInput:
    near: GeoPointInput
    radius_km: float = strawberry.field(description="Search radius in km, 0 < r <= 100.")
    category: str | None = None
    min_price_minor: int | None = None
    max_price_minor: int | None = None
    currency: str | None = strawberry.field(default=None, description="ISO 4217 code of the price bounds.")
    min_rating: float | None = strawberry.field(default=None, description="Minimum average rating, 0-5.")
    available_from: datetime | None = None
    available_to: datetime | None = None
    urgent: bool = strawberry.field(default=False, description="Only providers that take urgent jobs.")
    first: int | None = strawberry.field(default=20, description="At most 100.")
    after: str | None = None


@strawberry.type(description="One ranking term: its normalised `value` (0-1, 1 best), the configured `weight` "
                 "and `contribution` = weight x value to the score.")
class ScoreTerm:
    value: float
    weight: float
    contribution: float


@strawberry.type(description="Why a provider ranks where it does: score = sum of the terms' contributions.")
class ScoreTerms:
    distance: ScoreTerm = strawberry.field(description="1 - distance / search radius.")
    rating: ScoreTerm = strawberry.field(description="Bayesian average rating / 5.")
    completed_jobs: ScoreTerm = strawberry.field(description="Completed jobs, log-scaled.")
    response_time: ScoreTerm = strawberry.field(description="1 / (1 + median response / reference).")
    cancellation: ScoreTerm = strawberry.field(description="1 - provider-caused cancellation rate.")
    bayesian_rating: float = strawberry.field(description="Average rating pulled toward the prior, in stars.")
    completed_jobs_count: int
    cancelled_jobs_count: int
    median_response_seconds: int | None = strawberry.field(
        description="Median seconds from an offer to the provider's acceptance; null: never answered one.")
    cancellation_rate: float


@strawberry.type(description="A ranked search hit.")
class RankedProvider:
    provider: Provider
    distance_km: float = strawberry.field(description="Geodesic distance from the search point, km.")
    score: float = strawberry.field(description="Weighted sum of the terms (0-1 with the default weights).")
    terms: ScoreTerms
    accepts_urgent: bool
    first_free_slot_start: datetime | None = strawberry.field(
        description="With an availability window: the earliest free slot's start in it.")
    first_free_slot_end: datetime | None


@strawberry.type
class RankedProviderEdge:
    cursor: str
    node: RankedProvider


@strawberry.type
class RankedProviderConnection:
    edges: list[RankedProviderEdge]
    page_info: relay.PageInfo
    candidate_count: int = strawberry.field(
        description="Providers ranked for this search (the nearest ones passing the filters, at most "
                    "discovery_candidates), before the availability window.")


def _terms(t: discovery.ScoreTerms, w: discovery.Weights) -> ScoreTerms:
    def term(value: float, weight: float) -> ScoreTerm:
        return ScoreTerm(value=value, weight=weight, contribution=value * weight)

    return ScoreTerms(
        distance=term(t.distance, w.distance), rating=term(t.rating, w.rating), completed_jobs=term(t.jobs, w.jobs),
        response_time=term(t.response, w.response), cancellation=term(t.cancellation, w.cancellation),
        bayesian_rating=t.bayesian_rating, completed_jobs_count=t.completed_jobs,
        cancelled_jobs_count=t.cancelled_jobs, median_response_seconds=t.median_response_seconds,
        cancellation_rate=t.cancellation_rate,
    )


def ranked_connection(page: discovery.SearchPage, had_cursor: bool) -> RankedProviderConnection:
    weights = discovery.Weights.from_settings()
    edges = [
        RankedProviderEdge(
            cursor=discovery.encode_rank_cursor(h.position),
            node=RankedProvider(
                provider=Provider.of(h.provider), distance_km=h.distance_m / 1000.0, score=h.score,
                terms=_terms(h.terms, weights), accepts_urgent=h.accepts_urgent,
                first_free_slot_start=h.first_slot.start if h.first_slot else None,
                first_free_slot_end=h.first_slot.end if h.first_slot else None,
            ),
        )
        for h in page.hits
    ]
    return RankedProviderConnection(
        edges=edges, page_info=page_info(edges, has_next=page.has_next, has_previous=had_cursor),
        candidate_count=page.candidates,
    )


SetAcceptsUrgentErrorCode = error_code_enum("SetAcceptsUrgentErrorCode", [
    ProvidersErrorCode.NOT_A_PROVIDER, CommonErrorCode.INVALID,
])


@strawberry.type
class SetAcceptsUrgentError:
    field: str | None
    code: SetAcceptsUrgentErrorCode
    message: str


@strawberry.input
class SetAcceptsUrgentInput:
    accepts_urgent: bool


@strawberry.type
class SetAcceptsUrgentPayload:
    accepts_urgent: bool | None
    errors: list[SetAcceptsUrgentError]


def accepts_urgent_errors(errors) -> list[SetAcceptsUrgentError]:
    return coded_errors(SetAcceptsUrgentErrorCode, SetAcceptsUrgentError, errors)

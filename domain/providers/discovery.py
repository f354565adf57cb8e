"""Discovery: ranked provider search with filters, a Redis cache invalidated by H3 cell versions, and
the provider statistics the ranking reads ("Discovery that ranks and scales").

Ranking
-------
Candidates are the nearest ``discovery_candidates`` (300) live providers (``verified AND available
AND NOT suspended``) within the search radius that pass the SQL filters (category, rating, urgent,
price), taken nearest-first by KNN on the partial GiST index ``ix_providers_location_live``
(docs/pitfalls.md, PostGIS: "take the nearest few hundred by ``<->``, then re-rank those"). Each
candidate gets five terms, each normalised to 0..1 (1 = best):

- ``distance``     = 1 - d / r, d the distance from the search point, r the search radius;
- ``rating``       = bayes / 5 with bayes = (C*m + rating*n) / (C + n): n reviews of average
                     ``rating``, prior mean m (``discovery_rating_prior_mean``, 4.0 stars) weighing
                     like C reviews (``discovery_rating_prior_weight``, 10). One 5.0 review scores
                     4.09, 200 reviews of 4.8 score 4.76 (Bayesian average; IMDb's top-250 formula);
- ``jobs``         = min(1, ln(1 + completed) / ln(1 + S)), S = ``discovery_jobs_saturation`` (500);
- ``response``     = 1 / (1 + median / R), median = median seconds from an offer to the provider's
                     acceptance, R = ``discovery_response_reference_seconds`` (3600: an hour scores
                     0.5); a provider who never answered an offer gets 0.5 (as if median = R);
- ``cancellation`` = 1 - cancelled / (completed + cancelled) (provider-caused cancellations among
                     the provider's finished jobs); 1 without any job.

``score = sum(weight_i * term_i)`` with the ``discovery_weight_*`` settings (0.40 distance, 0.30
rating, 0.10 each for jobs, response and cancellation: a score in 0..1). Ties: nearer first, then
lower id. Example (the defaults, radius 10 km, no jobs yet): a 3.0-star provider with 50 reviews
1 km away scores 0.36 + 0.19 + 0 + 0.05 + 0.10 = 0.70 and beats a 4.9-star one with 50 reviews
6 km away (0.16 + 0.285 + 0 + 0.05 + 0.10 = 0.595), but not one 3 km away (0.675 + ...: 0.715).

The search point is snapped to the centre of its H3 cell at ``discovery_cell_resolution`` (8: cells
about 0.5 km across) before ranking and filtering by radius, so that every search from the same cell
with the same filters has the same answer, which is what the cache keys on. ``distanceKm`` shown to
the client is still measured from the exact point.

Filters: ``category``; price (``min/maxPriceMinor`` in minor units of ``currency``: the provider
offers, through an active ``provider_services`` row of an active service of ``category`` when given,
a catalogue tier priced within the range in that currency); ``minRating`` (the plain average shown
to customers, ``providers.rating``); ``urgent`` (``providers.accepts_urgent``); and an availability
window (at least one free slot starting in ``[from, to)``, domain/providers/availability.py
``first_free_slots``). The window is checked only after ranking, for the best candidates from the
page's offset on, in batches, until the page (plus one, to know whether another page exists) is
filled: a bounded cost of three statements per batch.

Pagination: a cursor is the offset in the ranked candidate list (bounded by 300, so an offset is
cheap and stable while the cache entry lives; a page read after the ranking changed may repeat or
skip a provider).

Cache
-----
A page is cached in Redis for ``discovery_cache_ttl_seconds`` (90) under
``odim:disc:page:{cell}:{filters hash}:{offset}:{first}:{versions hash}``: ``cell`` is the search
point's H3 cell, the filters hash covers the normalised filters, the radius and the ranking
settings, and the versions hash covers the version counters (``odim:disc:v:{coarse cell}``) of every
coarse H3 cell (``discovery_invalidation_resolution``, 4) the search disk overlaps, read with one
MGET. ``invalidate_provider`` increments the counters of the coarse cells of a provider's service
area (its point and radius, or the disk around its polygon, always including the cell of its
location, plus the cells it was last invalidated with, in case it moved), so any later search whose
disk could contain it misses the cache. On a hit, the cached providers are re-read by primary key
with every filter of the search and the liveness predicate (``verified AND available AND NOT
suspended``) in ONE statement; if any of them no longer passes (a race with an invalidation, a
change nobody invalidated), the entry is ignored and the search computed afresh (counted as
``result="stale"``). So a suspended provider never appears from the cache. Not invalidated (bounded by the TTL): a slot booked by
someone else (the availability window filter; the booking itself stays the judge), new ratings and
statistics (the scores).

Metrics: ``odim_discovery_cache_total{result}`` with ``hit``, ``miss``, ``stale`` and ``error``.
Redis unreachable: searches are computed uncached (``odim_discovery_cache_total{result="error"}``)
and invalidations are logged and skipped (the TTL and the hit re-check bound the damage).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

import h3
import structlog
from prometheus_client import Counter
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.providers import availability
from domain.providers.errors import ProvidersErrorCode
from domain.providers.provider import MAX_RADIUS_M, GeoPoint, InvalidRadius, NotAProvider, ProviderView
from domain.shared import redis_client
from domain.shared.errors import CommonErrorCode, DomainError
from models.db import session_scope
from settings import get_settings

log = structlog.get_logger(__name__)

CACHE = Counter(
    "odim_discovery_cache_total",
    "Ranked provider searches (searchProviders) by cache result: hit, miss, stale (a cached page failed its "
    "re-check and was recomputed) or error (Redis unreachable: computed uncached)",
    ["result"],
)
for _result in ("hit", "miss", "stale", "error"):
    CACHE.labels(_result)

EARTH_RADIUS_M = 6371008.8
_CIRCLE_VERTICES = 24
_VERSION_TTL_SECONDS = 86400  # a version counter untouched for a day may reset: no cached page lives that long
_PROVIDER_CELLS_TTL_SECONDS = 7 * 86400
_MAX_MINOR = 2**63 - 1


# --- errors ---------------------------------------------------------------------------------------


class InvalidFilter(DomainError):
    """A search filter out of range or inconsistent (the field says which)."""

    code = ProvidersErrorCode.INVALID_FILTER
    field = None


class InvalidRankCursor(DomainError):
    code = CommonErrorCode.INVALID_CURSOR
    field = "after"


# --- values ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Weights:
    """The ranking weights (unitless, ``discovery_weight_*`` settings)."""

    distance: float
    rating: float
    jobs: float
    response: float
    cancellation: float

    @classmethod
    def from_settings(cls) -> Weights:
        s = get_settings()
        return cls(s.discovery_weight_distance, s.discovery_weight_rating, s.discovery_weight_jobs,
                   s.discovery_weight_response, s.discovery_weight_cancellation)


@dataclass(frozen=True)
class SearchFilters:
    """Normalised search filters: ``category`` or None; price bounds in minor units of ``currency``
    (ISO 4217, required with a bound); ``min_rating`` 0..5 stars; ``available_from``/``available_to``
    (aware datetimes, both or neither); ``urgent`` (only providers that take urgent jobs)."""

    category: str | None = None
    min_price_minor: int | None = None
    max_price_minor: int | None = None
    currency: str | None = None
    min_rating: float | None = None
    available_from: datetime | None = None
    available_to: datetime | None = None
    urgent: bool = False

    def validated(self) -> SearchFilters:
        """A copy with ``category``/``currency`` normalised. Raises ``InvalidFilter`` (price bound
        negative, min > max, bound without a 3-letter currency, rating outside 0..5, window with one
        end) or ``availability.InvalidWindow`` (naive, reversed, or wider than
        ``booking_max_window_days``)."""
        category = (self.category or "").strip() or None
        currency = (self.currency or "").strip().upper() or None
        for name, value in (("minPriceMinor", self.min_price_minor), ("maxPriceMinor", self.max_price_minor)):
            if value is not None and not 0 <= value <= _MAX_MINOR:
                raise InvalidFilter("A price bound is a non-negative amount in minor units", field=name)
        if self.min_price_minor is not None and self.max_price_minor is not None \
                and self.min_price_minor > self.max_price_minor:
            raise InvalidFilter("minPriceMinor must not exceed maxPriceMinor", field="maxPriceMinor")
        has_price = self.min_price_minor is not None or self.max_price_minor is not None
        if has_price and (currency is None or len(currency) != 3 or not currency.isalpha() or not currency.isascii()):
            raise InvalidFilter("A price range needs the ISO 4217 currency of its amounts", field="currency")
        if not has_price:
            currency = None
        if self.min_rating is not None and not (math.isfinite(self.min_rating) and 0 <= self.min_rating <= 5):
            raise InvalidFilter("minRating must be between 0 and 5", field="minRating")
        if (self.available_from is None) != (self.available_to is None):
            field = "availableTo" if self.available_to is None else "availableFrom"
            raise InvalidFilter("Give both availableFrom and availableTo, or neither", field=field)
        if self.available_from is not None and self.available_to is not None:
            try:
                availability._check_window(self.available_from, self.available_to)
            except availability.InvalidWindow as exc:
                raise InvalidFilter(exc.message, field="availableFrom" if exc.field == "from" else "availableTo") \
                    from exc
        return SearchFilters(category, self.min_price_minor, self.max_price_minor, currency, self.min_rating,
                             self.available_from, self.available_to, bool(self.urgent))

    def key(self) -> dict:
        """The filters as JSON-able values (UTC ISO instants) for the cache key."""
        return {
            "category": self.category, "min": self.min_price_minor, "max": self.max_price_minor,
            "currency": self.currency, "rating": self.min_rating, "urgent": self.urgent,
            "from": self.available_from.astimezone(UTC).isoformat() if self.available_from else None,
            "to": self.available_to.astimezone(UTC).isoformat() if self.available_to else None,
        }


@dataclass(frozen=True)
class ScoreTerms:
    """The normalised terms (0..1, 1 = best) of a score and the figures they come from:
    ``bayesian_rating`` in stars, ``completed_jobs`` and ``cancelled_jobs`` counts,
    ``median_response_seconds`` (None: never answered an offer), ``cancellation_rate`` 0..1."""

    distance: float
    rating: float
    jobs: float
    response: float
    cancellation: float
    bayesian_rating: float
    completed_jobs: int
    cancelled_jobs: int
    median_response_seconds: int | None
    cancellation_rate: float

    def as_list(self) -> list:
        return [self.distance, self.rating, self.jobs, self.response, self.cancellation, self.bayesian_rating,
                self.completed_jobs, self.cancelled_jobs, self.median_response_seconds, self.cancellation_rate]

    @classmethod
    def of_list(cls, values: list) -> ScoreTerms:
        return cls(*values)


@dataclass(frozen=True)
class RankedHit:
    """One ranked search hit: ``position`` (0-based) in the ranked candidate list, the provider,
    ``distance_m`` from the exact search point (metres, spheroid), ``score`` (weighted sum of the
    terms) and, with an availability window, the earliest free slot ``first_slot`` in it."""

    position: int
    provider: ProviderView
    accepts_urgent: bool
    distance_m: float
    score: float
    terms: ScoreTerms
    first_slot: availability.Slot | None


@dataclass(frozen=True)
class SearchPage:
    """A page of ranked hits; ``has_next``: more hits exist after it; ``candidates``: how many
    providers were ranked (at most ``discovery_candidates``); ``cache``: "hit", "miss", "stale" (a
    cached page failed its re-check and was recomputed) or "error" (Redis unreachable)."""

    hits: list[RankedHit]
    has_next: bool
    candidates: int
    cache: str


# --- ranking (pure) --------------------------------------------------------------------------------


def bayesian_rating(rating: float, review_count: int, *, prior_mean: float, prior_weight: float) -> float:
    """``(C*m + rating*n) / (C + n)`` in stars; the prior mean alone without reviews (or without
    weight and reviews: 0)."""
    if prior_weight + review_count <= 0:
        return 0.0
    return (prior_weight * prior_mean + rating * review_count) / (prior_weight + review_count)


def score_terms(
    *, distance_m: float, radius_m: float, rating: float, review_count: int, completed_jobs: int,
    cancelled_jobs: int, median_response_seconds: int | None,
) -> ScoreTerms:
    """The normalised terms of one candidate under the current settings (module docstring)."""
    s = get_settings()
    bayes = bayesian_rating(rating, review_count, prior_mean=s.discovery_rating_prior_mean,
                            prior_weight=s.discovery_rating_prior_weight)
    saturation = max(1, s.discovery_jobs_saturation)
    jobs = min(1.0, math.log1p(max(0, completed_jobs)) / math.log1p(saturation))
    reference = max(1, s.discovery_response_reference_seconds)
    response = 0.5 if median_response_seconds is None else 1.0 / (1.0 + max(0, median_response_seconds) / reference)
    finished = completed_jobs + cancelled_jobs
    rate = cancelled_jobs / finished if finished > 0 else 0.0
    return ScoreTerms(
        distance=min(1.0, max(0.0, 1.0 - distance_m / radius_m)), rating=min(1.0, max(0.0, bayes / 5.0)),
        jobs=jobs, response=response, cancellation=1.0 - rate, bayesian_rating=bayes,
        completed_jobs=completed_jobs, cancelled_jobs=cancelled_jobs,
        median_response_seconds=median_response_seconds, cancellation_rate=rate,
    )


def score(terms: ScoreTerms, weights: Weights) -> float:
    """``sum(weight_i * term_i)`` over distance, rating, jobs, response and cancellation."""
    return (weights.distance * terms.distance + weights.rating * terms.rating + weights.jobs * terms.jobs
            + weights.response * terms.response + weights.cancellation * terms.cancellation)


# --- H3 cells --------------------------------------------------------------------------------------


def _destination(lat: float, lon: float, distance_m: float, bearing: float) -> tuple[float, float]:
    d = distance_m / EARTH_RADIUS_M
    p1, l1 = math.radians(lat), math.radians(lon)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(bearing))
    l2 = l1 + math.atan2(math.sin(bearing) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2))
    return math.degrees(p2), (math.degrees(l2) + 540.0) % 360.0 - 180.0


def _circumradius_m(cell: str) -> float:
    """The largest distance (metres) from ``cell``'s centre to one of its vertices."""
    centre = h3.cell_to_latlng(cell)
    return max(h3.great_circle_distance(centre, v, unit="m") for v in h3.cell_to_boundary(cell))


@lru_cache(maxsize=8192)
def disk_cells(latitude: float, longitude: float, radius_m: float, resolution: int) -> frozenset[str]:
    """H3 cells at ``resolution`` that may overlap the disk of ``radius_m`` metres around the point:
    the cells whose centre lies in a polygon circumscribing the disk grown by 1.5 cell circumradii
    (a cell overlapping the disk has its centre within radius + circumradius), plus the point's own
    cell. A superset: more cells only cost needless invalidations. Polygons are not split at the
    antimeridian (no market there)."""
    own = h3.latlng_to_cell(latitude, longitude, resolution)
    reach = (radius_m + 1.5 * _circumradius_m(own)) / math.cos(math.pi / _CIRCLE_VERTICES)
    ring = [_destination(latitude, longitude, reach, 2 * math.pi * i / _CIRCLE_VERTICES)
            for i in range(_CIRCLE_VERTICES)]
    cells = set(h3.h3shape_to_cells(h3.LatLngPoly(ring), resolution))
    cells.add(own)
    return frozenset(cells)


def search_cell(point: GeoPoint) -> tuple[str, GeoPoint]:
    """The H3 cell (``discovery_cell_resolution``) of ``point`` and its centre, where searches from
    that cell are ranked from."""
    cell = h3.latlng_to_cell(point.latitude, point.longitude, get_settings().discovery_cell_resolution)
    lat, lon = h3.cell_to_latlng(cell)
    return cell, GeoPoint(lat, lon)


def _haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def provider_cells(
    latitude: float, longitude: float, service_radius_km: float | None, polygon: list[tuple[float, float]] | None
) -> frozenset[str]:
    """The coarse cells (``discovery_invalidation_resolution``) of a provider's service area: the
    disk of ``service_radius_km`` around its location, or the disk around its location that holds
    every vertex of ``polygon`` ((lat, lon) pairs), or just around the location (radius 0) when
    neither is known. Always holds the cell of the location, which is what a search disk overlaps
    when the provider can be found by it."""
    radius_m = 0.0
    if polygon:
        radius_m = max(_haversine_m(latitude, longitude, lat, lon) for lat, lon in polygon)
    elif service_radius_km:
        radius_m = float(service_radius_km) * 1000.0
    return disk_cells(round(latitude, 7), round(longitude, 7), round(radius_m, 1),
                      get_settings().discovery_invalidation_resolution)


# --- cache ----------------------------------------------------------------------------------------


def _version_key(cell: str) -> str:
    return f"odim:disc:v:{cell}"


def _provider_cells_key(provider_id: int) -> str:
    return f"odim:disc:pcells:{provider_id}"


def _digest(value: object, size: int = 24) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:size]


def _ranking_settings() -> list:
    s = get_settings()
    return [list(Weights.from_settings().__dict__.values()), s.discovery_rating_prior_mean,
            s.discovery_rating_prior_weight, s.discovery_jobs_saturation, s.discovery_response_reference_seconds,
            s.discovery_candidates]


async def invalidate_provider(provider_id: int) -> None:
    """Make every cached search that could contain provider ``provider_id`` miss: INCR the version
    of each coarse H3 cell of its service area (``provider_cells``) and of the cells it was last
    invalidated with (it may have moved). Call it AFTER the transaction that changed the provider's
    availability, location, service area, verification, suspension, urgent flag or availability
    plan commits. One statement (the provider's location and area) and two Redis round trips.
    Unknown provider: nothing. Redis unreachable: logged, returns (never raises for Redis)."""
    async with session_scope() as session:
        row = (await session.execute(text(
            "SELECT ST_Y(location::geometry) AS lat, ST_X(location::geometry) AS lon, service_radius_km,"
            " ST_AsGeoJSON(service_area) AS area FROM providers WHERE id = :id"
        ), {"id": provider_id})).mappings().one_or_none()
    if row is None:
        return
    polygon = None
    if row["area"]:
        ring = json.loads(row["area"])["coordinates"][0]
        polygon = [(lat, lon) for lon, lat in ring]
    cells = provider_cells(row["lat"], row["lon"], row["service_radius_km"], polygon)
    client = redis_client.redis_client()
    try:
        previous = {c.decode() if isinstance(c, bytes) else c
                    for c in await client.smembers(_provider_cells_key(provider_id))}
        async with client.pipeline(transaction=False) as pipe:
            for cell in sorted(cells | previous):
                pipe.incr(_version_key(cell))
                pipe.expire(_version_key(cell), _VERSION_TTL_SECONDS)
            pipe.delete(_provider_cells_key(provider_id))
            pipe.sadd(_provider_cells_key(provider_id), *sorted(cells))
            pipe.expire(_provider_cells_key(provider_id), _PROVIDER_CELLS_TTL_SECONDS)
            await pipe.execute()
    except (RedisError, OSError) as exc:
        log.warning("discovery.invalidate_failed", provider_id=provider_id, error=str(exc))


# --- SQL ------------------------------------------------------------------------------------------

_COLUMNS = """p.id, p.display_name, p.categories, p.rating, p.review_count, p.city, p.country_code, p.time_zone,
       ST_Y(p.location::geometry) AS latitude, ST_X(p.location::geometry) AS longitude,
       p.verified, p.available, p.suspended, p.user_id, p.accepts_urgent,
       p.completed_jobs, p.cancelled_jobs, p.median_response_seconds,
       ST_Distance(p.location, $1::geography) AS rank_m, ST_Distance(p.location, $10::geography) AS shown_m"""


def _filters(radius_test: str) -> str:
    """The WHERE of a search: liveness, ``radius_test`` (each statement below tests $2 metres around
    $1 its own way, and says why) and the filters. $1 ranking point (EWKT), $2 radius m, $3 category,
    $4 min rating, $5 urgent, $6 currency or NULL (no price filter), $7/$8 price bounds (minor units),
    $9 limit, $10 the exact search point."""
    return f"""p.verified AND p.available AND NOT p.suspended
  AND {radius_test}
  AND ($3::text IS NULL OR $3::text = ANY (p.categories))
  AND ($4::float8 IS NULL OR p.rating >= $4::float8)
  AND (NOT $5::bool OR p.accepts_urgent)
  AND ($6::text IS NULL OR EXISTS (
        SELECT 1 FROM provider_services ps
        JOIN services s ON s.id = ps.service_id
        JOIN service_tiers t ON t.service_id = s.id
        JOIN tier_prices tp ON tp.tier_id = t.id
        WHERE ps.provider_id = p.id AND ps.active AND s.active
          AND ($3::text IS NULL OR s.category = $3::text)
          AND tp.currency = $6::text AND tp.amount_minor >= $7::bigint AND tp.amount_minor <= $8::bigint))"""
# KNN in the form the partial GiST index serves: the index's box test on the raw column, ORDER BY
# ``<->`` alone, then the exact radius on the nearest $9. With ST_DWithin inside (as in
# providers_nearby) the planner's custom plans (the first five executions of a prepared statement
# per connection, and every execution without a statement cache) misjudge its selectivity (75 rows
# expected, 20,808 found, 1M providers) and bitmap-scan the whole search box, then sort it: 98 ms
# instead of 2 ms at 5 km. ``_ST_Expand`` is the box ST_DWithin itself puts in front of the index,
# so no provider inside the radius is outside it; and as ``<->`` returns the nearest first, those
# inside the radius come before any outside it, so filtering after the LIMIT keeps the same set.
# (``<->`` is the sphere's distance and ``rank_m`` the spheroid's, the measure of ST_DWithin; they
# differ by under 0.5 %, so only when the cap is reached can a provider within that margin of the
# radius's edge be left out.)
CANDIDATES_SQL = f"""
SELECT * FROM (
  SELECT {_COLUMNS} FROM providers p
  WHERE {_filters("p.location && _ST_Expand($1::geography, $2::float8)")}
  ORDER BY p.location <-> $1::geography
  LIMIT $9
) nearest
WHERE nearest.rank_m <= $2::float8
"""
# A cache hit's re-check: the cached ids ($11) that still pass every filter, in one statement, by
# primary key. The radius test is ST_Distance here, not ST_DWithin: ST_DWithin would let the planner
# AND in a bitmap scan of the whole search box on the GiST index (measured: the warm path then grew
# with the radius, 14.6 ms p50 at 20 km vs 5.5 ms at 5 km); both measure on the spheroid.
RECHECK_SQL = f"""
SELECT {_COLUMNS} FROM providers p
WHERE p.id = ANY ($11::bigint[])
  AND {_filters("ST_Distance(p.location, $1::geography) <= $2::float8")}
LIMIT $9
"""


def _params(centre: GeoPoint, radius_m: float, f: SearchFilters, limit: int, point: GeoPoint) -> tuple:
    priced = f.currency is not None
    return (centre.ewkt(), float(radius_m), f.category, f.min_rating, f.urgent, f.currency if priced else None,
            f.min_price_minor or 0, f.max_price_minor if f.max_price_minor is not None else _MAX_MINOR,
            limit, point.ewkt())


def _view(r) -> ProviderView:
    return ProviderView(
        id=r["id"], display_name=r["display_name"], categories=list(r["categories"]), rating=float(r["rating"]),
        review_count=r["review_count"], city=r["city"], country_code=r["country_code"], time_zone=r["time_zone"],
        latitude=r["latitude"], longitude=r["longitude"], verified=r["verified"], available=r["available"],
        suspended=r["suspended"], user_id=r["user_id"],
    )


# --- cursors --------------------------------------------------------------------------------------


def encode_rank_cursor(position: int) -> str:
    """The cursor AFTER the hit at ``position`` (0-based) of the ranked list."""
    return base64.urlsafe_b64encode(f"rank:{position + 1}".encode()).decode()


def decode_rank_cursor(cursor: str | None) -> int:
    """The offset in the ranked list a cursor points at (0 without one). Raises ``InvalidRankCursor``."""
    if not cursor:
        return 0
    try:
        kind, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        offset = int(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRankCursor("Malformed cursor") from exc
    if kind != "rank" or not 0 < offset <= max(1, get_settings().discovery_candidates):
        raise InvalidRankCursor("Malformed cursor")
    return offset


# --- search ---------------------------------------------------------------------------------------


async def search_providers(
    session: AsyncSession,
    point: GeoPoint,
    radius_m: float,
    filters: SearchFilters,
    *,
    first: int = 20,
    after: str | None = None,
    now: datetime | None = None,
) -> SearchPage:
    """Ranked providers within ``radius_m`` metres of ``point`` passing ``filters``: the page of
    ``first`` hits after the cursor ``after`` (module docstring: ranking, filters, cache).
    Statements: on a cache hit one (the re-check, which also loads the providers); on a miss one for
    the candidates plus three per availability batch when a window is given.
    Raises ``InvalidRadius`` (not in (0, 100 km]), ``InvalidFilter``, ``InvalidRankCursor``."""
    if not (0 < radius_m <= MAX_RADIUS_M) or not math.isfinite(radius_m):
        raise InvalidRadius("radiusKm must be greater than 0 and at most 100")
    filters = filters.validated()
    offset = decode_rank_cursor(after)
    settings = get_settings()
    cell, centre = search_cell(point)
    ttl = settings.discovery_cache_ttl_seconds
    key: str | None = None
    result = "miss"
    if ttl > 0:
        try:
            key, cached = await _cache_get(cell, centre, radius_m, filters, offset, first)
        except (RedisError, OSError) as exc:
            log.warning("discovery.cache_unavailable", error=str(exc))
            key, cached, result = None, None, "error"
        if cached is not None:
            page = await _from_cache(session, cached, centre, radius_m, filters, point)
            if page is not None:
                CACHE.labels("hit").inc()
                return page
            result = "stale"
    CACHE.labels(result).inc()
    page = await _compute(session, centre, radius_m, filters, offset, first, point, now, result)
    if key is not None:
        try:
            await redis_client.redis_client().set(key, json.dumps(_to_cache(page)), ex=ttl)
        except (RedisError, OSError) as exc:
            log.warning("discovery.cache_store_failed", error=str(exc))
    return page


async def _cache_get(
    cell: str, centre: GeoPoint, radius_m: float, filters: SearchFilters, offset: int, first: int
) -> tuple[str, dict | None]:
    coarse = sorted(disk_cells(centre.latitude, centre.longitude, round(radius_m, 1),
                               get_settings().discovery_invalidation_resolution))
    client = redis_client.redis_client()
    versions = await client.mget([_version_key(c) for c in coarse])
    pairs = zip(coarse, versions, strict=True)
    stamp = _digest([[c, (v.decode() if isinstance(v, bytes) else v) or "0"] for c, v in pairs], 16)
    query = _digest([filters.key(), repr(float(radius_m)), _ranking_settings()])
    key = f"odim:disc:page:{cell}:{query}:{offset}:{first}:{stamp}"
    raw = await client.get(key)
    return key, json.loads(raw) if raw else None


def _to_cache(page: SearchPage) -> dict:
    return {
        "hits": [[h.position, h.provider.id, h.score, h.terms.as_list(),
                  [h.first_slot.start.isoformat(), h.first_slot.end.isoformat()] if h.first_slot else None]
                 for h in page.hits],
        "has_next": page.has_next, "candidates": page.candidates,
    }


async def _from_cache(
    session: AsyncSession, cached: dict, centre: GeoPoint, radius_m: float, filters: SearchFilters, point: GeoPoint
) -> SearchPage | None:
    """The cached page re-checked against the database (one statement), or None when any of its
    providers no longer passes the liveness predicate or the filters (then the caller recomputes)."""
    ids = [entry[1] for entry in cached["hits"]]
    rows = {}
    if ids:
        conn = await session.connection()
        params = (*_params(centre, radius_m, filters, len(ids), point), ids)
        rows = {r["id"]: r for r in (await conn.exec_driver_sql(RECHECK_SQL, params)).mappings().all()}
    if len(rows) != len(ids):
        log.info("discovery.cache_stale", cached=len(ids), still_live=len(rows))
        return None
    hits = []
    for position, pid, value, terms, slot in cached["hits"]:
        r = rows[pid]
        first_slot = availability.Slot(datetime.fromisoformat(slot[0]), datetime.fromisoformat(slot[1])) if slot else None
        hits.append(RankedHit(position, _view(r), r["accepts_urgent"], r["shown_m"], value,
                              ScoreTerms.of_list(terms), first_slot))
    return SearchPage(hits, cached["has_next"], cached["candidates"], "hit")


async def _compute(
    session: AsyncSession, centre: GeoPoint, radius_m: float, filters: SearchFilters, offset: int, first: int,
    point: GeoPoint, now: datetime | None, result: str,
) -> SearchPage:
    conn = await session.connection()
    params = _params(centre, radius_m, filters, max(1, get_settings().discovery_candidates), point)
    rows = (await conn.exec_driver_sql(CANDIDATES_SQL, params)).mappings().all()
    weights = Weights.from_settings()
    ranked = []
    for r in rows:
        terms = score_terms(
            distance_m=r["rank_m"], radius_m=radius_m, rating=float(r["rating"]), review_count=r["review_count"],
            completed_jobs=r["completed_jobs"], cancelled_jobs=r["cancelled_jobs"],
            median_response_seconds=r["median_response_seconds"],
        )
        ranked.append((score(terms, weights), terms, r))
    ranked.sort(key=lambda item: (-item[0], item[2]["rank_m"], item[2]["id"]))
    if filters.available_from is None:
        window = ranked[offset:offset + first + 1]
        hits = [RankedHit(offset + i, _view(r), r["accepts_urgent"], r["shown_m"], value, terms, None)
                for i, (value, terms, r) in enumerate(window)]
    else:
        hits = await _available(session, ranked, offset, first, filters, now)
    return SearchPage(hits[:first], len(hits) > first, len(ranked), result)


async def _available(
    session: AsyncSession, ranked: list, offset: int, first: int, filters: SearchFilters, now: datetime | None
) -> list[RankedHit]:
    """Walk the ranked list from ``offset`` in growing batches, keeping the candidates with a free
    slot in the window, until ``first + 1`` are found or the list ends."""
    found: list[RankedHit] = []
    position, batch = offset, first + 1
    while position < len(ranked) and len(found) <= first:
        chunk = ranked[position:position + batch]
        slots = await availability.first_free_slots(
            session, [r["id"] for _, _, r in chunk], window_start=filters.available_from,
            window_end=filters.available_to, category=filters.category, now=now,
        )
        for i, (value, terms, r) in enumerate(chunk):
            slot = slots.get(r["id"])
            if slot is not None and len(found) <= first:
                found.append(RankedHit(position + i, _view(r), r["accepts_urgent"], r["shown_m"], value, terms, slot))
        position += len(chunk)
        batch *= 2
    return found


# --- statistics -----------------------------------------------------------------------------------

# Provider statistics from the status histories (the source of truth; never updated rows):
# - completed jobs: visits (bookings) that ever reached ``completed`` (later reviewed, disputed or
#   resolved still count), counted for the booking's provider; plus catalogue orders
#   (service_requests of kind ``purchase``) ``completed`` with the provider assigned. A booking's
#   order (kind ``booking``) is not counted again.
# - provider-caused cancellations: visits ``declined`` or left to ``expire`` unanswered (booking's
#   provider: both are terminal, so it is still the one who was asked), ``cancelled_by_provider``
#   (the provider who held it then: terminal), and every ``cannot_make_it`` (the provider account
#   that recorded it, ``actor_user_id``: a substitute may hold the visit now).
# - response time: seconds from a visit's ``paid`` (the offer to its provider) to the provider's own
#   ``accepted`` (the accepting account's provider), and from a substitution offer's creation to its
#   acceptance (``decided_at``); the median over all of them (percentile_cont 0.5), rounded to s.
# Only the providers whose figures changed are written (stats_updated_at = now()).
REFRESH_STATS_SQL = """
WITH completed AS (
  SELECT b.provider_id AS pid, count(*) AS n FROM bookings b
  WHERE EXISTS (SELECT 1 FROM booking_status_history h WHERE h.booking_id = b.id AND h.to_status = 'completed')
  GROUP BY b.provider_id
  UNION ALL
  SELECT sr.assigned_provider_id, count(*) FROM service_requests sr
  WHERE sr.kind = 'purchase' AND sr.status = 'completed' AND sr.assigned_provider_id IS NOT NULL
  GROUP BY sr.assigned_provider_id
), cancelled AS (
  SELECT b.provider_id AS pid, count(*) AS n
  FROM booking_status_history h JOIN bookings b ON b.id = h.booking_id
  WHERE h.to_status IN ('declined', 'expired', 'cancelled_by_provider')
  GROUP BY b.provider_id
  UNION ALL
  SELECT pr.id, count(*) FROM booking_status_history h JOIN providers pr ON pr.user_id = h.actor_user_id
  WHERE h.to_status = 'cannot_make_it' AND h.actor_type = 'provider'
  GROUP BY pr.id
), responses AS (
  SELECT pr.id AS pid, extract(epoch FROM acc.created_at - offered.at) AS secs
  FROM booking_status_history acc
  JOIN providers pr ON pr.user_id = acc.actor_user_id
  JOIN LATERAL (
    SELECT max(h.created_at) AS at FROM booking_status_history h
    WHERE h.booking_id = acc.booking_id AND h.to_status = 'paid' AND h.id < acc.id
  ) offered ON offered.at IS NOT NULL
  WHERE acc.from_status = 'paid' AND acc.to_status = 'accepted' AND acc.actor_type = 'provider'
  UNION ALL
  SELECT so.provider_id, extract(epoch FROM so.decided_at - so.created_at)
  FROM substitution_offers so WHERE so.status = 'accepted' AND so.decided_at IS NOT NULL
), figures AS (
  SELECT p.id,
         coalesce((SELECT sum(n) FROM completed c WHERE c.pid = p.id), 0)::int AS completed,
         coalesce((SELECT sum(n) FROM cancelled x WHERE x.pid = p.id), 0)::int AS cancelled,
         r.median
  FROM providers p
  LEFT JOIN (
    SELECT pid, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY greatest(secs, 0)))::int AS median
    FROM responses GROUP BY pid
  ) r ON r.pid = p.id
)
UPDATE providers p
SET completed_jobs = f.completed, cancelled_jobs = f.cancelled, median_response_seconds = f.median,
    stats_updated_at = now()
FROM figures f
WHERE p.id = f.id
  AND (p.completed_jobs, p.cancelled_jobs, p.median_response_seconds)
      IS DISTINCT FROM (f.completed, f.cancelled, f.median)
RETURNING p.id
"""


async def refresh_stats(session: AsyncSession) -> int:
    """Recompute every provider's ``completed_jobs``, ``cancelled_jobs`` and
    ``median_response_seconds`` from the status histories (definitions above REFRESH_STATS_SQL) in
    one statement, writing only the providers whose figures changed; returns how many changed.
    Run by the scheduler every ``discovery_stats_refresh_seconds`` and by ``odim discovery
    refresh-stats``. Cached searches are not invalidated: new figures reach the ranking within
    ``discovery_cache_ttl_seconds``."""
    return len((await session.execute(text(REFRESH_STATS_SQL))).all())


# --- urgent jobs ----------------------------------------------------------------------------------


async def set_accepts_urgent(session: AsyncSession, user_id: int, accepts_urgent: bool) -> int:
    """Set whether the provider profile of account ``user_id`` takes urgent jobs (the ``urgent``
    search filter); returns the provider's id. The caller invalidates its cache cells after commit
    (``invalidate_provider``). Raises ``NotAProvider`` when the account has no provider profile."""
    provider_id = await session.scalar(
        text("UPDATE providers SET accepts_urgent = :v, updated_at = now() WHERE user_id = :u RETURNING id"),
        {"v": accepts_urgent, "u": user_id},
    )
    if provider_id is None:
        raise NotAProvider("This account has no provider profile")
    return provider_id

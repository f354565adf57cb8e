"""Providers: geosearch (nearest verified, available providers), verification and availability."""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.providers.errors import ProvidersErrorCode
from domain.shared.errors import CommonErrorCode, DomainError, NotFound
from models import Provider

MAX_RADIUS_M = 100_000.0


class InvalidRadius(DomainError):
    code = ProvidersErrorCode.INVALID_RADIUS
    field = "radiusKm"


class InvalidLocation(DomainError):
    code = ProvidersErrorCode.INVALID_LOCATION
    field = "near"


class InvalidCursor(DomainError):
    code = CommonErrorCode.INVALID_CURSOR
    field = "after"


@dataclass(frozen=True)
class GeoPoint:
    """WGS84 point in degrees. Raises ``InvalidLocation`` outside [-90, 90] x [-180, 180]."""

    latitude: float
    longitude: float

    def __post_init__(self) -> None:
        if not (-90.0 <= self.latitude <= 90.0 and -180.0 <= self.longitude <= 180.0):
            raise InvalidLocation("latitude must be in [-90, 90] and longitude in [-180, 180]")

    def ewkt(self) -> str:
        return f"SRID=4326;POINT({self.longitude!r} {self.latitude!r})"


@dataclass(frozen=True)
class NearbyProvider:
    """One geosearch hit: ``distance_m`` is the spheroid distance in metres; ``knn`` the ordering
    key (PostGIS ``<->`` on geography, sphere metres) kept for the cursor."""

    id: int
    display_name: str
    categories: list[str]
    rating: float
    review_count: int
    latitude: float
    longitude: float
    city: str | None
    distance_m: float
    knn: float


_COLUMNS = """p.id, p.display_name, p.categories, p.rating, p.review_count,
       ST_Y(p.location::geometry) AS latitude, ST_X(p.location::geometry) AS longitude, p.city,
       ST_Distance(p.location, $1::geography) AS distance_m, p.location <-> $1::geography AS knn"""
_LIVE = """p.verified AND p.available AND NOT p.suspended
       AND ST_DWithin(p.location, $1::geography, $2::float8)
       AND ($3::text IS NULL OR $3::text = ANY (p.categories))"""

# Radius + KNN in the form the partial GiST index serves (docs/pitfalls.md, PostGIS): ST_DWithin on
# the raw column and ORDER BY ``location <-> constant`` ALONE — adding ``, id`` to that ORDER BY
# turns the index's nearest-neighbour scan into "read every row in the box, then sort" (about 10x
# slower on 1M rows, measured by bench/geosearch.py). Pages are keyset on (knn, id): the first
# branch walks the index past the cursor's distance, the second finishes the cursor's tie group
# (providers at exactly the same distance) by id. $1 point (EWKT), $2 radius m, $3 category or
# NULL, $4/$5 cursor (knn, id) or NULL, $6 limit. Plain SQL so bench/ runs the same statement.
NEARBY_SQL = f"""
SELECT * FROM (
  (SELECT {_COLUMNS} FROM providers p
   WHERE {_LIVE} AND ($4::float8 IS NULL OR p.location <-> $1::geography > $4::float8)
   ORDER BY p.location <-> $1::geography
   LIMIT $6)
  UNION ALL
  (SELECT {_COLUMNS} FROM providers p
   WHERE $4::float8 IS NOT NULL AND {_LIVE}
     AND p.location <-> $1::geography = $4::float8 AND p.id > $5::bigint
   ORDER BY p.id
   LIMIT $6)
) page
ORDER BY knn, id
LIMIT $6
"""

# All live providers at exactly distance $4 (a tie group), for the rare page that ends inside one.
_TIE_SQL = f"""
SELECT {_COLUMNS} FROM providers p
WHERE {_LIVE} AND p.location <-> $1::geography = $4::float8 AND p.id > $5::bigint
ORDER BY p.id
"""


def encode_cursor(knn: float, provider_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([repr(knn), provider_id]).encode()).decode()


def decode_cursor(cursor: str) -> tuple[float, int]:
    """Raises ``InvalidCursor`` for anything ``encode_cursor`` did not produce."""
    try:
        knn_s, pid_s = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        knn, pid = float(knn_s), int(pid_s)
    except (ValueError, TypeError) as exc:
        raise InvalidCursor("Malformed cursor") from exc
    # A distance is finite and >= 0 and an id fits a bigint; anything else is forged and would
    # otherwise reach PostgreSQL (an out-of-range id is a DataError, i.e. an internal error).
    if not (math.isfinite(knn) and knn >= 0 and 0 < pid < 2**63):
        raise InvalidCursor("Malformed cursor")
    return knn, pid


async def providers_nearby(
    session: AsyncSession,
    point: GeoPoint,
    radius_m: float,
    *,
    category: str | None = None,
    first: int = 20,
    after: str | None = None,
) -> tuple[list[NearbyProvider], bool]:
    """Verified, available, non-suspended providers within ``radius_m`` metres of ``point``
    (WGS84), nearest first (ties by id), optionally offering ``category``; keyset-paginated by
    the opaque cursor of the last row seen. Returns ``(rows, has_next_page)`` in one SQL statement
    (two when a page boundary falls inside a group of equidistant providers).
    Raises ``InvalidRadius`` when radius_m is not in (0, 100_000], ``InvalidCursor``."""
    if not (0 < radius_m <= MAX_RADIUS_M):
        raise InvalidRadius("radiusKm must be greater than 0 and at most 100")
    knn_after, id_after = decode_cursor(after) if after else (None, None)
    # Through SQLAlchemy (not the raw asyncpg connection) so statement counting, logging and
    # the session's transaction see it; asyncpg's paramstyle is numeric_dollar, as NEARBY_SQL.
    conn = await session.connection()
    params = (point.ewkt(), float(radius_m), category, knn_after, id_after, first + 1)
    hits = [_hit(r) for r in (await conn.exec_driver_sql(NEARBY_SQL, params)).mappings().all()]
    if len(hits) > first and hits[first].knn == hits[first - 1].knn:
        # The page ends inside a group of equidistant providers and the index branch may have
        # picked any of them: load the whole group and order it by id (rare: exact float ties).
        boundary = hits[first - 1].knn
        floor_id = id_after if knn_after == boundary else 0
        group = await conn.exec_driver_sql(_TIE_SQL, (*params[:3], boundary, floor_id))
        hits = [h for h in hits if h.knn != boundary] + [_hit(r) for r in group.mappings().all()]
        hits.sort(key=lambda h: (h.knn, h.id))
    return hits[:first], len(hits) > first


def _hit(r) -> NearbyProvider:
    return NearbyProvider(
        id=r["id"], display_name=r["display_name"], categories=list(r["categories"]),
        rating=float(r["rating"]), review_count=r["review_count"], latitude=r["latitude"],
        longitude=r["longitude"], city=r["city"], distance_m=r["distance_m"], knn=r["knn"],
    )


async def get_provider(session: AsyncSession, provider_id: int) -> Provider:
    """Raises ``NotFound``."""
    provider = await session.get(Provider, provider_id)
    if provider is None:
        raise NotFound("No such provider", field="providerId")
    return provider


async def provider_for_user(session: AsyncSession, user_id: int) -> Provider | None:
    return await session.scalar(select(Provider).where(Provider.user_id == user_id))


async def verify_provider(session: AsyncSession, provider_id: int) -> Provider:
    """Mark a provider verified (idempotent). Raises ``NotFound``."""
    provider = await get_provider(session, provider_id)
    provider.verified = True
    await session.flush()
    return provider


class NotAProvider(DomainError):
    code = ProvidersErrorCode.NOT_A_PROVIDER
    field = None


async def set_availability(
    session: AsyncSession, user_id: int, *, available: bool, location: GeoPoint | None
) -> Provider:
    """Set the calling provider's availability and (optionally) its location.
    Raises ``NotAProvider`` when the account has no provider profile."""
    provider = await provider_for_user(session, user_id)
    if provider is None:
        raise NotAProvider("This account has no provider profile")
    provider.available = available
    if location is not None:
        provider.location = location.ewkt()
    await session.flush()
    return provider


@dataclass(frozen=True)
class ProviderView:
    """A provider's public profile with its coordinates (WGS84 degrees)."""

    id: int
    display_name: str
    categories: list[str]
    rating: float
    review_count: int
    city: str | None
    country_code: str | None
    time_zone: str
    latitude: float
    longitude: float
    verified: bool
    available: bool
    suspended: bool
    user_id: int | None


_VIEW_SQL = text(
    "SELECT id, display_name, categories, rating, review_count, city, country_code, time_zone,"
    " ST_Y(location::geometry) AS latitude, ST_X(location::geometry) AS longitude,"
    " verified, available, suspended, user_id FROM providers WHERE id = ANY(:ids)"
)


async def provider_views(session: AsyncSession, provider_ids: list[int]) -> dict[int, ProviderView]:
    """``{id: ProviderView}`` for the given ids in one statement (unknown ids are absent)."""
    if not provider_ids:
        return {}
    rows = (await session.execute(_VIEW_SQL, {"ids": list(provider_ids)})).mappings().all()
    return {r["id"]: ProviderView(**{**r, "categories": list(r["categories"]), "rating": float(r["rating"])}) for r in rows}

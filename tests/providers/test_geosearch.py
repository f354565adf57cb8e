"""Geosearch: ``providers_nearby`` against a brute-force haversine over the same rows.

2,000 providers are seeded around Douala (4.0511 N, 9.7679 E) with a seeded random generator, at
several spatial scales so that every radius (0.5 to 100 km) returns several pages. PostGIS measures
``ST_DWithin``/``ST_Distance`` on the WGS84 spheroid and orders by ``<->`` on the sphere; the
brute force uses a sphere of mean radius 6,371,008.8 m, so points within 0.5% of the radius
boundary (0.6%, see TOLERANCE) may legitimately fall on either side and are left out of the set comparison.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import random

import httpx
import pytest
from sqlalchemy import event, func, insert, select, text

import server
from domain.providers import provider as geo
from domain.providers.provider import GeoPoint, InvalidCursor, InvalidLocation, InvalidRadius
from models import OutboxMessage, Provider
from models.db import get_engine, session_scope

DOUALA = (4.0511, 9.7679)
EARTH_RADIUS_M = 6371008.8
CATEGORIES = ["plumbing", "electrical", "cleaning", "painting", "carpentry"]
# Spheroid vs sphere: near the equator a north-south distance on WGS84 is 0.55% shorter than on the
# mean sphere (meridional radius of curvature at 4 N: 6,335.7 km vs 6,371.0 km) and an east-west one
# 0.11% longer, so 0.5% is not quite enough here: 0.6% covers both with a margin.
TOLERANCE = 0.006
PAGE = 37


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def destination(lat: float, lon: float, distance_m: float, bearing: float) -> tuple[float, float]:
    """The point ``distance_m`` from (lat, lon) on the sphere at ``bearing`` radians."""
    d = distance_m / EARTH_RADIUS_M
    p1, l1 = math.radians(lat), math.radians(lon)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(bearing))
    l2 = l1 + math.atan2(math.sin(bearing) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2))
    return round(math.degrees(p2), 7), round(math.degrees(l2), 7)


async def seed_providers(n: int = 2000, seed: int = 20261121) -> list[dict]:
    """``n`` providers around Douala (uniform in discs of 1, 8, 35 and 140 km), about 15%
    unverified, 10% unavailable, 5% suspended; returns the rows as stored (read back)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        scale_km = rng.choices([1, 8, 35, 140], weights=[2, 3, 3, 2])[0]
        lat, lon = destination(*DOUALA, scale_km * 1000 * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi))
        rows.append({
            "display_name": f"Provider {i}", "categories": rng.sample(CATEGORIES, rng.choice([1, 1, 2, 3])),
            "verified": rng.random() < 0.85, "available": rng.random() < 0.9, "suspended": rng.random() < 0.05,
            "rating": round(rng.uniform(0, 5), 2), "city": "Douala", "country_code": "CM",
            "time_zone": "Africa/Douala", "location": f"SRID=4326;POINT({lon!r} {lat!r})",
        })
    async with session_scope() as s:
        await s.execute(insert(Provider), rows)
    async with get_engine().connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE providers"))  # fresh statistics and visibility map: stable plans
        stored = (await conn.execute(text(
            "SELECT id, display_name, categories, verified, available, suspended,"
            " ST_Y(location::geometry) AS lat, ST_X(location::geometry) AS lon FROM providers"
        ))).mappings().all()
    return [dict(r) for r in stored]


def live(row: dict) -> bool:
    return row["verified"] and row["available"] and not row["suspended"]


async def search_all(point: GeoPoint, radius_m: float, category: str | None = None) -> tuple[list[geo.NearbyProvider], int]:
    """Every hit, paging with the cursor ``PAGE`` at a time; returns (hits, pages)."""
    hits: list[geo.NearbyProvider] = []
    after, pages = None, 0
    while True:
        async with session_scope() as s:
            page, has_next = await geo.providers_nearby(s, point, radius_m, category=category, first=PAGE, after=after)
        pages += 1
        hits.extend(page)
        assert len(page) == PAGE or not has_next
        if not has_next:
            return hits, pages
        after = geo.encode_cursor(page[-1].knn, page[-1].id)


class StatementCounter:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def __enter__(self) -> "StatementCounter":
        event.listen(get_engine().sync_engine, "before_cursor_execute", self._on)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(get_engine().sync_engine, "before_cursor_execute", self._on)

    def _on(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.statements.append(statement)


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=server.app), base_url="http://test")


NEARBY_QUERY = """
query Nearby($near: GeoPointInput!, $radiusKm: Float!, $first: Int, $after: String) {
  providersNearby(near: $near, radiusKm: $radiusKm, first: $first, after: $after) {
    edges { cursor node { distanceMeters provider { id displayName categories } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


# --- results against the brute force ----------------------------------------------------------


async def test_providers_nearby_matches_brute_force_haversine_for_every_point_and_radius():
    # given
    rows = await seed_providers()
    by_id = {r["id"]: r for r in rows}
    points = [DOUALA, (4.0620, 9.7050), (3.8480, 9.5360), (4.3000, 10.2000)]
    radii_m = [500.0, 5_000.0, 25_000.0, 100_000.0]
    multi_page = 0
    # when / then
    for lat, lon in points:
        for radius in radii_m:
            hits, pages = await search_all(GeoPoint(lat, lon), radius)
            ids = [h.id for h in hits]
            assert len(ids) == len(set(ids)), "a provider appeared on two pages"
            hav = {r["id"]: haversine_m(lat, lon, r["lat"], r["lon"]) for r in rows}
            near_boundary = {i for i, d in hav.items() if abs(d - radius) <= TOLERANCE * radius}
            expected = {i for i, d in hav.items() if d <= radius and live(by_id[i])}
            assert set(ids) - near_boundary == expected - near_boundary, (lat, lon, radius)
            assert all(live(by_id[i]) for i in ids)
            # ordered nearest first: by the sphere key exactly; by the spheroid distance within the
            # sphere/spheroid tolerance of both neighbours
            assert [(h.knn, h.id) for h in hits] == sorted((h.knn, h.id) for h in hits)
            for a, b in itertools.pairwise(hits):
                assert b.distance_m >= a.distance_m * (1 - 2 * TOLERANCE) - 0.01
                assert hav[b.id] >= hav[a.id] * (1 - 1e-6) - 0.01
            for h in hits:
                assert abs(h.distance_m - hav[h.id]) <= TOLERANCE * hav[h.id] + 0.01
                assert abs(h.knn - hav[h.id]) <= 1e-6 * hav[h.id] + 0.01
                assert (h.latitude, h.longitude) == pytest.approx((by_id[h.id]["lat"], by_id[h.id]["lon"]), abs=1e-9)
            multi_page += pages > 2
    # the seed must exercise paging and every radius; otherwise the comparison proves little
    assert multi_page >= 6
    hits, _ = await search_all(GeoPoint(*DOUALA), 500.0)
    assert len(hits) >= 10


async def test_category_filter_returns_only_live_providers_offering_it():
    # given
    rows = await seed_providers()
    point = GeoPoint(*DOUALA)
    radius = 25_000.0
    # when
    hits, pages = await search_all(point, radius, category="electrical")
    # then
    hav = {r["id"]: haversine_m(*DOUALA, r["lat"], r["lon"]) for r in rows}
    near_boundary = {i for i, d in hav.items() if abs(d - radius) <= TOLERANCE * radius}
    expected = {r["id"] for r in rows if hav[r["id"]] <= radius and live(r) and "electrical" in r["categories"]}
    assert pages > 2
    assert {h.id for h in hits} - near_boundary == expected - near_boundary
    assert all("electrical" in h.categories for h in hits)
    # and an unknown category finds nothing
    none, _ = await search_all(point, radius, category="astrology")
    assert none == []


async def test_suspended_unverified_and_unavailable_providers_are_never_found():
    # given three providers at the very search point that are not live, and one that is
    for flags in ({"verified": False}, {"available": False}, {"suspended": True}):
        async with session_scope() as s:
            s.add(Provider(display_name=str(flags), categories=["plumbing"], location="SRID=4326;POINT(9.7679 4.0511)",
                           **{"verified": True, "available": True, "suspended": False, **flags}))
    async with session_scope() as s:
        s.add(Provider(display_name="live", categories=["plumbing"], verified=True,
                       location="SRID=4326;POINT(9.7679 4.0511)"))
    # when
    hits, _ = await search_all(GeoPoint(*DOUALA), 1_000.0)
    # then
    assert [h.display_name for h in hits] == ["live"]
    assert hits[0].distance_m == 0.0


async def test_pages_never_skip_or_repeat_providers_at_exactly_the_same_distance():
    # given 100 live providers at one spot 1 km north, 60 at the search point itself, and others
    rows = await seed_providers(300)
    north = destination(*DOUALA, 1_000.0, 0.0)
    async with session_scope() as s:
        await s.execute(insert(Provider), [
            {"display_name": f"tie {i}", "categories": ["plumbing"], "verified": True,
             "location": f"SRID=4326;POINT({lon!r} {lat!r})"}
            for i, (lat, lon) in enumerate([north] * 100 + [DOUALA] * 60)
        ])
    async with get_engine().connect() as conn:
        ids = (await conn.execute(text(
            "SELECT id, ST_Y(location::geometry), ST_X(location::geometry) FROM providers"
            " WHERE verified AND available AND NOT suspended"))).all()
    # when: every page size, including ones that end inside a tie group
    for first in (1, 7, 37, 100):
        hits, after = [], None
        while True:
            async with session_scope() as s:
                page, has_next = await geo.providers_nearby(s, GeoPoint(*DOUALA), 5_000.0, first=first, after=after)
            hits.extend(page)
            if not has_next:
                break
            after = geo.encode_cursor(page[-1].knn, page[-1].id)
        # then each provider once, in (distance, id) order
        expected = sorted((haversine_m(*DOUALA, lat, lon), i) for i, lat, lon in ids
                          if haversine_m(*DOUALA, lat, lon) <= 5_000.0 * (1 - TOLERANCE))
        got = [h.id for h in hits]
        assert len(got) == len(set(got)), first
        assert [(h.knn, h.id) for h in hits] == sorted((h.knn, h.id) for h in hits), first
        assert [i for i in got if i in {e for _, e in expected}] == [i for _, i in sorted(
            expected, key=lambda e: (round(e[0], 3), e[1]))], first
    assert len(rows) == 300


# --- one statement, served by the partial GiST index ------------------------------------------


async def test_providers_nearby_takes_one_sql_statement_per_page():
    # given
    await seed_providers(300)
    async with session_scope() as s:
        first_page, _ = await geo.providers_nearby(s, GeoPoint(*DOUALA), 25_000.0, first=PAGE)
    cursor = geo.encode_cursor(first_page[-1].knn, first_page[-1].id)
    # when
    with StatementCounter() as counter:
        async with session_scope() as s:
            page, has_next = await geo.providers_nearby(s, GeoPoint(*DOUALA), 25_000.0, first=PAGE, after=cursor)
    # then
    assert len(counter.statements) == 1
    assert "ST_DWithin" in counter.statements[0]
    assert len(page) == PAGE and has_next


async def test_graphql_providers_nearby_takes_one_sql_statement():
    # given
    await seed_providers(300)
    # when
    with StatementCounter() as counter:
        async with client() as http:
            response = await http.post("/graphql", json={"query": NEARBY_QUERY, "variables": {
                "near": {"latitude": DOUALA[0], "longitude": DOUALA[1]}, "radiusKm": 25, "first": 10}})
    # then
    body = response.json()
    assert "errors" not in body
    edges = body["data"]["providersNearby"]["edges"]
    assert len(edges) == 10
    assert body["data"]["providersNearby"]["pageInfo"]["hasNextPage"] is True
    distances = [e["node"]["distanceMeters"] for e in edges]
    assert distances == sorted(distances)
    assert len(counter.statements) == 1


@pytest.mark.parametrize("radius_m", [5_000.0, 100_000.0])
async def test_nearby_query_plan_uses_the_partial_gist_index(radius_m):
    # given
    await seed_providers()
    # when: the statement exactly as providers_nearby sends it, with a cursor and a category
    async with get_engine().connect() as conn:
        plan = (await conn.exec_driver_sql(
            "EXPLAIN (FORMAT JSON) " + geo.NEARBY_SQL,
            (GeoPoint(*DOUALA).ewkt(), radius_m, "plumbing", 10.0, 3, 38),
        )).scalar()
    # then
    plan = json.loads(plan) if isinstance(plan, str) else plan
    nodes = []

    def walk(node: dict) -> None:
        nodes.append(node)
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    index_scans = [n for n in nodes if "Index Name" in n]
    assert index_scans, "no index is used"
    assert {n["Index Name"] for n in index_scans} == {"ix_providers_location_live"}
    assert [n["Node Type"] for n in nodes if n["Node Type"] == "Seq Scan"] == []
    # over a wide radius the nearest-neighbour ordering is done by the index (ORDER BY location <->
    # constant); for a small radius reading the few rows in the box and sorting them is the planner's call
    assert radius_m < 50_000 or any(n["Node Type"] == "Index Scan" and "<->" in n.get("Order By", "") for n in index_scans)


# --- invalid input --------------------------------------------------------------------------


@pytest.mark.parametrize("radius_m", [0.0, -1_000.0, 100_001.0, float("nan"), float("inf")])
async def test_radius_out_of_range_is_rejected(radius_m):
    async with session_scope() as s:
        with pytest.raises(InvalidRadius) as err:
            await geo.providers_nearby(s, GeoPoint(*DOUALA), radius_m)
    assert (err.value.code, err.value.field) == ("INVALID_RADIUS", "radiusKm")


async def test_radius_of_exactly_100_km_is_allowed():
    await seed_providers(50)
    async with session_scope() as s:
        hits, _ = await geo.providers_nearby(s, GeoPoint(*DOUALA), 100_000.0, first=100)
    assert hits


@pytest.mark.parametrize("lat, lon", [(90.5, 9.7), (-91.0, 9.7), (4.05, 180.5), (4.05, -181.0), (float("nan"), 9.7)])
def test_bad_coordinates_are_rejected(lat, lon):
    with pytest.raises(InvalidLocation) as err:
        GeoPoint(lat, lon)
    assert (err.value.code, err.value.field) == ("INVALID_LOCATION", "near")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


@pytest.mark.parametrize("cursor", [
    "garbage", "!!!", _b64(b"not json"), _b64(b"[1.0]"), _b64(b"{}"), _b64(b"[null, 3]"), _b64(b"\xff\xfe"),
    _b64(b'[1.0, 100000000000000000000000000000]'), _b64(b'["NaN", 3]'), _b64(b'["-5", 3]'),
])
async def test_garbage_cursor_is_rejected(cursor):
    await seed_providers(20)
    async with session_scope() as s:
        with pytest.raises(InvalidCursor) as err:
            await geo.providers_nearby(s, GeoPoint(*DOUALA), 5_000.0, after=cursor)
    assert (err.value.code, err.value.field) == ("INVALID_CURSOR", "after")


# --- GraphQL errors -------------------------------------------------------------------------


async def _snapshot() -> tuple:
    async with session_scope() as s:
        providers = (await s.execute(select(Provider.id, Provider.updated_at).order_by(Provider.id))).all()
        outbox = await s.scalar(select(func.count()).select_from(OutboxMessage))
    return providers, outbox


async def test_graphql_radius_zero_is_a_top_level_invalid_radius_error_and_changes_nothing():
    # given
    await seed_providers(50)
    before = await _snapshot()
    # when
    async with client() as http:
        response = await http.post("/graphql", json={"query": NEARBY_QUERY, "variables": {
            "near": {"latitude": DOUALA[0], "longitude": DOUALA[1]}, "radiusKm": 0}})
    # then
    body = response.json()
    assert body["data"] is None
    assert [(e["extensions"]["code"], e["extensions"]["field"], e["path"]) for e in body["errors"]] == [
        ("INVALID_RADIUS", "radiusKm", ["providersNearby"])
    ]
    assert await _snapshot() == before


@pytest.mark.parametrize("variables, code, field", [
    ({"radiusKm": 5, "first": 101}, "INVALID_PAGE_SIZE", "first"),
    ({"radiusKm": 5, "first": 0}, "INVALID_PAGE_SIZE", "first"),
    ({"radiusKm": 100.001}, "INVALID_RADIUS", "radiusKm"),
    ({"radiusKm": -1}, "INVALID_RADIUS", "radiusKm"),
    ({"radiusKm": 5, "near": {"latitude": 95, "longitude": 9.7}}, "INVALID_LOCATION", "near"),
    ({"radiusKm": 5, "after": "garbage"}, "INVALID_CURSOR", "after"),
])
async def test_graphql_bad_arguments_are_top_level_errors(variables, code, field):
    # given
    await seed_providers(50)
    before = await _snapshot()
    # when
    async with client() as http:
        response = await http.post("/graphql", json={"query": NEARBY_QUERY, "variables": {
            "near": {"latitude": DOUALA[0], "longitude": DOUALA[1]}, **variables}})
    # then
    body = response.json()
    assert body["data"] is None
    assert [(e["extensions"]["code"], e["extensions"]["field"]) for e in body["errors"]] == [(code, field)]
    assert await _snapshot() == before


async def test_graphql_pages_follow_the_cursor_without_gaps_or_repeats():
    # given
    rows = await seed_providers(400)
    expected = sorted(
        (haversine_m(*DOUALA, r["lat"], r["lon"]), r["id"]) for r in rows
        if live(r) and haversine_m(*DOUALA, r["lat"], r["lon"]) <= 10_000 * (1 - TOLERANCE)
    )
    # when
    seen, after = [], None
    async with client() as http:
        while True:
            response = await http.post("/graphql", json={"query": NEARBY_QUERY, "variables": {
                "near": {"latitude": DOUALA[0], "longitude": DOUALA[1]}, "radiusKm": 10, "first": 25, "after": after}})
            conn = response.json()["data"]["providersNearby"]
            seen.extend(e["node"]["provider"]["displayName"] for e in conn["edges"])
            if not conn["pageInfo"]["hasNextPage"]:
                break
            after = conn["pageInfo"]["endCursor"]
    # then
    assert len(seen) == len(set(seen))
    names = {r["id"]: r["display_name"] for r in rows}
    inner = [names[i] for _, i in expected]
    assert [n for n in seen if n in set(inner)] == inner

"""Discovery benchmark: ranked ``searchProviders`` (domain/providers/discovery.py) cold vs. warm cache, and the
uncached ranking vs. the plain KNN geosearch (``providersNearby``), in one run.

    uv run python bench/discovery.py                  # 10,000 providers, 400 query points
    uv run python bench/discovery.py --help
    make bench-discovery                              # dev stack up + migrations + this

Against the database and Redis of the current settings (the dev stack by default; any
``ODIM_DATABASE_URL``/``ODIM_REDIS_URL``). Steps:

1. Seeds ``--providers`` synthetic providers tagged ``city = 'bench-discovery'`` (unless that many
   are there already) uniformly within 30 km of Douala: about 85 % verified, 90 % available, 3 %
   suspended, 1-3 categories, ratings 2.5-5 over 0-300 reviews, completed/cancelled jobs, median
   response times, 30 % taking urgent jobs; then ``VACUUM ANALYZE providers``.
2. Builds ``--points`` query points (``random.Random(7)``) uniform within 15 km of Douala, radius
   ``--radius-km`` (5), half of them filtered on ``plumbing``, a page of 20.
3. Times each query sequentially, one at a time, in this process (one session per query, as the API
   does per request; the pool is warmed first), the four runs interleaved point by point so that
   they share the load of a shared machine alike:
   * KNN: ``domain.provider.providers_nearby`` (one statement: the index's nearest 20);
   * ranked, uncached: ``search_providers`` with the cache off (the nearest ``discovery_candidates``
     by KNN, five terms each, sort);
   * ranked, cold cache: the cache on, ``odim:disc:*`` deleted before the run: miss, compute, SET
     (a point whose cell an earlier point already searched is a hit; counted and printed);
   * ranked, warm cache: the same point again: MGET of the cell versions, GET, one re-check statement.
4. Times the candidates statement alone under custom plans (``plan_cache_mode = force_custom_plan``)
   for 50 points, in its current form and in its first form (ST_DWithin inside the KNN scan).
5. Prints p50/p95/mean per run and the ratios, and ``EXPLAIN`` of the candidates statement.

Figures only: nothing here asserts a time (docs/conventions.md). Latencies include Python, asyncpg and
Redis round trips on this machine (loopback). A JSON copy goes to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import platform
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from sqlalchemy import text

from domain.providers import discovery
from domain.providers.provider import GeoPoint, providers_nearby
from domain.shared import redis_client
from models.db import dispose_engine, get_engine, session_scope
from settings import get_settings

DOUALA = (4.0511, 9.7679)
EARTH_RADIUS_M = 6371008.8
TAG = "bench-discovery"
CATEGORIES = ["plumbing", "electrical", "cleaning", "painting", "carpentry"]
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def destination(lat: float, lon: float, distance_m: float, bearing: float) -> tuple[float, float]:
    d = distance_m / EARTH_RADIUS_M
    p1, l1 = math.radians(lat), math.radians(lon)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(bearing))
    l2 = l1 + math.atan2(math.sin(bearing) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2))
    return round(math.degrees(p2), 7), round(math.degrees(l2), 7)


def uniform_point(rng: random.Random, radius_m: float) -> tuple[float, float]:
    return destination(*DOUALA, radius_m * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi))


async def seed(n: int) -> int:
    """Insert synthetic providers until ``n`` carry the bench tag; returns how many were added."""
    async with session_scope() as s:
        have = (await s.execute(text("SELECT count(*) FROM providers WHERE city = :t"), {"t": TAG})).scalar()
    missing = n - have
    if missing <= 0:
        return 0
    rng = random.Random(2026 + have)
    rows = []
    for i in range(missing):
        lat, lon = uniform_point(rng, 30_000)
        completed = int(rng.expovariate(1 / 40))
        rows.append({
            "name": f"Bench provider {have + i}", "cats": rng.sample(CATEGORIES, rng.choice([1, 1, 2, 3])),
            "verified": rng.random() < 0.85, "available": rng.random() < 0.9, "suspended": rng.random() < 0.03,
            "rating": round(rng.uniform(2.5, 5.0), 2), "reviews": rng.randint(0, 300), "urgent": rng.random() < 0.3,
            "completed": completed, "cancelled": int(completed * rng.uniform(0, 0.2)),
            "median": rng.choice([None, rng.randint(60, 4 * 3600)]), "loc": f"SRID=4326;POINT({lon} {lat})",
        })
    async with session_scope() as s:
        await s.execute(text(
            "INSERT INTO providers (display_name, categories, verified, available, suspended, rating, review_count,"
            " accepts_urgent, completed_jobs, cancelled_jobs, median_response_seconds, city, country_code, time_zone,"
            " location) VALUES (:name, :cats, :verified, :available, :suspended, :rating, :reviews, :urgent,"
            " :completed, :cancelled, :median, 'bench-discovery', 'CM', 'Africa/Douala', ST_GeogFromText(:loc))"
        ), rows)
    async with get_engine().connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE providers"))
    return missing


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {
        "n": len(ordered), "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
    }


async def timed(session_run) -> tuple[float, object]:
    started = time.perf_counter()
    async with session_scope() as s:
        out = await session_run(s)
    return time.perf_counter() - started, out


async def clear_cache() -> int:
    client = redis_client.redis_client()
    keys = [k async for k in client.scan_iter(match="odim:disc:*", count=1000)]
    if keys:
        await client.delete(*keys)
    return len(keys)


async def main(args: argparse.Namespace) -> dict:
    settings = get_settings()
    added = await seed(args.providers)
    rng = random.Random(7)
    points = [(GeoPoint(*uniform_point(rng, 15_000)), "plumbing" if i % 2 else None) for i in range(args.points)]
    radius_m = args.radius_km * 1000

    async def knn(s, point, category):
        hits, _ = await providers_nearby(s, point, radius_m, category=category, first=20)
        return len(hits)

    async def ranked(s, point, category):
        page = await discovery.search_providers(s, point, radius_m, discovery.SearchFilters(category=category), first=20)
        return page.cache, page.candidates, len(page.hits)

    ttl = max(settings.discovery_cache_ttl_seconds, 90)
    runs_s: dict[str, list[float]] = {"knn": [], "uncached": [], "cold": [], "warm": []}
    outs: dict[str, list] = {"uncached": [], "cold": [], "warm": []}
    for point, category in points[:50]:  # warm the pool, the plans and the lru caches of both paths
        await timed(lambda s, p=point, c=category: knn(s, p, c))
        await timed(lambda s, p=point, c=category: ranked(s, p, c))
    await clear_cache()
    # Interleaved per point, so that the four runs share the (noisy, shared) machine's load alike.
    for point, category in points:
        for name in ("knn", "uncached", "cold", "warm"):
            settings.discovery_cache_ttl_seconds = 0 if name == "uncached" else ttl
            run = knn if name == "knn" else ranked
            seconds, out = await timed(lambda s, r=run, p=point, c=category: r(s, p, c))
            runs_s[name].append(seconds)
            if name != "knn":
                outs[name].append(out)
    settings.discovery_cache_ttl_seconds = ttl
    knn_s, uncached_s, cold_s, warm_s = runs_s["knn"], runs_s["uncached"], runs_s["cold"], runs_s["warm"]
    uncached_out, cold_out, warm_out = outs["uncached"], outs["cold"], outs["warm"]

    async with session_scope() as s:
        conn = await s.connection()
        centre = discovery.search_cell(points[0][0])[1]
        params = discovery._params(centre, radius_m, discovery.SearchFilters(), settings.discovery_candidates, points[0][0])
        plan = [r[0] for r in (await conn.exec_driver_sql("EXPLAIN " + discovery.CANDIDATES_SQL, params)).all()]
        live = (await s.execute(text(
            "SELECT count(*) FROM providers WHERE verified AND available AND NOT suspended"))).scalar()
        custom = await custom_plans(conn, points[:50], radius_m, settings.discovery_candidates)
        total = (await s.execute(text("SELECT count(*) FROM providers"))).scalar()
    await dispose_engine()

    runs = {"knn_providers_nearby": summary(knn_s), "ranked_uncached": summary(uncached_s),
            "ranked_cold_cache": summary(cold_s), "ranked_warm_cache": summary(warm_s)}
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.platform(),
        "python": platform.python_version(), "providers_total": total, "providers_live": live, "seeded_now": added,
        "points": args.points, "radius_km": args.radius_km, "candidates_cap": settings.discovery_candidates,
        "mean_candidates": round(statistics.fmean(c for _, c, _ in uncached_out), 1),
        "cold_results": {r: sum(1 for c, _, _ in cold_out if c == r) for r in ("hit", "miss", "stale", "error")},
        "warm_results": {r: sum(1 for c, _, _ in warm_out if c == r) for r in ("hit", "miss", "stale", "error")},
        "runs": runs,
        "ratios": {
            "cold_over_warm_p50": round(runs["ranked_cold_cache"]["p50_ms"] / runs["ranked_warm_cache"]["p50_ms"], 2),
            "cold_over_warm_p95": round(runs["ranked_cold_cache"]["p95_ms"] / runs["ranked_warm_cache"]["p95_ms"], 2),
            "uncached_over_knn_p50": round(runs["ranked_uncached"]["p50_ms"] / runs["knn_providers_nearby"]["p50_ms"], 2),
            "warm_over_knn_p50": round(runs["ranked_warm_cache"]["p50_ms"] / runs["knn_providers_nearby"]["p50_ms"], 2),
        },
        "candidates_plan": plan,
        "custom_plans": custom,
    }


# The candidates statement as it was, with ST_DWithin inside the KNN scan (domain/providers/discovery.py says why
# it changed): timed against the current one under custom plans, which a prepared statement gets on
# its first five executions per connection, and every statement without a statement cache.
CANDIDATES_SQL_DWITHIN_INSIDE = f"""
SELECT {discovery._COLUMNS} FROM providers p
WHERE {discovery._filters("ST_DWithin(p.location, $1::geography, $2::float8)")}
ORDER BY p.location <-> $1::geography
LIMIT $9
"""


async def custom_plans(conn, points, radius_m: float, cap: int) -> dict:
    await conn.exec_driver_sql("SET plan_cache_mode = force_custom_plan")
    times: dict[str, list[float]] = {"dwithin_inside": [], "box_then_radius": []}
    try:
        for point, category in points:
            params = discovery._params(discovery.search_cell(point)[1], radius_m,
                                       discovery.SearchFilters(category=category), cap, point)
            forms = [("dwithin_inside", CANDIDATES_SQL_DWITHIN_INSIDE), ("box_then_radius", discovery.CANDIDATES_SQL)]
            for name, sql in forms if len(times["box_then_radius"]) % 2 else forms[::-1]:  # each goes first half the time
                started = time.perf_counter()
                await conn.exec_driver_sql(sql, params)
                times[name].append(time.perf_counter() - started)
    finally:
        await conn.exec_driver_sql("RESET plan_cache_mode")
    out = {name: summary(samples) for name, samples in times.items()}
    out["ratio_p50"] = round(out["dwithin_inside"]["p50_ms"] / out["box_then_radius"]["p50_ms"], 2)
    return out


def report(result: dict) -> None:
    print(f"providers: {result['providers_total']} ({result['providers_live']} live; seeded now: {result['seeded_now']}),"
          f" {result['points']} points, radius {result['radius_km']} km, candidates cap {result['candidates_cap']}"
          f" (mean ranked per search: {result['mean_candidates']})")
    print(f"{'run':<24}{'p50 ms':>10}{'p95 ms':>10}{'mean ms':>10}")
    for name, r in result["runs"].items():
        print(f"{name:<24}{r['p50_ms']:>10.2f}{r['p95_ms']:>10.2f}{r['mean_ms']:>10.2f}")
    print("cold run cache results:", result["cold_results"], "| warm run:", result["warm_results"])
    print("ratios:", result["ratios"])
    c = result["custom_plans"]
    print(f"candidates statement under custom plans ({c['dwithin_inside']['n']} points): ST_DWithin inside the KNN "
          f"scan p50 {c['dwithin_inside']['p50_ms']:.2f} ms p95 {c['dwithin_inside']['p95_ms']:.2f} ms; box, then "
          f"radius (current) p50 {c['box_then_radius']['p50_ms']:.2f} ms p95 {c['box_then_radius']['p95_ms']:.2f} ms;"
          f" ratio {c['ratio_p50']}")
    print("EXPLAIN candidates statement:")
    for line in result["candidates_plan"]:
        print("   ", line)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--providers", type=int, default=10_000, help="bench-tagged providers to have (seeded if fewer)")
    parser.add_argument("--points", type=int, default=400, help="query points")
    parser.add_argument("--radius-km", type=float, default=5.0)
    result = asyncio.run(main(parser.parse_args()))
    report(result)
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"discovery-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"written: {out.relative_to(PROJECT_ROOT)}")

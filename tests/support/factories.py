"""Test data builders that write through the models (real database)."""

from __future__ import annotations

from domain.identity.user import hash_password
from models import Affiliate, Provider, Service, ServiceTier, TierPrice, User
from models.db import session_scope

_HASH_CACHE: dict[str, str] = {}


def _hash(password: str) -> str:
    if password not in _HASH_CACHE:
        _HASH_CACHE[password] = hash_password(password)
    return _HASH_CACHE[password]


async def make_user(email: str, *, role: str = "customer", password: str = "correct-horse-battery", full_name: str = "Test User",
                    phone: str | None = "+237671234567") -> User:
    async with session_scope() as s:
        user = User(email=email, password_hash=_hash(password), full_name=full_name, phone=phone, role=role)
        s.add(user)
        await s.flush()
    return user


async def token_for(user: User, *, mfa: bool | None = None) -> str:
    """An access token of a new sign-in of ``user``, made directly in the database (admins' as if they
    had presented a TOTP code, unless ``mfa`` says otherwise). Tests of the login flow itself use the API."""
    from domain.identity.user import open_session

    async with session_scope() as s:
        return (await open_session(s, user, mfa=user.role == "admin" if mfa is None else mfa)).access_token


async def make_provider(*, latitude: float = 4.0511, longitude: float = 9.7679, display_name: str = "Eko Plumbing",
                        categories: list[str] | None = None, verified: bool = True, available: bool = True,
                        suspended: bool = False, user_id: int | None = None, rating: float = 4.5) -> Provider:
    async with session_scope() as s:
        provider = Provider(
            display_name=display_name, categories=categories or ["plumbing"], verified=verified, available=available,
            suspended=suspended, user_id=user_id, rating=rating, city="Douala", country_code="CM",
            time_zone="Africa/Douala", location=f"SRID=4326;POINT({longitude} {latitude})",
        )
        s.add(provider)
        await s.flush()
    return provider


async def make_service(*, name: str = "Leak repair", category: str = "plumbing", tiers: int = 2,
                       prices: dict[str, int] | None = None) -> tuple[Service, list[ServiceTier]]:
    prices = prices or {"XAF": 10000, "NGN": 1000000}
    async with session_scope() as s:
        service = Service(slug=name.lower().replace(" ", "-"), name=name, category=category, description=f"{name}.")
        s.add(service)
        await s.flush()
        made = []
        for i in range(tiers):
            tier = ServiceTier(service_id=service.id, name=["Basic", "Standard", "Premium"][i], position=i,
                               features=[f"feature {i}"])
            s.add(tier)
            await s.flush()
            for currency, amount in prices.items():
                s.add(TierPrice(tier_id=tier.id, currency=currency, amount_minor=amount * (i + 1)))
            made.append(tier)
    return service, made


async def make_affiliate(code: str = "DOUALA-PARTNER", commission_bps: int = 500) -> Affiliate:
    async with session_scope() as s:
        affiliate = Affiliate(code=code, name="Partner", commission_bps=commission_bps)
        s.add(affiliate)
        await s.flush()
    return affiliate


async def run_worker() -> None:
    """Run a real Dramatiq worker on the Redis broker until the payments and notifications queues
    (delayed retries included) are empty."""
    import asyncio

    from dramatiq import Worker

    import workers

    broker = workers.broker.broker
    worker = Worker(broker, worker_timeout=100)
    worker.start()
    try:
        await asyncio.to_thread(broker.join, "payments", timeout=30_000)
        await asyncio.to_thread(broker.join, "notifications", timeout=30_000)
        await asyncio.to_thread(worker.join)
    finally:
        await asyncio.to_thread(worker.stop)

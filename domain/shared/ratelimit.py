"""Rate limits on Redis: the `limits` library's moving-window strategy over its async Redis storage.

One limiter per event loop and Redis URL, with fail-fast connection options (``redis_client.fail_fast_options``:
``chat_redis_timeout_seconds``, no retries), so a dead Redis costs at most that timeout per call,
never a hang. Callers decide what a dead Redis means (``RateLimitUnavailable``): the chat and the
per-IP limit let the request through (fail open), login/register/password reset refuse it (fail
closed; resolvers/ratelimit.py).

Keys are hashed (SHA-256) before they reach Redis: an email address or an IP address used as a key
is personal data and never stored in clear.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
import weakref

from limits import parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.exceptions import RedisError

from domain.shared import redis_client
from settings import get_settings

_limiters: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class RateLimitUnavailable(Exception):
    """The rate-limit store (Redis) did not answer within ``chat_redis_timeout_seconds``."""


def _limiter() -> MovingWindowRateLimiter:
    """A moving-window limiter on Redis for this event loop and the configured Redis URL."""
    url = get_settings().redis_url
    per_loop = _limiters.setdefault(asyncio.get_running_loop(), {})
    limiter = per_loop.get(url)
    if limiter is None:
        storage = RedisStorage(f"async+{url}", implementation="redispy", **redis_client.fail_fast_options())
        limiter = MovingWindowRateLimiter(storage)
        per_loop[url] = limiter
    return limiter


def hashed(key: str) -> str:
    """The Redis-side form of a limit key: hex SHA-256 (32 characters) of ``key``."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


async def hit(rule: str, namespace: str, key: str) -> int | None:
    """Count one hit of ``key`` in ``namespace`` against ``rule`` (``limits`` notation: "100/minute",
    "5/hour", "10/minute;100/day" takes the first). Returns None when allowed; otherwise the whole
    seconds (>= 1) until the moving window lets the next hit through (the refused hit is not counted).

    Raises ``RateLimitUnavailable`` when Redis errors or times out; ``ValueError`` for a bad ``rule``."""
    item = parse(rule)
    keyed = hashed(key)
    try:
        limiter = _limiter()
        if await limiter.hit(item, namespace, keyed):
            return None
        stats = await limiter.get_window_stats(item, namespace, keyed)
    except (TimeoutError, RedisError, OSError, StorageError) as exc:
        raise RateLimitUnavailable(f"{type(exc).__name__}: {exc}") from exc
    return max(1, math.ceil(stats.reset_time - time.time()))

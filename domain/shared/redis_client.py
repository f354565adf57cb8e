"""The fail-fast Redis client of the domain: one per event loop and Redis URL, with timeouts of
``chat_redis_timeout_seconds`` and no retries, for callers that can do without Redis (presence,
rate limits, the discovery cache) and must never hang on it."""

from __future__ import annotations

import asyncio
import weakref

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from settings import get_settings

_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def redis_client() -> aioredis.Redis:
    """A Redis client for this event loop and the configured URL that fails fast: timeouts of
    ``chat_redis_timeout_seconds`` and no retries (callers fail open). Shared by presence, chat and the discovery cache."""
    settings = get_settings()
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    client = per_loop.get(settings.redis_url)
    if client is None:
        client = aioredis.from_url(settings.redis_url, **fail_fast_options())
        per_loop[settings.redis_url] = client
    return client


def fail_fast_options() -> dict:
    """redis-py connection options: short timeouts, no retries (redis-py's default retries 3 times
    with backoff of up to 10 s, far too long to hold a request that can do without Redis)."""
    timeout = get_settings().chat_redis_timeout_seconds
    return {"socket_connect_timeout": timeout, "socket_timeout": timeout, "retry": Retry(NoBackoff(), 0)}

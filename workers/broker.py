"""The Dramatiq broker: Redis, with the AsyncIO middleware for ``async def`` actors.

Importing this module sets the global broker; actors declared afterwards bind to it. Delivery is
at-least-once (a message held by a dead worker is requeued after the heartbeat timeout); every
actor is idempotent. Retries are set per actor from settings (docs/pitfalls.md: the defaults are
20 retries up to 7 days apart).
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage
from dramatiq.middleware.asyncio import AsyncIO

from settings import configure_logging, get_settings

QUEUES = ("payments", "notifications", "default")


def build_broker() -> RedisBroker:
    settings = get_settings()
    broker = RedisBroker(
        url=settings.redis_url,
        heartbeat_timeout=settings.broker_heartbeat_timeout_ms,
        maintenance_chance=settings.broker_maintenance_chance,
    )
    broker.add_middleware(AsyncIO())
    broker.add_middleware(CurrentMessage())  # workers.deadletter reads the attempt number
    return broker


configure_logging()
broker = build_broker()
dramatiq.set_broker(broker)


def retry_options() -> dict:
    settings = get_settings()
    return {
        "max_retries": settings.actor_max_retries,
        "min_backoff": settings.actor_min_backoff_ms,
        "max_backoff": settings.actor_max_backoff_ms,
    }

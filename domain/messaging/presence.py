"""Who is looking at a conversation right now: one Redis key per (conversation, user) with a TTL.

The live layer calls ``touch`` when a participant subscribes to a conversation and then every 30 s
while the subscription lasts; the key expires ``ttl_seconds`` after the last touch, so a client that
vanished without unsubscribing stops counting as present within a minute. ``present`` answers which
of some users are there (domain/messaging/chat.py notifies the others of a new message).

Presence is a hint, never a source of truth: when Redis is unreachable ``touch`` does nothing and
``present`` answers "nobody" (everyone then gets an in-app notification, which is the safe side).
Calls give up after ``chat_redis_timeout_seconds`` without retrying.
"""

from __future__ import annotations

import structlog
from redis.exceptions import RedisError

from domain.shared.redis_client import redis_client
from settings import get_settings

log = structlog.get_logger(__name__)

def key(conversation_id: int, user_id: int) -> str:
    return f"odim:presence:{conversation_id}:{user_id}"


async def touch(conversation_id: int, user_id: int, ttl_seconds: int | None = None) -> None:
    """Mark ``user_id`` present in ``conversation_id`` for ``ttl_seconds`` (default
    ``chat_presence_ttl_seconds``, 60). Never raises: Redis errors are logged and ignored."""
    ttl = ttl_seconds if ttl_seconds is not None else get_settings().chat_presence_ttl_seconds
    try:
        await redis_client().set(key(conversation_id, user_id), b"1", ex=ttl)
    except (RedisError, OSError) as exc:
        log.warning("presence.touch_failed", conversation_id=conversation_id, user_id=user_id, error=str(exc))


async def leave(conversation_id: int, user_id: int) -> None:
    """Forget ``user_id``'s presence in ``conversation_id`` at once (a subscription that ended
    cleanly). Never raises."""
    try:
        await redis_client().delete(key(conversation_id, user_id))
    except (RedisError, OSError) as exc:
        log.warning("presence.leave_failed", conversation_id=conversation_id, user_id=user_id, error=str(exc))


async def present(conversation_id: int, user_ids: list[int] | set[int]) -> set[int]:
    """The subset of ``user_ids`` present in ``conversation_id`` now (one MGET). Redis unreachable:
    the empty set (everyone offline), logged."""
    ids = sorted(set(user_ids))
    if not ids:
        return set()
    try:
        values = await redis_client().mget([key(conversation_id, u) for u in ids])
    except (RedisError, OSError) as exc:
        log.warning("presence.unavailable", conversation_id=conversation_id, error=str(exc))
        return set()
    return {u for u, v in zip(ids, values, strict=True) if v is not None}

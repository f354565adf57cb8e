"""Idempotency keys for client mutations that move money (refunds, payouts, disputes).

Stripe's rule: the same key with the same input returns the first result; the same key with a
different input is an error (``IDEMPOTENCY_KEY_REUSED``). A concurrent duplicate waits: its
INSERT blocks on the first request's uncommitted key row until that commits (then it reads the
stored result) or rolls back (then it proceeds itself). Keys are scoped to operation and caller and
kept at least settings.idempotency_key_ttl_seconds (purged by the scheduler after that).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.shared.errors import CommonErrorCode, DomainError
from models import IdempotencyKey
from settings import get_settings


class IdempotencyKeyReused(DomainError):
    code = CommonErrorCode.IDEMPOTENCY_KEY_REUSED
    field = "idempotencyKey"


class InvalidIdempotencyKey(DomainError):
    code = CommonErrorCode.INVALID
    field = "idempotencyKey"


def fingerprint(*parts: object) -> str:
    """SHA-256 of the JSON of the operation's input."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


async def claim(session: AsyncSession, scope: str, key: str, input_fingerprint: str) -> dict | None:
    """Claim ``key`` in ``scope`` for this input. Returns ``None`` when the caller should do the work
    (then ``remember`` the result in the same transaction), or the stored result of the first
    request. Raises ``IdempotencyKeyReused`` for the same key with another input,
    ``InvalidIdempotencyKey`` for a key outside 1..120 characters."""
    if not 1 <= len(key) <= 120:
        raise InvalidIdempotencyKey("Idempotency keys are 1 to 120 characters")
    inserted = await session.scalar(
        insert(IdempotencyKey)
        .values(scope=scope, key=key, fingerprint=input_fingerprint)
        .on_conflict_do_nothing(index_elements=["scope", "key"])
        .returning(IdempotencyKey.key)
    )
    if inserted is not None:
        return None
    row = await session.scalar(select(IdempotencyKey).where(IdempotencyKey.scope == scope, IdempotencyKey.key == key))
    assert row is not None
    if row.fingerprint != input_fingerprint:
        raise IdempotencyKeyReused("This idempotency key was used with different input")
    return row.result or {}


async def remember(session: AsyncSession, scope: str, key: str, result: dict) -> None:
    """Store the result of the claimed key (same transaction as the work)."""
    await session.execute(
        update(IdempotencyKey).where(IdempotencyKey.scope == scope, IdempotencyKey.key == key).values(result=result)
    )


async def purge_expired(session: AsyncSession) -> int:
    """Delete keys older than settings.idempotency_key_ttl_seconds; returns how many."""
    cutoff = datetime.now(UTC) - timedelta(seconds=get_settings().idempotency_key_ttl_seconds)
    result = await session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff))
    return result.rowcount or 0

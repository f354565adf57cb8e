"""Run an actor's body so that its final failure lands in the dead-letter table (domain/shared/dead_letter.py).

Dramatiq's Retries middleware counts previous attempts in ``message.options["retries"]``; the
attempt that runs with ``retries == max_retries`` is the last one. A ``GatewayError`` that is not
retryable (a refusal) is final at once. A final failure is recorded and then swallowed, so
Dramatiq does not also park the message in its volatile ``.XQ`` set; earlier failures are
recorded (``last_error``) and re-raised so Dramatiq retries with exponential backoff.
"""

from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable
from typing import TypeVar

import dramatiq
import structlog
from dramatiq.middleware import CurrentMessage

from domain.shared import dead_letter
from gateways.base import GatewayError
from settings import get_settings

log = structlog.get_logger(__name__)
T = TypeVar("T")


def _actor_max_retries(actor_name: str) -> int:
    """The actor's own ``max_retries`` option (Dramatiq's Retries middleware reads it the same way),
    else the broker-wide setting."""
    try:
        return int(dramatiq.get_broker().get_actor(actor_name).options.get("max_retries",
                                                                           get_settings().actor_max_retries))
    except Exception:  # an actor this process does not declare
        return get_settings().actor_max_retries


async def guarded(actor: str, queue: str, args: dict, body: Callable[[], Awaitable[T]]) -> T | None:
    """Await ``body()``; on failure record it, and dead-letter it when retries are exhausted."""
    try:
        return await body()
    except Exception as exc:
        message = CurrentMessage.get_current_message()
        retries = int(message.options.get("retries", 0)) if message is not None else 0
        max_retries = int(message.options.get("max_retries", _actor_max_retries(message.actor_name))) if message else 0
        refused = isinstance(exc, GatewayError) and not exc.retryable
        final = refused or retries >= max_retries
        letter_id = await dead_letter.record_failure(
            actor=actor, queue=queue, args=args, error=exc, traceback_text=traceback.format_exc(),
            attempts=retries + 1, final=final,
        )
        if final:
            log.error("actor.dead_lettered", actor=actor, dead_letter_id=letter_id, error=str(exc))
            return None
        raise

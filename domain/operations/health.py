"""Readiness and the figures ``/metrics`` samples at scrape time.

``readiness()`` answers "may a load balancer send traffic here": PostgreSQL answers, Redis answers,
the database schema is at the migration head this code was written for (a process started before
``odim migrate`` finished, or an old image against a newer database, is not ready), and this
process's live bus (Redis pub/sub, domain/shared/live.py) is connected. Every probe has a short timeout so
a dead dependency makes the check fail fast instead of hanging the probe.

``backlog()`` samples queue depths and lags for Prometheus: Dramatiq's Redis queues, the outbox's
pending rows, and the webhook inbox's unprocessed rows. Each source that does not answer within its
timeout is left out (the scrape still succeeds); PostgreSQL stays the source of truth.
"""

from __future__ import annotations

import asyncio
import errno
from dataclasses import dataclass, field
from functools import lru_cache

import redis.asyncio as aioredis
from sqlalchemy import text

from domain.shared import live
from models.db import get_engine
from settings import PROJECT_ROOT, get_settings

# The Dramatiq queues the workers consume (workers/broker.py QUEUES; domain must not import workers).
QUEUES = ("payments", "notifications", "default")
# Dramatiq's RedisBroker keys (dramatiq/brokers/redis/dispatch.lua): the list of waiting message
# ids is "<namespace>:<queue>", the delayed (retry backoff) ones are "<namespace>:<queue>.DQ".
DRAMATIQ_NAMESPACE = "dramatiq"


@lru_cache(maxsize=1)
def migration_heads() -> frozenset[str]:
    """The Alembic head revision(s) of ``migrations/`` as shipped with this code (read from the
    script directory once per process, at startup via ``server.lifespan`` or on first use)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.set_main_option("path_separator", "os")
    return frozenset(ScriptDirectory.from_config(config).get_heads())


@dataclass
class Readiness:
    """``checks`` maps each dependency to ``"ok"`` or a short reason it failed
    (an exception class name, ``"timeout"``, ``"behind: have X, want Y"``, ``"reconnecting"``)."""

    checks: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return all(v == "ok" for v in self.checks.values())


async def _database(seconds: float) -> tuple[str, str]:
    """(postgresql check, migrations check)."""
    try:
        async with asyncio.timeout(seconds):
            async with get_engine().connect() as conn:
                versions = set((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())
    except TimeoutError:
        return "timeout", "unknown"
    except Exception as exc:
        # A database without the alembic_version table answers (postgresql ok) but is not migrated.
        if "alembic_version" in str(exc) and "does not exist" in str(exc):
            return "ok", "not migrated"
        return type(exc).__name__, "unknown"
    heads = migration_heads()
    if versions == set(heads):
        return "ok", "ok"
    return "ok", f"behind: have {','.join(sorted(versions)) or 'none'}, want {','.join(sorted(heads))}"


async def _redis(seconds: float) -> str:
    client = aioredis.from_url(get_settings().redis_url, socket_timeout=seconds, socket_connect_timeout=seconds)
    try:
        async with asyncio.timeout(seconds):
            await client.ping()
        return "ok"
    except TimeoutError:
        return "timeout"
    except Exception as exc:
        return type(exc).__name__
    finally:
        await client.aclose()


async def readiness(*, live_bus: bool = True) -> Readiness:
    """Probe PostgreSQL, the migration head, Redis and (``live_bus``) this process's pub/sub bus,
    concurrently, each within ``settings.health_timeout_seconds``. Never raises."""
    timeout = get_settings().health_timeout_seconds
    (postgresql, migrations), redis = await asyncio.gather(_database(timeout), _redis(timeout))
    checks = {"postgresql": postgresql, "migrations": migrations, "redis": redis}
    if live_bus:
        checks["live"] = "ok" if live.bus.connected else "reconnecting"
    return Readiness(checks)


@dataclass
class Backlog:
    """Work waiting, as sampled now. ``queues`` maps ``(queue, state)`` (state ``ready`` or
    ``delayed``) to a message count, empty when Redis did not answer; the outbox and inbox figures
    are None when PostgreSQL did not answer. Ages are seconds (0.0 when nothing is pending)."""

    queues: dict[tuple[str, str], int] = field(default_factory=dict)
    outbox_pending: int | None = None
    outbox_oldest_age_seconds: float | None = None
    webhooks_pending: int | None = None
    webhooks_oldest_age_seconds: float | None = None


async def _redis_queues(seconds: float) -> dict[tuple[str, str], int]:
    client = aioredis.from_url(get_settings().redis_url, socket_timeout=seconds, socket_connect_timeout=seconds)
    try:
        async with asyncio.timeout(seconds):
            async with client.pipeline(transaction=False) as pipe:
                for queue in QUEUES:
                    pipe.llen(f"{DRAMATIQ_NAMESPACE}:{queue}")
                    pipe.llen(f"{DRAMATIQ_NAMESPACE}:{queue}.DQ")
                counts = await pipe.execute()
    except Exception:
        return {}
    finally:
        await client.aclose()
    out: dict[tuple[str, str], int] = {}
    for i, queue in enumerate(QUEUES):
        out[(queue, "ready")] = int(counts[2 * i])
        out[(queue, "delayed")] = int(counts[2 * i + 1])
    return out


async def _database_backlog(seconds: float, backlog: Backlog) -> None:
    try:
        async with asyncio.timeout(seconds):
            async with get_engine().connect() as conn:
                row = (await conn.execute(text(
                    "SELECT (SELECT count(*) FROM outbox WHERE dispatched_at IS NULL),"
                    " (SELECT min(created_at) FROM outbox WHERE dispatched_at IS NULL),"
                    " (SELECT count(*) FROM webhook_inbox WHERE processed_at IS NULL AND dead_lettered_at IS NULL"
                    "  AND event_type <> 'ignored'),"
                    " (SELECT min(received_at) FROM webhook_inbox WHERE processed_at IS NULL"
                    "  AND dead_lettered_at IS NULL AND event_type <> 'ignored'),"
                    " now()"
                ))).one()
    except Exception:
        return
    outbox_n, outbox_oldest, inbox_n, inbox_oldest, now = row
    backlog.outbox_pending = int(outbox_n)
    backlog.outbox_oldest_age_seconds = (now - outbox_oldest).total_seconds() if outbox_oldest else 0.0
    backlog.webhooks_pending = int(inbox_n)
    backlog.webhooks_oldest_age_seconds = (now - inbox_oldest).total_seconds() if inbox_oldest else 0.0


async def backlog() -> Backlog:
    """Sample queue depths and lags (see ``Backlog``), Redis and PostgreSQL concurrently, each within
    ``settings.metrics_sample_timeout_seconds``. Never raises and never waits longer than that."""
    timeout = get_settings().metrics_sample_timeout_seconds
    out = Backlog()

    async def redis_part() -> None:
        out.queues = await _redis_queues(timeout)

    await asyncio.gather(redis_part(), _database_backlog(timeout, out))
    return out


# SQLSTATE classes that mean "the database is not there right now" (PostgreSQL docs, Appendix A):
# 08 connection exception; 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now.
_UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03")
_CONNECT_ERRNOS = frozenset({
    errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EHOSTUNREACH, errno.ENETUNREACH,
    errno.ETIMEDOUT, errno.EPIPE,
})


def dependency_unavailable(exc: BaseException | None) -> bool:
    """True when ``exc`` (or an exception it was raised from, up to 8 levels) means PostgreSQL is
    unreachable or restarting, so the same request can succeed later: a refused or reset
    connection, a server shutting down or starting up, a connection invalidated mid-transaction,
    or no pooled connection within the pool timeout. Programming and data errors are False."""
    import asyncpg.exceptions as pg
    import sqlalchemy.exc as sa

    seen = 0
    while exc is not None and seen < 8:
        seen += 1
        if isinstance(exc, sa.DBAPIError) and exc.connection_invalidated:
            return True
        if isinstance(exc, sa.TimeoutError):  # QueuePool: no connection became free in time
            return True
        if isinstance(exc, pg.PostgresConnectionError | ConnectionError | TimeoutError):
            return True
        if isinstance(exc, OSError) and (exc.errno in _CONNECT_ERRNOS or "Connect call failed" in str(exc)):
            return True  # connect(): refused, unreachable, reset (asyncio joins several as one OSError)
        if isinstance(exc, pg.InterfaceError) and "connection" in str(exc) and "closed" in str(exc):
            return True
        sqlstate = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
            return True
        exc = getattr(exc, "orig", None) or exc.__cause__ or exc.__context__
    return False

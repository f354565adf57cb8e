"""Test fixtures: real PostgreSQL+PostGIS, Redis and SMTP sink (the test stack of scripts/test-env.sh).

``make test`` starts the services; running ``pytest`` directly starts them too when they are down
(and leaves them running). Each test starts from empty tables and an empty Redis.

Parallel runs (pytest-xdist, ``-n N``): each worker ``gwK`` gets a whole stack of its own (a
PostgreSQL cluster, Redis and an SMTP sink, ports ``+10*(K+1)``, data in ``.data/test/gwK``), so no
test sees another's rows, keys, pub/sub messages or mail, and a fault test may restart its own
PostgreSQL or Redis. The API port a test may start a server on moves the same way. The worker's stack
is started and migrated when it begins (about 8 s) and removed when it finishes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Fixtures every context uses: a shop to buy from, a moto S3 server and bucket (tests/support/).
pytest_plugins = ["tests.support.orders", "tests.support.storage"]


def _load_test_env() -> None:
    out = subprocess.run(
        ["bash", "-c", f"cd {ROOT} && source scripts/test-env.sh && env"], capture_output=True, text=True, check=True
    ).stdout
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key.startswith("ODIM_"):
            os.environ.setdefault(key, value)


_load_test_env()
WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # "gw0", "gw1" ... under pytest-xdist, None otherwise


def _isolate_worker(worker: str) -> None:
    """Point this xdist worker at its own database, Redis, SMTP sink, data directory and API port."""
    offset = 10 * (int(worker.removeprefix("gw")) + 1)
    env = os.environ
    env["ODIM_DATA_DIR"] = str(Path(env["ODIM_DATA_DIR"]) / worker)
    for key in ("ODIM_PG_PORT", "ODIM_REDIS_PORT", "ODIM_SMTP_SINK_PORT", "ODIM_SMTP_PORT", "ODIM_PORT"):
        env[key] = str(int(env[key]) + offset)
    env["ODIM_DATABASE_URL"] = f"postgresql+asyncpg://odim@127.0.0.1:{env['ODIM_PG_PORT']}/odim"
    env["ODIM_REDIS_URL"] = f"redis://127.0.0.1:{env['ODIM_REDIS_PORT']}/0"
    env["ODIM_PUBLIC_BASE_URL"] = f"http://127.0.0.1:{env['ODIM_PORT']}"


if WORKER:
    _isolate_worker(WORKER)

from settings import get_settings  # noqa: E402

get_settings.cache_clear()

import pytest_asyncio  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
from sqlalchemy import text  # noqa: E402

from models.db import get_engine  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def services_up():
    from devstack import services

    if WORKER:
        services.up_worker(get_settings())
        subprocess.run([sys.executable, "-m", "cli", "migrate"], cwd=ROOT, check=True, capture_output=True)
        yield
        services.down_worker(get_settings())
        return
    if not all(services.status().values()):
        services.up(fast=True)
    subprocess.run([sys.executable, "-m", "cli", "migrate"], cwd=ROOT, check=True, capture_output=True)
    yield




# Emptying all 56 tables with one TRUNCATE costs about 75 ms; most tests touch a handful, so the
# reset truncates only the tables holding rows and restarts only the sequences that were used (about
# 7 ms). Ids still start at 1 in every test.
RESET_FUNCTION = """
CREATE OR REPLACE FUNCTION odim_test_reset() RETURNS void LANGUAGE plpgsql AS $$
DECLARE t text; dirty text[] := '{}'; s record; one int;
BEGIN
  FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'public'
           AND tablename NOT IN ('alembic_version', 'spatial_ref_sys') LOOP
    one := NULL;
    EXECUTE format('SELECT 1 FROM %I LIMIT 1', t) INTO one;  -- EXECUTE does not set FOUND
    IF one IS NOT NULL THEN dirty := dirty || t; END IF;
  END LOOP;
  IF array_length(dirty, 1) > 0 THEN
    EXECUTE 'TRUNCATE ' || (SELECT string_agg(format('%I', d), ', ') FROM unnest(dirty) d) || ' RESTART IDENTITY CASCADE';
  END IF;
  FOR s IN SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' AND last_value IS NOT NULL LOOP
    EXECUTE format('ALTER SEQUENCE public.%I RESTART', s.sequencename);
  END LOOP;
END $$;
"""


async def truncate_all(conn) -> None:
    """Empty every application table (all of schema public but Alembic's and PostGIS's own) and restart
    their ids: only the tables holding rows are truncated (``odim_test_reset``, created on first use)."""
    if not await conn.scalar(text("SELECT to_regprocedure('odim_test_reset()') IS NOT NULL")):
        await conn.execute(text(RESET_FUNCTION))
    await conn.execute(text("SELECT odim_test_reset()"))


@pytest_asyncio.fixture(autouse=True)
async def clean_state(services_up: None) -> None:
    """Empty tables, empty Redis and an empty mail sink before every test."""
    async with get_engine().begin() as conn:
        await truncate_all(conn)
    client = aioredis.from_url(get_settings().redis_url)
    await client.flushdb()
    await client.aclose()
    mail = Path(get_settings().data_dir) / "mail"
    if mail.exists():
        for f in mail.glob("*.eml"):
            f.unlink()
    yield
    await check_live_events()


async def check_live_events() -> None:
    """Every live event a test's producers recorded in the outbox validates against its channel's typed
    model (domain/shared/events.py: unknown fields forbidden), so the whole suite checks every producer."""
    from domain.shared import events

    async with get_engine().connect() as conn:
        rows = (await conn.execute(text(
            "SELECT target, payload FROM outbox WHERE kind = 'event' ORDER BY id"
        ))).all()
    for channel, payload in rows:
        events.model_for(channel).model_validate(payload)


@pytest.fixture
def mailbox():
    """Reads the SMTP sink: ``mailbox()`` returns the parsed messages received so far, oldest first."""
    import email
    from email import policy

    directory = Path(get_settings().data_dir) / "mail"

    def read() -> list[email.message.EmailMessage]:
        files = sorted(directory.glob("*.eml")) if directory.exists() else []
        return [email.message_from_bytes(f.read_bytes(), policy=policy.default) for f in files]

    return read


@pytest_asyncio.fixture
async def api_client():
    """An httpx client calling ``server.app`` in-process (ASGITransport; the lifespan does not run)."""
    import httpx

    import server

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server.app), base_url="http://test") as client:
        yield client

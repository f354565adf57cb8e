"""Test fixtures: real PostgreSQL+PostGIS, Redis and SMTP sink (the test stack of scripts/test-env.sh).

``make test`` starts the services; running ``pytest`` directly starts them too when they are down
(and leaves them running). Each test starts from empty tables and an empty Redis.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytest_plugins = ["tests.chat_fixtures"]


def _load_test_env() -> None:
    out = subprocess.run(
        ["bash", "-c", f"cd {ROOT} && source scripts/test-env.sh && env"], capture_output=True, text=True, check=True
    ).stdout
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key.startswith("ODIM_"):
            os.environ.setdefault(key, value)


_load_test_env()

from settings import get_settings  # noqa: E402

get_settings.cache_clear()

import pytest_asyncio  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
from sqlalchemy import text  # noqa: E402

from models.db import get_engine  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def services_up() -> None:
    from devstack import services

    if not all(services.status().values()):
        services.up(fast=True)
    subprocess.run([sys.executable, "-m", "cli", "migrate"], cwd=ROOT, check=True, capture_output=True)




async def truncate_all(conn) -> None:
    """Empty every application table (all of schema public but Alembic's and PostGIS's own)."""
    tables = (await conn.execute(text(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
        "AND tablename NOT IN ('alembic_version', 'spatial_ref_sys')"
    ))).scalars().all()
    await conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))


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

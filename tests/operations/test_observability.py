"""Health, readiness, Prometheus metrics and structured logs ("Resilience").

In-process through ``server.app`` (the ``api_client`` fixture) against the real test stack, except
the log test, which runs a real uvicorn process with ``ODIM_LOG_FORMAT=json`` and reads its stdout.
Outages of the real PostgreSQL and Redis are in tests/system/test_faults.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from domain.operations import health
from domain.shared import metrics, outbox
from models import WebhookEvent
from models.db import get_engine, session_scope
from schema import observability
from settings import get_settings
from tests.shared.test_outbox import paid_webhook_for_a_new_purchase
from tests.support.factories import run_worker

ROOT = Path(__file__).resolve().parents[2]
NAMED = "query Catalogue { services { id name } }"
ANONYMOUS = "{ services { id } }"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, tuple], float]:
    """``GET /metrics`` parsed: ``{(sample name, sorted label items): value}``."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text) for s in family.samples
    }


def sample(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# --- health and readiness -----------------------------------------------------------------------


async def test_healthz_answers_while_the_process_is_up(api_client):
    response = await api_client.get("/healthz")
    assert (response.status_code, response.text) == (200, "ok")


async def test_readiness_is_ok_when_postgresql_and_redis_answer_and_migrations_are_at_head():
    # when
    found = await health.readiness(live_bus=False)
    # then
    assert found.checks == {"postgresql": "ok", "migrations": "ok", "redis": "ok"}
    assert found.ready is True


async def test_readiness_says_migrations_are_behind_when_the_database_is_older_than_the_code():
    # given: the database claims an older revision
    [head] = health.migration_heads()
    async with get_engine().begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    try:
        # when
        found = await health.readiness(live_bus=False)
    finally:
        async with get_engine().begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head})
    # then
    assert found.checks == {"postgresql": "ok", "migrations": f"behind: have 0001, want {head}", "redis": "ok"}
    assert found.ready is False


async def test_readiness_names_redis_when_it_does_not_answer(monkeypatch):
    # given
    monkeypatch.setattr(get_settings(), "redis_url", f"redis://127.0.0.1:{closed_port()}/0")
    # when
    found = await health.readiness(live_bus=False)
    # then
    assert found.checks == {"postgresql": "ok", "migrations": "ok", "redis": "ConnectionError"}
    assert found.ready is False


async def test_readyz_answers_503_with_the_failing_checks(api_client, monkeypatch):
    # given: Redis unreachable (and no live bus: the in-process app runs without its lifespan)
    monkeypatch.setattr(get_settings(), "redis_url", f"redis://127.0.0.1:{closed_port()}/0")
    # when
    response = await api_client.get("/readyz")
    # then
    assert response.status_code == 503
    assert response.json() == {"postgresql": "ok", "migrations": "ok", "redis": "ConnectionError",
                               "live": "reconnecting"}


# --- GraphQL and HTTP metrics -------------------------------------------------------------------


async def test_metrics_time_each_graphql_operation_by_name_and_count_errors_by_code(api_client):
    # given
    before = await scrape(api_client)
    # when: a named query twice, an anonymous one, and a document that does not parse
    for query in (NAMED, NAMED, ANONYMOUS, "query Broken { services { id "):
        await api_client.post("/graphql", json={"query": query})
    after = await scrape(api_client)

    # then
    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("odim_graphql_operation_seconds_count", operation="Catalogue", type="query") == 2
    assert delta("odim_graphql_operation_seconds_count", operation="anonymous", type="query") == 1
    # (a document that does not parse has no operation name to read)
    assert delta("odim_graphql_operation_seconds_count", operation="anonymous", type="unknown") == 1
    assert delta("odim_graphql_errors_total", code="GRAPHQL_VALIDATION_FAILED", operation="anonymous") == 1
    assert delta("odim_graphql_errors_total", code="GRAPHQL_VALIDATION_FAILED", operation="Catalogue") == 0
    # and HTTP requests per route template (GraphQL answers 200, errors in the body); plus the first scrape
    assert delta("odim_http_request_seconds_count", route="/graphql", method="POST", status="200") == 4
    assert delta("odim_http_request_seconds_count", route="/metrics", method="GET", status="200") == 1


async def test_metrics_count_masked_errors_under_their_masked_code(api_client, monkeypatch):
    # given: a resolver that fails unexpectedly
    from resolvers import catalogue as catalogue_resolvers

    async def boom(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(catalogue_resolvers, "services", boom)
    labels = {"code": "INTERNAL_SERVER_ERROR", "operation": "Catalogue"}
    before = REGISTRY.get_sample_value("odim_graphql_errors_total", labels) or 0.0
    # when
    body = (await api_client.post("/graphql", json={"query": NAMED})).json()
    # then: the client sees the masked error, and it is counted under its masked code
    assert [e["extensions"]["code"] for e in body["errors"]] == ["INTERNAL_SERVER_ERROR"]
    assert "secret internals" not in json.dumps(body)
    assert (REGISTRY.get_sample_value("odim_graphql_errors_total", labels) or 0.0) - before == 1


def test_operation_labels_stay_bounded_whatever_names_clients_send(monkeypatch):
    # given: room for two names
    monkeypatch.setattr(observability, "_seen_names", set())
    monkeypatch.setattr(get_settings(), "metrics_max_operation_names", 2)
    # when / then
    assert [observability.operation_label(n) for n in ("A", "B", "C", "A", None, "", "x" * 65, "B")] == [
        "A", "B", "other", "A", "anonymous", "anonymous", "other", "B"]


async def test_metrics_show_redis_queue_depths_the_outbox_backlog_and_the_oldest_unprocessed_webhook(api_client):
    # given: two jobs dispatched to Redis, one still in the outbox, and a webhook stored 2 minutes ago
    async with session_scope() as s:
        outbox.enqueue_actor(s, "send_email", queue="notifications", email_id=1)
        outbox.enqueue_actor(s, "send_email", queue="notifications", email_id=2)
    assert await outbox.relay() == 2
    async with session_scope() as s:
        outbox.enqueue_actor(s, "process_webhook", queue="payments", inbox_id=1)
        s.add(WebhookEvent(gateway="sandbox", event_id="evt_old", event_type="payment.succeeded", payload={},
                           received_at=datetime.now(UTC) - timedelta(seconds=120)))
    # when
    samples = await scrape(api_client)
    # then
    assert {q: sample(samples, "odim_queue_depth", queue=q, state="ready") for q in health.QUEUES} == {
        "payments": 0, "notifications": 2, "default": 0}
    assert sample(samples, "odim_queue_depth", queue="notifications", state="delayed") == 0
    assert (sample(samples, "odim_outbox_pending"), sample(samples, "odim_webhooks_pending")) == (1, 1)
    assert sample(samples, "odim_outbox_oldest_age_seconds") >= 0
    assert sample(samples, "odim_webhook_oldest_pending_age_seconds") >= 120


async def test_metrics_answer_without_redis_figures_when_redis_is_down(api_client, monkeypatch):
    # given
    async with session_scope() as s:
        outbox.enqueue_actor(s, "send_email", queue="notifications", email_id=1)
    monkeypatch.setattr(get_settings(), "redis_url", f"redis://127.0.0.1:{closed_port()}/0")
    # when
    response = await api_client.get("/metrics")
    # then: queue depths are left out (not reported as zero); the database figures are there
    assert response.status_code == 200
    assert "odim_queue_depth{" not in response.text
    assert "odim_outbox_pending 1.0" in response.text


# --- payment outcomes and webhook lag -----------------------------------------------------------


def counted() -> tuple[float, float, float]:
    return (
        REGISTRY.get_sample_value("odim_payment_outcomes_total", {"gateway": "sandbox", "outcome": "completed"}) or 0.0,
        REGISTRY.get_sample_value("odim_payment_outcomes_total", {"gateway": "sandbox", "outcome": "failed"}) or 0.0,
        REGISTRY.get_sample_value("odim_webhook_lag_seconds_count", {"gateway": "sandbox"}) or 0.0,
    )


async def test_a_settled_payment_is_counted_once_with_its_webhook_lag(api_client):
    # given: a purchase and its "paid" webhook
    raw, headers = await paid_webhook_for_a_new_purchase()
    before = counted()
    # when: the webhook arrives, is processed, then is delivered again (a duplicate)
    assert (await api_client.post("/webhooks/sandbox", content=raw, headers=headers)).status_code == 200
    await run_worker()
    assert (await api_client.post("/webhooks/sandbox", content=raw, headers=headers)).status_code == 200
    await run_worker()
    after = counted()
    # then: one completed payment and one lag observation
    assert tuple(a - b for a, b in zip(after, before, strict=True)) == (1, 0, 1)


async def test_a_rolled_back_settlement_counts_nothing():
    # given
    before = counted()

    class Boom(Exception):
        pass

    # when: the transaction that settled a payment rolls back
    with contextlib.suppress(Boom):
        async with session_scope() as s:
            metrics.payment_outcome(s, "sandbox", "completed")
            metrics.webhook_processed(s, "sandbox", datetime.now(UTC))
            raise Boom()
    # and one that counts only what it may count commits
    async with session_scope() as s:
        metrics.payment_outcome(s, "sandbox", "duplicate_payment_event")
        metrics.payment_outcome(s, "sandbox", "failed")
    # then
    assert tuple(a - b for a, b in zip(counted(), before, strict=True)) == (0, 1, 0)


# --- structured logs ----------------------------------------------------------------------------


async def test_a_graphql_request_in_json_mode_logs_parseable_json_lines_carrying_its_request_id(tmp_path):
    # given: a real server logging JSON to stdout
    out = tmp_path / "stdout.log"
    settings = get_settings()
    with open(out, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "server:app", "--host", "127.0.0.1", "--port", str(settings.port),
             "--log-level", "warning"],
            cwd=ROOT, env={**os.environ, "ODIM_LOG_FORMAT": "json"}, stdout=sink, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        async with httpx.AsyncClient(base_url=settings.public_base_url, timeout=30) as client:
            for _ in range(600):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            # when
            response = await client.post("/graphql", json={"query": NAMED},
                                         headers={"X-Request-ID": "h4-json-log-test"})
            assert response.status_code == 200
            for _ in range(100):
                if b"h4-json-log-test" in out.read_bytes():
                    break
                await asyncio.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    # then: every line is one JSON object, and the operation's line carries the request id
    lines = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    assert all(isinstance(line, dict) and {"event", "level", "timestamp"} <= line.keys() for line in lines)
    [operation] = [line for line in lines if line.get("request_id") == "h4-json-log-test"]
    assert (operation["event"], operation["operation"], operation["type"], operation["errors"]) == (
        "graphql.operation", "Catalogue", "query", None)


# --- PostgreSQL unreachable: typed and retryable ------------------------------------------------


def test_only_connection_failures_count_as_the_database_being_unavailable():
    import asyncpg.exceptions
    import sqlalchemy.exc

    refused = ConnectionRefusedError(111, "Connection refused")
    wrapped = sqlalchemy.exc.DBAPIError("SELECT 1", {}, refused, connection_invalidated=True)
    try:
        raise RuntimeError("while opening the session") from refused
    except RuntimeError as exc:
        chained = exc
    assert [health.dependency_unavailable(e) for e in (
        refused, wrapped, chained, asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    )] == [True] * 5
    assert [health.dependency_unavailable(e) for e in (
        None, ValueError("bad"), asyncpg.exceptions.UniqueViolationError("duplicate key"),
        asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"),
        sqlalchemy.exc.IntegrityError("INSERT", {}, ValueError("duplicate key")), FileNotFoundError(2, "missing"),
    )] == [False] * 6


async def test_a_webhook_arriving_while_postgresql_is_down_gets_503_with_retry_after(api_client, monkeypatch):
    # given: the inbox cannot be written (the database refuses connections)
    import server

    async def refused(*args, **kwargs):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(server.payment_domain, "receive_webhook", refused)
    raw, headers = await paid_webhook_for_a_new_purchase()
    # when
    response = await api_client.post("/webhooks/sandbox", content=raw, headers=headers)
    # then: the gateway is told to retry later (it redelivers), not handed a bare 500
    retry = get_settings().unavailable_retry_after_seconds
    assert (response.status_code, response.headers["retry-after"]) == (503, str(retry))
    assert response.json() == {"error": "service temporarily unavailable", "code": "SERVICE_UNAVAILABLE",
                               "retryable": True, "retryAfterSeconds": retry}
    async with session_scope() as s:
        assert (await s.execute(text("SELECT count(*) FROM webhook_inbox"))).scalar() == 0

"""HTTP hardening: security headers, CORS, no cookies and no mutations over GET (CSRF),
GraphiQL and introspection only where allowed, request ids from the header to the masked error
and the log line, and the settings that keep GraphiQL off outside development."""

from __future__ import annotations

import re

import httpx
import pytest
import structlog
from sqlalchemy import func, select
from structlog.testing import capture_logs

import server
from models import ServiceRequest
from models.db import session_scope
from resolvers.bookings import tickets as booking_resolvers
from schema.http import DEFAULT_CSP, GRAPHIQL_CSP
from settings import Settings, get_settings
from tests.support.factories import make_user, token_for
from tests.support.graphql_client import gql
from tests.support.orders import GUEST, PURCHASE

INTROSPECTION = "{ __schema { queryType { name } } }"
HIDDEN_INTROSPECTION = "query { ...F } fragment F on Query { __type(name: \"Provider\") { name } }"
BASE = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}


def security_headers(response: httpx.Response) -> dict[str, str]:
    names = [*BASE, "content-security-policy", "strict-transport-security"]
    return {n: response.headers[n] for n in names if n in response.headers}


async def service_requests() -> int:
    async with session_scope() as s:
        return await s.scalar(select(func.count()).select_from(ServiceRequest))


# --- security headers -------------------------------------------------------------------------------------


async def test_every_response_carries_the_security_headers_and_no_hsts_outside_production(api_client):
    responses = [
        await api_client.post("/graphql", json={"query": "{ __typename }"}),
        await api_client.get("/healthz"),
        await api_client.get("/track/ODM-0000-0000"),  # an HTML page (404)
        await api_client.post("/webhooks/nope", content=b"{}"),
    ]
    assert [r.status_code for r in responses] == [200, 200, 404, 404]
    assert [security_headers(r) for r in responses] == [{**BASE, "content-security-policy": DEFAULT_CSP}] * 4


async def test_production_adds_strict_transport_security(api_client, monkeypatch):
    monkeypatch.setattr(get_settings(), "environment", "production")
    response = await api_client.get("/healthz")
    assert response.headers["strict-transport-security"] == "max-age=63072000; includeSubDomains"


def test_graphiql_is_on_by_default_only_in_development():
    assert [Settings(environment=e).graphql_ide for e in ("development", "test")] == [True, False]
    assert Settings(environment="test", graphql_ide=True).graphql_ide is True


async def test_graphiql_is_not_served_when_off_and_is_served_with_its_own_csp_when_on(monkeypatch):
    # given GraphiQL off (the test environment's default)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server.app), base_url="http://test") as client:
        off = await client.get("/graphql", headers={"Accept": "text/html"})
    assert off.status_code == 404
    # given an app built with GraphiQL on
    monkeypatch.setattr(get_settings(), "graphql_ide", True)
    app = server.create_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        on = await client.get("/graphql", headers={"Accept": "text/html"})
    assert on.status_code == 200
    assert "graphiql" in on.text.lower()
    assert security_headers(on) == {**BASE, "content-security-policy": GRAPHIQL_CSP}
    assert "set-cookie" not in on.headers


# --- CORS and CSRF --------------------------------------------------------------------------------------------


async def test_a_foreign_origin_gets_no_cors_permission_and_an_allowed_one_does(api_client):
    allowed = get_settings().allowed_origins[0]
    foreign = await api_client.post("/graphql", json={"query": "{ __typename }"},
                                    headers={"Origin": "https://evil.example"})
    friend = await api_client.post("/graphql", json={"query": "{ __typename }"}, headers={"Origin": allowed})
    preflight = await api_client.options("/graphql", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert "access-control-allow-origin" not in foreign.headers
    assert friend.headers["access-control-allow-origin"] == allowed
    assert friend.headers["access-control-expose-headers"] == "X-Request-ID, Retry-After"
    assert (preflight.status_code, "access-control-allow-origin" in preflight.headers) == (400, False)


async def test_no_response_sets_a_cookie(api_client):
    customer = await make_user("ada@example.com")
    token = await token_for(customer)
    responses = [
        await api_client.post("/graphql", json={"query": "{ me { id } }"}, headers={"Authorization": f"Bearer {token}"}),
        await api_client.post("/graphql", json={"query": "mutation { nope }"}),
        await api_client.get("/graphql?query={__typename}"),
        await api_client.get("/healthz"),
        await api_client.get("/readyz"),
        await api_client.get("/track/ODM-0000-0000"),
    ]
    assert [r.headers.get_list("set-cookie") for r in responses] == [[]] * len(responses)
    assert [r.cookies.jar.__len__() for r in responses] == [0] * len(responses)


async def test_a_mutation_over_get_is_refused_and_writes_nothing(api_client, shop):
    import json

    variables = json.dumps({"input": shop.input(0, customer=GUEST)})
    response = await api_client.get("/graphql", params={"query": PURCHASE, "variables": variables})
    assert (response.status_code, response.text) == (400, "mutations are not allowed when using GET")
    assert await service_requests() == 0
    # while a query over GET is fine (no cookies exist, so GET carries no ambient credentials)
    assert (await api_client.get("/graphql", params={"query": "{ __typename }"})).json() == {
        "data": {"__typename": "Query"}}


# --- introspection ---------------------------------------------------------------------------------------


async def test_introspection_is_refused_to_anonymous_callers_and_customers_outside_development(api_client):
    token = await token_for(await make_user("ada@example.com"))
    refused = {"data": None, "errors": [{"message": "Introspection is only available to operators (admins)",
                                         "extensions": {"code": "FORBIDDEN"}}]}
    for query, who in ((INTROSPECTION, None), (INTROSPECTION, token), (HIDDEN_INTROSPECTION, None)):
        body = await gql(api_client, query, token=who)
        assert [(e["message"], e["extensions"]) for e in body["errors"]] == [
            (e["message"], e["extensions"]) for e in refused["errors"]]
        assert body["data"] is None
    # __typename is not introspection
    assert await gql(api_client, "{ __typename }") == {"data": {"__typename": "Query"}}


async def test_admins_may_introspect_and_so_may_anyone_in_development(api_client, monkeypatch):
    admin = await token_for(await make_user("ops@example.com", role="admin"))
    assert await gql(api_client, INTROSPECTION, token=admin) == {"data": {"__schema": {"queryType": {"name": "Query"}}}}
    monkeypatch.setattr(get_settings(), "environment", "development")
    assert await gql(api_client, HIDDEN_INTROSPECTION) == {"data": {"__type": {"name": "Provider"}}}


async def test_an_admin_without_mfa_may_not_introspect(api_client):
    admin = await token_for(await make_user("ops@example.com", role="admin"), mfa=False)
    body = await gql(api_client, INTROSPECTION, token=admin)
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]


# --- request ids and masked errors --------------------------------------------------------------------------


@pytest.mark.parametrize(("sent", "kept"), [
    ("abc-123_XYZ", True),
    ("a" * 64, True),
    ("a" * 65, False),
    ("bad id; drop table", False),
    ("", False),
])
async def test_a_sane_incoming_request_id_is_kept_and_anything_else_replaced(api_client, sent, kept):
    response = await api_client.post("/graphql", json={"query": "{ __typename }"}, headers={"X-Request-ID": sent})
    returned = response.headers["x-request-id"]
    if kept:
        assert returned == sent
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", returned)


async def test_an_unexpected_error_is_masked_with_the_request_id_and_logged_with_trace_user_and_request_id(
    api_client, monkeypatch
):
    # given a customer, and a resolver that fails unexpectedly (recording the request's log context)
    customer = await make_user("ada@example.com")
    token = await token_for(customer)
    seen: dict = {}

    async def broken(ctx, **_):
        seen.update(structlog.contextvars.get_contextvars(), context_request_id=ctx.request_id)
        raise RuntimeError("connection to 10.0.0.5 lost; password=hunter2")

    monkeypatch.setattr(booking_resolvers, "my_tickets", broken)
    # when the customer asks for its tickets
    with capture_logs() as logs:
        response = await api_client.post("/graphql", json={"query": "{ myTickets { __typename } }"},
                                         headers={"Authorization": f"Bearer {token}", "X-Request-ID": "req-42"})
    # then the answer is a generic message naming the request id of the header, without internals
    assert response.headers["x-request-id"] == "req-42"
    assert response.json()["errors"] == [{
        "message": "Internal server error (request id req-42)",
        "locations": [{"line": 1, "column": 3}], "path": ["myTickets"],
        "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": "req-42"},
    }]
    assert "hunter2" not in response.text and "10.0.0.5" not in response.text
    # and the request's log context and GraphQL context carry the same id
    assert (seen["request_id"], seen["context_request_id"]) == ("req-42", "req-42")
    # and the log line holds the request id, the user id and the stack trace
    [entry] = [e for e in logs if e["event"] == "graphql.unexpected_error"]
    assert (entry["request_id"], entry["user_id"], entry["log_level"]) == ("req-42", customer.id, "error")
    rendered = structlog.processors.dict_tracebacks(None, "error", dict(entry))
    [trace] = rendered["exception"]
    assert trace["exc_type"] == "RuntimeError"
    assert trace["frames"][-1]["name"] == "broken"


# --- secrets ---------------------------------------------------------------------------------------------


def test_env_files_are_ignored_by_git_except_the_template():
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    names = [".env", ".env.local", ".env.production", ".env.example"]
    out = subprocess.run(["git", "check-ignore", "--no-index", *names], cwd=root, capture_output=True, text=True)
    assert out.stdout.split() == [".env", ".env.local", ".env.production"]

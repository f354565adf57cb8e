"""The schema's extensions: validation results are cached, limits hold, unexpected errors are masked."""

from __future__ import annotations

import httpx
from strawberry.extensions.validation_cache import _get_validate_cache

import schema as odim_schema
import server
from resolvers.context import Context


async def test_validation_cache_hits_for_a_repeated_operation():
    # Given a query validated once
    query = "{ services { id name } me { id } }"
    await odim_schema.schema.execute(query, context_value=Context())
    before = _get_validate_cache(512).cache_info()
    # When the same operation runs three more times
    for _ in range(3):
        result = await odim_schema.schema.execute(query, context_value=Context())
        assert result.errors is None
    after = _get_validate_cache(512).cache_info()
    # Then validation came from the cache every time
    assert (after.hits - before.hits, after.misses - before.misses) == (3, 0)


async def post(query: str) -> dict:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server.app), base_url="http://test") as client:
        response = await client.post("/graphql", json={"query": query})
        return response.json()


async def test_alias_limit_refuses_alias_floods():
    flood = "{ " + " ".join(f"a{i}: services {{ id }}" for i in range(31)) + " }"
    body = await post(flood)
    assert body["data"] is None
    assert body["errors"][0]["message"] == "31 aliases found. Allowed: 30"


async def test_unexpected_errors_are_masked_with_a_request_id(monkeypatch):
    from domain.catalogue import services as catalogue

    async def boom(*args, **kwargs):
        raise RuntimeError("password=hunter2 leaked internals")

    monkeypatch.setattr(catalogue, "list_services", boom)
    body = await post("{ services { id } }")
    error = body["errors"][0]
    assert error["message"].startswith("Internal server error (request id ")
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert "hunter2" not in str(body)


async def test_cors_allows_configured_origins_only():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server.app), base_url="http://test") as client:
        allowed = await client.options("/graphql", headers={
            "Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        refused = await client.options("/graphql", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers

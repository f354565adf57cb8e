"""Abuse limits: the per-IP limit on /graphql (429 + Retry-After, fails open without Redis),
the per-account limits (purchase fails open, login/register/password reset fail closed), who the
client IP is behind a proxy, the query depth/token/alias limits, page sizes, the request body
limit and the persisted-query allow-list. Every refusal is checked to have written nothing."""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace

import httpx
import pytest
from sqlalchemy import func, select
from structlog.testing import capture_logs

import server
from models import Booking, ServiceRequest
from models.db import session_scope
from resolvers import ratelimit
from resolvers.ids import encode_id
from schema.security import query_hash
from settings import get_settings
from tests.support.bookings import MONDAY, bookable_provider
from tests.support.factories import make_user, token_for
from tests.support.graphql_client import gql
from tests.support.orders import GUEST, PURCHASE, Shop

DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connections are refused at once
TYPENAME = {"query": "{ __typename }"}
HOLD = """
mutation($input: HoldSlotInput!) { holdSlot(input: $input) { booking { id } errors { field code message } } }
"""


async def rows(model) -> int:
    async with session_scope() as s:
        return await s.scalar(select(func.count()).select_from(model))


def fake_ctx(ip: str = "203.0.113.7") -> SimpleNamespace:
    """A resolver context with an HTTP request from ``ip`` and a Strawberry-like sub-response."""
    request = SimpleNamespace(scope={"type": "http", "client": (ip, 5000), "headers": [], "state": {}})
    return SimpleNamespace(request=request, response=SimpleNamespace(status_code=None, headers={}))


def purchase_input(shop: Shop, **extra) -> dict:
    return {"input": shop.input(0, **extra)}


# --- the per-IP limit on /graphql ----------------------------------------------------------------------


async def test_over_the_public_limit_a_request_gets_429_with_retry_after_and_is_not_executed(
    api_client, monkeypatch, shop
):
    # given a limit of 3 requests a minute per IP, and 3 requests already made
    monkeypatch.setattr(get_settings(), "rate_limit_public", "3/minute")
    for _ in range(3):
        assert (await api_client.post("/graphql", json=TYPENAME)).status_code == 200
    # when a fourth request, a guest purchase, comes from the same IP
    response = await api_client.post("/graphql", json={"query": PURCHASE, "variables": purchase_input(
        shop, customer=GUEST)})
    # then it is refused with 429, the seconds to wait, a GraphQL-shaped error, and nothing written
    wait = int(response.headers["retry-after"])
    assert 1 <= wait <= 60
    assert response.status_code == 429
    assert response.json() == {"errors": [{
        "message": f"Too many requests from your address: try again in {wait} s",
        "extensions": {"code": "RATE_LIMITED", "retryAfterSeconds": wait},
    }]}
    assert await rows(ServiceRequest) == 0


async def test_the_public_limit_counts_per_ip_and_believes_x_forwarded_for_only_from_trusted_proxies(monkeypatch):
    # given a limit of 2 requests a minute per IP, and a client at 127.0.0.1 that claims other IPs
    monkeypatch.setattr(get_settings(), "rate_limit_public", "2/minute")
    transport = httpx.ASGITransport(app=server.app, client=("127.0.0.1", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        async def post(forwarded: str) -> int:
            return (await client.post("/graphql", json=TYPENAME, headers={"X-Forwarded-For": forwarded})).status_code

        # when the peer is not a trusted proxy: the header is ignored, the three requests are one IP's
        assert [await post(f"198.51.100.{i}") for i in (1, 2, 3)] == [200, 200, 429]
        # when 127.0.0.1 is a trusted proxy: each forwarded client has its own budget
        monkeypatch.setattr(get_settings(), "trusted_proxies", ["127.0.0.0/8"])
        assert [await post("198.51.100.1, 10.0.0.1"), await post("198.51.100.2"), await post("198.51.100.1"),
                await post("198.51.100.1")] == [200, 200, 200, 429]


def test_the_client_ip_is_the_peer_unless_the_peer_is_a_trusted_proxy(monkeypatch):
    forwarded = [(b"x-forwarded-for", b" 2001:db8::1 , 10.0.0.9")]
    scope = {"client": ("10.1.2.3", 1), "headers": forwarded}
    assert ratelimit.client_ip(scope) == "10.1.2.3"
    monkeypatch.setattr(get_settings(), "trusted_proxies", ["10.0.0.0/8"])
    assert ratelimit.client_ip(scope) == "2001:db8::1"
    assert ratelimit.client_ip({"client": ("10.1.2.3", 1), "headers": [(b"x-forwarded-for", b"not-an-ip")]}) == "10.1.2.3"
    assert ratelimit.client_ip({"client": ("192.0.2.1", 1), "headers": forwarded}) == "192.0.2.1"
    assert ratelimit.client_ip({"client": None, "headers": []}) == "unknown"


async def test_without_redis_the_public_limit_lets_requests_through_and_says_so_in_the_log(api_client, monkeypatch):
    # given a limit of 1 request a minute and a Redis that refuses connections
    monkeypatch.setattr(get_settings(), "rate_limit_public", "1/minute")
    monkeypatch.setattr(get_settings(), "redis_url", DEAD_REDIS)
    # when three requests come
    with capture_logs() as logs:
        statuses = [(await api_client.post("/graphql", json=TYPENAME)).status_code for _ in range(3)]
    # then all are served (fail open) and each is logged
    assert statuses == [200, 200, 200]
    assert [(e["event"], e["bucket"], e["fails"]) for e in logs if e["event"] == "ratelimit.unavailable"] == [
        ("ratelimit.unavailable", "public", "open")] * 3


async def test_other_routes_are_not_counted_against_the_graphql_limit(api_client, monkeypatch):
    monkeypatch.setattr(get_settings(), "rate_limit_public", "1/minute")
    assert [(await api_client.get("/healthz")).status_code for _ in range(3)] == [200, 200, 200]
    assert [(await api_client.post("/graphql", json=TYPENAME)).status_code for _ in range(2)] == [200, 429]


def test_the_default_limits_are_the_documented_ones():
    from settings import Settings

    defaults = {name: Settings.model_fields[name].default for name in (
        "rate_limit_public", "rate_limit_login", "rate_limit_login_ip", "rate_limit_register",
        "rate_limit_password_reset", "rate_limit_purchase", "max_request_body_bytes", "persisted_queries_only")}
    assert defaults == {
        "rate_limit_public": "100/minute",  # seed requirement
        "rate_limit_login": "10/minute", "rate_limit_login_ip": "30/minute", "rate_limit_register": "5/hour",
        "rate_limit_password_reset": "5/hour", "rate_limit_purchase": "20/minute",
        "max_request_body_bytes": 1_048_576, "persisted_queries_only": False,
    }


# --- per-account limits ---------------------------------------------------------------------------------


async def test_over_the_purchase_limit_a_customer_gets_rate_limited_and_no_order_is_written(
    api_client, monkeypatch, shop
):
    # given a limit of 2 purchases a minute, and a customer who made 2
    monkeypatch.setattr(get_settings(), "rate_limit_purchase", "2/minute")
    token = await token_for(await make_user("ada@example.com"))
    for _ in range(2):
        body = await gql(api_client, PURCHASE, purchase_input(shop), token=token)
        assert body["data"]["purchaseService"]["errors"] == []
    # when the customer buys a third time
    response = await api_client.post("/graphql", json={"query": PURCHASE, "variables": purchase_input(shop)},
                                     headers={"Authorization": f"Bearer {token}"})
    # then the payload holds RATE_LIMITED with the wait, the HTTP answer is 429 + Retry-After, and no order
    wait = int(response.headers["retry-after"])
    assert response.status_code == 429
    assert response.json()["data"]["purchaseService"] == {
        "serviceRequest": None, "checkoutUrl": None, "guestAccessToken": None,
        "errors": [{"field": None, "code": "RATE_LIMITED", "message": f"Too many purchases: try again in {wait} s"}],
    }
    assert await rows(ServiceRequest) == 2


async def test_guests_are_limited_per_email_address(api_client, monkeypatch, shop):
    # given a limit of 1 purchase a minute
    monkeypatch.setattr(get_settings(), "rate_limit_purchase", "1/minute")
    first = await gql(api_client, PURCHASE, purchase_input(shop, customer=GUEST))
    assert first["data"]["purchaseService"]["errors"] == []
    # when the same guest (email in another case) buys again, and then another guest buys
    again = await gql(api_client, PURCHASE, purchase_input(shop, customer={**GUEST, "email": "BOB@example.com "}))
    other = await gql(api_client, PURCHASE, purchase_input(shop, customer={**GUEST, "email": "eve@example.com"}))
    # then only the same guest is refused
    assert [e["code"] for e in again["data"]["purchaseService"]["errors"]] == ["RATE_LIMITED"]
    assert again["data"]["purchaseService"]["serviceRequest"] is None
    assert other["data"]["purchaseService"]["errors"] == []
    assert await rows(ServiceRequest) == 2


async def test_over_the_purchase_limit_holding_a_slot_is_refused_and_no_booking_is_written(api_client, monkeypatch):
    # given a limit of 1 purchase a minute and a customer who already held a slot
    monkeypatch.setattr(get_settings(), "rate_limit_purchase", "1/minute")
    b = await bookable_provider()
    token = await token_for(await make_user("ada@example.com"))

    async def hold_at(hour: int) -> dict:
        start = (MONDAY + timedelta(hours=hour)).isoformat()
        body = await gql(api_client, HOLD, {"input": {"providerId": encode_id("Provider", b.provider.id),
                                                     "serviceId": encode_id("Service", b.service.id), "start": start}},
                         token=token)
        return body["data"]["holdSlot"]

    assert (await hold_at(8))["errors"] == []
    # when the customer holds another slot
    refused = await hold_at(10)
    # then it is RATE_LIMITED and only the first hold exists
    assert refused["booking"] is None
    assert [(e["field"], e["code"]) for e in refused["errors"]] == [(None, "RATE_LIMITED")]
    assert await rows(Booking) == 1


async def test_login_is_limited_per_email_and_per_ip_and_sets_429_on_the_response(monkeypatch):
    # given 2 login attempts a minute per email and 3 per IP
    monkeypatch.setattr(get_settings(), "rate_limit_login", "2/minute")
    monkeypatch.setattr(get_settings(), "rate_limit_login_ip", "3/minute")
    # when one IP tries ada twice, then a third time, then bob and carol
    ctx = fake_ctx()
    outcomes = [await ratelimit.limit(ctx, "login", email) for email in
                ("ada@example.com", "Ada@Example.com ", "ada@example.com", "bob@example.com", "carol@example.com")]
    # then ada's third attempt is refused by the per-email rule, carol's by the per-IP rule (ada 2 + bob 1)
    assert [o is None for o in outcomes] == [True, True, False, True, False]
    assert all(1 <= o <= 60 for o in outcomes if o is not None)
    assert (ctx.response.status_code, ctx.response.headers["Retry-After"]) == (429, str(outcomes[-1]))
    # and another IP may still try bob
    assert await ratelimit.limit(fake_ctx("203.0.113.8"), "login", "bob@example.com") is None


@pytest.mark.parametrize("bucket", ["login", "register", "password_reset"])
async def test_without_redis_login_register_and_password_reset_fail_closed(monkeypatch, bucket):
    monkeypatch.setattr(get_settings(), "redis_url", DEAD_REDIS)
    ctx = fake_ctx()
    with capture_logs() as logs:
        wait = await ratelimit.limit(ctx, bucket, "ada@example.com")
    assert wait == get_settings().rate_limit_closed_retry_seconds
    assert (ctx.response.status_code, ctx.response.headers) == (429, {"Retry-After": str(wait)})
    assert [(e["event"], e["bucket"], e.get("fails")) for e in logs] == [
        ("ratelimit.unavailable", bucket, "closed"), ("ratelimit.refused", bucket, None)]


async def test_without_redis_purchases_fail_open(api_client, monkeypatch, shop):
    # given a Redis that refuses connections and a purchase limit of 1 a minute (the sandbox gateway
    # stands for a remote one: its records stay on the live Redis)
    monkeypatch.setattr(get_settings(), "sandbox_redis_url", get_settings().redis_url)
    monkeypatch.setattr(get_settings(), "redis_url", DEAD_REDIS)
    monkeypatch.setattr(get_settings(), "rate_limit_purchase", "1/minute")
    token = await token_for(await make_user("ada@example.com"))
    # when the customer buys twice: both are accepted (the shop keeps selling)
    for _ in range(2):
        body = await gql(api_client, PURCHASE, purchase_input(shop), token=token)
        assert body["data"]["purchaseService"]["errors"] == []
    assert await rows(ServiceRequest) == 2


async def test_limit_keys_reach_redis_only_hashed():
    import redis.asyncio as aioredis

    await ratelimit.limit(fake_ctx(), "login", "ada@example.com")
    client = aioredis.from_url(get_settings().redis_url)
    keys = [k.decode() for k in await client.keys("*")]
    await client.aclose()
    assert len(keys) == 2
    assert not [k for k in keys if "ada" in k or "203.0.113.7" in k]


# --- query limits and page sizes -----------------------------------------------------------------------


def deep_purchase(depth: int) -> str:
    """A purchaseService mutation of operation depth ``depth`` (``depth`` + 1 nested fields: the
    depth limiter counts the root field as 0), through the serviceRequest/disputes loop."""
    inner = "id"
    for level in range(depth, 1, -1):
        inner = f"{'serviceRequest' if level % 2 == 0 else 'disputes'} {{ {inner} }}"
    return f"mutation($input: PurchaseServiceInput!) {{ purchaseService(input: $input) {{ {inner} }} }}"


async def test_an_operation_deeper_than_the_limit_is_refused_before_it_runs(api_client, shop):
    limit = get_settings().max_query_depth
    allowed = await gql(api_client, deep_purchase(limit), purchase_input(shop, customer=GUEST))
    assert "errors" not in allowed
    # when the same purchase is selected one level deeper
    body = await gql(api_client, deep_purchase(limit + 1), purchase_input(shop, customer={**GUEST, "email": "e@x.org"}))
    # then nothing runs: one error, no data, and only the first purchase exists
    assert body == {"data": None, "errors": [{
        "message": f"'anonymous' exceeds maximum operation depth of {limit}",
        "locations": body["errors"][0]["locations"]}]}
    assert await rows(ServiceRequest) == 1


async def test_more_aliases_than_the_limit_are_refused_before_anything_runs(api_client, shop):
    limit = get_settings().max_query_aliases
    fields = " ".join(f"p{i}: purchaseService(input: $input) {{ errors {{ code }} }}" for i in range(limit + 1))
    body = await gql(api_client, f"mutation($input: PurchaseServiceInput!) {{ {fields} }}",
                     purchase_input(shop, customer=GUEST))
    assert body["data"] is None
    assert [e["message"] for e in body["errors"]] == [
        f"{limit + 1} aliases found. Allowed: {limit}"]
    assert await rows(ServiceRequest) == 0


async def test_a_document_of_more_tokens_than_the_limit_is_refused_before_anything_runs(api_client, shop):
    limit = get_settings().max_query_tokens
    padding = " ".join(["__typename"] * limit)
    query = (f"mutation($input: PurchaseServiceInput!) {{ purchaseService(input: $input) {{ errors {{ code }} }} "
             f"{padding} }}")
    body = await gql(api_client, query, purchase_input(shop, customer=GUEST))
    assert body["data"] is None
    assert [e["message"] for e in body["errors"]] == [
        f"Syntax Error: Document contains more than {limit} tokens. Parsing aborted."]
    assert await rows(ServiceRequest) == 0


@pytest.mark.parametrize("first", [0, -1, 101])
async def test_a_page_size_outside_1_to_the_maximum_is_a_clear_error(api_client, first):
    limit = get_settings().max_page_size
    body = await gql(api_client, "query($first: Int) { providersNearby(near: {latitude: 4.05, longitude: 9.77}, "
                                 "radiusKm: 5, first: $first) { edges { cursor } } }", {"first": first})
    assert body["data"] is None
    assert [(e["message"], e["extensions"]) for e in body["errors"]] == [
        (f"first must be between 1 and {limit}", {"code": "INVALID_PAGE_SIZE", "field": "first"})]


async def test_every_query_field_taking_first_refuses_more_than_the_maximum(api_client):
    """Enumerates the schema: every Query field with a ``first`` argument is called as an admin with
    ``first`` = max_page_size + 1 (other required arguments get placeholder values) and must answer
    INVALID_PAGE_SIZE, whatever else is wrong with the call."""
    from graphql import GraphQLNonNull, get_named_type

    import schema

    limit = get_settings().max_page_size
    token = await token_for(await make_user("ops@example.com", role="admin"))
    provider_token = await token_for((await bookable_provider()).provider_user)
    placeholders = {"Float": "4.05", "Int": "1", "String": '"x"', "ID": '"x"', "DateTime": '"2027-03-01T00:00:00Z"',
                    "Boolean": "true", "ApplicationStatus": "SUBMITTED", "GeoPointInput": "{latitude: 4.05, longitude: 9.77}",
                    "to": '"2027-03-02T00:00:00Z"'}  # `to`: after `from`
    fields = schema.schema._schema.query_type.fields
    outcomes = {}
    for name, field in sorted(fields.items()):
        if "first" not in field.args:
            continue
        args = [f"first: {limit + 1}"] + [
            f"{arg}: {placeholders['to' if arg == 'to' else get_named_type(a.type).name]}"
            for arg, a in field.args.items() if isinstance(a.type, GraphQLNonNull) and arg != "first"]
        selection = " { __typename }" if hasattr(get_named_type(field.type), "fields") else ""
        # myPayouts is a provider's own list: asked by a provider account
        who = provider_token if name == "myPayouts" else token
        body = await gql(api_client, f"{{ {name}({', '.join(args)}){selection} }}", token=who)
        outcomes[name] = [e.get("extensions", {}).get("code") for e in body.get("errors", [])]
    assert len(outcomes) >= 15, outcomes
    assert {name: codes for name, codes in outcomes.items() if codes != ["INVALID_PAGE_SIZE"]} == {}


# --- request body size -----------------------------------------------------------------------------------


async def test_a_body_over_the_limit_is_refused_with_413_by_content_length_and_nothing_runs(
    api_client, monkeypatch, shop
):
    monkeypatch.setattr(get_settings(), "max_request_body_bytes", 2000)
    variables = purchase_input(shop, customer={**GUEST, "requirements": "x" * 3000})
    response = await api_client.post("/graphql", json={"query": PURCHASE, "variables": variables})
    assert response.status_code == 413
    assert response.json() == {"errors": [{"message": "Request body too large: at most 2000 bytes",
                                           "extensions": {"code": "REQUEST_TOO_LARGE", "maxBytes": 2000}}]}
    assert await rows(ServiceRequest) == 0


async def test_a_streamed_body_is_counted_as_it_arrives_whatever_content_length_says(monkeypatch, shop):
    # given a limit of 2000 bytes and a body of about 3500 sent in 500-byte chunks under a false Content-Length
    monkeypatch.setattr(get_settings(), "max_request_body_bytes", 2000)
    body = json.dumps({"query": PURCHASE, "variables": purchase_input(
        shop, customer={**GUEST, "requirements": "x" * 3000})}).encode()
    chunks = [body[i:i + 500] for i in range(0, len(body), 500)]
    received: list[dict] = []

    async def receive() -> dict:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: dict) -> None:
        received.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/graphql", "raw_path": b"/graphql", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"test"), (b"content-type", b"application/json"), (b"content-length", b"100")],
             "client": ("127.0.0.1", 4000), "server": ("test", 80)}
    # when it is sent
    await server.app(scope, receive, send)
    # then the answer is 413 once the limit is passed, and no order is written
    assert received[0]["status"] == 413
    assert json.loads(received[1]["body"])["errors"][0]["extensions"]["code"] == "REQUEST_TOO_LARGE"
    assert len(chunks) == len(body) // 500 - 4  # reading stopped after the fifth chunk (2500 bytes)
    assert await rows(ServiceRequest) == 0


async def test_a_chunked_body_without_content_length_over_the_limit_gets_413(api_client, monkeypatch):
    monkeypatch.setattr(get_settings(), "max_request_body_bytes", 1000)

    async def stream():
        for _ in range(5):
            yield b" " * 300

    response = await api_client.post("/graphql", content=stream(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"] == {"code": "REQUEST_TOO_LARGE", "maxBytes": 1000}


# --- persisted queries -----------------------------------------------------------------------------------


@pytest.fixture
def allow_list(tmp_path, monkeypatch):
    """Allow-list mode on, with one listed query (``ALLOWED``)."""
    path = tmp_path / "persisted.json"
    path.write_text(json.dumps({query_hash(ALLOWED): ALLOWED}))
    monkeypatch.setattr(get_settings(), "persisted_queries_file", path)
    monkeypatch.setattr(get_settings(), "persisted_queries_only", True)
    return path


ALLOWED = "query Hello { __typename }"


async def test_in_allow_list_mode_a_listed_query_runs_by_hash_or_by_text(api_client, allow_list):
    by_hash = await api_client.post("/graphql", json={
        "operationName": "Hello",
        "extensions": {"persistedQuery": {"version": 1, "sha256Hash": query_hash(ALLOWED)}}})
    by_text = await api_client.post("/graphql", json={"query": ALLOWED})
    assert (by_hash.status_code, by_hash.json()) == (200, {"data": {"__typename": "Query"}})
    assert (by_text.status_code, by_text.json()) == (200, {"data": {"__typename": "Query"}})


async def test_in_allow_list_mode_any_other_document_is_refused_and_not_run(api_client, allow_list, shop):
    refused = {"data": None, "errors": [{
        "message": "This server only runs its persisted queries; this one is not among them",
        "extensions": {"code": "PERSISTED_QUERY_NOT_ALLOWED"}}]}
    # a purchase sent as text
    assert await gql(api_client, PURCHASE, purchase_input(shop, customer=GUEST)) == refused
    # a listed query with one character changed
    assert await gql(api_client, ALLOWED + " ") == refused
    # an unknown hash
    unknown = await api_client.post("/graphql", json={
        "operationName": "Purchase", "extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}})
    assert unknown.json() == refused
    assert await rows(ServiceRequest) == 0


async def test_outside_allow_list_mode_an_unknown_hash_is_persisted_query_not_found(api_client):
    response = await api_client.post("/graphql", json={
        "extensions": {"persistedQuery": {"version": 1, "sha256Hash": "f" * 64}}})
    assert response.json() == {"data": None, "errors": [{
        "message": "PersistedQueryNotFound", "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}]}


def test_the_allow_list_is_built_from_valid_documents_only(tmp_path):
    from schema.security import build_allow_list

    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "hello.graphql").write_text(ALLOWED)
    (tmp_path / "notes.txt").write_text("{ nope }")  # not a .graphql/.gql file: ignored
    assert build_allow_list([tmp_path]) == {query_hash(ALLOWED): ALLOWED}
    (tmp_path / "ops" / "bad.gql").write_text("{ nope }")
    with pytest.raises(ValueError, match=r"bad\.gql: Cannot query field 'nope' on type 'Query'"):
        build_allow_list([tmp_path])


async def test_a_wrong_entry_in_the_allow_list_file_is_dropped(api_client, tmp_path, monkeypatch):
    # given an allow-list whose only entry's hash is not its query's
    path = tmp_path / "persisted.json"
    path.write_text(json.dumps({"0" * 64: ALLOWED}))
    monkeypatch.setattr(get_settings(), "persisted_queries_file", path)
    monkeypatch.setattr(get_settings(), "persisted_queries_only", True)
    # then the query is not allowed, by its text or by the wrong hash
    assert (await gql(api_client, ALLOWED))["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_ALLOWED"
    by_hash = await api_client.post("/graphql", json={"extensions": {"persistedQuery": {"sha256Hash": "0" * 64}}})
    assert by_hash.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_ALLOWED"

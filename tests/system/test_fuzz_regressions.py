"""Regression tests for the bugs the GraphQL fuzzer found (tests/system/fuzzing.py): each input once made
the server answer an error without ``extensions.code`` or an INTERNAL_SERVER_ERROR."""

from __future__ import annotations

import base64

from sqlalchemy import func, select

from models import IdempotencyKey, ServiceRequest
from models.db import session_scope
from tests.support.factories import make_provider, make_service, make_user
from tests.support.graphql_client import gql, login
from tests.system import fuzzing

NODE = "query($id: ID!) { node(id: $id) { id ... on Provider { displayName } } }"
INVALID_ID = {"message": "Not an id of this API: pass the `id` of an object it returned",
              "locations": [{"line": 1, "column": 19}], "path": ["node"],
              "extensions": {"code": "INVALID_ID", "field": "id"}}
NUL_REFUSED = [{"message": "Text must not contain the NUL character (U+0000)", "extensions": {"code": "INVALID_INPUT"}}]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def test_node_with_an_id_that_is_not_a_global_id_of_a_node_type_is_invalid_id(api_client):
    # given: ids the fuzzer sent: not base64, no colon, an unknown type, a type that is not a Node,
    # a non-numeric database id, an empty string, a bare number
    bad_ids = ["V", "1026", "", b64("Nope:1"), b64("Money:1"), b64("Provider:abc"), b64("Provider:-3"),
               b64("Provider:"), b64("Provider:１")]
    for bad in bad_ids:
        # when
        body = await gql(api_client, NODE, {"id": bad})
        # then
        assert body == {"data": {"node": None}, "errors": [INVALID_ID]}, bad


async def test_node_with_a_database_id_beyond_bigint_is_null_not_an_internal_error(api_client):
    body = await gql(api_client, NODE, {"id": b64(f"Provider:{2**63}")})

    assert body == {"data": {"node": None}}


async def test_node_still_resolves_a_real_object(api_client):
    provider = await make_provider(display_name="Eko Plumbing")

    body = await gql(api_client, NODE, {"id": b64(f"Provider:{provider.id}")})

    assert body == {"data": {"node": {"id": b64(f"Provider:{provider.id}"), "displayName": "Eko Plumbing"}}}


async def test_a_nul_character_in_a_literal_or_a_variable_is_refused_before_anything_runs(api_client):
    # given: a customer and a service to buy
    await make_user("ada@example.com")
    service, tiers = await make_service(tiers=1)
    token = await login(api_client, "ada@example.com")
    sid = b64(f"Service:{service.id}")
    # when: the fuzzer's inputs, as a literal escape and as a variable
    literal = await gql(api_client, '{ services(category: "plumb\\u0000ing") { id } }')
    purchase = await gql(
        api_client,
        "mutation($input: PurchaseServiceInput!) { purchaseService(input: $input) { errors { code } } }",
        {"input": {"serviceId": sid, "idempotencyKey": "key\x00"}}, token=token,
    )
    # then: one typed error each, and no order and no idempotency key written
    assert literal == {"data": None, "errors": NUL_REFUSED}
    assert purchase == {"data": None, "errors": NUL_REFUSED}
    async with session_scope() as session:
        assert await session.scalar(select(func.count()).select_from(ServiceRequest)) == 0
        assert await session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0


async def test_other_unicode_escapes_are_not_refused(api_client):
    await make_service(name="Leak repair", category="plumbing")

    body = await gql(api_client, '{ services(category: "plumb\\u0069ng") { name } }')

    assert body == {"data": {"services": [{"name": "Leak repair"}]}}


def b64url(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


async def test_forged_cursors_with_out_of_range_ids_or_instants_are_invalid_cursor(api_client):
    # given: a customer and an admin (MFA-verified sign-in)
    await make_user("ada@example.com")
    await make_user("root@example.com", role="admin")
    customer, admin = await fuzzing.mint_token("customer"), await fuzzing.mint_token("admin")
    beyond_bigint = 2**63
    forged = [
        (customer, "serviceRequests", b64url(f"2020-01-01T00:00:00+00:00|{beyond_bigint}")),
        (customer, "serviceRequests", b64url("9999-12-31T23:59:59-23:00|1")),
        (customer, "serviceRequests", b64url("2020-01-01T00:00:00|1")),
        (customer, "myConversations", b64url(f"Conversation:2020-01-01T00:00:00+00:00|{beyond_bigint}")),
        (customer, "myConversations", b64url("Conversation:0001-01-01T00:00:00+23:00|1")),
        (customer, "myBookings", b64url(f"Booking:{beyond_bigint}")),
        (customer, "myTickets", b64url(f"Ticket:{beyond_bigint}")),
        (customer, "myTickets", b64url("Ticket:-1")),
        (admin, "escalations", b64url(f"Escalation:{beyond_bigint}")),
    ]
    for token, field, cursor in forged:
        # when
        body = await gql(api_client, f"query($a: String) {{ {field}(after: $a) {{ edges {{ cursor }} }} }}",
                         {"a": cursor}, token=token)
        # then
        assert body["data"] is None, (field, cursor, body)
        assert [(e["extensions"]["code"], e["path"]) for e in body["errors"]] == [("INVALID_CURSOR", [field])], body


async def test_a_raw_id_beyond_bigint_is_invalid_id_not_an_internal_error(api_client):
    await make_user("root@example.com", role="admin")
    admin = await fuzzing.mint_token("admin")

    body = await gql(api_client, 'mutation { verifyProvider(input: {providerId: "1180591620717411303424"}) '
                                 "{ provider { id } errors { field code } } }", token=admin)

    assert body == {"data": {"verifyProvider": {"provider": None, "errors": [{"field": "providerId", "code": "INVALID_ID"}]}}}

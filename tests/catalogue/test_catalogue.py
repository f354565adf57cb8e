"""The catalogue through GraphQL: services, and tiers reached by global id."""

from __future__ import annotations

import httpx

import server
from resolvers.ids import encode_id
from tests.support.factories import make_service
from tests.support.statements import count_statements


async def post(query: str, variables: dict | None = None) -> dict:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server.app), base_url="http://test") as client:
        return (await client.post("/graphql", json={"query": query, "variables": variables or {}})).json()


async def test_a_tier_is_reached_by_its_global_id_with_its_prices_in_two_statements():
    # given two services with two tiers each
    await make_service(name="Leak repair", prices={"XAF": 10000, "NGN": 1000000})
    _, tiers = await make_service(name="Deep cleaning", category="cleaning", prices={"XAF": 20000})
    query = "query($id: ID!){ node(id:$id){ ... on ServiceTier { name price { amountMinor currency formatted } prices { currency } } } }"
    # when
    with count_statements() as statements:
        body = await post(query, {"id": encode_id("ServiceTier", tiers[1].id)})
    missing = await post(query, {"id": encode_id("ServiceTier", 999_999)})
    # then
    assert body == {"data": {"node": {"name": "Standard", "price": {"amountMinor": 40000, "currency": "XAF", "formatted": "40,000 FCFA"},
                                      "prices": [{"currency": "XAF"}]}}}
    assert len(statements) == 2
    assert missing == {"data": {"node": None}}

"""The admin request table (Query.serviceRequests with filter and orderBy): every sort order pages
through keyset cursors without gaps or repeats, in a constant number of statements per page."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from models import ServiceRequest
from models.db import session_scope
from tests.support.factories import make_user, token_for
from tests.support.graphql_client import gql
from tests.support.orders import domain_purchase
from tests.support.statements import count_statements

TABLE = """query($first: Int, $after: String, $order: ServiceRequestOrder, $filter: ServiceRequestFilter) {
  serviceRequests(first: $first, after: $after, orderBy: $order, filter: $filter) {
    totalCount edges { cursor node { reference status } } pageInfo { hasNextPage endCursor } } }"""

# (status, amount) of seven orders; amounts repeat so the id breaks ties
ROWS = [("awaiting_payment", 11000), ("completed", 22000), ("cancelled", 11000), ("in_progress", 33000),
        ("completed", 11000), ("pending_contact", 22000), ("team_assigned", 44000)]


async def seven_orders(shop) -> list[ServiceRequest]:
    made = [await domain_purchase(shop) for _ in ROWS]
    async with session_scope() as s:
        for request, (status, amount) in zip(made, ROWS, strict=True):
            await s.execute(update(ServiceRequest).where(ServiceRequest.id == request.id)
                            .values(status=status, amount_minor=amount))
    async with session_scope() as s:
        return [await s.get(ServiceRequest, r.id) for r in made]


async def all_pages(client, token: str, order: dict | None, *, first: int = 3, flt: dict | None = None) -> list[str]:
    seen, after = [], None
    while True:
        body = await gql(client, TABLE, {"first": first, "after": after, "order": order, "filter": flt}, token=token)
        page = body["data"]["serviceRequests"]
        seen += [e["node"]["reference"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return seen
        after = page["pageInfo"]["endCursor"]


@pytest.mark.parametrize("field,direction", [
    ("CREATED_AT", "DESC"), ("CREATED_AT", "ASC"), ("UPDATED_AT", "DESC"), ("AMOUNT", "ASC"), ("AMOUNT", "DESC"),
    ("STATUS", "ASC"), ("STATUS", "DESC"),
])
async def test_every_sort_order_pages_through_every_row_once_in_order(api_client, shop, field, direction):
    # given seven orders with repeating amounts and statuses, and an admin
    rows = await seven_orders(shop)
    admin = await token_for(await make_user("ops@odim.local", role="admin"))
    # when the admin pages through the table three rows at a time in that order
    seen = await all_pages(api_client, admin, {"field": field, "direction": direction})
    # then every row comes exactly once, in the order the database sorts by (value, then id)
    attr = {"CREATED_AT": "created_at", "UPDATED_AT": "updated_at", "AMOUNT": "amount_minor", "STATUS": "status"}[field]
    expected = sorted(rows, key=lambda r: (getattr(r, attr), r.id), reverse=direction == "DESC")
    assert seen == [r.reference for r in expected]


async def test_filters_and_order_combine_and_a_page_takes_the_same_statements(api_client, shop):
    rows = await seven_orders(shop)
    admin_user = await make_user("ops@odim.local", role="admin")
    admin = await token_for(admin_user)
    # given a status filter with an amount order
    seen = await all_pages(api_client, admin, {"field": "AMOUNT", "direction": "DESC"}, first=1,
                           flt={"status": "COMPLETED"})
    completed = sorted((r for r in rows if r.status == "completed"), key=lambda r: (r.amount_minor, r.id), reverse=True)
    assert seen == [r.reference for r in completed]
    # and a page of 2 and a page of 7 take the same number of statements
    counts = []
    for first in (2, 7):
        with count_statements() as statements:
            await gql(api_client, TABLE, {"first": first, "order": {"field": "STATUS", "direction": "ASC"}}, token=admin)
        counts.append(len(statements))
    assert counts[0] == counts[1]


async def test_a_cursor_of_another_order_is_refused_and_customers_see_only_theirs(api_client, shop):
    await seven_orders(shop)
    admin = await token_for(await make_user("ops@odim.local", role="admin"))
    body = await gql(api_client, TABLE, {"first": 2, "order": {"field": "AMOUNT", "direction": "ASC"}}, token=admin)
    cursor = body["data"]["serviceRequests"]["pageInfo"]["endCursor"]
    # when the cursor is used with another order
    body = await gql(api_client, TABLE, {"first": 2, "after": cursor, "order": {"field": "STATUS"}}, token=admin)
    # then it is a typed error
    assert [(e["extensions"]["code"], e["extensions"]["field"]) for e in body["errors"]] == [("INVALID_CURSOR", "after")]
    # and a customer with no orders sees none, whatever the order
    customer = await token_for(await make_user("ada@example.cm"))
    body = await gql(api_client, TABLE, {"first": 5, "order": {"field": "AMOUNT", "direction": "DESC"}}, token=customer)
    assert body["data"]["serviceRequests"]["edges"] == [] and body["data"]["serviceRequests"]["totalCount"] == 0

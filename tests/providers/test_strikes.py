"""The two-strike policy (domain/providers/standing.py, schema/providers/standing.py): strikes, suspension,
reinstatement, and what a suspended provider can no longer do."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from domain.money import payout as payout_domain
from domain.orders import dispute, locks
from domain.orders import service_request as sr_domain
from domain.providers import standing
from models import AuditEntry, Booking, Email, Provider, ProviderStrike
from models.db import session_scope
from resolvers.ids import encode_id
from tests.money.test_payout import (
    add_destination,
    completed_order,
    earnings,
    provider_with_account,
)
from tests.support.bookings import cast, hold, slot
from tests.support.factories import make_user, token_for
from tests.support.graphql_client import error_codes, gql
from tests.support.money import clean_money_tables  # noqa: F401  (autouse fixture)

STRIKE = """
mutation($input: RecordStrikeInput!) {
  recordStrike(input: $input) {
    strike { id reason serviceRequestId }
    standing { strikeCount suspended suspensionReason }
    errors { field code message }
  }
}
"""
SUSPEND = """
mutation($input: SuspendProviderInput!) {
  suspendProvider(input: $input) { standing { suspended strikeCount } errors { field code message } }
}
"""
REINSTATE = """
mutation($input: ReinstateProviderInput!) {
  reinstateProvider(input: $input) { standing { suspended strikeCount } errors { field code message } }
}
"""
STANDING = """
query($id: ID!) { providerStanding(providerId: $id) { strikeCount suspended strikes { reason } } }
"""
NEARBY = """
query($near: GeoPointInput!) { providersNearby(near: $near, radiusKm: 10) { edges { node { provider { id } } } } }
"""
SEARCH = """
query($near: GeoPointInput!) { searchProviders(input: {near: $near, radiusKm: 10}) { edges { node { provider { id } } } } }
"""
DOUALA = {"latitude": 4.0511, "longitude": 9.7679}


async def actions(prefix: str) -> list[str]:
    async with session_scope() as s:
        return list((await s.scalars(select(AuditEntry.action).where(AuditEntry.action.like(f"{prefix}%"))
                                     .order_by(AuditEntry.id))).all())


async def provider_mails() -> list[tuple[str, str]]:
    async with session_scope() as s:
        rows = (await s.execute(select(Email.kind, Email.subject).where(Email.kind == "provider_standing")
                                .order_by(Email.id))).all()
    return [tuple(r) for r in rows]


async def test_the_second_strike_suspends_the_provider_audited_and_emailed(api_client):
    # given a provider with an account, one of its completed orders, and an admin
    admin = await make_user("ops@example.com", role="admin")
    provider, _ = await provider_with_account()
    order_id = await completed_order(provider.id, admin)
    token = await token_for(admin)
    pid = encode_id("Provider", provider.id)

    # when the admin records a first strike about that order
    body = await gql(api_client, STRIKE, {"input": {"providerId": pid, "reason": "Left the site flooded",
                                                    "serviceRequestId": encode_id("ServiceRequest", order_id)}},
                     token=token)
    # then it is on record, not suspended
    assert body["data"]["recordStrike"]["errors"] == []
    assert body["data"]["recordStrike"]["strike"]["serviceRequestId"] == encode_id("ServiceRequest", order_id)
    assert body["data"]["recordStrike"]["standing"] == {"strikeCount": 1, "suspended": False, "suspensionReason": None}

    # when a second strike is recorded
    body = await gql(api_client, STRIKE, {"input": {"providerId": pid, "reason": "Rude to a customer"}}, token=token)
    # then the provider is suspended in the same call
    assert body["data"]["recordStrike"]["standing"] == {
        "strikeCount": 2, "suspended": True, "suspensionReason": "Second strike: Rude to a customer"}
    async with session_scope() as s:
        row = await s.get(Provider, provider.id)
        assert (row.suspended, row.strike_count, row.suspended_at is not None) == (True, 2, True)
    # audited by the domain and by the admin-mutation extension, and emailed to the provider
    assert await actions("provider.") == ["provider.strike_recorded", "provider.strike_recorded", "provider.suspended"]
    assert await actions("admin.recordStrike") == ["admin.recordStrike", "admin.recordStrike"]
    assert await provider_mails() == [
        ("provider_standing", "Odim: a strike was recorded against Eko Mbappe Plumbing"),
        ("provider_standing", "Odim: a strike was recorded against Eko Mbappe Plumbing"),
        ("provider_standing", "Odim: Eko Mbappe Plumbing is suspended"),
    ]
    standing = await gql(api_client, STANDING, {"id": pid}, token=token)
    assert standing["data"]["providerStanding"] == {
        "strikeCount": 2, "suspended": True, "strikes": [{"reason": "Rude to a customer"},
                                                         {"reason": "Left the site flooded"}]}


async def test_strike_refusals_write_nothing(api_client):
    # given a provider, another provider's order, an admin and a customer
    admin = await make_user("ops@example.com", role="admin")
    provider, _ = await provider_with_account()
    other, _ = await provider_with_account("bona@example.com", name="Bona Berry")
    others_order = await completed_order(other.id, admin)
    customer = await make_user("ada@example.com")
    pid = encode_id("Provider", provider.id)

    # when the reason is blank, or the order is not about this provider
    blank = await gql(api_client, STRIKE, {"input": {"providerId": pid, "reason": "  "}}, token=await token_for(admin))
    wrong = await gql(api_client, STRIKE, {"input": {"providerId": pid, "reason": "x",
                                                     "serviceRequestId": encode_id("ServiceRequest", others_order)}},
                      token=await token_for(admin))
    # and a customer tries
    denied = await gql(api_client, STRIKE, {"input": {"providerId": pid, "reason": "x"}}, token=await token_for(customer))
    # then each is refused and no strike exists
    assert blank["data"]["recordStrike"]["errors"] == [
        {"field": "reason", "code": "REASON_REQUIRED", "message": "Say why"}]
    assert wrong["data"]["recordStrike"]["errors"] == [
        {"field": "serviceRequestId", "code": "NOT_FOUND", "message": "No such order of this provider"}]
    assert error_codes(denied) == ["FORBIDDEN"]
    async with session_scope() as s:
        assert await s.scalar(select(func.count()).select_from(ProviderStrike)) == 0
        assert (await s.get(Provider, provider.id)).strike_count == 0
    assert await provider_mails() == []


async def test_reinstatement_keeps_the_count_so_the_next_strike_suspends_again_unless_reset(api_client):
    # given a provider suspended by an admin after one strike
    admin = await make_user("ops@example.com", role="admin")
    token = await token_for(admin)
    provider, _ = await provider_with_account()
    pid = encode_id("Provider", provider.id)
    await gql(api_client, STRIKE, {"input": {"providerId": pid, "reason": "No-show"}}, token=token)
    body = await gql(api_client, SUSPEND, {"input": {"providerId": pid, "reason": "Under investigation"}}, token=token)
    assert body["data"]["suspendProvider"] == {"standing": {"suspended": True, "strikeCount": 1}, "errors": []}
    again = await gql(api_client, SUSPEND, {"input": {"providerId": pid, "reason": "x"}}, token=token)
    assert again["data"]["suspendProvider"]["errors"] == [
        {"field": "providerId", "code": "ALREADY_SUSPENDED", "message": "This provider is already suspended"}]

    # when it is reinstated (count kept), then struck again
    body = await gql(api_client, REINSTATE, {"input": {"providerId": pid, "note": "Cleared"}}, token=token)
    assert body["data"]["reinstateProvider"] == {"standing": {"suspended": False, "strikeCount": 1}, "errors": []}
    body = await gql(api_client, STRIKE, {"input": {"providerId": pid, "reason": "No-show again"}}, token=token)
    # then the second strike suspends it again
    assert body["data"]["recordStrike"]["standing"]["suspended"] is True

    # when it is reinstated with the count reset, then it is not suspended and its strikes stay on record
    body = await gql(api_client, REINSTATE, {"input": {"providerId": pid, "note": "Fresh start", "resetStrikes": True}},
                     token=token)
    assert body["data"]["reinstateProvider"] == {"standing": {"suspended": False, "strikeCount": 0}, "errors": []}
    not_suspended = await gql(api_client, REINSTATE, {"input": {"providerId": pid, "note": "x"}}, token=token)
    assert not_suspended["data"]["reinstateProvider"]["errors"] == [
        {"field": "providerId", "code": "NOT_SUSPENDED", "message": "This provider is not suspended"}]
    async with session_scope() as s:
        assert await s.scalar(select(func.count()).select_from(ProviderStrike)) == 2
    assert await actions("provider.") == [
        "provider.strike_recorded", "provider.suspended", "provider.reinstated", "provider.strike_recorded",
        "provider.suspended", "provider.reinstated"]
    assert [subject for _, subject in await provider_mails()] == [
        "Odim: a strike was recorded against Eko Mbappe Plumbing", "Odim: Eko Mbappe Plumbing is suspended",
        "Odim: Eko Mbappe Plumbing is reinstated", "Odim: a strike was recorded against Eko Mbappe Plumbing",
        "Odim: Eko Mbappe Plumbing is suspended", "Odim: Eko Mbappe Plumbing is reinstated"]


async def test_a_suspended_provider_gets_no_new_work_and_leaves_search(api_client):
    # given a bookable provider found by search (the ranked search cached), and a paid order waiting for a provider
    c = await cast()
    admin_token = await token_for(c.admin)
    pid = encode_id("Provider", c.b.provider.id)
    before = await gql(api_client, NEARBY, {"near": DOUALA})
    assert pid in [e["node"]["provider"]["id"] for e in before["data"]["providersNearby"]["edges"]]
    searched = await gql(api_client, SEARCH, {"near": DOUALA})
    assert pid in [e["node"]["provider"]["id"] for e in searched["data"]["searchProviders"]["edges"]]

    # when an admin suspends it
    body = await gql(api_client, SUSPEND, {"input": {"providerId": pid, "reason": "Fraud report"}}, token=admin_token)
    assert body["data"]["suspendProvider"]["errors"] == []

    # then it is absent from search (the cache too)
    after = await gql(api_client, NEARBY, {"near": DOUALA})
    assert pid not in [e["node"]["provider"]["id"] for e in after["data"]["providersNearby"]["edges"]]
    searched = await gql(api_client, SEARCH, {"near": DOUALA})
    assert pid not in [e["node"]["provider"]["id"] for e in searched["data"]["searchProviders"]["edges"]]
    # a hold on its time is refused with PROVIDER_SUSPENDED, nothing written
    with pytest.raises(standing.ProviderSuspended) as refused:
        await hold(c.b, c.customer, slot(1))
    assert (refused.value.code, refused.value.field) == ("PROVIDER_SUSPENDED", "providerId")
    async with session_scope() as s:
        assert await s.scalar(select(func.count()).select_from(Booking)) == 0
    # and assigning it to an order is refused, the order unchanged
    order_provider, _ = await provider_with_account("bona@example.com", name="Bona Berry")
    order_id = await completed_order(order_provider.id, c.admin)
    with pytest.raises(standing.ProviderSuspended):
        async with session_scope() as s:
            await sr_domain.assign_provider(s, order_id, c.b.provider.id, actor=c.admin)
    async with session_scope() as s:
        assert (await locks.lock_request(s, order_id)).assigned_provider_id == order_provider.id


async def test_assign_provider_over_http_says_provider_suspended(api_client):
    # given a paid order waiting for contact and a suspended provider
    admin = await make_user("ops@example.com", role="admin")
    provider, _ = await provider_with_account()
    async with session_scope() as s:
        await standing.suspend(s, provider.id, actor=admin, reason="Fraud report")
    waiting, _ = await provider_with_account("bona@example.com", name="Bona Berry")
    order_id = await completed_order(waiting.id, admin)
    # when an admin assigns the suspended provider
    body = await gql(api_client, """
        mutation($input: AssignProviderInput!) { assignProvider(input: $input) { errors { field code } } }""",
                     {"input": {"serviceRequestId": encode_id("ServiceRequest", order_id),
                                "providerId": encode_id("Provider", provider.id)}}, token=await token_for(admin))
    # then it is refused with the typed code
    assert body["data"]["assignProvider"]["errors"] == [{"field": "providerId", "code": "PROVIDER_SUSPENDED"}]


async def test_suspension_does_not_release_the_earnings_of_an_open_dispute():
    # given a provider with two completed orders, one of them disputed
    admin = await make_user("admin@odim.local", role="admin")
    provider, _ = await provider_with_account()
    await add_destination(provider.id)
    disputed = await completed_order(provider.id, admin)
    clean = await completed_order(provider.id, admin)
    async with session_scope() as s:
        await dispute.open_dispute(s, disputed, actor=admin, reason="The leak came back the next day.")

    # when the provider is suspended by two strikes and the payout run goes
    for reason in ("Complaint one", "Complaint two"):
        async with session_scope() as s:
            await standing.record_strike(s, provider.id, actor=admin, reason=reason)
    assert await payout_domain.run_payouts() == 1

    # then the disputed order's earning stays held; only the clean one is paid out
    rows = await earnings()
    assert [(order_id, status) for order_id, status, _, _ in rows] == [(disputed, "available"), (clean, "in_payout")]
    async with session_scope() as s:
        lines, _ = await payout_domain.list_earnings(s, provider.id)
    assert [(e.service_request_id, held) for e, held, _ in lines] == [(clean, False), (disputed, True)]


async def test_flagged_providers_queue_is_admin_only_and_oldest_first(api_client):
    # given two flagged providers (flag times set as the flag would) and a customer
    admin = await make_user("ops@example.com", role="admin")
    customer = await make_user("ada@example.com")
    first, _ = await provider_with_account()
    second, _ = await provider_with_account("bona@example.com", name="Bona Berry")
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    async with session_scope() as s:
        for p, at in ((second, now - timedelta(days=2)), (first, now - timedelta(days=1))):
            row = await s.get(Provider, p.id)
            row.flagged_at, row.flag_reason = at, "Average rating 2.00 below 3.5 after 12 completed jobs"
    query = "{ flaggedProviders(first: 10) { edges { node { providerId flagReason } } } }"
    # when an admin and a customer read the queue
    body = await gql(api_client, query, token=await token_for(admin))
    denied = await gql(api_client, query, token=await token_for(customer))
    # then the admin sees the oldest flag first; the customer is refused
    assert [e["node"]["providerId"] for e in body["data"]["flaggedProviders"]["edges"]] == [
        encode_id("Provider", second.id), encode_id("Provider", first.id)]
    assert error_codes(denied) == ["FORBIDDEN"]

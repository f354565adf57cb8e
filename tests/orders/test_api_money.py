"""Money over GraphQL ("Proof: GraphQL"): the fee preview, the purchase's fee breakdown,
receipts, settlements, admin refunds (idempotent), disputes, dead letters, reconciliation, the
ledger's trial balance, the affiliate dashboard, provider earnings and payouts.

Everything goes through ``server.app`` in-process (the ``api_client`` fixture) against the real
test PostgreSQL, Redis and SMTP sink. Payments are paid the real way: the sandbox's hosted page
settles the payment at the gateway (``sandbox.record_checkout_outcome``), its signed webhook is
POSTed to ``/webhooks/sandbox``, and a real Dramatiq worker (``factories.run_worker``) processes it;
refunds and payouts are then sent to the sandbox gateway by the same worker.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select, update

from domain.orders import locks, refunds
from domain.orders import payment as payment_domain
from domain.orders import service_request as sr
from domain.shared import dead_letter
from gateways import sandbox
from gateways.sandbox import SandboxGateway
from models import (
    Affiliate,
    DeadLetter,
    Dispute,
    Email,
    IdempotencyKey,
    LedgerTransaction,
    OutboxMessage,
    Payment,
    Payout,
    Refund,
    ServiceRequest,
    User,
    WebhookEvent,
)
from models.db import session_scope
from resolvers.ids import encode_id
from tests.support.contracts import accept_order
from tests.support.factories import make_affiliate, make_provider, make_service, make_user, run_worker
from tests.support.graphql_client import error_codes, gql, login
from tests.support.statements import count_statements

GUEST = {"fullName": "Bob Guest", "email": "bob@example.com", "phone": "+237 6 99 12 34 56"}
MONEY = "{ amountMinor currency }"


def xaf(amount: int) -> dict:
    return {"amountMinor": amount, "currency": "XAF"}


def line(kind: str, label: str, amount: int) -> dict:
    return {"kind": kind, "label": label, "amount": xaf(amount)}


FEE_QUOTE = f"""
query Quote($input: FeeQuoteInput!) {{
  feeQuote(input: $input) {{
    quote {{ currency price {MONEY} guestSurcharge {MONEY} total {MONEY} lines {{ kind label amount {MONEY} }} }}
    errors {{ field code message }}
  }}
}}
"""
PURCHASE = f"""
mutation Purchase($input: PurchaseServiceInput!) {{
  purchaseService(input: $input) {{
    serviceRequest {{ id reference }}
    checkoutUrl
    feeBreakdown {{ currency price {MONEY} guestSurcharge {MONEY} total {MONEY} lines {{ kind label amount {MONEY} }} }}
    errors {{ field code message }}
  }}
}}
"""
RECEIPT_FIELDS = f"""
receipt {{
  paymentReference paidAt
  lines {{ kind label amount {MONEY} }}
  total {MONEY} refunded {MONEY} netPaid {MONEY}
  refunds {{ id reference amount {MONEY} status reason }}
}}
"""
SETTLEMENT_FIELDS = f"""
settlement {{
  released commissionRateBps guestSurchargeRateBps affiliateCommissionRateBps
  commission {MONEY} guestSurcharge {MONEY} providerShare {MONEY} affiliateCommission {MONEY}
  platformTake {MONEY} escrowHeld {MONEY}
}}
"""
TRACK = f"""
query Track($reference: String!) {{
  serviceRequest(reference: $reference) {{
    reference
    {RECEIPT_FIELDS}
    {SETTLEMENT_FIELDS}
    disputes {{ id status reason openedByRole resolution refundAmount {MONEY} }}
  }}
}}
"""
REFUND = f"""
mutation Refund($input: RefundServiceRequestInput!) {{
  refundServiceRequest(input: $input) {{
    refund {{ id amount {MONEY} status reason }}
    serviceRequest {{ reference receipt {{ lines {{ kind amount {MONEY} }} refunded {MONEY} netPaid {MONEY} }} }}
    errors {{ field code message }}
  }}
}}
"""
OPEN_DISPUTE = f"""
mutation Open($input: OpenDisputeInput!) {{
  openDispute(input: $input) {{
    dispute {{ id status reason openedByRole resolution refundAmount {MONEY} }}
    serviceRequest {{ reference disputes {{ status }} }}
    errors {{ field code message }}
  }}
}}
"""
RESOLVE_DISPUTE = f"""
mutation Resolve($input: ResolveDisputeInput!) {{
  resolveDispute(input: $input) {{
    dispute {{ id status resolution refundAmount {MONEY} resolutionNote }}
    serviceRequest {{ reference receipt {{ refunded {MONEY} }} }}
    errors {{ field code message }}
  }}
}}
"""
DISPUTES = """
query Disputes($status: DisputeStatus, $first: Int) {
  disputes(status: $status, first: $first) {
    pageInfo { hasNextPage }
    edges { node { id status reason serviceRequest { reference } } }
  }
}
"""
NODE = """
query Node($id: ID!) {
  node(id: $id) {
    __typename
    ... on Refund { reference }
    ... on Dispute { reason }
    ... on DeadLetter { actor }
    ... on Payout { reference }
  }
}
"""


# --- helpers ----------------------------------------------------------------------------------------


@dataclass
class World:
    """A one-tier service (10,000 FCFA), an admin, two customers and a verified provider with an account."""

    service_id: int
    tier_id: int
    provider_id: int
    admin: str
    ada: str
    ben: str
    pro: str

    def purchase_input(self, **extra: object) -> dict:
        return {"serviceId": encode_id("Service", self.service_id), "tierId": encode_id("ServiceTier", self.tier_id),
                **extra}


@pytest.fixture
async def world(api_client) -> World:
    service, tiers = await make_service(name="Leak repair", tiers=1, prices={"XAF": 10000})
    await make_user("ops@example.com", role="admin", full_name="Odim Ops")
    await make_user("ada@example.com", full_name="Ada Eko")
    await make_user("ben@example.com", full_name="Ben Nji")
    pro = await make_user("pro@example.com", role="provider", full_name="Paul Eko")
    provider = await make_provider(display_name="Eko Plumbing", user_id=pro.id)
    tokens = [await login(api_client, f"{name}@example.com") for name in ("ops", "ada", "ben", "pro")]
    return World(service.id, tiers[0].id, provider.id, *tokens)


async def buy(client, world: World, token: str | None, **extra: object) -> dict:
    """``purchaseService`` (a guest when ``token`` is None); returns the payload."""
    if token is None:
        extra.setdefault("customer", GUEST)
    body = await gql(client, PURCHASE, {"input": world.purchase_input(**extra)}, token=token)
    payload = body["data"]["purchaseService"]
    assert payload["errors"] == [], payload["errors"]
    return payload


async def pay(client, checkout_url: str) -> None:
    """Press Pay on the sandbox's hosted page, deliver its signed webhook, run the worker."""
    details = sandbox.parse_checkout(checkout_url.rsplit("/", 1)[1])
    assert await sandbox.record_checkout_outcome(details, "paid") == "succeeded"
    raw, headers = sandbox.build_event(details, "paid")
    response = await client.post("/webhooks/sandbox", content=raw, headers=headers)
    assert response.status_code == 200
    await run_worker()


async def bought_and_paid(client, world: World, token: str | None = None, **extra: object) -> tuple[str, int]:
    """A paid order of Ada's (or of ``token``'s account); returns ``(reference, database id)``."""
    payload = await buy(client, world, token or world.ada, **extra)
    await pay(client, payload["checkoutUrl"])
    reference = payload["serviceRequest"]["reference"]
    return reference, await request_id(reference)


async def request_id(reference: str) -> int:
    async with session_scope() as s:
        return await s.scalar(select(ServiceRequest.id).where(ServiceRequest.reference == reference))


async def user(email: str) -> User:
    async with session_scope() as s:
        return await s.scalar(select(User).where(User.email == email))


async def complete_by_admin(world: World, rid: int) -> None:
    """Assign the provider, start and complete the order as an admin (escrow released at once)."""
    admin = await user("ops@example.com")
    async with session_scope() as s:
        await sr.assign_provider(s, rid, world.provider_id, actor=admin)
    await accept_order(rid)  # both parties accept the contract (tests/orders/test_contracts.py)
    for status in ("in_progress", "completed"):
        async with session_scope() as s:
            await sr.update_status(s, rid, status, actor=admin)


async def track(client, reference: str, token: str | None) -> dict:
    body = await gql(client, TRACK, {"reference": reference}, token=token)
    assert "errors" not in body, body
    return body["data"]["serviceRequest"]


async def counts() -> dict[str, int]:
    """Rows a money mutation writes."""
    models = {"refunds": Refund, "disputes": Dispute, "ledger_transactions": LedgerTransaction, "emails": Email,
              "outbox": OutboxMessage, "idempotency_keys": IdempotencyKey, "payouts": Payout,
              "dead_letters": DeadLetter}
    async with session_scope() as s:
        return {name: await s.scalar(select(func.count()).select_from(model)) for name, model in models.items()}


async def emails_of_kind(kind: str) -> list[tuple[str, str]]:
    async with session_scope() as s:
        rows = (await s.execute(select(Email.to_address, Email.subject).where(Email.kind == kind).order_by(Email.id))).all()
    return [tuple(r) for r in rows]


def db_id(global_id: str) -> int:
    return int(base64.b64decode(global_id).decode().split(":")[1])


# --- fee preview and the purchase's breakdown ---------------------------------------------------------


async def test_a_guest_is_quoted_the_guest_checkout_fee_and_a_customer_is_not(api_client, world):
    # given
    variables = {"input": {"serviceId": encode_id("Service", world.service_id),
                           "tierId": encode_id("ServiceTier", world.tier_id)}}
    # when
    as_guest = await gql(api_client, FEE_QUOTE, variables)
    as_customer = await gql(api_client, FEE_QUOTE, variables, token=world.ada)
    # then
    assert as_guest == {"data": {"feeQuote": {"errors": [], "quote": {
        "currency": "XAF", "price": xaf(10000), "guestSurcharge": xaf(1000), "total": xaf(11000),
        "lines": [line("PRICE", "Service price", 10000), line("GUEST_SURCHARGE", "Guest checkout fee (10 %)", 1000),
                  line("TOTAL", "Total", 11000)],
    }}}}
    assert as_customer == {"data": {"feeQuote": {"errors": [], "quote": {
        "currency": "XAF", "price": xaf(10000), "guestSurcharge": xaf(0), "total": xaf(10000),
        "lines": [line("PRICE", "Service price", 10000), line("TOTAL", "Total", 10000)],
    }}}}


async def test_a_fee_quote_for_bad_input_is_a_typed_error_not_a_top_level_one(api_client, world):
    base = {"serviceId": encode_id("Service", world.service_id), "tierId": encode_id("ServiceTier", world.tier_id)}
    cases = {
        "currency": ({**base, "currency": "NGN"},
                     [{"field": "currency", "code": "CURRENCY_NOT_OFFERED", "message": "This tier is not sold in NGN; offered: XAF"}]),
        "affiliate": ({**base, "affiliateCode": "NOBODY"},
                      [{"field": "affiliateCode", "code": "INVALID_AFFILIATE_CODE", "message": "Unknown affiliate code"}]),
        "service": ({"serviceId": encode_id("Service", 999)},
                    [{"field": "serviceId", "code": "SERVICE_NOT_FOUND", "message": "No such service"}]),
        "tier id": ({**base, "tierId": "not-an-id"},
                    [{"field": "tierId", "code": "INVALID_ID", "message": "Not a ServiceTier id"}]),
    }
    for name, (given, expected) in cases.items():
        body = await gql(api_client, FEE_QUOTE, {"input": given})
        assert body == {"data": {"feeQuote": {"quote": None, "errors": expected}}}, name


async def test_an_affiliate_code_does_not_change_what_the_customer_pays(api_client, world):
    await make_affiliate("DOUALA-PARTNER", commission_bps=500)
    body = await gql(api_client, FEE_QUOTE, {"input": {**world.purchase_input(), "affiliateCode": "douala-partner"}},
                     token=world.ada)
    assert body["data"]["feeQuote"]["quote"]["lines"] == [line("PRICE", "Service price", 10000),
                                                          line("TOTAL", "Total", 10000)]


async def test_the_purchase_payload_carries_the_fee_breakdown_snapshotted_on_the_order(api_client, world):
    # when
    as_guest = await buy(api_client, world, None)
    as_customer = await buy(api_client, world, world.ada)
    # then
    assert as_guest["feeBreakdown"] == {
        "currency": "XAF", "price": xaf(10000), "guestSurcharge": xaf(1000), "total": xaf(11000),
        "lines": [line("PRICE", "Service price", 10000), line("GUEST_SURCHARGE", "Guest checkout fee (10 %)", 1000),
                  line("TOTAL", "Total", 11000)],
    }
    assert as_customer["feeBreakdown"]["lines"] == [line("PRICE", "Service price", 10000),
                                                    line("TOTAL", "Total", 10000)]
    async with session_scope() as s:
        snap = (await s.execute(select(ServiceRequest.amount_minor, ServiceRequest.guest_surcharge_minor,
                                       ServiceRequest.commission_bps).order_by(ServiceRequest.id))).all()
    assert [tuple(r) for r in snap] == [(11000, 1000, 1000), (10000, 0, 1000)]


# --- receipts and settlements ---------------------------------------------------------------------------


async def test_a_paid_order_has_a_receipt_for_its_customer_and_none_for_the_public(api_client, world):
    # given
    reference, rid = await bought_and_paid(api_client, world)
    async with session_scope() as s:
        payment_reference = await s.scalar(select(Payment.reference).where(Payment.service_request_id == rid))
    # when
    mine = await track(api_client, reference, world.ada)
    public = await track(api_client, reference, None)
    other = await track(api_client, reference, world.ben)
    # then
    receipt = mine["receipt"]
    assert receipt.pop("paidAt") is not None
    assert receipt == {
        "paymentReference": payment_reference,
        "lines": [line("PRICE", "Service price", 10000), line("TOTAL", "Total", 10000)],
        "total": xaf(10000), "refunded": xaf(0), "netPaid": xaf(10000), "refunds": [],
    }
    assert mine["settlement"] is None  # the customer does not see the commission
    assert mine["disputes"] == []
    assert public == other == {"reference": reference, "receipt": None, "settlement": None, "disputes": []}


async def test_an_unpaid_order_has_no_receipt_yet(api_client, world):
    payload = await buy(api_client, world, world.ada)
    tracked = await track(api_client, payload["serviceRequest"]["reference"], world.ada)
    assert tracked["receipt"] is None


async def test_the_settlement_is_for_admins_and_the_assigned_provider_and_follows_release_and_refund(api_client, world):
    # given: Ada's order through an affiliate (5 %), paid
    await make_affiliate("DOUALA-PARTNER", commission_bps=500)
    reference, rid = await bought_and_paid(api_client, world, affiliateCode="DOUALA-PARTNER")
    planned = {
        "released": False, "commissionRateBps": 1000, "guestSurchargeRateBps": 0, "affiliateCommissionRateBps": 500,
        "commission": xaf(1000), "guestSurcharge": xaf(0), "providerShare": xaf(9000),
        "affiliateCommission": xaf(500), "platformTake": xaf(500), "escrowHeld": xaf(10000),
    }
    # then: before release the admin sees the planned split; the provider is not assigned yet
    assert (await track(api_client, reference, world.admin))["settlement"] == planned
    assert (await track(api_client, reference, world.pro))["settlement"] is None
    # when: completed by an admin (escrow released), then 2,000 FCFA refunded
    await complete_by_admin(world, rid)
    released = {**planned, "released": True, "escrowHeld": xaf(0)}
    assert (await track(api_client, reference, world.admin))["settlement"] == released
    assert (await track(api_client, reference, world.pro))["settlement"] == released
    body = await gql(api_client, REFUND, {"input": {"serviceRequestId": encode_id("ServiceRequest", rid),
                                                    "amount": 2000, "reason": "Tap not replaced"}}, token=world.admin)
    assert body["data"]["refundServiceRequest"]["errors"] == []
    # then: each share gave back its part (largest remainder: 1,800 / 100 / 100)
    assert (await track(api_client, reference, world.admin))["settlement"] == {
        **released, "providerShare": xaf(7200), "affiliateCommission": xaf(400), "platformTake": xaf(400),
    }
    assert (await track(api_client, reference, world.ada))["settlement"] is None


# --- admin refunds --------------------------------------------------------------------------------------


async def test_an_admin_refunds_part_then_the_rest_and_the_receipt_shows_both(api_client, world, mailbox):
    # given
    reference, rid = await bought_and_paid(api_client, world)
    sr_id = encode_id("ServiceRequest", rid)
    first = {"serviceRequestId": sr_id, "amount": 3000, "reason": "Late arrival", "idempotencyKey": "refund-1"}
    # when: a partial refund
    body = await gql(api_client, REFUND, {"input": first}, token=world.admin)
    # then
    payload = body["data"]["refundServiceRequest"]
    refund_id = payload["refund"].pop("id")
    assert payload == {
        "refund": {"amount": xaf(3000), "status": "PENDING", "reason": "Late arrival"},
        "serviceRequest": {"reference": reference, "receipt": {
            "lines": [{"kind": "PRICE", "amount": xaf(10000)}, {"kind": "TOTAL", "amount": xaf(10000)},
                      {"kind": "REFUNDED", "amount": xaf(-3000)}, {"kind": "NET_PAID", "amount": xaf(7000)}],
            "refunded": xaf(3000), "netPaid": xaf(7000)}},
        "errors": [],
    }
    # when: the same key and input again (a client retry), then the same key with another amount
    again = await gql(api_client, REFUND, {"input": first}, token=world.admin)
    before = await counts()
    reused = await gql(api_client, REFUND, {"input": {**first, "amount": 4000}}, token=world.admin)
    # then: the first refund comes back; the reuse is refused and writes nothing
    assert again["data"]["refundServiceRequest"]["refund"]["id"] == refund_id
    assert reused["data"]["refundServiceRequest"] == {"refund": None, "serviceRequest": None, "errors": [
        {"field": "idempotencyKey", "code": "IDEMPOTENCY_KEY_REUSED",
         "message": "This idempotency key was used with different input"}]}
    assert await counts() == before
    # when: more than is left, then everything that is left
    too_much = await gql(api_client, REFUND, {"input": {"serviceRequestId": sr_id, "amount": 8000, "reason": "x"}},
                         token=world.admin)
    rest = await gql(api_client, REFUND, {"input": {"serviceRequestId": sr_id, "reason": "Job cancelled"}},
                     token=world.admin)
    nothing_left = await gql(api_client, REFUND, {"input": {"serviceRequestId": sr_id, "reason": "again"}},
                             token=world.admin)
    await run_worker()  # send_refund x2 at the sandbox gateway, then the emails
    # then
    assert too_much["data"]["refundServiceRequest"]["errors"] == [
        {"field": "amount", "code": "REFUND_EXCEEDS_CAPTURED",
         "message": "At most 7000 XAF (minor units) can be refunded on this order"}]
    assert rest["data"]["refundServiceRequest"]["refund"]["amount"] == xaf(7000)
    assert nothing_left["data"]["refundServiceRequest"]["errors"] == [
        {"field": "serviceRequestId", "code": "NOT_REFUNDABLE", "message": "Nothing is left to refund on this order"}]
    receipt = (await track(api_client, reference, world.ada))["receipt"]
    assert receipt["lines"] == [line("PRICE", "Service price", 10000), line("TOTAL", "Total", 10000),
                                line("REFUNDED", "Refunded", -10000), line("NET_PAID", "Net paid", 0)]
    assert (receipt["refunded"], receipt["netPaid"]) == (xaf(10000), xaf(0))
    assert [(r["amount"], r["status"], r["reason"]) for r in receipt["refunds"]] == [
        (xaf(3000), "SUCCEEDED", "Late arrival"), (xaf(7000), "SUCCEEDED", "Job cancelled")]
    assert sorted(await emails_of_kind("refund")) == [  # the worker settles both refunds in any order
        ("ada@example.com", f"Odim: 3,000 FCFA refunded on {reference}"),
        ("ada@example.com", f"Odim: 7,000 FCFA refunded on {reference}"),
    ]
    assert sorted(m["Subject"] for m in mailbox() if "refunded" in m["Subject"]) == [
        f"Odim: 3,000 FCFA refunded on {reference}", f"Odim: 7,000 FCFA refunded on {reference}"]


async def test_a_refund_needs_a_reason_and_an_existing_order(api_client, world):
    no_reason = await gql(api_client, REFUND, {"input": {"serviceRequestId": encode_id("ServiceRequest", 1),
                                                         "reason": "  "}}, token=world.admin)
    unknown = await gql(api_client, REFUND, {"input": {"serviceRequestId": encode_id("ServiceRequest", 404),
                                                       "reason": "x"}}, token=world.admin)
    assert no_reason["data"]["refundServiceRequest"]["errors"] == [
        {"field": "reason", "code": "REQUIRED", "message": "Give a reason for the refund (it is sent to the customer)"}]
    assert unknown["data"]["refundServiceRequest"]["errors"] == [
        {"field": "serviceRequestId", "code": "NOT_FOUND", "message": "No such service request"}]


async def test_another_customer_can_neither_refund_nor_dispute_nor_see_an_order_and_nothing_is_written(
    api_client, world
):
    # given: Ada's paid order with one refund
    reference, rid = await bought_and_paid(api_client, world)
    sr_id = encode_id("ServiceRequest", rid)
    made = await gql(api_client, REFUND, {"input": {"serviceRequestId": sr_id, "amount": 1000, "reason": "Late"}},
                     token=world.admin)
    refund_gid = made["data"]["refundServiceRequest"]["refund"]["id"]
    await run_worker()
    before = await counts()
    # when: Ben tries
    refund = await gql(api_client, REFUND, {"input": {"serviceRequestId": sr_id, "reason": "mine now"}}, token=world.ben)
    dispute = await gql(api_client, OPEN_DISPUTE, {"input": {"serviceRequestId": sr_id, "reason": "Bad work"}},
                        token=world.ben)
    anonymous = await gql(api_client, OPEN_DISPUTE, {"input": {"serviceRequestId": sr_id, "reason": "Bad work"}})
    node_for_ben = await gql(api_client, NODE, {"id": refund_gid}, token=world.ben)
    node_for_ada = await gql(api_client, NODE, {"id": refund_gid}, token=world.ada)
    # then
    assert (refund["data"], error_codes(refund)) == (None, ["FORBIDDEN"])
    assert (dispute["data"], error_codes(dispute)) == (None, ["FORBIDDEN"])
    assert (anonymous["data"], error_codes(anonymous)) == (None, ["UNAUTHENTICATED"])
    assert node_for_ben == {"data": {"node": None}}
    assert node_for_ada["data"]["node"]["__typename"] == "Refund"
    assert await counts() == before


# --- disputes -------------------------------------------------------------------------------------------


async def test_a_customer_opens_a_dispute_and_an_admin_resolves_it_with_a_partial_refund(api_client, world):
    # given
    reference, rid = await bought_and_paid(api_client, world)
    sr_id = encode_id("ServiceRequest", rid)
    # when: Ada opens a dispute, then tries a second one
    opened = await gql(api_client, OPEN_DISPUTE, {"input": {"serviceRequestId": sr_id, "reason": "The leak is back"}},
                       token=world.ada)
    twice = await gql(api_client, OPEN_DISPUTE, {"input": {"serviceRequestId": sr_id, "reason": "Still leaking"}},
                      token=world.ada)
    # then
    payload = opened["data"]["openDispute"]
    dispute_id = payload["dispute"].pop("id")
    assert payload == {
        "dispute": {"status": "OPEN", "reason": "The leak is back", "openedByRole": "CUSTOMER", "resolution": None,
                    "refundAmount": None},
        "serviceRequest": {"reference": reference, "disputes": [{"status": "OPEN"}]},
        "errors": [],
    }
    assert twice["data"]["openDispute"]["errors"] == [
        {"field": "serviceRequestId", "code": "DISPUTE_ALREADY_OPEN", "message": "A dispute is already open on this order"}]
    listed = await gql(api_client, DISPUTES, {"status": "OPEN"}, token=world.admin)
    assert listed["data"]["disputes"] == {"pageInfo": {"hasNextPage": False}, "edges": [
        {"node": {"id": dispute_id, "status": "OPEN", "reason": "The leak is back",
                  "serviceRequest": {"reference": reference}}}]}
    # when: Ada may not resolve; the admin asks too much, then resolves with 4,000 FCFA back
    by_customer = await gql(api_client, RESOLVE_DISPUTE, {"input": {"disputeId": dispute_id, "resolution": "RELEASE"}},
                            token=world.ada)
    too_much = await gql(api_client, RESOLVE_DISPUTE, {"input": {
        "disputeId": dispute_id, "resolution": "REFUND_PARTIAL", "refundAmount": 10000}}, token=world.admin)
    resolved = await gql(api_client, RESOLVE_DISPUTE, {"input": {
        "disputeId": dispute_id, "resolution": "REFUND_PARTIAL", "refundAmount": 4000,
        "note": "Half the work redone"}}, token=world.admin)
    again = await gql(api_client, RESOLVE_DISPUTE, {"input": {"disputeId": dispute_id, "resolution": "RELEASE"}},
                      token=world.admin)
    await run_worker()
    # then
    assert (by_customer["data"], error_codes(by_customer)) == (None, ["FORBIDDEN"])
    assert too_much["data"]["resolveDispute"]["errors"] == [
        {"field": "refundAmount", "code": "REFUND_EXCEEDS_CAPTURED",
         "message": "A partial refund must be below 10000; use REFUND_FULL"}]
    assert resolved["data"]["resolveDispute"] == {
        "dispute": {"id": dispute_id, "status": "RESOLVED", "resolution": "REFUND_PARTIAL", "refundAmount": xaf(4000),
                    "resolutionNote": "Half the work redone"},
        "serviceRequest": {"reference": reference, "receipt": {"refunded": xaf(4000)}},
        "errors": [],
    }
    assert again["data"]["resolveDispute"]["errors"] == [
        {"field": "disputeId", "code": "DISPUTE_NOT_OPEN", "message": "This dispute is already resolved"}]
    tracked = await track(api_client, reference, world.ada)
    assert tracked["disputes"] == [{"id": dispute_id, "status": "RESOLVED", "reason": "The leak is back",
                                    "openedByRole": "CUSTOMER", "resolution": "REFUND_PARTIAL",
                                    "refundAmount": xaf(4000)}]
    assert [(r["amount"], r["status"], r["reason"]) for r in tracked["receipt"]["refunds"]] == [
        (xaf(4000), "SUCCEEDED", f"Dispute {db_id(dispute_id)}: Half the work redone")]
    assert (await gql(api_client, DISPUTES, {"status": "OPEN"}, token=world.admin))["data"]["disputes"]["edges"] == []
    assert await emails_of_kind("dispute") == [
        ("ada@example.com", f"Odim: dispute on {reference} opened"),
        ("ada@example.com", f"Odim: dispute on {reference} resolved"),
    ]
    assert (await gql(api_client, NODE, {"id": dispute_id}, token=world.ben)) == {"data": {"node": None}}


async def test_only_admins_list_disputes_and_the_list_takes_three_statements(api_client, world):
    for _ in range(3):
        _, rid = await bought_and_paid(api_client, world)
        body = await gql(api_client, OPEN_DISPUTE, {"input": {"serviceRequestId": encode_id("ServiceRequest", rid),
                                                              "reason": "Broken"}}, token=world.ada)
        assert body["data"]["openDispute"]["errors"] == []
    as_customer = await gql(api_client, DISPUTES, {}, token=world.ada)
    with count_statements() as statements:
        page = await gql(api_client, DISPUTES, {"first": 2}, token=world.admin)
    assert (as_customer["data"], error_codes(as_customer)) == (None, ["FORBIDDEN"])
    assert len(page["data"]["disputes"]["edges"]) == 2
    assert page["data"]["disputes"]["pageInfo"] == {"hasNextPage": True}
    # viewer, page, the disputed orders (one loader batch for currencies and serviceRequest)
    assert len(statements) == 3


# --- dead letters ---------------------------------------------------------------------------------------

DEAD_LETTERS = """
query Letters($status: DeadLetterStatus, $first: Int, $after: String) {
  deadLetters(status: $status, first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node { id actor queue sourceType sourceId attempts lastError traceback payload args status } }
  }
}
"""
REPLAY = """
mutation Replay($input: ReplayDeadLetterInput!) {
  replayDeadLetter(input: $input) { deadLetter { id status } errors { field code message } }
}
"""
DISCARD = """
mutation Discard($input: DiscardDeadLetterInput!) {
  discardDeadLetter(input: $input) { deadLetter { id status } errors { field code message } }
}
"""


async def stored_webhook_that_died(world: World) -> tuple[int, int, dict]:
    """A paid webhook stored in the inbox whose processing ran out of retries: returns
    ``(dead letter id, inbox id, event body)``."""
    async with session_scope() as s:
        bought = await sr.purchase_service(
            s, SandboxGateway(), service_id=world.service_id, tier_id=world.tier_id, user=None,
            customer=sr.CustomerDetails(GUEST["fullName"], GUEST["email"], GUEST["phone"]),
        )
    details = sandbox.parse_checkout(bought.checkout_url.rsplit("/", 1)[1])
    await sandbox.record_checkout_outcome(details, "paid")
    raw, headers = sandbox.build_event(details, "paid")
    async with session_scope() as s:
        event, stored = await payment_domain.receive_webhook(s, SandboxGateway(), headers, raw)
        assert stored
        inbox_id = await s.scalar(select(WebhookEvent.id).where(WebhookEvent.event_id == event.event_id))
        # the relay sent the job and the worker consumed it: only the dead letter is left
        await s.execute(update(OutboxMessage).values(dispatched_at=func.now()))
    letter_id = await dead_letter.record_failure(
        actor="process_webhook", queue="payments", args={"inbox_id": inbox_id}, error=RuntimeError("database gone"),
        traceback_text="Traceback (most recent call last):\n  ...\nRuntimeError: database gone\n", attempts=9, final=True,
    )
    assert letter_id is not None
    return letter_id, inbox_id, json.loads(raw)


async def test_an_admin_lists_replays_and_discards_dead_letters(api_client, world):
    # given: two dead webhook jobs
    first_id, first_inbox, first_event = await stored_webhook_that_died(world)
    second_id, second_inbox, second_event = await stored_webhook_that_died(world)
    # when
    with count_statements() as statements:
        listed = await gql(api_client, DEAD_LETTERS, {"status": "OPEN", "first": 1}, token=world.admin)
    as_customer = await gql(api_client, DEAD_LETTERS, {}, token=world.ada)
    # then: newest first, every field, one statement for the page (plus the viewer)
    page = listed["data"]["deadLetters"]
    assert page["pageInfo"]["hasNextPage"] is True
    assert page["edges"] == [{"node": {
        "id": encode_id("DeadLetter", second_id), "actor": "process_webhook", "queue": "payments",
        "sourceType": "webhook", "sourceId": second_inbox, "attempts": 9, "lastError": "RuntimeError: database gone",
        "traceback": "Traceback (most recent call last):\n  ...\nRuntimeError: database gone\n",
        "payload": second_event, "args": {"inbox_id": second_inbox}, "status": "OPEN",
    }}]
    assert len(statements) == 2
    older = await gql(api_client, DEAD_LETTERS, {"first": 1, "after": page["pageInfo"]["endCursor"]}, token=world.admin)
    assert [e["node"]["payload"] for e in older["data"]["deadLetters"]["edges"]] == [first_event]
    assert (as_customer["data"], error_codes(as_customer)) == (None, ["FORBIDDEN"])
    # when: replay the first, discard the second, then each again
    replayed = await gql(api_client, REPLAY, {"input": {"id": encode_id("DeadLetter", first_id)}}, token=world.admin)
    await run_worker()
    before = await counts()
    replayed_again = await gql(api_client, REPLAY, {"input": {"id": encode_id("DeadLetter", first_id)}},
                               token=world.admin)
    discarded = await gql(api_client, DISCARD, {"input": {"id": encode_id("DeadLetter", second_id)}}, token=world.admin)
    discarded_again = await gql(api_client, DISCARD, {"input": {"id": encode_id("DeadLetter", second_id)}},
                                token=world.admin)
    unknown = await gql(api_client, DISCARD, {"input": {"id": encode_id("DeadLetter", 999)}}, token=world.admin)
    by_customer = await gql(api_client, REPLAY, {"input": {"id": encode_id("DeadLetter", second_id)}}, token=world.ada)
    # then: the replayed webhook was processed (the payment is captured); nothing runs twice
    assert replayed["data"]["replayDeadLetter"] == {
        "deadLetter": {"id": encode_id("DeadLetter", first_id), "status": "REPLAYED"}, "errors": []}
    async with session_scope() as s:
        inbox = await s.get(WebhookEvent, first_inbox)
        payment = await s.scalar(select(Payment).where(Payment.reference == first_event["data"]["reference"]))
    assert (inbox.result, inbox.processed_at is not None, inbox.dead_lettered_at) == ("completed", True, None)
    assert payment.status == "completed"
    assert replayed_again["data"]["replayDeadLetter"]["deadLetter"]["status"] == "REPLAYED"
    assert discarded["data"]["discardDeadLetter"] == {
        "deadLetter": {"id": encode_id("DeadLetter", second_id), "status": "DISCARDED"}, "errors": []}
    assert discarded_again["data"]["discardDeadLetter"] == {"deadLetter": None, "errors": [
        {"field": "id", "code": "DEAD_LETTER_NOT_OPEN", "message": "This dead letter is already discarded"}]}
    assert unknown["data"]["discardDeadLetter"]["errors"] == [
        {"field": "id", "code": "NOT_FOUND", "message": "No such dead letter"}]
    assert (by_customer["data"], error_codes(by_customer)) == (None, ["FORBIDDEN"])
    after = await counts()
    assert after == before  # the second replay queued nothing; the discard writes no job
    statuses = await gql(api_client, DEAD_LETTERS, {}, token=world.admin)
    assert [e["node"]["status"] for e in statuses["data"]["deadLetters"]["edges"]] == ["DISCARDED", "REPLAYED"]


# --- reconciliation -------------------------------------------------------------------------------------

RUN_RECONCILIATION = f"""
mutation Run($input: RunReconciliationInput!) {{
  runReconciliation(input: $input) {{
    run {{ id checked updated mismatches gatewayErrors finishedAt
           items {{ objectType reference gateway ourStatus gatewayStatus ourAmount {MONEY} gatewayAmount {MONEY}
                    outcome detail }} }}
    errors {{ field code message }}
  }}
}}
"""
RUNS = """
query Runs { reconciliationRuns(first: 5) { id checked items { reference outcome } } }
"""
FLAGGED = f"""
query Flagged {{ flaggedPayments {{ reference gateway amount {MONEY} status reviewReason serviceRequestReference }} }}
"""


async def test_a_reconciliation_run_applies_what_the_gateway_says_and_reports_it(api_client, world):
    # given: an order paid at the sandbox whose webhook never came, an unpaid one, and one whose
    # webhook reported another amount (flagged, never captured)
    silent = await buy(api_client, world, world.ada)
    sandbox_details = sandbox.parse_checkout(silent["checkoutUrl"].rsplit("/", 1)[1])
    await sandbox.record_checkout_outcome(sandbox_details, "paid")
    unpaid = await buy(api_client, world, world.ben)
    odd = await buy(api_client, world, world.ada)
    odd_details = sandbox.parse_checkout(odd["checkoutUrl"].rsplit("/", 1)[1])
    raw = json.dumps({"id": f"evt_{secrets.token_hex(8)}", "type": "payment.succeeded", "created": int(time.time()),
                      "data": {"reference": odd_details.reference, "amount_minor": 10, "currency": "XAF"}},
                     separators=(",", ":")).encode()
    response = await api_client.post("/webhooks/sandbox", content=raw, headers={
        "Content-Type": "application/json", sandbox.SIGNATURE_HEADER: sandbox.sign_payload(raw, int(time.time()))})
    assert response.status_code == 200
    await run_worker()
    # when
    by_customer = await gql(api_client, RUN_RECONCILIATION, {"input": {"olderThanSeconds": 0}}, token=world.ada)
    negative = await gql(api_client, RUN_RECONCILIATION, {"input": {"olderThanSeconds": -1}}, token=world.admin)
    body = await gql(api_client, RUN_RECONCILIATION, {"input": {"olderThanSeconds": 0}}, token=world.admin)
    # then
    assert (by_customer["data"], error_codes(by_customer)) == (None, ["FORBIDDEN"])
    assert negative["data"]["runReconciliation"] == {"run": None, "errors": [
        {"field": "olderThanSeconds", "code": "INVALID", "message": "olderThanSeconds cannot be negative"}]}
    run = body["data"]["runReconciliation"]["run"]
    assert body["data"]["runReconciliation"]["errors"] == []
    assert run.pop("finishedAt") is not None
    run_id = run.pop("id")
    assert run == {"checked": 2, "updated": 1, "mismatches": 0, "gatewayErrors": 0, "items": [
        {"objectType": "payment", "reference": sandbox_details.reference, "gateway": "sandbox", "ourStatus": "pending",
         "gatewayStatus": "succeeded", "ourAmount": xaf(10000), "gatewayAmount": xaf(10000), "outcome": "UPDATED",
         "detail": "completed"},
        {"objectType": "payment", "reference": sandbox.parse_checkout(unpaid["checkoutUrl"].rsplit("/", 1)[1]).reference,
         "gateway": "sandbox", "ourStatus": "pending", "gatewayStatus": "pending", "ourAmount": xaf(10000),
         "gatewayAmount": xaf(10000), "outcome": "UNCHANGED", "detail": "unchanged"},
    ]}
    tracked = await track(api_client, silent["serviceRequest"]["reference"], world.ada)
    assert tracked["receipt"]["netPaid"] == xaf(10000)
    runs = await gql(api_client, RUNS, {}, token=world.admin)
    assert runs["data"]["reconciliationRuns"] == [{"id": run_id, "checked": 2, "items": [
        {"reference": sandbox_details.reference, "outcome": "UPDATED"},
        {"reference": sandbox.parse_checkout(unpaid["checkoutUrl"].rsplit("/", 1)[1]).reference,
         "outcome": "UNCHANGED"}]}]
    flagged = await gql(api_client, FLAGGED, {}, token=world.admin)
    assert flagged["data"]["flaggedPayments"] == [{
        "reference": odd_details.reference, "gateway": "sandbox", "amount": xaf(10000), "status": "pending",
        "reviewReason": "gateway reported 10 XAF, expected 10000 XAF",
        "serviceRequestReference": odd["serviceRequest"]["reference"]}]


async def test_the_reconciliation_report_takes_three_statements(api_client, world):
    for _ in range(2):
        await buy(api_client, world, world.ada)
        body = await gql(api_client, RUN_RECONCILIATION, {"input": {"olderThanSeconds": 0}}, token=world.admin)
        assert body["data"]["runReconciliation"]["errors"] == []
    with count_statements() as statements:
        runs = await gql(api_client, RUNS, {}, token=world.admin)
    assert [len(r["items"]) for r in runs["data"]["reconciliationRuns"]] == [2, 1]
    assert len(statements) == 3  # viewer, runs, the items of every run


# --- ledger and affiliates ------------------------------------------------------------------------------

TRIAL_BALANCE = f"""
query Ledger {{
  ledgerTrialBalance {{
    balanced currencySums {MONEY} driftedAccounts negativeAccounts
    lines {{ kind currency accounts balance {MONEY} }}
  }}
}}
"""
DASHBOARD = f"""
query Dashboard($code: String!) {{
  affiliateDashboard(code: $code) {{ currency purchases earned {MONEY} reversed {MONEY} payable {MONEY} }}
}}
"""


async def test_after_release_and_a_partial_refund_the_ledger_balances_and_the_affiliate_sees_its_numbers(
    api_client, world
):
    # given: an affiliate with its own account; Ada buys through its code; the order is completed
    # (escrow released) and 2,000 FCFA refunded afterwards, sent to the gateway
    affiliate_user = await make_user("partner@example.com", full_name="Douala Partner")
    affiliate = await make_affiliate("DOUALA-PARTNER", commission_bps=500)
    async with session_scope() as s:
        await s.execute(update(Affiliate).where(Affiliate.id == affiliate.id).values(user_id=affiliate_user.id))
    partner = await login(api_client, "partner@example.com")
    _, rid = await bought_and_paid(api_client, world, affiliateCode="DOUALA-PARTNER")
    await complete_by_admin(world, rid)
    body = await gql(api_client, REFUND, {"input": {"serviceRequestId": encode_id("ServiceRequest", rid),
                                                    "amount": 2000, "reason": "Tap not replaced"}}, token=world.admin)
    assert body["data"]["refundServiceRequest"]["errors"] == []
    await run_worker()
    # when
    ledger = await gql(api_client, TRIAL_BALANCE, {}, token=world.admin)
    for_partner = await gql(api_client, DASHBOARD, {"code": "douala-partner"}, token=partner)
    for_admin = await gql(api_client, DASHBOARD, {"code": "DOUALA-PARTNER"}, token=world.admin)
    for_ada = await gql(api_client, DASHBOARD, {"code": "DOUALA-PARTNER"}, token=world.ada)
    unknown = await gql(api_client, DASHBOARD, {"code": "NOBODY"}, token=world.admin)
    ledger_for_ada = await gql(api_client, TRIAL_BALANCE, {}, token=world.ada)
    # then: captured 10,000 -> provider 9,000 / platform 500 / affiliate 500; the refund took back
    # 1,800 / 100 / 100 and went out through the gateway
    report = ledger["data"]["ledgerTrialBalance"]
    assert (report["balanced"], report["currencySums"], report["driftedAccounts"], report["negativeAccounts"]) == (
        True, [xaf(0)], [], [])
    assert [(x["kind"], x["accounts"], x["balance"]) for x in report["lines"] if x["balance"]["amountMinor"]] == [
        ("affiliate_payable", 1, xaf(400)), ("gateway_clearing", 1, xaf(-8000)), ("platform_revenue", 1, xaf(400)),
        ("provider_payable", 1, xaf(7200)),
    ]
    totals = [{"currency": "XAF", "purchases": 1, "earned": xaf(500), "reversed": xaf(100), "payable": xaf(400)}]
    assert for_partner == for_admin == {"data": {"affiliateDashboard": totals}}
    assert (for_ada["data"], error_codes(for_ada)) == (None, ["FORBIDDEN"])
    assert (unknown["data"], error_codes(unknown)) == (None, ["NOT_FOUND"])
    assert (ledger_for_ada["data"], error_codes(ledger_for_ada)) == (None, ["FORBIDDEN"])


# --- provider earnings and payouts ----------------------------------------------------------------------

REGISTER_DESTINATION = """
mutation Register($input: RegisterPayoutDestinationInput!) {
  registerPayoutDestination(input: $input) {
    destination { id kind currency countryCode holderName operator numberLast4 label isDefault disabled }
    errors { field code message }
  }
}
"""
DISABLE_DESTINATION = """
mutation Disable($input: DisablePayoutDestinationInput!) {
  disablePayoutDestination(input: $input) { destination { id disabled isDefault } errors { field code message } }
}
"""
EARNINGS = f"""
query Earnings {{ myEarnings {{ currency available {MONEY} held {MONEY} inPayout {MONEY} paidOut {MONEY} }} }}
"""
MY_PAYOUTS = f"""
query Mine {{
  myPayouts(first: 10) {{ totalCount edges {{ node {{ id reference amount {MONEY} status destination }} }} }}
  myPayoutDestinations {{ label isDefault }}
}}
"""
ALL_PAYOUTS = """
query All { payouts(first: 10) { totalCount edges { node { reference status provider { displayName } } } } }
"""
RUN_PAYOUTS = """
mutation Run($input: RunPayoutsInput!) {
  runPayouts(input: $input) { payoutsCreated clientMutationId errors { field code message } }
}
"""
REQUEST_PAYOUT = f"""
mutation Ask($input: RequestPayoutInput!) {{
  requestPayout(input: $input) {{ payout {{ reference amount {MONEY} status }} errors {{ field code message }} }}
}}
"""
MTN = {"kind": "MOBILE_MONEY", "currency": "XAF", "countryCode": "CM", "holderName": "Paul Eko",
       "phone": "+237 6 71 23 45 67", "operator": "MTN"}


def earnings(available: int, held: int, in_payout: int, paid_out: int) -> dict:
    return {"currency": "XAF", "available": xaf(available), "held": xaf(held), "inPayout": xaf(in_payout),
            "paidOut": xaf(paid_out)}


async def test_a_provider_registers_a_destination_is_held_by_a_dispute_then_paid_out(api_client, world):
    # given: the provider's wallet, and Ada's order completed by an admin (9,000 FCFA to the provider)
    registered = await gql(api_client, REGISTER_DESTINATION, {"input": MTN}, token=world.pro)
    destination = registered["data"]["registerPayoutDestination"]
    assert destination["errors"] == []
    assert {k: v for k, v in destination["destination"].items() if k != "id"} == {
        "kind": "MOBILE_MONEY", "currency": "XAF", "countryCode": "CM", "holderName": "Paul Eko", "operator": "mtn",
        "numberLast4": "4567", "label": "MTN mobile money ****4567", "isDefault": True, "disabled": False}
    _, rid = await bought_and_paid(api_client, world)
    await complete_by_admin(world, rid)
    assert (await gql(api_client, EARNINGS, {}, token=world.pro))["data"]["myEarnings"] == [earnings(9000, 0, 0, 0)]
    # when: Ada disputes the order before the payout run
    body = await gql(api_client, OPEN_DISPUTE, {"input": {"serviceRequestId": encode_id("ServiceRequest", rid),
                                                          "reason": "Leaks again"}}, token=world.ada)
    dispute_id = body["data"]["openDispute"]["dispute"]["id"]
    held_run = await gql(api_client, RUN_PAYOUTS, {"input": {"clientMutationId": "run-1"}}, token=world.admin)
    # then: the money is held, no payout
    assert held_run["data"]["runPayouts"] == {"payoutsCreated": 0, "clientMutationId": "run-1", "errors": []}
    assert (await gql(api_client, EARNINGS, {}, token=world.pro))["data"]["myEarnings"] == [earnings(0, 9000, 0, 0)]
    # when: the dispute is resolved for the provider, and payouts run
    resolved = await gql(api_client, RESOLVE_DISPUTE, {"input": {"disputeId": dispute_id, "resolution": "RELEASE"}},
                         token=world.admin)
    assert resolved["data"]["resolveDispute"]["errors"] == []
    paid_run = await gql(api_client, RUN_PAYOUTS, {"input": {}}, token=world.admin)
    await run_worker()  # send_payout at the sandbox (paid at once), then the email
    # then
    assert paid_run["data"]["runPayouts"] == {"payoutsCreated": 1, "clientMutationId": None, "errors": []}
    assert (await gql(api_client, EARNINGS, {}, token=world.pro))["data"]["myEarnings"] == [earnings(0, 0, 0, 9000)]
    mine = (await gql(api_client, MY_PAYOUTS, {}, token=world.pro))["data"]
    node = mine["myPayouts"]["edges"][0]["node"]
    assert mine["myPayouts"]["totalCount"] == 1
    assert node["reference"].startswith("po_")
    assert {k: node[k] for k in ("amount", "status", "destination")} == {
        "amount": xaf(9000), "status": "PAID", "destination": "MTN mobile money ****4567"}
    assert mine["myPayoutDestinations"] == [{"label": "MTN mobile money ****4567", "isDefault": True}]
    everyone = await gql(api_client, ALL_PAYOUTS, {}, token=world.admin)
    assert everyone["data"]["payouts"] == {"totalCount": 1, "edges": [
        {"node": {"reference": node["reference"], "status": "PAID", "provider": {"displayName": "Eko Plumbing"}}}]}
    assert await emails_of_kind("payout") == [
        ("pro@example.com", f"Odim: payout {node['reference']} of 9,000 FCFA")]
    assert (await gql(api_client, NODE, {"id": node["id"]}, token=world.pro))["data"]["node"] == {
        "__typename": "Payout", "reference": node["reference"]}
    assert (await gql(api_client, NODE, {"id": node["id"]}, token=world.ada)) == {"data": {"node": None}}


async def test_a_provider_asks_for_a_payout_with_nothing_available_and_nothing_is_written(api_client, world):
    await gql(api_client, REGISTER_DESTINATION, {"input": MTN}, token=world.pro)
    before = await counts()
    body = await gql(api_client, REQUEST_PAYOUT, {"input": {"currency": "XAF", "idempotencyKey": "now-1"}},
                     token=world.pro)
    assert body["data"]["requestPayout"] == {"payout": None, "errors": [
        {"field": "currency", "code": "BELOW_PAYOUT_MINIMUM",
         "message": "The available balance 0 FCFA is below the payout minimum 1,000 FCFA"}]}
    assert await counts() == before


async def test_a_provider_asks_for_an_instant_payout_and_a_retry_returns_the_same_one(api_client, world):
    await gql(api_client, REGISTER_DESTINATION, {"input": MTN}, token=world.pro)
    _, rid = await bought_and_paid(api_client, world)
    await complete_by_admin(world, rid)
    ask = {"input": {"currency": "xaf", "idempotencyKey": "now-1"}}
    first = await gql(api_client, REQUEST_PAYOUT, ask, token=world.pro)
    second = await gql(api_client, REQUEST_PAYOUT, ask, token=world.pro)
    await run_worker()
    payout = first["data"]["requestPayout"]
    assert payout["errors"] == []
    assert (payout["payout"]["amount"], payout["payout"]["status"]) == (xaf(9000), "PENDING")
    assert second["data"]["requestPayout"] == payout
    assert (await gql(api_client, EARNINGS, {}, token=world.pro))["data"]["myEarnings"] == [earnings(0, 0, 0, 9000)]


async def test_destination_input_problems_come_back_together_and_only_providers_have_earnings(api_client, world):
    bad = await gql(api_client, REGISTER_DESTINATION, {"input": {**MTN, "phone": None, "operator": "airtel"}},
                    token=world.pro)
    bank = await gql(api_client, REGISTER_DESTINATION, {"input": {
        "kind": "BANK_ACCOUNT", "currency": "NGN", "countryCode": "NG", "holderName": " ", "bankCode": "x",
        "accountNumber": "123"}}, token=world.pro)
    for_customer = await gql(api_client, EARNINGS, {}, token=world.ada)
    register_for_customer = await gql(api_client, REGISTER_DESTINATION, {"input": MTN}, token=world.ada)
    anonymous = await gql(api_client, MY_PAYOUTS, {})
    assert bad["data"]["registerPayoutDestination"] == {"destination": None, "errors": [
        {"field": "phone", "code": "REQUIRED", "message": "A mobile-money destination needs its phone number"},
        {"field": "operator", "code": "UNKNOWN_OPERATOR", "message": "operator must be one of mtn, orange in CM"}]}
    assert bank["data"]["registerPayoutDestination"] == {"destination": None, "errors": [
        {"field": "holderName", "code": "REQUIRED", "message": "Give the name the account is registered to"},
        {"field": "bankCode", "code": "INVALID_BANK_CODE", "message": "bankCode must be a 3 to 6 digit bank code, e.g. 058"},
        {"field": "accountNumber", "code": "INVALID_ACCOUNT_NUMBER", "message": "accountNumber must be 10 digits"}]}
    assert (for_customer["data"], error_codes(for_customer)) == (None, ["FORBIDDEN"])
    assert (register_for_customer["data"], error_codes(register_for_customer)) == (None, ["FORBIDDEN"])
    assert (anonymous["data"], error_codes(anonymous)) == (None, ["UNAUTHENTICATED"])


async def test_a_provider_disables_its_own_destination_but_not_another_ones(api_client, world):
    other_user = await make_user("other@example.com", role="provider")
    await make_provider(display_name="Other", user_id=other_user.id)
    other = await login(api_client, "other@example.com")
    made = await gql(api_client, REGISTER_DESTINATION, {"input": MTN}, token=world.pro)
    destination_id = made["data"]["registerPayoutDestination"]["destination"]["id"]
    by_other = await gql(api_client, DISABLE_DESTINATION, {"input": {"destinationId": destination_id}}, token=other)
    mine = await gql(api_client, DISABLE_DESTINATION, {"input": {"destinationId": destination_id}}, token=world.pro)
    assert by_other["data"]["disablePayoutDestination"] == {"destination": None, "errors": [
        {"field": "destinationId", "code": "NOT_FOUND", "message": "No such payout destination"}]}
    assert mine["data"]["disablePayoutDestination"] == {
        "destination": {"id": destination_id, "disabled": True, "isDefault": False}, "errors": []}
    assert (await gql(api_client, MY_PAYOUTS, {}, token=world.pro))["data"]["myPayoutDestinations"] == []


# --- statement counts -----------------------------------------------------------------------------------

LIST_MONEY = f"""
query List($first: Int) {{
  serviceRequests(first: $first) {{ edges {{ node {{ reference {RECEIPT_FIELDS} {SETTLEMENT_FIELDS} disputes {{ id }} }} }} }}
}}
"""


async def test_receipts_settlements_and_disputes_on_a_page_take_the_same_statements_for_2_and_6_orders(
    api_client, world
):
    # given: 6 paid orders of Ada's (through the domain: faster), each with a refund and a dispute
    ada = await user("ada@example.com")
    admin = await user("ops@example.com")
    for _ in range(6):
        async with session_scope() as s:
            made = await sr.purchase_service(s, SandboxGateway(), service_id=world.service_id, tier_id=world.tier_id,
                                             user=ada, customer=None)
        async with session_scope() as s:
            payment = await s.scalar(select(Payment).where(Payment.id == made.payment.id).with_for_update())
            request = await locks.lock_request(s, made.service_request.id)
            await payment_domain.confirm_payment(s, payment, request, f"evt_{request.id}")
        from domain.orders import dispute

        async with session_scope() as s:
            await refunds.refund_order(s, made.service_request.id, actor_user_id=admin.id, amount_minor=1000,
                                      reason="Late")
        async with session_scope() as s:
            await dispute.open_dispute(s, made.service_request.id, actor=ada, reason="Broken")
    # when
    seen = {}
    for first in (2, 6):
        with count_statements() as statements:
            body = await gql(api_client, LIST_MONEY, {"first": first}, token=world.admin)
        edges = body["data"]["serviceRequests"]["edges"]
        assert len(edges) == first
        assert all(len(e["node"]["receipt"]["refunds"]) == 1 and len(e["node"]["disputes"]) == 1
                   and e["node"]["settlement"]["escrowHeld"] == xaf(9000) for e in edges)
        seen[first] = len(statements)
    # then: viewer 1, page + count 2, payments 1, refunds 1, disputes 1
    assert seen == {2: 6, 6: 6}


async def test_a_provider_sees_settlements_with_one_statement_for_its_profile(api_client, world):
    _, rid = await bought_and_paid(api_client, world)
    await complete_by_admin(world, rid)
    query = f"query {{ serviceRequests(first: 5) {{ edges {{ node {{ {SETTLEMENT_FIELDS} }} }} }} }}"
    with count_statements() as statements:
        body = await gql(api_client, query, {}, token=world.pro)
    assert [e["node"]["settlement"]["providerShare"] for e in body["data"]["serviceRequests"]["edges"]] == [xaf(9000)]
    assert len(statements) == 4  # viewer, page + count, the viewer's provider profile


# --- the contract ---------------------------------------------------------------------------------------


def test_money_objects_clients_refetch_are_nodes_and_lists_are_connections():
    import schema

    gql_schema = schema.schema._schema
    node = gql_schema.get_type("Node")
    for name in ("Refund", "Dispute", "Payout", "PayoutDestination", "DeadLetter", "ReconciliationRun"):
        assert node in gql_schema.get_type(name).interfaces, name
    query = gql_schema.query_type.fields
    assert {name: str(query[name].type) for name in (
        "feeQuote", "myEarnings", "myPayouts", "myPayoutDestinations", "payouts", "disputes", "deadLetters",
        "reconciliationRuns", "flaggedPayments", "ledgerTrialBalance", "affiliateDashboard")} == {
        "feeQuote": "FeeQuoteResult!", "myEarnings": "[EarningsSummary!]!", "myPayouts": "PayoutConnection!",
        "myPayoutDestinations": "[PayoutDestination!]!", "payouts": "PayoutConnection!",
        "disputes": "DisputeConnection!", "deadLetters": "DeadLetterConnection!",
        "reconciliationRuns": "[ReconciliationRun!]!", "flaggedPayments": "[FlaggedPayment!]!",
        "ledgerTrialBalance": "LedgerTrialBalance!", "affiliateDashboard": "[AffiliateTotals!]!",
    }
    assert {n: str(a.type) for n, a in query["deadLetters"].args.items()} == {
        "status": "DeadLetterStatus", "first": "Int", "after": "String"}
    mutation = gql_schema.mutation_type.fields
    for name in ("refundServiceRequest", "openDispute", "resolveDispute", "replayDeadLetter", "discardDeadLetter",
                 "runReconciliation", "runPayouts", "registerPayoutDestination", "disablePayoutDestination",
                 "requestPayout"):
        assert name in mutation, name
    refund_input = gql_schema.get_type("RefundServiceRequestInput")
    assert {n: str(f.type) for n, f in refund_input.fields.items()} == {
        "serviceRequestId": "ID!", "amount": "Int", "reason": "String!", "idempotencyKey": "String"}
    resolve_input = gql_schema.get_type("ResolveDisputeInput")
    assert {n: str(f.type) for n, f in resolve_input.fields.items()} == {
        "disputeId": "ID!", "resolution": "DisputeResolution!", "refundAmount": "Int", "note": "String"}

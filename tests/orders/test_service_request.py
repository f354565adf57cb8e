"""Service requests over GraphQL: purchase (customer and guest), idempotency, tracking and privacy,
the status state machine (property test), admin and provider status changes, the request list
(filters, keyset pagination, constant SQL statement count) and `node`."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text, update

from domain.orders import guest_access, locks
from domain.orders import service_request as sr
from domain.shared.errors import Forbidden
from models import (
    Email,
    OutboxMessage,
    Payment,
    ServiceRequest,
    ServiceRequestStatusChange,
    User,
)
from models.db import session_scope
from resolvers.ids import encode_id
from settings import get_settings
from tests.support.contracts import accept_order
from tests.support.factories import make_affiliate, make_provider, make_user
from tests.support.graphql_client import error_codes, gql, login
from tests.support.orders import (
    ASSIGN,
    GUEST,
    LIST,
    LIST_DEEP,
    NODE,
    NOTHING,
    PURCHASE,
    REFERENCE_RE,
    TRACK,
    UPDATE_STATUS,
    Shop,
    db_id,
    domain_purchase,
    events_on,
    history,
    pay,
    purchase,
    row_counts,
    status_emails,
    status_of,
)
from tests.support.statements import count_statements

# --- purchase ----------------------------------------------------------------------------------------


async def test_a_logged_in_customer_buys_without_giving_details(api_client, shop):
    # given
    await make_user("ada@example.com", full_name="Ada Eko", phone="+237671234567")
    token = await login(api_client, "ada@example.com")
    # when
    payload = await purchase(api_client, shop, token=token, tier=1)
    # then
    request = payload["serviceRequest"]
    assert REFERENCE_RE.match(request["reference"])
    assert request["status"] == "AWAITING_PAYMENT"
    assert request["statusLabel"] == "Awaiting payment"
    assert request["amount"] == {"amountMinor": 20000, "currency": "XAF"}
    assert request["customer"] == {"fullName": "Ada Eko", "email": "ada@example.com", "phone": "+237671234567",
                                   "requirements": ""}
    assert payload["guestAccessToken"] is None
    assert payload["checkoutUrl"].startswith(f"{get_settings().public_base_url}/sandbox/checkout/")
    counts = await row_counts()
    assert {k: counts[k] for k in ("service_requests", "status_history", "payments", "conversations")} == {
        "service_requests": 1, "status_history": 1, "payments": 1, "conversations": 1}
    async with session_scope() as s:
        stored = await s.get(ServiceRequest, db_id(request["id"]))
        payment = await s.scalar(select(Payment).where(Payment.service_request_id == stored.id))
    assert (stored.customer_user_id, stored.tier_id) == (1, shop.tier_ids[1])
    assert (payment.status, payment.amount_minor, payment.currency) == ("pending", 20000, "XAF")


async def test_a_guest_buys_with_details_and_an_other_currency(api_client, shop):
    # when
    payload = await purchase(api_client, shop, customer={**GUEST, "requirements": "  Kitchen sink  "}, currency="ngn")
    # then
    request = payload["serviceRequest"]
    assert request["customer"] == {"fullName": "Bob Guest", "email": "bob@example.com", "phone": "+237699123456",
                                   "requirements": "Kitchen sink"}
    # the price plus the 10 % guest checkout fee
    assert request["amount"] == {"amountMinor": 1100000, "currency": "NGN"}
    assert guest_access.verify_guest_access_token(request["reference"], payload["guestAccessToken"])
    assert payload["checkoutUrl"].startswith(f"{get_settings().public_base_url}/sandbox/checkout/")


async def test_a_single_tier_service_needs_no_tier_id(api_client, shop):
    body = await gql(api_client, PURCHASE, {"input": {"serviceId": encode_id("Service", shop.other_service_id),
                                                      "customer": GUEST}})
    payload = body["data"]["purchaseService"]
    assert payload["errors"] == []
    assert payload["serviceRequest"]["amount"] == {"amountMinor": 27500, "currency": "XAF"}  # 25,000 + guest fee


def _err(field: str | None, code: str, message: str) -> list[dict]:
    return [{"field": field, "code": code, "message": message}]


PURCHASE_ERRORS = {
    "guest without details": (
        False, lambda shop: shop.input(),
        _err("customer.fullName", "REQUIRED", "Guests must give fullName, email, phone")),
    "guest without phone": (
        False, lambda shop: shop.input(customer={"fullName": "Bob Guest", "email": "bob@example.com"}),
        _err("customer.phone", "REQUIRED", "Guests must give phone")),
    "guest with an invalid email": (
        False, lambda shop: shop.input(customer={**GUEST, "email": "bob.example.com"}),
        _err("customer.email", "INVALID_EMAIL", "An email address must have an @-sign.")),
    "guest with an invalid phone": (
        False, lambda shop: shop.input(customer={**GUEST, "phone": "+237123"}),
        _err("customer.phone", "INVALID_PHONE",
             "Not a valid phone number for its country; use the international form, e.g. +237 6 71 23 45 67")),
    "unknown service": (
        True, lambda shop: {"serviceId": encode_id("Service", 999999)},
        _err("serviceId", "SERVICE_NOT_FOUND", "No such service")),
    "tier of another service": (
        True, lambda shop: {**shop.input(), "tierId": encode_id("ServiceTier", shop.other_tier_id)},
        _err("tierId", "TIER_NOT_FOUND", "No such tier for this service")),
    "several tiers and no tier id": (
        True, lambda shop: {"serviceId": encode_id("Service", shop.service_id)},
        _err("tierId", "TIER_REQUIRED", "This service has several tiers: choose one with tierId")),
    "currency not offered": (
        True, lambda shop: shop.input(currency="USD"),
        _err("currency", "CURRENCY_NOT_OFFERED", "This tier is not sold in USD; offered: NGN, XAF")),
    "unknown affiliate code": (
        True, lambda shop: shop.input(affiliateCode="nobody-knows"),
        _err("affiliateCode", "INVALID_AFFILIATE_CODE", "Unknown affiliate code")),
    "requirements too long": (
        True, lambda shop: shop.input(customer={"requirements": "x" * 5001}),
        _err("customer.requirements", "TOO_LONG", "Requirements are limited to 5000 characters")),
}


@pytest.mark.parametrize("case", PURCHASE_ERRORS)
async def test_a_refused_purchase_returns_its_error_and_writes_nothing(api_client, shop, case):
    # given
    logged_in, build, expected = PURCHASE_ERRORS[case]
    await make_affiliate("DOUALA-PARTNER")
    await make_user("ada@example.com")
    token = await login(api_client, "ada@example.com") if logged_in else None
    # when
    body = await gql(api_client, PURCHASE, {"input": build(shop)}, token=token)
    # then
    assert body["data"]["purchaseService"] == {
        "serviceRequest": None, "checkoutUrl": None, "guestAccessToken": None, "errors": expected,
    }
    assert await row_counts() == NOTHING


async def test_a_known_affiliate_code_is_kept_normalised(api_client, shop):
    await make_affiliate("DOUALA-PARTNER")
    payload = await purchase(api_client, shop, customer=GUEST, affiliateCode=" douala-partner ")
    async with session_scope() as s:
        stored = await s.get(ServiceRequest, db_id(payload["serviceRequest"]["id"]))
    assert stored.affiliate_code == "DOUALA-PARTNER"


async def test_references_have_the_documented_format_and_are_unique(api_client, shop):
    # when: 200 purchases, 20 at a time
    references: list[str] = []
    for _ in range(10):
        payloads = await asyncio.gather(*(purchase(api_client, shop, customer=GUEST) for _ in range(20)))
        references += [p["serviceRequest"]["reference"] for p in payloads]
    # then
    assert all(REFERENCE_RE.match(r) for r in references), [r for r in references if not REFERENCE_RE.match(r)]
    assert len(set(references)) == 200
    assert (await row_counts())["service_requests"] == 200


# --- idempotency ---------------------------------------------------------------------------------


async def test_the_same_key_and_input_returns_the_same_purchase(api_client, shop):
    # given
    await make_user("ada@example.com")
    token = await login(api_client, "ada@example.com")
    # when
    first = await purchase(api_client, shop, token=token, idempotencyKey="order-1")
    again = await purchase(api_client, shop, token=token, idempotencyKey="order-1")
    # then
    assert again["serviceRequest"] == first["serviceRequest"]
    counts = await row_counts()
    assert (counts["service_requests"], counts["payments"], counts["conversations"]) == (1, 1, 1)


async def test_the_same_key_with_other_input_is_refused(api_client, shop):
    # given
    await make_user("ada@example.com")
    token = await login(api_client, "ada@example.com")
    await purchase(api_client, shop, token=token, idempotencyKey="order-1")
    before = await row_counts()
    # when
    body = await gql(api_client, PURCHASE, {"input": shop.input(1, idempotencyKey="order-1")}, token=token)
    # then
    assert body["data"]["purchaseService"]["errors"] == _err(
        "idempotencyKey", "IDEMPOTENCY_KEY_REUSED", "This idempotency key was used with different input")
    assert await row_counts() == before


async def test_the_same_key_from_two_customers_makes_two_purchases(api_client, shop):
    await make_user("ada@example.com")
    await make_user("eve@example.com")
    a = await purchase(api_client, shop, token=await login(api_client, "ada@example.com"), idempotencyKey="k")
    b = await purchase(api_client, shop, token=await login(api_client, "eve@example.com"), idempotencyKey="k")
    assert a["serviceRequest"]["id"] != b["serviceRequest"]["id"]
    assert (await row_counts())["service_requests"] == 2


async def test_twenty_concurrent_purchases_with_one_key_make_one_request(api_client, shop):
    # given
    await make_user("ada@example.com")
    token = await login(api_client, "ada@example.com")
    # when: 20 requests at once, each on its own database connection
    payloads = await asyncio.gather(
        *(purchase(api_client, shop, token=token, idempotencyKey="double-click") for _ in range(20))
    )
    # then
    assert len({p["serviceRequest"]["id"] for p in payloads}) == 1
    counts = await row_counts()
    assert {k: counts[k] for k in ("service_requests", "status_history", "payments", "conversations")} == {
        "service_requests": 1, "status_history": 1, "payments": 1, "conversations": 1}


# --- tracking and privacy ---------------------------------------------------------------------------


async def test_tracking_shows_status_to_anyone_and_personal_data_only_to_those_allowed(api_client, shop):
    # given: Ada's paid request, assigned to a provider
    await make_user("ada@example.com", full_name="Ada Eko")
    await make_user("eve@example.com")
    await make_user("ops@example.com", role="admin")
    provider_user = await make_user("pro@example.com", role="provider")
    provider = await make_provider(user_id=provider_user.id, display_name="Eko Plumbing")
    ada = await login(api_client, "ada@example.com")
    bought = await purchase(api_client, shop, token=ada, customer={"requirements": "Kitchen"})
    reference, rid = bought["serviceRequest"]["reference"], db_id(bought["serviceRequest"]["id"])
    await pay(rid)
    admin = await login(api_client, "ops@example.com")
    await gql(api_client, ASSIGN, {"input": {"serviceRequestId": bought["serviceRequest"]["id"],
                                             "providerId": encode_id("Provider", provider.id)}}, token=admin)
    customer = {"fullName": "Ada Eko", "email": "ada@example.com", "phone": "+237671234567", "requirements": "Kitchen"}
    # when
    anonymous = await gql(api_client, TRACK, {"reference": reference.lower()})
    others = await gql(api_client, TRACK, {"reference": reference}, token=await login(api_client, "eve@example.com"))
    owner = await gql(api_client, TRACK, {"reference": reference}, token=ada)
    by_admin = await gql(api_client, TRACK, {"reference": reference}, token=admin)
    by_provider = await gql(api_client, TRACK, {"reference": reference}, token=await login(api_client, "pro@example.com"))
    # then
    public = {
        "reference": reference, "status": "TEAM_ASSIGNED", "statusLabel": "A provider has been assigned",
        "nextStep": "Your provider will contact you to schedule the work.",
        "timeline": [
            {"status": "AWAITING_PAYMENT", "statusLabel": "Awaiting payment", "note": "Request created"},
            {"status": "PAYMENT_CONFIRMED", "statusLabel": "Payment confirmed", "note": "Paid 10,000 FCFA"},
            {"status": "PENDING_CONTACT", "statusLabel": "We will contact you shortly", "note": ""},
            {"status": "TEAM_ASSIGNED", "statusLabel": "A provider has been assigned",
             "note": "Assigned to Eko Plumbing"},
        ],
    }
    assert anonymous == {"data": {"serviceRequest": {**public, "customer": None}}}
    assert others == {"data": {"serviceRequest": {**public, "customer": None}}}
    for body in (owner, by_admin, by_provider):
        assert body == {"data": {"serviceRequest": {**public, "customer": customer}}}


async def test_a_guest_sees_its_details_only_with_its_own_untampered_token(api_client, shop):
    # given
    mine = await purchase(api_client, shop, customer=GUEST)
    other = await purchase(api_client, shop, customer={**GUEST, "email": "carl@example.com"})
    reference, token = mine["serviceRequest"]["reference"], mine["guestAccessToken"]
    exp, sig = token.split(".")
    tampered_sig = f"{exp}.{('A' if sig[0] != 'A' else 'B')}{sig[1:]}"
    extended = f"{int(exp) + 1}.{sig}"

    async def customer_with(access_token: str | None):
        body = await gql(api_client, TRACK, {"reference": reference, "accessToken": access_token})
        return body["data"]["serviceRequest"]["customer"]

    # then
    assert await customer_with(token) == {"fullName": "Bob Guest", "email": "bob@example.com",
                                          "phone": "+237699123456", "requirements": ""}
    for bad in (None, tampered_sig, extended, other["guestAccessToken"], "garbage", ""):
        assert await customer_with(bad) is None, bad


async def test_an_expired_guest_token_gives_no_details(api_client, shop):
    mine = await purchase(api_client, shop, customer=GUEST)
    reference = mine["serviceRequest"]["reference"]
    issued = time.time() - get_settings().guest_link_ttl_seconds - 60  # so it expired a minute ago
    expired = guest_access.guest_access_token(reference, now=issued)
    assert guest_access.verify_guest_access_token(reference, guest_access.guest_access_token(reference))
    body = await gql(api_client, TRACK, {"reference": reference, "accessToken": expired})
    assert body["data"]["serviceRequest"]["customer"] is None


async def test_tracking_an_unknown_reference_gives_null(api_client):
    assert await gql(api_client, TRACK, {"reference": "ODM-0000-0000"}) == {"data": {"serviceRequest": None}}


async def test_node_gives_a_request_to_its_owner_and_null_to_another_customer(api_client, shop):
    # given
    await make_user("ada@example.com")
    await make_user("eve@example.com")
    ada = await login(api_client, "ada@example.com")
    bought = await purchase(api_client, shop, token=ada)
    gid = bought["serviceRequest"]["id"]
    # when
    by_owner = await gql(api_client, NODE, {"id": gid}, token=ada)
    by_other = await gql(api_client, NODE, {"id": gid}, token=await login(api_client, "eve@example.com"))
    by_anonymous = await gql(api_client, NODE, {"id": gid})
    # then
    assert by_owner == {"data": {"node": {"reference": bought["serviceRequest"]["reference"],
                                          "customer": {"email": "ada@example.com"}}}}
    assert by_other == {"data": {"node": None}}
    assert by_anonymous == {"data": {"node": None}}


# --- the state machine (property) --------------------------------------------------------------------

STATUSES = list(sr.STATUS_LABELS)
ACTORS = ["system", "customer", "admin", "provider", "other_provider"]


@dataclass
class World:
    shop: Shop
    customer: User
    admin: User
    provider_user: User
    provider_id: int
    other_provider_user: User


@pytest.fixture
async def world(shop) -> World:
    customer = await make_user("ada@example.com")
    admin = await make_user("ops@example.com", role="admin")
    provider_user = await make_user("pro@example.com", role="provider")
    other_user = await make_user("other@example.com", role="provider")
    provider = await make_provider(user_id=provider_user.id)
    await make_provider(user_id=other_user.id, display_name="Other Plumbing")
    return World(shop, customer, admin, provider_user, provider.id, other_user)


async def apply_step(w: World, request_id: int, actor: str, to_status: str) -> None:
    """One attempt, in its own transaction: through ``update_status`` for real accounts (admin,
    providers) and ``transition`` for the system and a customer."""
    users = {"admin": w.admin, "provider": w.provider_user, "other_provider": w.other_provider_user}
    async with session_scope() as s:
        if actor in users:
            await sr.update_status(s, request_id, to_status, actor=users[actor], note=f"{actor} step")
        else:
            request = await locks.lock_request(s, request_id)
            await sr.transition(s, request, to_status, actor_type=actor, note=f"{actor} step")


async def snapshot(request_id: int, reference: str, email: str) -> tuple:
    """(status, history, live event statuses, status email subjects) of one request, in one session."""
    async with session_scope() as s:
        status = await s.scalar(select(ServiceRequest.status).where(ServiceRequest.id == request_id))
        rows = (await s.execute(
            select(ServiceRequestStatusChange.from_status, ServiceRequestStatusChange.to_status,
                   ServiceRequestStatusChange.actor_type)
            .where(ServiceRequestStatusChange.service_request_id == request_id)
            .order_by(ServiceRequestStatusChange.id))).all()
        events = (await s.scalars(select(OutboxMessage.payload["status"].astext).where(
            OutboxMessage.kind == "event", OutboxMessage.target == f"odim:service_request:{reference}",
        ).order_by(OutboxMessage.id))).all()
        emails = (await s.scalars(select(Email.subject).where(
            Email.kind == "status_changed", Email.to_address == email).order_by(Email.id))).all()
    return status, [tuple(r) for r in rows], list(events), list(emails)


# Steps: any (actor, status), or an (actor, status) pair that appears in TRANSITIONS (so that random
# walks get deep into the machine); the explicit examples walk every allowed transition at least once.
PAIRS = sorted({(actor, to) for (_, to), rule in sr.TRANSITIONS.items() for actor in rule.actors})
STEP = st.tuples(st.sampled_from(ACTORS), st.sampled_from(STATUSES)) | st.sampled_from(PAIRS)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(paid=st.booleans(), assigned=st.booleans(), steps=st.lists(STEP, max_size=10))
@example(paid=False, assigned=False, steps=[("customer", "payment_confirmed"), ("system", "cancelled")])
@example(paid=False, assigned=False, steps=[("admin", "payment_confirmed"), ("admin", "cancelled")])
@example(paid=False, assigned=False, steps=[("system", "payment_confirmed"), ("admin", "pending_contact"),
                                            ("system", "pending_contact"), ("admin", "completed"),
                                            ("admin", "cancelled")])
@example(paid=True, assigned=False, steps=[("admin", "team_assigned"), ("provider", "in_progress"),
                                           ("other_provider", "in_progress"), ("system", "cancelled")])
@example(paid=True, assigned=True, steps=[("customer", "team_assigned"), ("admin", "team_assigned"),
                                          ("provider", "in_progress"), ("provider", "cancelled"),
                                          ("provider", "completed"), ("admin", "cancelled")])
@example(paid=True, assigned=True, steps=[("admin", "team_assigned"), ("admin", "in_progress"),
                                          ("admin", "completed")])
@example(paid=True, assigned=True, steps=[("admin", "team_assigned"), ("provider", "cancelled"),
                                          ("admin", "cancelled")])
@example(paid=True, assigned=True, steps=[("admin", "team_assigned"), ("admin", "in_progress"),
                                          ("admin", "cancelled")])
async def test_the_state_machine_never_leaves_its_transitions(world, paid, assigned, steps):
    # given: a fresh request, paid or not, with or without an assigned provider
    request = await domain_purchase(world.shop, world.customer)
    if paid:
        await pay(request.id)
    if assigned:
        async with session_scope() as s:
            await s.execute(update(ServiceRequest).where(ServiceRequest.id == request.id)
                            .values(assigned_provider_id=world.provider_id))
        await accept_order(request.id)  # its contract accepted: work may start (tests/orders/test_contracts.py)
    for actor, target in steps:
        status, rows, events, emails = await snapshot(request.id, request.reference, world.customer.email)
        if actor == "other_provider" or (actor == "provider" and not assigned):
            expected = Forbidden
        elif sr.MACHINE.allowed(status, target, actor) and (
            target != "team_assigned" or assigned
        ):
            expected = None
        else:
            expected = sr.InvalidTransition
        # when
        try:
            await apply_step(world, request.id, actor, target)
            raised = None
        except (sr.InvalidTransition, Forbidden) as exc:
            raised = type(exc)
        # then
        assert raised is expected, (status, actor, target)
        after = await snapshot(request.id, request.reference, world.customer.email)
        if expected is None:
            assert after == (
                target, [*rows, (status, target, actor)], [*events, target],
                emails + ([f'Odim: your request {request.reference} is now "{sr.STATUS_LABELS[target]}"']
                          if target in sr.EMAILED_STATUSES else []),
            )
        else:
            assert after == (status, rows, events, emails)
    # and the whole history is a walk along TRANSITIONS
    walk = await history(request.id)
    assert walk[0] == (None, "awaiting_payment", "customer")
    for (_, prev_to, _), (frm, to, actor) in itertools.pairwise(walk):
        assert frm == prev_to
        assert actor in sr.TRANSITIONS[(frm, to)].actors


# --- admin and provider status changes ----------------------------------------------------------------


@dataclass
class Paid:
    gid: str
    id: int
    reference: str
    admin: str
    customer: str
    provider_gid: str


@pytest.fixture
async def paid(api_client, shop) -> Paid:
    """Ada's paid request (pending_contact), an admin, and a verified provider owned by pro@."""
    await make_user("ada@example.com")
    await make_user("ops@example.com", role="admin")
    provider_user = await make_user("pro@example.com", role="provider")
    provider = await make_provider(user_id=provider_user.id, display_name="Eko Plumbing")
    customer = await login(api_client, "ada@example.com")
    bought = await purchase(api_client, shop, token=customer)
    rid = db_id(bought["serviceRequest"]["id"])
    await pay(rid)
    return Paid(bought["serviceRequest"]["id"], rid, bought["serviceRequest"]["reference"],
                await login(api_client, "ops@example.com"), customer, encode_id("Provider", provider.id))


async def update_status(client, paid: Paid, status: str, token: str, note: str | None = None) -> dict:
    return await gql(client, UPDATE_STATUS, {"input": {"id": paid.gid, "status": status, "note": note}}, token=token)


async def test_an_admin_moves_a_request_along_the_allowed_path(api_client, paid):
    # given
    start_history, start_events = await history(paid.id), await events_on(paid.reference)
    assert (await status_of(paid.id), await status_emails("ada@example.com")) == ("pending_contact", [])
    # when: assign (moves it to TEAM_ASSIGNED), then in progress, then completed
    assigned = await gql(api_client, ASSIGN, {"input": {"serviceRequestId": paid.gid, "providerId": paid.provider_gid}},
                         token=paid.admin)
    await accept_order(paid.id)  # both parties accept the contract (tests/orders/test_contracts.py)
    started = await update_status(api_client, paid, "IN_PROGRESS", paid.admin, note="Team on site")
    done = await update_status(api_client, paid, "COMPLETED", paid.admin)
    # then
    assert assigned == {"data": {"assignProvider": {
        "serviceRequest": {"status": "TEAM_ASSIGNED", "assignedProvider": {"displayName": "Eko Plumbing"}},
        "errors": []}}}
    assert started == {"data": {"updateServiceRequestStatus": {
        "serviceRequest": {"status": "IN_PROGRESS", "statusLabel": "Work in progress"}, "errors": []}}}
    assert done == {"data": {"updateServiceRequestStatus": {
        "serviceRequest": {"status": "COMPLETED", "statusLabel": "Completed"}, "errors": []}}}
    assert await history(paid.id) == [*start_history, ("pending_contact", "team_assigned", "admin"),
                                      ("team_assigned", "in_progress", "admin"), ("in_progress", "completed", "admin")]
    assert await events_on(paid.reference) == [*start_events, "team_assigned", "in_progress", "completed"]
    # the assignment is told once, by the "provider assigned" email (with the provider's name)
    assert await status_emails("ada@example.com") == [
        f'Odim: your request {paid.reference} is now "Work in progress"',
        f'Odim: your request {paid.reference} is now "Completed"',
    ]
    async with session_scope() as s:
        body = await s.scalar(select(Email.body_text).where(Email.subject.contains("Work in progress")))
        jobs = await s.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.kind == "actor", OutboxMessage.target == "send_email"))
        undispatched = await s.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.dispatched_at.is_(None)))
    assert "Note from our team: Team on site" in body
    # payment confirmation, operator notice, 2 status emails, the assignment notices to the
    # customer and to the provider's account, and the contract to each of them
    assert jobs == 8
    assert undispatched == 0  # the resolvers relayed the outbox after commit


async def test_an_admin_cannot_skip_states_and_nothing_changes(api_client, paid):
    # given
    before = (await status_of(paid.id), await history(paid.id), await row_counts())
    # when
    to_completed = await update_status(api_client, paid, "COMPLETED", paid.admin)
    to_assigned_without_provider = await update_status(api_client, paid, "TEAM_ASSIGNED", paid.admin)
    back_to_awaiting = await update_status(api_client, paid, "AWAITING_PAYMENT", paid.admin)
    # then
    assert to_completed["data"]["updateServiceRequestStatus"] == {"serviceRequest": None, "errors": _err(
        "status", "INVALID_TRANSITION", "An admin cannot move a request from pending_contact to completed")}
    assert to_assigned_without_provider["data"]["updateServiceRequestStatus"] == {"serviceRequest": None, "errors": _err(
        "status", "INVALID_TRANSITION", "Assign a provider before moving the request to team_assigned")}
    assert back_to_awaiting["data"]["updateServiceRequestStatus"] == {"serviceRequest": None, "errors": _err(
        "status", "INVALID_TRANSITION", "An admin cannot move a request from pending_contact to awaiting_payment")}
    assert (await status_of(paid.id), await history(paid.id), await row_counts()) == before


async def test_an_admin_can_cancel_a_pending_request(api_client, paid):
    body = await update_status(api_client, paid, "CANCELLED", paid.admin, note="Customer asked")
    assert body["data"]["updateServiceRequestStatus"] == {
        "serviceRequest": {"status": "CANCELLED", "statusLabel": "Cancelled"}, "errors": []}
    assert (await history(paid.id))[-1] == ("pending_contact", "cancelled", "admin")


async def test_customers_get_forbidden_and_anonymous_callers_unauthenticated_on_admin_mutations(api_client, paid):
    # given
    before = (await status_of(paid.id), await history(paid.id), await row_counts())
    assign = {"input": {"serviceRequestId": paid.gid, "providerId": paid.provider_gid}}
    cancel = {"input": {"id": paid.gid, "status": "CANCELLED"}}
    # when
    results = {
        (who, name): await gql(api_client, query, variables, token=token)
        for who, token in (("customer", paid.customer), ("anonymous", None))
        for name, query, variables in (("assign", ASSIGN, assign), ("update", UPDATE_STATUS, cancel))
    }
    # then
    for (who, _), body in results.items():
        assert body["data"] is None
        assert error_codes(body) == ["FORBIDDEN" if who == "customer" else "UNAUTHENTICATED"]
    assert (await status_of(paid.id), await history(paid.id), await row_counts()) == before


async def test_the_assigned_provider_starts_and_completes_but_cannot_cancel(api_client, paid):
    # given
    await gql(api_client, ASSIGN, {"input": {"serviceRequestId": paid.gid, "providerId": paid.provider_gid}},
              token=paid.admin)
    provider = await login(api_client, "pro@example.com")
    await accept_order(paid.id)  # both parties accept the contract (tests/orders/test_contracts.py)
    # when
    started = await update_status(api_client, paid, "IN_PROGRESS", provider)
    before = (await history(paid.id), await row_counts())
    cancel = await update_status(api_client, paid, "CANCELLED", provider)
    after_cancel = (await history(paid.id), await row_counts())
    done = await update_status(api_client, paid, "COMPLETED", provider)
    # then
    assert started["data"]["updateServiceRequestStatus"]["errors"] == []
    assert cancel["data"]["updateServiceRequestStatus"] == {"serviceRequest": None, "errors": _err(
        "status", "INVALID_TRANSITION", "A provider cannot move a request from in_progress to cancelled")}
    assert after_cancel == before
    assert done["data"]["updateServiceRequestStatus"]["serviceRequest"]["status"] == "COMPLETED"
    assert (await history(paid.id))[-2:] == [("team_assigned", "in_progress", "provider"),
                                             ("in_progress", "completed", "provider")]


async def test_a_provider_not_assigned_to_the_request_is_forbidden(api_client, paid):
    # given
    await gql(api_client, ASSIGN, {"input": {"serviceRequestId": paid.gid, "providerId": paid.provider_gid}},
              token=paid.admin)
    stranger_user = await make_user("stranger@example.com", role="provider")
    await make_provider(user_id=stranger_user.id, display_name="Stranger Works")
    before = (await status_of(paid.id), await history(paid.id), await row_counts())
    # when
    body = await update_status(api_client, paid, "IN_PROGRESS", await login(api_client, "stranger@example.com"))
    # then
    assert body["data"] is None
    assert error_codes(body) == ["FORBIDDEN"]
    assert (await status_of(paid.id), await history(paid.id), await row_counts()) == before


async def test_assigning_an_unverified_provider_is_refused(api_client, paid):
    unverified = await make_provider(display_name="Not Yet", verified=False)
    body = await gql(api_client, ASSIGN, {"input": {"serviceRequestId": paid.gid,
                                                    "providerId": encode_id("Provider", unverified.id)}},
                     token=paid.admin)
    assert body["data"]["assignProvider"] == {"serviceRequest": None, "errors": _err(
        "providerId", "PROVIDER_NOT_ASSIGNABLE", "Only verified, non-suspended providers can be assigned")}
    assert await status_of(paid.id) == "pending_contact"


# --- the request list ---------------------------------------------------------------------------------


async def list_all(client, token: str, flt: dict | None = None, first: int = 7) -> tuple[list[str], list[int]]:
    """Every page of ``serviceRequests``: (references in order, totalCount of each page)."""
    references: list[str] = []
    totals: list[int] = []
    after = None
    while True:
        body = await gql(client, LIST, {"filter": flt, "first": first, "after": after}, token=token)
        page = body["data"]["serviceRequests"]
        references += [e["node"]["reference"] for e in page["edges"]]
        totals.append(page["totalCount"])
        if not page["pageInfo"]["hasNextPage"]:
            return references, totals
        after = page["pageInfo"]["endCursor"]


class Row(NamedTuple):
    """What the list tests know about one stored request."""

    reference: str
    created_at: datetime
    id: int
    status: str
    service_id: int
    provider_id: int | None
    owner: str


@dataclass
class Listing:
    admin: str
    ada: str
    eve: str
    provider: str
    provider_id: int
    other_service_id: int
    rows: list[Row]

    def expected(self, keep) -> list[str]:
        chosen = [r for r in self.rows if keep(r)]
        chosen.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        return [r.reference for r in chosen]


@pytest.fixture
async def listing(api_client, shop) -> Listing:
    """31 requests: Ada's and Eve's, of two services, some paid, some assigned to pro@, created on
    days 1-10 of January 2026 (several sharing one timestamp, to exercise the id tie-break)."""
    ada = await make_user("ada@example.com")
    eve = await make_user("eve@example.com")
    await make_user("ops@example.com", role="admin")
    provider_user = await make_user("pro@example.com", role="provider")
    provider = await make_provider(user_id=provider_user.id)
    other_provider = await make_provider(display_name="Other Plumbing")
    other_shop = Shop(shop.other_service_id, [shop.other_tier_id], shop.service_id, shop.tier_ids[0])
    admin = await make_user("admin2@example.com", role="admin")
    for i in range(31):
        owner = ada if i % 3 else eve
        request = await domain_purchase(other_shop if i % 4 == 0 else shop, owner)
        created = datetime(2026, 1, 1 + i % 10, 12, 0, tzinfo=UTC)
        async with session_scope() as s:
            await s.execute(update(ServiceRequest).where(ServiceRequest.id == request.id).values(created_at=created))
        if i % 2:
            await pay(request.id)
            if i % 5 != 0:
                async with session_scope() as s:
                    await sr.assign_provider(s, request.id, provider.id if i % 3 else other_provider.id, actor=admin)
    async with session_scope() as s:
        stored = (await s.scalars(select(ServiceRequest))).all()
        emails = dict((await s.execute(select(User.id, User.email))).all())
    rows = [Row(r.reference, r.created_at, r.id, r.status, r.service_id, r.assigned_provider_id,
                emails[r.customer_user_id]) for r in stored]
    return Listing(await login(api_client, "ops@example.com"), await login(api_client, "ada@example.com"),
                   await login(api_client, "eve@example.com"), await login(api_client, "pro@example.com"),
                   provider.id, shop.other_service_id, rows)


async def test_an_admin_pages_through_every_request_once_newest_first(api_client, listing):
    references, totals = await list_all(api_client, listing.admin)
    assert references == listing.expected(lambda r: True)
    assert len(references) == 31
    assert totals == [31] * 5


async def test_the_admin_list_filters_by_service_status_dates_and_provider(api_client, listing):
    start, end = datetime(2026, 1, 3, tzinfo=UTC), datetime(2026, 1, 6, 12, 0, tzinfo=UTC)
    cases = [
        ({"serviceId": encode_id("Service", listing.other_service_id)}, lambda r: r.service_id == listing.other_service_id),
        ({"status": "AWAITING_PAYMENT"}, lambda r: r.status == "awaiting_payment"),
        ({"status": "TEAM_ASSIGNED"}, lambda r: r.status == "team_assigned"),
        ({"createdFrom": start.isoformat(), "createdTo": end.isoformat()}, lambda r: start <= r.created_at < end),
        ({"assignedProviderId": encode_id("Provider", listing.provider_id)}, lambda r: r.provider_id == listing.provider_id),
        ({"status": "PENDING_CONTACT"}, lambda r: r.status == "pending_contact"),
        ({"status": "AWAITING_PAYMENT", "serviceId": encode_id("Service", listing.other_service_id)},
         lambda r: r.status == "awaiting_payment" and r.service_id == listing.other_service_id),
        ({"createdFrom": end.isoformat(), "assignedProviderId": encode_id("Provider", listing.provider_id)},
         lambda r: r.created_at >= end and r.provider_id == listing.provider_id),
    ]
    for flt, keep in cases:
        expected = listing.expected(keep)
        assert expected, flt  # every case selects something
        references, totals = await list_all(api_client, listing.admin, flt, first=4)
        assert references == expected, flt
        assert set(totals) == {len(expected)}, flt


async def test_a_customer_lists_only_its_own_requests_and_a_provider_only_its_assigned_ones(api_client, listing):
    assert (await list_all(api_client, listing.ada))[0] == listing.expected(lambda r: r.owner == "ada@example.com")
    assert (await list_all(api_client, listing.eve))[0] == listing.expected(lambda r: r.owner == "eve@example.com")
    mine = listing.expected(lambda r: r.provider_id == listing.provider_id)
    assert mine
    assert (await list_all(api_client, listing.provider))[0] == mine
    # a filter cannot widen what a customer sees
    widened, _ = await list_all(api_client, listing.ada,
                                {"assignedProviderId": encode_id("Provider", listing.provider_id)})
    assert widened == listing.expected(lambda r: r.owner == "ada@example.com" and r.provider_id == listing.provider_id)


async def test_the_list_needs_a_login_and_a_sane_page_size(api_client):
    await make_user("ops@example.com", role="admin")
    admin = await login(api_client, "ops@example.com")
    anonymous = await gql(api_client, LIST, {})
    too_big = await gql(api_client, LIST, {"first": 101}, token=admin)
    bad_cursor = await gql(api_client, LIST, {"after": "bm90IGEgY3Vyc29y"}, token=admin)
    assert (anonymous["data"], error_codes(anonymous)) == (None, ["UNAUTHENTICATED"])
    assert (too_big["data"], error_codes(too_big)) == (None, ["INVALID_PAGE_SIZE"])
    assert (bad_cursor["data"], error_codes(bad_cursor)) == (None, ["INVALID_CURSOR"])


async def test_a_page_with_related_objects_takes_the_same_statements_for_5_and_20_requests(api_client, shop):
    # given: 20 paid requests, each assigned to one of 4 providers
    await make_user("ada@example.com")
    admin = await make_user("ops@example.com", role="admin")
    providers = [await make_provider(display_name=f"Provider {i}") for i in range(4)]
    customer = (await session_get_user("ada@example.com"))
    for i in range(20):
        request = await domain_purchase(shop, customer, tier=i % 2)
        await pay(request.id)
        async with session_scope() as s:
            await sr.assign_provider(s, request.id, providers[i % 4].id, actor=admin)
    token = await login(api_client, "ops@example.com")
    # when
    counts = {}
    for first in (5, 20):
        with count_statements() as statements:
            body = await gql(api_client, LIST_DEEP, {"first": first}, token=token)
        edges = body["data"]["serviceRequests"]["edges"]
        assert len(edges) == first
        assert all(e["node"]["assignedProvider"] and e["node"]["conversation"] and len(e["node"]["timeline"]) == 4
                   and e["node"]["service"]["name"] == "Leak repair" for e in edges)
        counts[first] = len(statements)
    # then: viewer 1, page + count 2, timelines 1, services with tiers and prices 3, tiers 1,
    # providers 1, conversations 1
    assert counts == {5: 10, 20: 10}


async def session_get_user(email: str) -> User:
    async with session_scope() as s:
        return await s.scalar(select(User).where(User.email == email))


async def test_statement_counter_sees_statements():
    """The counter used above really counts (a check that cannot fail is a defect)."""
    async with session_scope() as s:
        with count_statements() as statements:
            await s.execute(text("SELECT 1"))
            await s.execute(text("SELECT 2"))
    assert [st_.strip() for st_ in statements] == ["SELECT 1", "SELECT 2"]


async def test_timelines_are_not_shifted_across_requests(api_client, shop):
    """Two requests in one page each show their own history (the DataLoader maps rows by id)."""
    await make_user("ops@example.com", role="admin")
    first = await domain_purchase(shop)
    second = await domain_purchase(shop)
    await pay(second.id)
    body = await gql(api_client, LIST_DEEP, {"first": 5}, token=await login(api_client, "ops@example.com"))
    timelines = {e["node"]["reference"]: [t["status"] for t in e["node"]["timeline"]]
                 for e in body["data"]["serviceRequests"]["edges"]}
    assert timelines == {first.reference: ["AWAITING_PAYMENT"],
                         second.reference: ["AWAITING_PAYMENT", "PAYMENT_CONFIRMED", "PENDING_CONTACT"]}

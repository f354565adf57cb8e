"""Contracts: generated when an order gets its provider or a visit is paid, hashed,
accepted by both parties (who, when, from which IP), versioned on every change of terms, required
before work starts, shown to admins on disputes, downloadable as a PDF by the parties and admins."""

from __future__ import annotations

import hashlib
from contextlib import contextmanager

import pytest
from sqlalchemy import event, func, select

from domain.bookings import booking as booking_domain
from domain.orders import contract as contract_domain
from domain.orders import dispute as dispute_domain
from domain.orders import guest_access
from domain.orders import service_request as sr
from models import AuditEntry, Contract, ContractAcceptance, Email, ServiceRequest, ServiceRequestStatusChange
from models.db import get_engine, session_scope
from resolvers.ids import encode_id
from settings import get_settings
from tests.support.bookings import attempt, cast, checkout_and_pay, drive, hold, slot
from tests.support.contracts import accept_both
from tests.support.factories import make_provider, make_service, make_user, token_for
from tests.support.graphql_client import gql
from tests.support.orders import GUEST, Shop, domain_purchase, pay

ORDER_CONTRACT = """
query($ref: String!, $token: String) { serviceRequest(reference: $ref, accessToken: $token) { status contract {
  id version sha256 body current fullyAccepted acceptedByCustomer acceptedByProvider pdfUrl
  acceptances { party acceptedAt ip userAgent } } } }
"""
ACCEPT = """
mutation($input: AcceptContractInput!) { acceptContract(input: $input) {
  contract { version fullyAccepted acceptances { party ip } } errors { field code message } } }
"""
CONTRACT = "query($id: ID!) { contract(id: $id) { version sha256 fullyAccepted } }"
UPDATE_STATUS = """
mutation($input: UpdateServiceRequestStatusInput!) { updateServiceRequestStatus(input: $input) {
  serviceRequest { status } errors { field code message } } }
"""
DISPUTES = "{ disputes { edges { node { id contract { version sha256 fullyAccepted acceptances { party } } } } } }"


@contextmanager
def count_statements():
    statements: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    engine = get_engine().sync_engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


class Order:
    """Ada's paid catalogue order assigned to P1 (Eko Plumbing), with P2 (Bonaberi Repairs) verified too."""

    def __init__(self, shop, request, ada, p1_user, p1, p2_user, p2, admin, eve):
        self.shop, self.request, self.ada, self.p1_user, self.p1 = shop, request, ada, p1_user, p1
        self.p2_user, self.p2, self.admin, self.eve = p2_user, p2, admin, eve

    @property
    def gid(self) -> str:
        return encode_id("ServiceRequest", self.request.id)


@pytest.fixture
async def order() -> Order:
    service, tiers = await make_service(name="Leak repair", tiers=2, prices={"XAF": 10000})
    shop = Shop(service.id, [t.id for t in tiers], service.id, tiers[0].id)
    ada = await make_user("ada@example.com", full_name="Ada Eko")
    eve = await make_user("eve@example.com", full_name="Eve Other")
    admin = await make_user("ops@example.com", role="admin", full_name="Odim Ops")
    p1_user = await make_user("pro@example.com", role="provider", full_name="Paul Pro")
    p1 = await make_provider(user_id=p1_user.id, display_name="Eko Plumbing")
    p2_user = await make_user("other@example.com", role="provider", full_name="Olga Other")
    p2 = await make_provider(user_id=p2_user.id, display_name="Bonaberi Repairs")
    request = await domain_purchase(shop, ada)
    await pay(request.id)
    async with session_scope() as s:
        await sr.assign_provider(s, request.id, p1.id, actor=admin)
    return Order(shop, request, ada, p1_user, p1, p2_user, p2, admin, eve)


async def contracts_of(**subject) -> list[Contract]:
    async with session_scope() as s:
        column = Contract.service_request_id if "service_request_id" in subject else Contract.booking_id
        value = subject.get("service_request_id", subject.get("booking_id"))
        return list((await s.scalars(select(Contract).where(column == value).order_by(Contract.version))).all())


async def acceptances() -> list[tuple[int, str, int | None, str | None]]:
    async with session_scope() as s:
        rows = (await s.scalars(select(ContractAcceptance).order_by(ContractAcceptance.id))).all()
    return [(a.contract_id, a.party, a.user_id, a.ip) for a in rows]


async def audit_actions(prefix: str = "contract.") -> list[tuple[str, str | None, dict]]:
    async with session_scope() as s:
        rows = (await s.scalars(select(AuditEntry).where(AuditEntry.action.startswith(prefix))
                                .order_by(AuditEntry.id))).all()
    return [(r.action, None if r.ip is None else str(r.ip), r.details) for r in rows]


async def order_contract(client, reference: str, token: str | None, access_token: str | None = None) -> dict | None:
    body = await gql(client, ORDER_CONTRACT, {"ref": reference, "token": access_token}, token=token)
    assert "errors" not in body, body
    return body["data"]["serviceRequest"]["contract"]


async def accept(client, contract_gid: str, sha: str, token: str | None, access_token: str | None = None) -> dict:
    body = await gql(client, ACCEPT, {"input": {"contractId": contract_gid, "sha256": sha, "accessToken": access_token}},
                     token=token)
    assert "errors" not in body, body
    return body["data"]["acceptContract"]


# --- generation ---------------------------------------------------------------------------------------


async def test_a_guest_order_gets_its_contract_when_a_provider_is_assigned_with_the_fee_breakdown():
    # given: a guest's paid order for 10,000 XAF (the guest pays the 10 % surcharge on top)
    service, tiers = await make_service(name="Leak repair", tiers=1, prices={"XAF": 10000})
    shop = Shop(service.id, [tiers[0].id], service.id, tiers[0].id)
    admin = await make_user("ops@example.com", role="admin")
    provider = await make_provider(display_name="Eko Plumbing")
    request = await domain_purchase(shop, None)
    await pay(request.id)
    assert await contracts_of(service_request_id=request.id) == []
    # when: an admin assigns the provider
    async with session_scope() as s:
        await sr.assign_provider(s, request.id, provider.id, actor=admin)
    # then: version 1, naming the provider, with the snapshotted breakdown in minor units
    [made] = await contracts_of(service_request_id=request.id)
    assert (made.version, made.provider_id, made.superseded_at, made.booking_id) == (1, provider.id, None, None)
    assert made.terms["price"] == {
        "currency": "XAF", "price": 10000, "urgentSurcharge": 0, "guestSurcharge": 1000, "total": 11000,
        "commission": 1000, "commissionBps": 1000, "providerShare": 9000, "order": request.reference,
        "followUpOf": None,
    }
    assert made.terms["parties"] == {"customer": {"userId": None}, "provider": {"id": provider.id, "name": "Eko Plumbing"}}
    assert made.terms["scope"] == {"service": "Leak repair", "category": "plumbing", "tier": "Basic",
                                   "features": ["feature 0"], "requirements": "", "followUpOf": None}
    assert made.terms["cancellation"]["refundPercentBeforeStart"] == 100
    # and the hash is the SHA-256 of the body's exact bytes; the body shows the figures, never the guest's details
    assert made.sha256 == hashlib.sha256(made.body.encode("utf-8")).hexdigest()
    assert f"Order {request.reference} - version 1" in made.body
    assert "Total paid by the customer:  11,000 FCFA" in made.body
    assert "Provider's share:            9,000 FCFA" in made.body
    for personal in (GUEST["fullName"], GUEST["email"], "699"):
        assert personal not in made.body
    assert [a for a, _, _ in await audit_actions()] == ["contract.generated"]


async def test_a_paid_visit_gets_its_contract_with_schedule_and_cancellation_terms():
    # given: a held visit on Monday 2027-03-02 09:00 UTC (10:00 in Douala)
    c = await cast()
    visit = await hold(c.b, c.customer, slot(1))
    assert await contracts_of(booking_id=visit.id) == []
    # when: it is paid
    await checkout_and_pay(visit.id, c.customer)
    # then
    [made] = await contracts_of(booking_id=visit.id)
    assert (made.version, made.provider_id, made.service_request_id) == (1, c.b.provider.id, None)
    assert made.terms["schedule"] == {
        "start": "2027-03-02T09:00:00+00:00", "end": "2027-03-02T10:00:00+00:00", "timeZone": "Africa/Douala",
        "localStart": "2027-03-02 10:00", "localEnd": "2027-03-02 11:00",
    }
    assert made.terms["cancellation"]["policy"] == [[48, 100], [24, 50], [0, 0]]
    assert made.terms["price"]["total"] == made.terms["price"]["price"] == 10000
    assert made.terms["parties"]["customer"] == {"userId": c.customer.id}
    assert "Cancelled by the customer 48 hours or more before the start: 100 % refunded." in made.body
    assert "Visit from 2027-03-02 10:00 to 2027-03-02 11:00 (Africa/Douala)." in made.body
    # when: the provider accepts the visit (same terms)
    await attempt(c, visit.id, "accepted", "provider")
    # then: still one version
    assert [x.version for x in await contracts_of(booking_id=visit.id)] == [1]


# --- acceptance ---------------------------------------------------------------------------------------


async def test_both_parties_accept_and_who_when_and_ip_are_recorded(api_client, order):
    # given
    ada, pro, admin = await token_for(order.ada), await token_for(order.p1_user), await token_for(order.admin)
    shown = await order_contract(api_client, order.request.reference, ada)
    assert (shown["version"], shown["fullyAccepted"], shown["acceptances"]) == (1, False, [])
    # when: Ada then the provider accept the text they were shown
    first = await accept(api_client, shown["id"], shown["sha256"], ada)
    second = await accept(api_client, shown["id"], shown["sha256"], pro)
    again = await accept(api_client, shown["id"], shown["sha256"], ada)
    # then
    assert first == {"contract": {"version": 1, "fullyAccepted": False, "acceptances": [
        {"party": "CUSTOMER", "ip": None}]}, "errors": []}
    assert second["errors"] == [] and second["contract"]["fullyAccepted"] is True
    assert again["errors"] == []
    cid = (await contracts_of(service_request_id=order.request.id))[0].id
    assert await acceptances() == [(cid, "customer", order.ada.id, "127.0.0.1"),
                                   (cid, "provider", order.p1_user.id, "127.0.0.1")]
    accepted = [(action, ip, d["party"]) for action, ip, d in await audit_actions() if action == "contract.accepted"]
    assert accepted == [("contract.accepted", "127.0.0.1", "customer"), ("contract.accepted", "127.0.0.1", "provider")]
    # and: an admin sees the IPs and user agents, a party does not
    as_admin = await order_contract(api_client, order.request.reference, admin)
    assert [(a["party"], a["ip"], a["userAgent"].startswith("python-httpx/")) for a in as_admin["acceptances"]] == [
        ("CUSTOMER", "127.0.0.1", True), ("PROVIDER", "127.0.0.1", True)]
    as_ada = await order_contract(api_client, order.request.reference, ada)
    assert [(a["party"], a["ip"], a["userAgent"]) for a in as_ada["acceptances"]] == [
        ("CUSTOMER", None, None), ("PROVIDER", None, None)]


async def test_a_wrong_hash_is_refused_and_nothing_is_written(api_client, order):
    # given
    ada = await token_for(order.ada)
    shown = await order_contract(api_client, order.request.reference, ada)
    before = await audit_actions()
    # when
    payload = await accept(api_client, shown["id"], "0" * 64, ada)
    # then
    assert payload == {"contract": None, "errors": [{"field": "sha256", "code": "CONTRACT_CHANGED", "message":
                       "The contract you read is not the current text: reload it and accept again"}]}
    assert await acceptances() == []
    assert await audit_actions() == before


async def test_strangers_cannot_read_or_accept_and_admins_read_but_cannot_accept(api_client, order):
    # given
    eve, other_pro = await token_for(order.eve), await token_for(order.p2_user)
    admin = await token_for(order.admin)
    [made] = await contracts_of(service_request_id=order.request.id)
    gid = encode_id("Contract", made.id)
    # when / then: another customer and another provider get NOT_FOUND (it might not exist)
    for token in (eve, other_pro):
        payload = await accept(api_client, gid, made.sha256, token)
        assert payload == {"contract": None, "errors": [
            {"field": "contractId", "code": "NOT_FOUND", "message": "No such contract"}]}
        assert (await gql(api_client, CONTRACT, {"id": gid}, token=token))["data"] == {"contract": None}
    # and anonymous callers must log in; an admin reads it but may not accept it
    anonymous = await gql(api_client, ACCEPT, {"input": {"contractId": gid, "sha256": made.sha256}})
    assert [e["extensions"]["code"] for e in anonymous["errors"]] == ["UNAUTHENTICATED"]
    forbidden = await gql(api_client, ACCEPT, {"input": {"contractId": gid, "sha256": made.sha256}}, token=admin)
    assert [e["extensions"]["code"] for e in forbidden["errors"]] == ["FORBIDDEN"]
    read = await gql(api_client, CONTRACT, {"id": gid}, token=admin)
    assert read["data"] == {"contract": {"version": 1, "sha256": made.sha256, "fullyAccepted": False}}
    assert await acceptances() == []


async def test_a_guest_accepts_with_its_signed_link(api_client):
    # given: a guest's order with its provider
    service, tiers = await make_service(name="Leak repair", tiers=1, prices={"XAF": 10000})
    shop = Shop(service.id, [tiers[0].id], service.id, tiers[0].id)
    admin = await make_user("ops@example.com", role="admin")
    provider = await make_provider(display_name="Eko Plumbing")
    request = await domain_purchase(shop, None)
    await pay(request.id)
    async with session_scope() as s:
        await sr.assign_provider(s, request.id, provider.id, actor=admin)
    link = guest_access.guest_access_token(request.reference)
    shown = await order_contract(api_client, request.reference, None, access_token=link)
    # when: without its token it is hidden; with it the guest accepts
    refused = await accept(api_client, shown["id"], shown["sha256"], None, access_token="1.forged")
    payload = await accept(api_client, shown["id"], shown["sha256"], None, access_token=link)
    # then
    assert [e["code"] for e in refused["errors"]] == ["NOT_FOUND"]
    assert payload["errors"] == [] and payload["contract"]["acceptances"] == [{"party": "CUSTOMER", "ip": None}]
    assert [(party, user_id) for _, party, user_id, _ in await acceptances()] == [("customer", None)]


# --- versions -----------------------------------------------------------------------------------------


async def test_a_new_provider_makes_version_2_that_needs_both_acceptances_again(api_client, order):
    # given: version 1 accepted by both
    await accept_both(service_request_id=order.request.id)
    admin = await token_for(order.admin)
    async with session_scope() as s:  # assigning the same provider again changes no term
        await sr.assign_provider(s, order.request.id, order.p1.id, actor=order.admin)
    assert [c.version for c in await contracts_of(service_request_id=order.request.id)] == [1]
    # when: the admin reassigns the order to P2
    async with session_scope() as s:
        await sr.assign_provider(s, order.request.id, order.p2.id, actor=order.admin)
    # then: version 1 is superseded, version 2 names P2 and nobody accepted it yet
    v1, v2 = await contracts_of(service_request_id=order.request.id)
    assert (v1.superseded_at is not None, v2.version, v2.provider_id, v2.superseded_at) == (True, 2, order.p2.id, None)
    assert v2.terms["parties"]["provider"] == {"id": order.p2.id, "name": "Bonaberi Repairs"}
    shown = await order_contract(api_client, order.request.reference, await token_for(order.ada))
    assert (shown["version"], shown["fullyAccepted"], shown["acceptances"]) == (2, False, [])
    # and: the old hash no longer accepts anything; work cannot start
    stale = await accept(api_client, encode_id("Contract", v1.id), v1.sha256, await token_for(order.ada))
    assert [e["code"] for e in stale["errors"]] == ["CONTRACT_CHANGED"]
    started = await gql(api_client, UPDATE_STATUS, {"input": {"id": order.gid, "status": "IN_PROGRESS"}}, token=admin)
    assert [e["code"] for e in started["data"]["updateServiceRequestStatus"]["errors"]] == ["CONTRACT_NOT_ACCEPTED"]
    # when: both accept version 2 (P1 is no party to it any more)
    old_provider = await accept(api_client, shown["id"], shown["sha256"], await token_for(order.p1_user))
    assert [e["code"] for e in old_provider["errors"]] == ["NOT_FOUND"]
    await accept(api_client, shown["id"], shown["sha256"], await token_for(order.ada))
    await accept(api_client, shown["id"], shown["sha256"], await token_for(order.p2_user))
    started = await gql(api_client, UPDATE_STATUS, {"input": {"id": order.gid, "status": "IN_PROGRESS"}}, token=admin)
    # then
    assert started["data"]["updateServiceRequestStatus"] == {"serviceRequest": {"status": "IN_PROGRESS"}, "errors": []}


async def test_each_party_is_emailed_each_version_once_and_identical_terms_email_nobody(order):
    # given: version 1 made when P1 was assigned (the fixture)
    async def contract_emails() -> list[tuple[str, str]]:
        async with session_scope() as s:
            rows = (await s.scalars(select(Email).where(Email.kind == "contract").order_by(Email.id))).all()
        return [(e.to_address, e.subject) for e in rows]

    ref = order.request.reference
    v1 = [("ada@example.com", f"Odim: the contract for order {ref} to accept"),
          ("pro@example.com", f"Odim: the contract for order {ref} to accept")]
    assert await contract_emails() == v1
    # when: the same provider is assigned again (no new terms), then P2
    async with session_scope() as s:
        await sr.assign_provider(s, order.request.id, order.p1.id, actor=order.admin)
    assert await contract_emails() == v1
    async with session_scope() as s:
        await sr.assign_provider(s, order.request.id, order.p2.id, actor=order.admin)
    # then: version 2 goes to Ada and P2 (not P1), naming what changed and the hash to compare
    [_, v2] = await contracts_of(service_request_id=order.request.id)
    assert await contract_emails() == v1 + [
        ("ada@example.com", f"Odim: new terms for order {ref} to accept"),
        ("other@example.com", f"Odim: new terms for order {ref} to accept")]
    async with session_scope() as s:
        body = (await s.scalars(select(Email.body_text).where(Email.kind == "contract").order_by(Email.id.desc()))).first()
    assert "changed (another provider)" in body and "version 2" in body and v2.sha256 in body


async def test_a_take_over_makes_a_new_version_of_the_visit_contract():
    # given: an accepted visit whose provider cannot make it
    c = await cast()
    visit = await hold(c.b, c.customer, slot(1))
    await drive(c, visit.id, "cannot_make_it")
    # when: the substitute takes it over
    async with session_scope() as s:
        await booking_domain.take_over(s, visit.id, actor=c.admin, provider_id=c.substitute.provider.id)
    # then
    v1, v2 = await contracts_of(booking_id=visit.id)
    assert (v1.provider_id, v1.superseded_at is not None) == (c.b.provider.id, True)
    assert (v2.version, v2.provider_id, v2.superseded_at) == (2, c.substitute.provider.id, None)
    assert v2.terms["parties"]["provider"]["name"] == "Bonaberi Repairs"


# --- before work starts -------------------------------------------------------------------------------


async def test_an_order_cannot_start_before_both_accept_and_nothing_changes(api_client, order):
    # given
    admin = await token_for(order.admin)
    async with session_scope() as s:
        history_before = await s.scalar(select(func.count()).select_from(ServiceRequestStatusChange))
    shown = await order_contract(api_client, order.request.reference, await token_for(order.ada))
    await accept(api_client, shown["id"], shown["sha256"], await token_for(order.ada))
    # when: only the customer accepted
    payload = await gql(api_client, UPDATE_STATUS, {"input": {"id": order.gid, "status": "IN_PROGRESS"}}, token=admin)
    # then
    assert payload["data"]["updateServiceRequestStatus"] == {"serviceRequest": None, "errors": [{
        "field": "status", "code": "CONTRACT_NOT_ACCEPTED",
        "message": "Work cannot start before both parties accept the contract (version 1); waiting for: provider"}]}
    async with session_scope() as s:
        assert (await s.get(ServiceRequest, order.request.id)).status == "team_assigned"
        assert await s.scalar(select(func.count()).select_from(ServiceRequestStatusChange)) == history_before
    # when: the provider accepts too
    await accept(api_client, shown["id"], shown["sha256"], await token_for(order.p1_user))
    payload = await gql(api_client, UPDATE_STATUS, {"input": {"id": order.gid, "status": "IN_PROGRESS"}},
                        token=await token_for(order.p1_user))
    # then
    assert payload["data"]["updateServiceRequestStatus"] == {"serviceRequest": {"status": "IN_PROGRESS"}, "errors": []}


async def test_a_visit_cannot_start_before_its_contract_is_accepted():
    # given: an accepted visit
    c = await cast()
    visit = await hold(c.b, c.customer, slot(1))
    await drive(c, visit.id, "accepted")
    # when: its provider starts it before anyone accepted the contract
    with pytest.raises(contract_domain.ContractNotAccepted):
        async with session_scope() as s:
            await booking_domain.change_status(s, visit.id, "in_progress", actor=c.b.provider_user)
    # then: nothing changed
    async with session_scope() as s:
        assert (await s.get(booking_domain.Booking, visit.id)).status == "accepted"
    # when: both accept, it starts (and its order with it)
    await accept_both(booking_id=visit.id)
    async with session_scope() as s:
        started = await booking_domain.change_status(s, visit.id, "in_progress", actor=c.b.provider_user)
        order = await s.get(ServiceRequest, started.service_request_id)
        assert (started.status, order.status) == ("in_progress", "in_progress")


async def test_the_requirement_can_be_switched_off_for_fixtures_that_predate_contracts(order, monkeypatch):
    # given
    monkeypatch.setattr(get_settings(), "contracts_required_before_work", False)
    # when
    async with session_scope() as s:
        await sr.update_status(s, order.request.id, "in_progress", actor=order.admin)
    # then
    async with session_scope() as s:
        assert (await s.get(ServiceRequest, order.request.id)).status == "in_progress"


# --- disputes -----------------------------------------------------------------------------------------


async def test_an_admin_settling_a_dispute_reads_the_accepted_contract(api_client, order):
    # given: the order's contract accepted, the work done, and the customer disputing it
    cid = await accept_both(service_request_id=order.request.id)
    async with session_scope() as s:
        await sr.update_status(s, order.request.id, "in_progress", actor=order.admin)
    async with session_scope() as s:
        await sr.update_status(s, order.request.id, "completed", actor=order.p1_user)
    async with session_scope() as s:
        await dispute_domain.open_dispute(s, order.request.id, actor=order.ada, reason="Still drips")
    # when
    as_admin = await gql(api_client, DISPUTES, token=await token_for(order.admin))
    # then
    [edge] = as_admin["data"]["disputes"]["edges"]
    made = (await contracts_of(service_request_id=order.request.id))[0]
    assert edge["node"]["contract"] == {"version": 1, "sha256": made.sha256, "fullyAccepted": True,
                                        "acceptances": [{"party": "CUSTOMER"}, {"party": "PROVIDER"}]}
    assert made.id == cid
    async with session_scope() as s:
        assert (await contract_domain.accepted_contract(s, service_request_id=order.request.id)).id == cid
    # and the customer's view of her dispute carries no contract (admins only)
    mine = await gql(api_client, "query($r: String!) { serviceRequest(reference: $r) { disputes { contract { id } } } }",
                     {"r": order.request.reference}, token=await token_for(order.ada))
    assert mine["data"]["serviceRequest"]["disputes"] == [{"contract": None}]


async def test_a_booking_dispute_shows_the_disputed_visits_contract(api_client):
    # given: a completed visit (its contract accepted on the way) disputed by its customer
    c = await cast()
    visit = await hold(c.b, c.customer, slot(1))
    await drive(c, visit.id, "disputed")
    [made] = await contracts_of(booking_id=visit.id)
    # when
    body = await gql(api_client, DISPUTES, token=await token_for(c.admin))
    # then
    [edge] = body["data"]["disputes"]["edges"]
    assert edge["node"]["contract"]["sha256"] == made.sha256
    assert edge["node"]["contract"]["fullyAccepted"] is True


async def test_a_page_of_disputes_with_their_contracts_takes_the_same_statements_for_1_and_3(api_client, order):
    # given: n disputed orders with accepted contracts
    async def disputed_order() -> None:
        request = await domain_purchase(order.shop, order.ada)
        await pay(request.id)
        async with session_scope() as s:
            await sr.assign_provider(s, request.id, order.p1.id, actor=order.admin)
        await accept_both(service_request_id=request.id)
        for status, actor in (("in_progress", order.admin), ("completed", order.p1_user)):
            async with session_scope() as s:
                await sr.update_status(s, request.id, status, actor=actor)
        async with session_scope() as s:
            await dispute_domain.open_dispute(s, request.id, actor=order.ada, reason="Still drips")

    token = await token_for(order.admin)
    counts = []
    for n in (1, 3):
        while len((await gql(api_client, DISPUTES, token=token))["data"]["disputes"]["edges"]) < n:
            await disputed_order()
        # when
        with count_statements() as statements:
            body = await gql(api_client, DISPUTES, token=token)
        # then
        assert [e["node"]["contract"]["fullyAccepted"] for e in body["data"]["disputes"]["edges"]] == [True] * n
        counts.append(len(statements))
    assert counts[0] == counts[1], counts


# --- PDF ----------------------------------------------------------------------------------------------


async def test_the_pdf_is_for_the_parties_and_admins_only(api_client, order):
    # given
    await accept_both(service_request_id=order.request.id)
    [made] = await contracts_of(service_request_id=order.request.id)
    path = f"/contracts/{encode_id('Contract', made.id)}.pdf"
    shown = await order_contract(api_client, order.request.reference, await token_for(order.ada))
    assert shown["pdfUrl"] == path
    # when / then: the customer, the provider and an admin get the PDF with the hash in it
    for user in (order.ada, order.p1_user, order.admin):
        response = await api_client.get(path, headers={"Authorization": f"Bearer {await token_for(user)}"})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/pdf"
        assert response.headers["x-content-sha256"] == made.sha256
        assert response.content.startswith(b"%PDF-")
        assert f"sha256:{made.sha256}".encode() in response.content
    # and everybody else gets 404 (a stranger, an unknown id) or 401 (no token)
    for user in (order.eve, order.p2_user):
        response = await api_client.get(path, headers={"Authorization": f"Bearer {await token_for(user)}"})
        assert (response.status_code, response.json()["code"]) == (404, "NOT_FOUND")
    unknown = await api_client.get(f"/contracts/{encode_id('Contract', made.id + 1000)}.pdf",
                                   headers={"Authorization": f"Bearer {await token_for(order.ada)}"})
    assert unknown.status_code == 404
    assert (await api_client.get(path)).status_code == 401


async def test_the_pdf_falls_back_to_a_builtin_font_with_the_text_readable(order, monkeypatch):
    # given: no TrueType font on the machine
    monkeypatch.setattr(get_settings(), "contract_pdf_font_path", "/nonexistent.ttf")
    await accept_both(service_request_id=order.request.id)
    [made] = await contracts_of(service_request_id=order.request.id)
    async with session_scope() as s:
        accepted = (await contract_domain.acceptances_of(s, [made.id]))[made.id]
    # when
    data = contract_domain.render_pdf(made, accepted)
    # then: uncompressed Courier text: the hash and the acceptances are readable in the file
    assert data.startswith(b"%PDF-")
    assert f"({made.sha256}) Tj".encode() in data
    assert rf"(Accepted by the customer \(account no. {order.ada.id}\) on ".encode() in data
    assert f"/Subject (sha256:{made.sha256})".encode() in data


async def test_a_visit_shows_its_contract_to_its_parties_and_node_finds_it(api_client):
    # given: a paid visit
    c = await cast()
    visit = await hold(c.b, c.customer, slot(1))
    await checkout_and_pay(visit.id, c.customer)
    [made] = await contracts_of(booking_id=visit.id)
    query = "query($id: ID!) { booking(id: $id) { contract { version sha256 booking { reference } } } }"
    node = "query($id: ID!) { node(id: $id) { ... on Contract { version } } }"
    # when / then: the customer and the provider see it; another customer sees neither the visit nor the contract
    for user in (c.customer, c.b.provider_user):
        body = await gql(api_client, query, {"id": encode_id("Booking", visit.id)}, token=await token_for(user))
        assert body["data"]["booking"]["contract"] == {"version": 1, "sha256": made.sha256,
                                                       "booking": {"reference": visit.reference}}
        found = await gql(api_client, node, {"id": encode_id("Contract", made.id)}, token=await token_for(user))
        assert found["data"] == {"node": {"version": 1}}
    stranger = await token_for(c.other_customer)
    assert (await gql(api_client, query, {"id": encode_id("Booking", visit.id)}, token=stranger))["data"] == {
        "booking": None}
    assert (await gql(api_client, node, {"id": encode_id("Contract", made.id)}, token=stranger))["data"] == {
        "node": None}

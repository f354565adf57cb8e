"""The whole customer journey against real processes: a uvicorn server and a Dramatiq worker
started as subprocesses, driven by a real GraphQL client (gql) over HTTP and graphql-transport-ws.

Given a verified provider in Douala, a catalogue service, an affiliate and an admin, a customer
registers, searches, buys, pays on the sandbox's hosted page, and sees each status change live;
the admin assigns the provider and moves the request on; customer and provider chat live.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pyotp
import pytest
import pytest_asyncio
from gql import Client, gql
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport
from sqlalchemy import text

from resolvers.ids import decode_id
from settings import get_settings
from tests.support.contracts import accept_order
from tests.support.factories import make_affiliate, make_provider, make_service, make_user

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live_stack():
    """uvicorn (API) + dramatiq (worker) as real processes on the test stack; stopped afterwards."""
    settings = get_settings()
    env = {**os.environ}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "server:app", "--host", "127.0.0.1", "--port", str(settings.port),
         "--log-level", "warning"], cwd=ROOT, env=env, start_new_session=True,
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "dramatiq", "workers", "--processes", "1", "--threads", "4"],
        cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
    )
    base = settings.public_base_url
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(600):  # importing the app alone takes 10+ s on a busy 2-core machine
                try:
                    if (await client.get(f"{base}/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("server did not become ready")
        yield base
    finally:
        for proc in (server, worker):
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in (server, worker):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def op(query: str, variables: dict | None = None):
    request = gql(query)
    request.variable_values = variables
    return request


def http_client(base: str, token: str | None = None) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return Client(transport=HTTPXAsyncTransport(url=f"{base}/graphql", headers=headers), fetch_schema_from_transport=False)


def ws_client(base: str, token: str | None = None) -> Client:
    transport = WebsocketsTransport(
        url=base.replace("http", "ws", 1) + "/graphql",
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        init_payload={"token": token} if token else {},
        headers={"Origin": base},
    )
    return Client(transport=transport, fetch_schema_from_transport=False)


async def collect(base: str, query: str, variables: dict, sink: list, ready: asyncio.Event, token: str | None = None):
    async with ws_client(base, token) as session:
        ready.set()
        async for result in session.subscribe(op(query, variables)):
            sink.append(result)


async def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    for _ in range(int(timeout / 0.1)):
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_customer_journey_over_http_and_websocket(live_stack, mailbox):
    base = live_stack
    # Given: a verified provider with a login, a service, an affiliate and an admin.
    provider_user = await make_user("eko@odim.test", role="provider", full_name="Eko Plumbing")
    await make_provider(user_id=provider_user.id, latitude=4.0511, longitude=9.7679)
    await make_provider(display_name="Far Away", latitude=3.8480, longitude=11.5021)  # Yaoundé, outside 20 km
    service, tiers = await make_service(name="Leak repair", prices={"XAF": 15000})
    await make_affiliate("DOUALA-PARTNER")
    await make_user("ops@odim.test", role="admin", password="admin-password-123", full_name="Ops")

    async with http_client(base) as anon:
        # 1. register and log in
        reg = await anon.execute(op("""mutation($i: RegisterInput!){ register(input:$i){ token user{ email role } errors{ code } } }""", {"i": {"email": "awa@example.cm", "password": "a-long-password",
                                                        "fullName": "Awa Ngono", "phone": "+237671234567"}}))
        assert reg["register"]["errors"] == [] and reg["register"]["user"] == {"email": "awa@example.cm", "role": "CUSTOMER"}
        login = await anon.execute(op("""mutation($i: LoginInput!){ login(input:$i){ token errors{ code } } }""", {"i": {"email": "awa@example.cm", "password": "a-long-password"}}))
        token = login["login"]["token"]
        # the operator must enrol two-factor authentication before any admin action
        first = (await anon.execute(op("""mutation{ login(input:{email:"ops@odim.test", password:"admin-password-123"}){ token mfaEnrolmentRequired } }""")))["login"]
        assert first["mfaEnrolmentRequired"] is True
        async with http_client(base, first["token"]) as enrolling:
            secret = (await enrolling.execute(op("""mutation{ startMfaEnrolment{ secret errors{ code } } }""")))["startMfaEnrolment"]["secret"]
            confirmed = (await enrolling.execute(op("""mutation($c: String!){ confirmMfaEnrolment(input:{code:$c}){ tokens{ accessToken } errors{ code } } }""",
                                                    {"c": pyotp.TOTP(secret).now()})))["confirmMfaEnrolment"]
        assert confirmed["errors"] == []
        admin_token = confirmed["tokens"]["accessToken"]
        provider_token = (await anon.execute(op("""mutation{ login(input:{email:"eko@odim.test", password:"correct-horse-battery"}){ token } }""")))["login"]["token"]

    async with http_client(base, token) as customer:
        # 2. geosearch in Douala
        nearby = await customer.execute(op("""{ providersNearby(near:{latitude:4.0483, longitude:9.7043}, radiusKm:20, category:"plumbing", first:10){
            edges{ cursor node{ distanceMeters provider{ id displayName categories rating } } } pageInfo{ hasNextPage } } }"""))
        edges = nearby["providersNearby"]["edges"]
        assert [e["node"]["provider"]["displayName"] for e in edges] == ["Eko Plumbing"]
        assert 6_000 < edges[0]["node"]["distanceMeters"] < 8_000
        provider_gid = edges[0]["node"]["provider"]["id"]

        # 3. catalogue and purchase
        services = await customer.execute(op("""{ services(category:"plumbing"){ id name tiers{ id name price{ amountMinor currency formatted } features } } }"""))
        svc = services["services"][0]
        assert svc["tiers"][0]["price"] == {"amountMinor": 15000, "currency": "XAF", "formatted": "15,000 FCFA"}
        bought = await customer.execute(op("""mutation($i: PurchaseServiceInput!){ purchaseService(input:$i){
            serviceRequest{ id reference status conversation{ id } } checkoutUrl errors{ field code message } } }""", {"i": {"serviceId": svc["id"], "tierId": svc["tiers"][0]["id"], "affiliateCode": "DOUALA-PARTNER",
                                   "customer": {"requirements": "Kitchen tap drips"}, "idempotencyKey": "journey-1"}}))
        payload = bought["purchaseService"]
        assert payload["errors"] == []
        reference = payload["serviceRequest"]["reference"]
        request_gid = payload["serviceRequest"]["id"]
        conversation_id = payload["serviceRequest"]["conversation"]["id"]
        assert re.fullmatch(r"ODM-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}", reference)
        assert payload["serviceRequest"]["status"] == "AWAITING_PAYMENT"

    # 7. subscribe to status changes (anonymous: the reference is enough, no personal data)
    events: list = []
    ready = asyncio.Event()
    status_task = asyncio.create_task(collect(
        base, "subscription($r: String!){ serviceRequestStatusChanged(reference:$r){ reference status previousStatus statusLabel } }",
        {"r": reference}, events, ready))
    await asyncio.wait_for(ready.wait(), 10)
    await asyncio.sleep(0.5)  # the subscribe reaches Redis

    # 4-6. hosted checkout page, Pay, signed webhook, worker
    async with httpx.AsyncClient() as browser:
        page = await browser.get(payload["checkoutUrl"])
        assert page.status_code == 200 and "15,000 FCFA" in page.text and 'value="paid"' in page.text
        paid = await browser.post(payload["checkoutUrl"], data={"outcome": "paid"})
        assert paid.status_code == 200 and "Payment approved" in paid.text

    await wait_for(lambda: len(events) >= 2, what="payment status events")
    assert [e["serviceRequestStatusChanged"]["status"] for e in events[:2]] == ["PAYMENT_CONFIRMED", "PENDING_CONTACT"]

    await wait_for(lambda: any(reference in str(m["Subject"]) for m in mailbox()), what="confirmation email")
    confirmation = next(m for m in mailbox() if m["To"] == "awa@example.cm" and reference in str(m["Subject"]))
    body = confirmation.get_body(("plain",)).get_content()
    assert reference in body and "Leak repair" in body and "15,000 FCFA" in body and "Next steps" in body
    assert any(m["To"] == get_settings().operator_email for m in mailbox())

    async with http_client(base) as anon:
        tracked = await anon.execute(op("""query($r:String!){ serviceRequest(reference:$r){ status statusLabel nextStep timeline{ status } customer{ email } } }""", {"r": reference}))
        assert tracked["serviceRequest"]["status"] == "PENDING_CONTACT"
        assert [t["status"] for t in tracked["serviceRequest"]["timeline"]] == ["AWAITING_PAYMENT", "PAYMENT_CONFIRMED", "PENDING_CONTACT"]
        assert tracked["serviceRequest"]["customer"] is None

    # 8. admin: list, assign, move on — each change reaches the subscription
    async with http_client(base, admin_token) as admin:
        listed = await admin.execute(op("""{ serviceRequests(filter:{status: PENDING_CONTACT}, first:10){ totalCount edges{ node{ reference customer{ email } } } } }"""))
        assert listed["serviceRequests"]["totalCount"] == 1
        assert listed["serviceRequests"]["edges"][0]["node"] == {"reference": reference, "customer": {"email": "awa@example.cm"}}
        assigned = await admin.execute(op("""mutation($i: AssignProviderInput!){ assignProvider(input:$i){ serviceRequest{ status assignedProvider{ displayName } } errors{ code } } }""", {"i": {"serviceRequestId": request_gid, "providerId": provider_gid}}))
        assert assigned["assignProvider"] == {"serviceRequest": {"status": "TEAM_ASSIGNED", "assignedProvider": {"displayName": "Eko Plumbing"}}, "errors": []}
        # customer and provider accept the order's contract before work starts (tests/orders/test_contracts.py)
        await accept_order(decode_id(request_gid, "ServiceRequest", field="id"))
        moved = await admin.execute(op("""mutation($i: UpdateServiceRequestStatusInput!){ updateServiceRequestStatus(input:$i){ serviceRequest{ status } errors{ code } } }""", {"i": {"id": request_gid, "status": "IN_PROGRESS", "note": "Plumber on site"}}))
        assert moved["updateServiceRequestStatus"] == {"serviceRequest": {"status": "IN_PROGRESS"}, "errors": []}

    await wait_for(lambda: len(events) >= 4, what="admin status events")
    assert [e["serviceRequestStatusChanged"]["status"] for e in events] == ["PAYMENT_CONFIRMED", "PENDING_CONTACT", "TEAM_ASSIGNED", "IN_PROGRESS"]
    status_task.cancel()
    await wait_for(lambda: sum(1 for m in mailbox() if "Work in progress" in str(m["Subject"])) == 1, what="status email")

    # 9. chat: the provider listens, the customer writes, and back
    messages: list = []
    ready = asyncio.Event()
    chat_task = asyncio.create_task(collect(
        base, "subscription($c: ID!){ chatMessageAdded(conversationId:$c){ body senderName } }",
        {"c": conversation_id}, messages, ready, token=provider_token))
    await asyncio.wait_for(ready.wait(), 10)
    await asyncio.sleep(0.5)
    async with http_client(base, token) as customer:
        sent = await customer.execute(op("""mutation($i: SendChatMessageInput!){ sendChatMessage(input:$i){ message{ body } errors{ code } } }""", {"i": {"conversationId": conversation_id, "body": "Hello, the gate code is 1234"}}))
        assert sent["sendChatMessage"] == {"message": {"body": "Hello, the gate code is 1234"}, "errors": []}
    await wait_for(lambda: len(messages) >= 1, what="chat message")
    assert messages[0]["chatMessageAdded"] == {"body": "Hello, the gate code is 1234", "senderName": "Awa Ngono"}
    chat_task.cancel()

    async with http_client(base, provider_token) as prov:
        history = await prov.execute(op("""query($id: ID!){ node(id:$id){ ... on Conversation { messages(first:10){ edges{ node{ body } } } } } }""", {"id": conversation_id}))
        assert [e["node"]["body"] for e in history["node"]["messages"]["edges"]] == ["Hello, the gate code is 1234"]


async def ws_close_code(base: str, init_payload: dict) -> int:
    """Open a graphql-transport-ws socket, send connection_init, return the server's close code."""
    import json

    import websockets

    url = base.replace("http", "ws", 1) + "/graphql"
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"], origin=base) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": init_payload}))
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else -1


async def test_websocket_rejects_expired_and_invalid_tokens_with_4403(live_stack):
    import time

    import jwt

    expired = jwt.encode({"sub": "1", "role": "customer", "iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600},
                         get_settings().jwt_secret.get_secret_value(), algorithm="HS256")
    assert await ws_close_code(live_stack, {"token": expired}) == 4403
    assert await ws_close_code(live_stack, {"Authorization": "Bearer not-a-jwt"}) == 4403


async def test_websocket_refuses_legacy_protocol_and_foreign_origin(live_stack):
    import websockets

    url = live_stack.replace("http", "ws", 1) + "/graphql"
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(url, subprotocols=["graphql-transport-ws"], origin="https://evil.example"):
            pass
    async with websockets.connect(url, subprotocols=["graphql-ws"], origin=live_stack) as ws:
        assert ws.subprotocol is None or ws.subprotocol != "graphql-ws"
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)


async def subscription_errors(base: str, query: str, variables: dict, token: str | None = None) -> list:
    """Subscribe over graphql-transport-ws and return the first `error` message's payload."""
    import json

    import websockets

    url = base.replace("http", "ws", 1) + "/graphql"
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"], origin=base) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"token": token} if token else {}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}}))
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if message["type"] in ("error", "next"):
                return message["payload"] if message["type"] == "error" else message["payload"].get("errors", [])


async def test_chat_subscription_is_refused_to_non_participants_and_anonymous(live_stack):
    # given: a paid-for request whose conversation belongs to its customer
    from domain.orders.service_request import purchase_service
    from gateways.sandbox import SandboxGateway
    from models.db import session_scope
    from resolvers.ids import encode_id

    owner = await make_user("owner@odim.test")
    await make_user("stranger@odim.test")
    service, tiers = await make_service()
    async with session_scope() as s:
        bought = await purchase_service(s, SandboxGateway(), service_id=service.id, tier_id=tiers[0].id,
                                        customer=None, user=owner)
    async with session_scope() as s:
        conversation_id = await s.scalar(text("SELECT id FROM conversations WHERE service_request_id = :r"),
                                         {"r": bought.service_request.id})
    gid = encode_id("Conversation", conversation_id)
    async with http_client(live_stack) as anon:
        stranger = (await anon.execute(op('mutation{ login(input:{email:"stranger@odim.test", password:"correct-horse-battery"}){ token } }')))["login"]["token"]
    query = "subscription($c: ID!){ chatMessageAdded(conversationId:$c){ body } }"
    # when / then
    errors = await subscription_errors(live_stack, query, {"c": gid}, token=stranger)
    assert [(e["message"], e["extensions"]["code"]) for e in errors] == [("You are not a participant of this conversation", "FORBIDDEN")]
    errors = await subscription_errors(live_stack, query, {"c": gid})
    assert [e["extensions"]["code"] for e in errors] == ["UNAUTHENTICATED"]
    errors = await subscription_errors(
        live_stack, "subscription{ serviceRequestStatusChanged(reference:\"ODM-0000-0000\"){ status } }", {})
    assert [(e["extensions"]["code"], e["extensions"]["field"]) for e in errors] == [("NOT_FOUND", "reference")]

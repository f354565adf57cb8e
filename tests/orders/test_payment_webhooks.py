"""Payment webhooks end to end: the sandbox gateway's signed events over HTTP (``server.app`` through
httpx's ASGI transport), the inbox and outbox in PostgreSQL, the ``process_webhook`` and
``send_email`` actors on a real Dramatiq worker over the test Redis, mail in the SMTP sink.

Events are built exactly as the sandbox sends them (``gateways.sandbox.build_event`` from the
checkout token, or JSON signed with ``sign_payload``: the Stripe scheme).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import redis.asyncio as aioredis
import uvicorn
from sqlalchemy import func, select

import server
from domain.messaging import notification
from domain.orders import payment as payment_domain
from domain.orders.service_request import CustomerDetails, purchase_service
from gateways import sandbox
from gateways.sandbox import SIGNATURE_HEADER, SandboxGateway, build_event, parse_checkout, sign_payload
from models import (
    AffiliateAttribution,
    Email,
    LedgerEntry,
    OutboxMessage,
    Payment,
    PaymentStatusChange,
    ServiceRequest,
    ServiceRequestStatusChange,
    WebhookEvent,
)
from models.db import session_scope
from settings import get_settings
from tests.support.factories import make_affiliate, make_service, run_worker

CUSTOMER = CustomerDetails(full_name="Ada Nkem", email="ada.nkem@example.cm", phone="+237671234567",
                           requirements="Kitchen sink leaks under the cabinet.")
OPERATOR = get_settings().operator_email


# --- helpers ----------------------------------------------------------------------------------


async def purchase(*, affiliate_code: str | None = None):
    """A guest buys the Basic tier of "Leak repair" (10,000 FCFA + the 10 % guest checkout fee = 11,000 FCFA);
    returns the ``Purchase``."""
    service, tiers = await make_service(name="Leak repair", prices={"XAF": 10000})
    async with session_scope() as s:
        return await purchase_service(
            s, SandboxGateway(), service_id=service.id, tier_id=tiers[0].id, customer=CUSTOMER, user=None,
            affiliate_code=affiliate_code,
        )


def checkout_token(bought) -> str:
    return bought.checkout_url.rsplit("/", 1)[1]


def signed(event: dict, *, timestamp: int | None = None, secret: bytes | None = None) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(event, separators=(",", ":")).encode()
    ts = int(time.time()) if timestamp is None else timestamp
    return raw, {"Content-Type": "application/json", SIGNATURE_HEADER: sign_payload(raw, ts, secret)}


def event_for(bought, *, type_: str = "payment.succeeded", amount_minor: int | None = None,
              currency: str | None = None) -> dict:
    return {
        "id": f"evt_{secrets.token_hex(12)}", "type": type_, "created": int(time.time()),
        "data": {"reference": bought.payment.reference,
                 "amount_minor": bought.payment.amount_minor if amount_minor is None else amount_minor,
                 "currency": currency or bought.payment.currency},
    }


@asynccontextmanager
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server.app), base_url="http://test") as client:
        yield client


async def post_webhook(client: httpx.AsyncClient, raw: bytes, headers: dict[str, str]) -> httpx.Response:
    return await client.post("/webhooks/sandbox", content=raw, headers=headers)


async def count(model, *where) -> int:
    async with session_scope() as s:
        return await s.scalar(select(func.count()).select_from(model).where(*where))


async def redis_queue_size(queue: str) -> int:
    client = aioredis.from_url(get_settings().redis_url)
    try:
        return await client.hlen(f"dramatiq:{queue}.msgs")
    finally:
        await client.aclose()


async def state(bought) -> dict:
    """Everything a webhook can change, for one purchase."""
    async with session_scope() as s:
        payment = await s.get(Payment, bought.payment.id)
        request = await s.get(ServiceRequest, bought.service_request.id)
        payment_history = (await s.execute(
            select(PaymentStatusChange.from_status, PaymentStatusChange.to_status)
            .where(PaymentStatusChange.payment_id == payment.id).order_by(PaymentStatusChange.id)
        )).all()
        request_history = (await s.execute(
            select(ServiceRequestStatusChange.from_status, ServiceRequestStatusChange.to_status)
            .where(ServiceRequestStatusChange.service_request_id == request.id).order_by(ServiceRequestStatusChange.id)
        )).all()
        emails = (await s.execute(select(Email.kind, Email.to_address).order_by(Email.id))).all()
        attributions = (await s.scalars(select(AffiliateAttribution))).all()
        inbox = (await s.execute(select(WebhookEvent.result, WebhookEvent.processed_at.is_not(None)).order_by(WebhookEvent.id))).all()
    return {
        "payment": payment.status, "request": request.status, "paid_at": request.paid_at is not None,
        "payment_history": [tuple(r) for r in payment_history], "request_history": [tuple(r) for r in request_history],
        "emails": [tuple(r) for r in emails], "attributions": len(attributions),
        "inbox": [tuple(r) for r in inbox],
    }


def by_recipient(messages) -> dict[str, list]:
    out: dict[str, list] = {}
    for m in messages:
        out.setdefault(m["To"], []).append(m)
    return out


# --- a paid event ------------------------------------------------------------------------------


async def test_signed_paid_event_is_stored_and_queued_for_processing():
    # given
    bought = await purchase()
    raw, headers = build_event(parse_checkout(checkout_token(bought)), "paid")
    # when
    async with http() as client:
        response = await post_webhook(client, raw, headers)
    # then
    assert response.status_code == 200
    assert response.json() == {"received": True, "duplicate": False}
    async with session_scope() as s:
        inbox = (await s.scalars(select(WebhookEvent))).all()
        jobs = (await s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "actor"))).all()
    assert [(i.gateway, i.event_id, i.event_type, i.processed_at) for i in inbox] == [
        ("sandbox", json.loads(raw)["id"], "payment.succeeded", None)
    ]
    assert inbox[0].payload == json.loads(raw)
    assert [(j.target, j.queue, j.payload) for j in jobs] == [("process_webhook", "payments", {"inbox_id": inbox[0].id})]
    assert jobs[0].dispatched_at is not None  # relayed after the commit, in the request
    assert await redis_queue_size("payments") == 1
    # nothing is applied before the worker runs
    assert (await state(bought))["payment"] == "pending"


async def test_same_event_delivered_five_times_is_applied_once(mailbox):
    # given
    await make_affiliate("DOUALA-PARTNER", commission_bps=500)
    bought = await purchase(affiliate_code="douala-partner")
    raw, headers = build_event(parse_checkout(checkout_token(bought)), "paid")
    # when: five concurrent deliveries of the very same event
    async with http() as client:
        responses = await asyncio.gather(*(post_webhook(client, raw, headers) for _ in range(5)))
    # then
    assert [r.status_code for r in responses] == [200] * 5
    assert sorted(r.json()["duplicate"] for r in responses) == [False, True, True, True, True]
    assert await count(WebhookEvent) == 1
    assert await count(OutboxMessage, OutboxMessage.target == "process_webhook") == 1
    # when the worker runs
    await run_worker()
    # then the payment completed once, with one history row per transition
    after = await state(bought)
    assert after["payment"] == "completed"
    assert after["payment_history"] == [(None, "pending"), ("pending", "completed")]
    assert after["request"] == "pending_contact"
    assert after["paid_at"] is True
    assert after["request_history"] == [
        (None, "awaiting_payment"), ("awaiting_payment", "payment_confirmed"), ("payment_confirmed", "pending_contact"),
    ]
    assert after["inbox"] == [("completed", True)]
    assert after["emails"] == [("payment_confirmed", CUSTOMER.email), ("operator_new_request", OPERATOR)]
    assert await count(Email, Email.sent_at.is_(None)) == 0
    async with session_scope() as s:
        attribution = (await s.scalars(select(AffiliateAttribution))).one()
    assert (attribution.service_request_id, attribution.payment_id, attribution.base_amount_minor,
            attribution.currency, attribution.commission_bps) == (
        bought.service_request.id, bought.payment.id, 10000, "XAF", 500)
    # and exactly one confirmation and one operator email reached the SMTP sink
    mail = by_recipient(mailbox())
    assert sorted(mail) == sorted([CUSTOMER.email, OPERATOR])
    assert [len(v) for v in mail.values()] == [1, 1]
    customer = mail[CUSTOMER.email][0]
    reference = bought.service_request.reference
    assert customer["Subject"] == f"Odim: payment received for {reference}"
    body = customer.get_body(("plain",)).get_content()
    assert "Hello Ada Nkem," in body
    assert f"Reference number: {reference}" in body
    assert 'payment of 11,000 FCFA for "Leak repair — Basic"' in body
    assert "Current status:   We will contact you shortly" in body
    assert "Next steps: An operator will contact you within one business day to confirm the details." in body
    assert f"/track/{reference}?token=" in body
    operator = mail[OPERATOR][0]
    assert operator["Subject"] == f"New paid request {reference}: Leak repair"
    assert "Amount:    11,000 FCFA" in operator.get_body(("plain",)).get_content()
    assert "Affiliate: DOUALA-PARTNER" in operator.get_body(("plain",)).get_content()


async def test_redelivery_after_processing_changes_nothing(mailbox):
    # given a paid event already applied
    bought = await purchase()
    raw, headers = build_event(parse_checkout(checkout_token(bought)), "paid")
    async with http() as client:
        await post_webhook(client, raw, headers)
    await run_worker()
    before = await state(bought)
    mails_before = len(mailbox())
    # when the gateway delivers it again, and sends a second "paid" event for the same payment
    second_raw, second_headers = build_event(parse_checkout(checkout_token(bought)), "paid")
    async with http() as client:
        again = await post_webhook(client, raw, headers)
        second = await post_webhook(client, second_raw, second_headers)
    await run_worker()
    # then
    assert (again.status_code, again.json()) == (200, {"received": True, "duplicate": True})
    assert (second.status_code, second.json()) == (200, {"received": True, "duplicate": False})
    after = await state(bought)
    assert after == {**before, "inbox": [("completed", True), ("duplicate_payment_event", True)]}
    assert len(mailbox()) == mails_before == 2
    assert await count(OutboxMessage, OutboxMessage.target == "process_webhook") == 2


async def test_affiliate_is_not_attributed_without_a_code():
    bought = await purchase()
    raw, headers = build_event(parse_checkout(checkout_token(bought)), "paid")
    async with http() as client:
        await post_webhook(client, raw, headers)
    await run_worker()
    after = await state(bought)
    assert (after["payment"], after["attributions"]) == ("completed", 0)


# --- bad signatures: 401 and nothing stored -------------------------------------------------------


def _tampered(bought) -> tuple[bytes, dict[str, str]]:
    raw, headers = signed(event_for(bought))
    tampered = raw.replace(b'"amount_minor":11000', b'"amount_minor":10')
    assert tampered != raw
    return tampered, headers


def _header(bought, value: str | None) -> tuple[bytes, dict[str, str]]:
    raw, headers = signed(event_for(bought))
    if value is None:
        del headers[SIGNATURE_HEADER]
    else:
        headers[SIGNATURE_HEADER] = value.replace("<v1>", headers[SIGNATURE_HEADER].split("v1=")[1])
    return raw, headers


BAD_DELIVERIES = {
    "wrong secret": lambda b: signed(event_for(b), secret=b"whsec_not_the_right_secret"),
    "tampered body": _tampered,
    "stale timestamp": lambda b: signed(event_for(b), timestamp=int(time.time()) - 400),
    "timestamp from the future": lambda b: signed(event_for(b), timestamp=int(time.time()) + 400),
    "missing header": lambda b: _header(b, None),
    "empty header": lambda b: _header(b, ""),
    "malformed header": lambda b: _header(b, "garbage"),
    "no timestamp": lambda b: _header(b, "v1=<v1>"),
    "non-numeric timestamp": lambda b: _header(b, "t=yesterday,v1=<v1>"),
    "signature over another timestamp": lambda b: _header(b, f"t={int(time.time()) - 5},v1=<v1>"),
    "signed non-event body": lambda b: signed({"hello": "world"}),
}


@pytest.mark.parametrize("case", list(BAD_DELIVERIES))
async def test_bad_signature_is_rejected_and_nothing_is_stored(case, mailbox):
    # given
    bought = await purchase()
    raw, headers = BAD_DELIVERIES[case](bought)
    before = await state(bought)
    # when
    async with http() as client:
        response = await post_webhook(client, raw, headers)
    # then
    assert (response.status_code, response.json()) == (401, {"error": "invalid signature"})
    assert await count(WebhookEvent) == 0
    assert await count(OutboxMessage) == 0
    assert await redis_queue_size("payments") == 0
    await run_worker()
    assert await state(bought) == before
    assert mailbox() == []


async def test_unknown_gateway_is_404_and_nothing_is_stored():
    bought = await purchase()
    raw, headers = signed(event_for(bought))
    async with http() as client:
        response = await client.post("/webhooks/nosuchgateway", content=raw, headers=headers)
    assert response.status_code == 404
    assert (await count(WebhookEvent), await count(OutboxMessage)) == (0, 0)


async def test_timestamp_inside_the_tolerance_is_accepted():
    bought = await purchase()
    raw, headers = signed(event_for(bought), timestamp=int(time.time()) - 200)
    async with http() as client:
        response = await post_webhook(client, raw, headers)
    assert response.status_code == 200
    assert await count(WebhookEvent) == 1


# --- a crash inside the actor ------------------------------------------------------------------


async def test_crash_after_the_payment_update_rolls_back_and_the_retry_completes_once(monkeypatch, mailbox):
    # given: the first email queued by process_webhook raises, after the payment and the request
    # were already updated (and flushed) in the actor's transaction
    bought = await purchase()
    real_queue_email = notification.queue_email
    seen: list[tuple[str, int]] = []

    async def flaky_queue_email(session, **kwargs):
        if not seen:
            status = await session.scalar(select(Payment.status).where(Payment.id == bought.payment.id))
            completed = await session.scalar(select(func.count()).select_from(PaymentStatusChange).where(
                PaymentStatusChange.payment_id == bought.payment.id, PaymentStatusChange.to_status == "completed"))
            seen.append((status, completed))
            raise ConnectionResetError("simulated crash inside process_webhook")
        seen.append(("call", 0))
        return await real_queue_email(session, **kwargs)

    monkeypatch.setattr(payment_domain.notification, "queue_email", flaky_queue_email)
    raw, headers = build_event(parse_checkout(checkout_token(bought)), "paid")
    async with http() as client:
        await post_webhook(client, raw, headers)
    # when
    await run_worker()
    # then: the crash happened after the writes, the retry ran, and everything happened once
    assert seen == [("completed", 1), ("call", 0), ("call", 0)]
    after = await state(bought)
    assert after["payment_history"] == [(None, "pending"), ("pending", "completed")]
    assert after["request"] == "pending_contact"
    assert after["request_history"] == [
        (None, "awaiting_payment"), ("awaiting_payment", "payment_confirmed"), ("payment_confirmed", "pending_contact"),
    ]
    assert after["inbox"] == [("completed", True)]
    async with session_scope() as s:
        assert await s.scalar(select(WebhookEvent.attempts)) == 1  # the failed attempt rolled back too
    assert after["emails"] == [("payment_confirmed", CUSTOMER.email), ("operator_new_request", OPERATOR)]
    assert sorted(m["To"] for m in mailbox()) == sorted([CUSTOMER.email, OPERATOR])


# --- declined, then paid -----------------------------------------------------------------------


async def test_declined_payment_fails_and_a_later_paid_event_completes_it(mailbox):
    # given
    bought = await purchase()
    details = parse_checkout(checkout_token(bought))
    # when the customer declines
    async with http() as client:
        response = await post_webhook(client, *build_event(details, "declined"))
    await run_worker()
    # then
    assert response.status_code == 200
    after = await state(bought)
    assert after["payment"] == "failed"
    assert after["payment_history"] == [(None, "pending"), ("pending", "failed")]
    assert (after["request"], after["paid_at"]) == ("awaiting_payment", False)
    assert after["request_history"] == [(None, "awaiting_payment")]
    assert after["emails"] == [("payment_failed", CUSTOMER.email)]
    assert after["inbox"] == [("failed", True)]
    [declined_mail] = mailbox()
    assert declined_mail["To"] == CUSTOMER.email
    assert declined_mail["Subject"] == f"Odim: payment for {bought.service_request.reference} did not go through"
    assert "No money was taken." in declined_mail.get_body(("plain",)).get_content()
    # when the customer pays on a second try
    async with http() as client:
        await post_webhook(client, *build_event(details, "paid"))
    await run_worker()
    # then
    after = await state(bought)
    assert after["payment"] == "completed"
    assert after["payment_history"] == [(None, "pending"), ("pending", "failed"), ("failed", "completed")]
    assert after["request"] == "pending_contact"
    assert after["request_history"] == [
        (None, "awaiting_payment"), ("awaiting_payment", "payment_confirmed"), ("payment_confirmed", "pending_contact"),
    ]
    assert after["emails"] == [
        ("payment_failed", CUSTOMER.email), ("payment_confirmed", CUSTOMER.email), ("operator_new_request", OPERATOR),
    ]
    assert len(mailbox()) == 3


# --- amount mismatch, unknown payments ----------------------------------------------------------


@pytest.mark.parametrize("amount_minor, currency", [(1000, "XAF"), (11001, "XAF"), (11000, "NGN")])
async def test_amount_mismatch_leaves_the_payment_pending_and_alerts_the_operator(amount_minor, currency, mailbox):
    # given
    bought = await purchase()
    before = await state(bought)
    raw, headers = signed(event_for(bought, amount_minor=amount_minor, currency=currency))
    # when
    async with http() as client:
        response = await post_webhook(client, raw, headers)
    await run_worker()
    # then
    assert response.status_code == 200
    after = await state(bought)
    assert after == {**before, "inbox": [("amount_mismatch", True)], "emails": [("operator_alert", OPERATOR)]}
    [alert] = mailbox()
    assert alert["To"] == OPERATOR
    assert alert["Subject"] == f"[Odim operations] Amount mismatch on payment {bought.payment.reference} — do not deliver"
    async with session_scope() as s:
        payment = await s.get(Payment, bought.payment.id)
        assert payment.review_reason == f"gateway reported {amount_minor} {currency}, expected 11000 XAF"
        assert await s.scalar(select(func.count()).select_from(LedgerEntry)) == 0
    assert f"{amount_minor} {currency}" in alert.get_body(("plain",)).get_content()


async def test_event_for_an_unknown_payment_is_recorded_and_changes_nothing(mailbox):
    bought = await purchase()
    before = await state(bought)
    event = event_for(bought)
    event["data"]["reference"] = "pay_does_not_exist"
    async with http() as client:
        response = await post_webhook(client, *signed(event))
    await run_worker()
    assert response.status_code == 200
    assert await state(bought) == {**before, "inbox": [("unknown_payment", True)]}
    assert mailbox() == []


# --- the sandbox hosted page -------------------------------------------------------------------


async def test_checkout_page_shows_the_amount_and_pay_and_decline_buttons():
    bought = await purchase()
    async with http() as client:
        page = await client.get(f"/sandbox/checkout/{checkout_token(bought)}")
    assert page.status_code == 200
    assert "<h1>11,000 FCFA</h1>" in page.text
    assert '<button name="outcome" value="paid" class="pay">Pay 11,000 FCFA</button>' in page.text
    assert '<button name="outcome" value="declined" class="decline">Decline</button>' in page.text
    assert bought.payment.reference in page.text
    assert f"Leak repair — Basic ({bought.service_request.reference})" in page.text


def _flip(s: str) -> str:
    """Change the first character: the last one of unpadded base64 carries bits the decoder
    ignores, so changing it can leave the decoded signature as it was."""
    return ("B" if s[0] == "A" else "A") + s[1:]


@pytest.mark.parametrize("tamper", ["signature", "body", "garbage", "expired"])
async def test_tampered_or_expired_checkout_link_is_404(tamper, monkeypatch):
    bought = await purchase()
    body, sig = checkout_token(bought).split(".")
    if tamper == "signature":
        token = f"{body}.{_flip(sig)}"
    elif tamper == "body":
        data = json.loads(sandbox._unb64(body))
        token = f"{sandbox._b64(json.dumps({**data, 'a': 10}, separators=(',', ':')).encode())}.{sig}"
    elif tamper == "garbage":
        token = "not-a-token"
    else:
        monkeypatch.setattr(get_settings(), "sandbox_checkout_ttl_seconds", -10)
        token = (await SandboxGateway().create_checkout(
            reference=bought.payment.reference, amount_minor=10000, currency="XAF", description="x",
            customer_email=CUSTOMER.email)).url.rsplit("/", 1)[1]
    async with http() as client:
        get = await client.get(f"/sandbox/checkout/{token}")
        post = await client.post(f"/sandbox/checkout/{token}", data={"outcome": "paid"})
    assert (get.status_code, post.status_code) == (404, 404)
    assert "Pay" not in get.text
    assert (await count(WebhookEvent), await count(OutboxMessage)) == (0, 0)


@pytest.fixture
async def live_server(monkeypatch):
    """``server.app`` under uvicorn on a free local port, on the test's event loop, with
    settings.public_base_url pointing at it (the checkout page POSTs its webhook there)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(server.app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    uv = uvicorn.Server(config)
    task = asyncio.create_task(uv.serve())
    for _ in range(500):
        if uv.started:
            break
        await asyncio.sleep(0.01)
    assert uv.started
    monkeypatch.setattr(get_settings(), "public_base_url", f"http://127.0.0.1:{port}")
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    await task


async def test_checkout_pay_button_sends_a_signed_webhook_that_completes_the_payment(live_server, mailbox):
    # given
    bought = await purchase()
    token = checkout_token(bought)
    # when the customer presses Pay on the hosted page
    async with httpx.AsyncClient(base_url=live_server) as client:
        page = await client.post(f"/sandbox/checkout/{token}", data={"outcome": "paid"})
    await run_worker()
    # then
    assert page.status_code == 200
    assert "Payment approved. You can close this page." in page.text
    after = await state(bought)
    assert (after["payment"], after["request"], after["inbox"]) == ("completed", "pending_contact", [("completed", True)])
    assert sorted(m["To"] for m in mailbox()) == sorted([CUSTOMER.email, OPERATOR])


async def test_checkout_decline_button_fails_the_payment(live_server, mailbox):
    bought = await purchase()
    async with httpx.AsyncClient(base_url=live_server) as client:
        page = await client.post(f"/sandbox/checkout/{checkout_token(bought)}", data={"outcome": "declined"})
    await run_worker()
    assert page.status_code == 200
    assert "Payment declined. No money was taken." in page.text
    after = await state(bought)
    assert (after["payment"], after["request"], after["emails"]) == (
        "failed", "awaiting_payment", [("payment_failed", CUSTOMER.email)])


async def test_checkout_post_without_a_valid_outcome_sends_nothing(live_server):
    bought = await purchase()
    async with httpx.AsyncClient(base_url=live_server) as client:
        page = await client.post(f"/sandbox/checkout/{checkout_token(bought)}", data={"outcome": "refund"})
    assert page.status_code == 400
    assert "Choose Pay or Decline." in page.text
    assert (await count(WebhookEvent), await count(OutboxMessage)) == (0, 0)

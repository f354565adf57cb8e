"""The sandbox gateway: its own records in Redis (payment state, refunds, payouts with magic numbers),
its Stripe-style signed webhooks, and the hosted checkout page handler in server.py."""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import httpx
import pytest
import respx

from gateways import registry, sandbox
from gateways.base import GatewayError, InvalidSignature, PayoutDestination
from gateways.sandbox import EventSubject, SandboxGateway, build_event, parse_checkout, record_checkout_outcome
from settings import get_settings


def _phone(number: str) -> PayoutDestination:
    return PayoutDestination(kind="mobile_money", holder_name="Awa Ndiaye", country_code="CM", phone=number,
                             operator="mtn")


async def _paid(gateway: SandboxGateway, reference: str = "pay_abc", amount: int = 10_000) -> None:
    session = await gateway.create_checkout(reference=reference, amount_minor=amount, currency="XAF",
                                            description="Cleaning", customer_email="c@example.com")
    await record_checkout_outcome(parse_checkout(session.url.rsplit("/", 1)[1]), "paid")


def _error(exc: GatewayError) -> tuple[bool, int | None]:
    return exc.retryable, exc.status_code


# --- payments ---------------------------------------------------------------------------------------


async def test_checkout_payment_is_pending_until_the_page_is_used():
    # given a checkout session
    gateway = SandboxGateway()
    session = await gateway.create_checkout(reference="pay_1", amount_minor=5000, currency="XAF",
                                            description="Plumbing", customer_email="c@example.com")
    # then the sandbox has the payment pending, with the token's details
    status = await gateway.fetch_payment("pay_1")
    assert (status.status, status.amount_minor, status.currency) == ("pending", 5000, "XAF")
    details = parse_checkout(session.url.rsplit("/", 1)[1])
    assert (details.reference, details.amount_minor, details.currency) == ("pay_1", 5000, "XAF")
    assert session.url.startswith(f"{get_settings().public_base_url}/sandbox/checkout/")


async def test_pay_then_decline_keeps_the_payment_succeeded():
    gateway = SandboxGateway()
    session = await gateway.create_checkout(reference="pay_2", amount_minor=5000, currency="XAF",
                                            description="Plumbing", customer_email="c@example.com")
    details = parse_checkout(session.url.rsplit("/", 1)[1])
    # when the customer pays, then presses Decline on a stale page
    assert await record_checkout_outcome(details, "paid") == "succeeded"
    assert await record_checkout_outcome(details, "declined") == "succeeded"
    # then the payment stays paid
    assert (await gateway.fetch_payment("pay_2")).status == "succeeded"


async def test_declined_payment_is_failed():
    gateway = SandboxGateway()
    session = await gateway.create_checkout(reference="pay_3", amount_minor=5000, currency="XAF",
                                            description="Plumbing", customer_email="c@example.com")
    assert await record_checkout_outcome(parse_checkout(session.url.rsplit("/", 1)[1]), "declined") == "failed"
    assert (await gateway.fetch_payment("pay_3")).status == "failed"


async def test_fetch_of_unknown_references_is_a_404_refusal():
    gateway = SandboxGateway()
    for call in (gateway.fetch_payment("pay_nope"), gateway.fetch_refund("re_nope"), gateway.fetch_payout("po_nope")):
        with pytest.raises(GatewayError) as caught:
            await call
        assert _error(caught.value) == (False, 404)


# --- refunds ----------------------------------------------------------------------------------------


async def test_partial_refunds_up_to_the_paid_amount_and_no_further():
    # given a paid payment of 10,000 XAF
    gateway = SandboxGateway()
    await _paid(gateway)
    # when 6,000 then 4,000 are refunded
    first = await gateway.refund(payment_reference="pay_abc", refund_reference="re_1", amount_minor=6000, currency="XAF")
    second = await gateway.refund(payment_reference="pay_abc", refund_reference="re_2", amount_minor=4000,
                                  currency="XAF")
    assert (first.status, second.status) == ("succeeded", "succeeded")
    # then one more franc is refused, and no refund record is made for it
    with pytest.raises(GatewayError) as caught:
        await gateway.refund(payment_reference="pay_abc", refund_reference="re_3", amount_minor=1, currency="XAF")
    assert _error(caught.value) == (False, 400)
    assert "exceeds the refundable 0" in str(caught.value)
    with pytest.raises(GatewayError):
        await gateway.fetch_refund("re_3")


async def test_refund_over_the_paid_amount_is_refused_and_leaves_the_balance_intact():
    gateway = SandboxGateway()
    await _paid(gateway)
    with pytest.raises(GatewayError) as caught:
        await gateway.refund(payment_reference="pay_abc", refund_reference="re_big", amount_minor=10_001,
                             currency="XAF")
    assert _error(caught.value) == (False, 400)
    # the whole amount is still refundable
    result = await gateway.refund(payment_reference="pay_abc", refund_reference="re_all", amount_minor=10_000,
                                  currency="XAF")
    assert result.status == "succeeded"


async def test_refund_is_idempotent_per_refund_reference():
    gateway = SandboxGateway()
    await _paid(gateway)
    first = await gateway.refund(payment_reference="pay_abc", refund_reference="re_1", amount_minor=7000, currency="XAF")
    again = await gateway.refund(payment_reference="pay_abc", refund_reference="re_1", amount_minor=7000, currency="XAF")
    assert (again.reference, again.status, again.gateway_id) == (first.reference, first.status, first.gateway_id)
    # the repeat did not refund twice: 3,000 remain
    await gateway.refund(payment_reference="pay_abc", refund_reference="re_2", amount_minor=3000, currency="XAF")
    # the same reference with another amount is refused
    with pytest.raises(GatewayError) as caught:
        await gateway.refund(payment_reference="pay_abc", refund_reference="re_1", amount_minor=500, currency="XAF")
    assert _error(caught.value) == (False, 400)


async def test_refund_of_an_unpaid_payment_is_refused():
    gateway = SandboxGateway()
    await gateway.create_checkout(reference="pay_open", amount_minor=5000, currency="XAF", description="x",
                                  customer_email="c@example.com")
    with pytest.raises(GatewayError) as caught:
        await gateway.refund(payment_reference="pay_open", refund_reference="re_1", amount_minor=100, currency="XAF")
    assert _error(caught.value) == (False, 409)
    with pytest.raises(GatewayError) as unknown:
        await gateway.refund(payment_reference="pay_none", refund_reference="re_2", amount_minor=100, currency="XAF")
    assert _error(unknown.value) == (False, 404)


# --- payouts ----------------------------------------------------------------------------------------


async def test_payout_to_a_number_ending_0000_fails_with_destination_rejected():
    gateway = SandboxGateway()
    result = await gateway.create_payout(reference="po_1", amount_minor=5000, currency="XAF",
                                         destination=_phone("+237670000000"), narration="Payout")
    assert (result.status, result.failure_reason) == ("failed", "destination rejected")
    assert (await gateway.fetch_payout("po_1")).status == "failed"


async def test_payout_to_a_number_ending_1111_is_pending_then_paid():
    gateway = SandboxGateway()
    result = await gateway.create_payout(reference="po_2", amount_minor=5000, currency="XAF",
                                         destination=_phone("+237670001111"), narration="Payout")
    assert result.status == "pending"
    assert (await gateway.fetch_payout("po_2")).status == "paid"
    assert (await gateway.fetch_payout("po_2")).status == "paid"


async def test_payout_to_another_number_is_paid_at_once():
    gateway = SandboxGateway()
    bank = PayoutDestination(kind="bank_account", holder_name="Awa", country_code="NG", bank_code="058",
                             account_number="0123456789")
    result = await gateway.create_payout(reference="po_3", amount_minor=5000, currency="NGN", destination=bank,
                                         narration="Payout")
    assert (result.status, result.failure_reason) == ("paid", None)


async def test_create_payout_is_idempotent_per_reference():
    gateway = SandboxGateway()
    first = await gateway.create_payout(reference="po_4", amount_minor=5000, currency="XAF",
                                        destination=_phone("+237670001111"), narration="Payout")
    again = await gateway.create_payout(reference="po_4", amount_minor=5000, currency="XAF",
                                        destination=_phone("+237670001111"), narration="Payout")
    assert (first.status, again.status, again.gateway_id) == ("pending", "pending", first.gateway_id)
    with pytest.raises(GatewayError) as caught:
        await gateway.create_payout(reference="po_4", amount_minor=9000, currency="XAF",
                                    destination=_phone("+237670001111"), narration="Payout")
    assert _error(caught.value) == (False, 400)
    assert (await gateway.fetch_payout("po_4")).raw["amount_minor"] == "5000"


# --- webhooks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("event_type,reference", [
    ("payment.succeeded", "pay_1"), ("payment.failed", "pay_1"), ("refund.succeeded", "re_1"),
    ("refund.failed", "re_1"), ("payout.paid", "po_1"), ("payout.failed", "po_1"),
])
async def test_build_event_signs_any_normalised_event(event_type, reference):
    raw, headers = build_event(EventSubject(reference, 2500, "XAF"), event_type)
    event = SandboxGateway().verify_webhook(headers, raw)
    assert (event.type, event.reference, event.amount_minor, event.currency) == (event_type, reference, 2500, "XAF")
    assert json.loads(raw)["data"] == {"reference": reference, "amount_minor": 2500, "currency": "XAF"}


async def test_webhook_with_tampered_body_is_rejected():
    raw, headers = build_event(EventSubject("pay_1", 2500, "XAF"), "paid")
    with pytest.raises(InvalidSignature):
        SandboxGateway().verify_webhook(headers, raw.replace(b"2500", b"9999"))


async def test_webhook_with_stale_timestamp_is_rejected():
    raw, headers = build_event(EventSubject("pay_1", 2500, "XAF"), "paid", timestamp=int(time.time()) - 301)
    with pytest.raises(InvalidSignature, match="tolerance"):
        SandboxGateway().verify_webhook(headers, raw)


async def test_webhook_is_verified_over_raw_bytes_not_reserialised_json():
    raw, headers = build_event(EventSubject("pay_1", 2500, "XAF"), "paid")
    same_json = json.dumps(json.loads(raw), indent=1).encode()
    assert json.loads(same_json) == json.loads(raw)
    with pytest.raises(InvalidSignature, match="mismatch"):
        SandboxGateway().verify_webhook(headers, same_json)


async def test_signed_event_of_an_unknown_type_is_ignored():
    now = int(time.time())
    raw = json.dumps({"id": "evt_1", "type": "payment.disputed", "created": now,
                      "data": {"reference": "pay_1", "amount_minor": 1, "currency": "XAF"}}).encode()
    event = SandboxGateway().verify_webhook({sandbox.SIGNATURE_HEADER: sandbox.sign_payload(raw, now)}, raw)
    assert (event.type, event.reference, event.event_id) == ("ignored", "pay_1", "evt_1")


# --- server.py: the hosted page and the webhook route ---------------------------------------------------


async def test_pay_button_records_the_outcome_then_delivers_a_signed_webhook(api_client):
    # given a checkout page
    gateway = registry.get_gateway("sandbox")
    session = await gateway.create_checkout(reference="pay_page", amount_minor=7500, currency="XAF",
                                            description="Cleaning", customer_email="c@example.com")
    path = urlsplit(session.url).path
    webhook_url = f"{get_settings().public_base_url}/webhooks/sandbox"
    with respx.mock() as router:
        route = router.post(webhook_url).mock(return_value=httpx.Response(200, json={"received": True}))
        # when the customer presses Pay
        response = await api_client.post(path, data={"outcome": "paid"})
    # then the page confirms, the sandbox has the payment paid, and the webhook it sent verifies
    assert response.status_code == 200
    assert "Payment approved" in response.text
    assert (await gateway.fetch_payment("pay_page")).status == "succeeded"
    assert route.call_count == 1
    sent = route.calls.last.request
    event = gateway.verify_webhook(sent.headers, sent.content)
    assert (event.type, event.reference, event.amount_minor, event.currency) == (
        "payment.succeeded", "pay_page", 7500, "XAF")


async def test_webhook_route_answers_404_for_an_unknown_gateway(api_client):
    response = await api_client.post("/webhooks/nope", content=b"{}")
    assert (response.status_code, response.json()) == (404, {"error": "unknown gateway"})

"""The Razorpay adapter at the HTTP boundary (respx): Payment Links with our ``reference_id``, refunds
with our ``receipt``, RazorpayX payouts with ``X-Payout-Idempotency``, and webhooks signed like
Razorpay signs them (hex HMAC-SHA256 of the raw body with the webhook secret; event id header)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import httpx
import pytest
import respx
from pydantic import SecretStr

from gateways import registry
from gateways.base import GatewayError, InvalidSignature, PayoutDestination
from settings import get_settings

API = "https://api.razorpay.com"
KEY_ID = "rzp_test_1DP5mmOlF5G5ag"
KEY_SECRET = "thisisasecret"
WEBHOOK_SECRET = "whsec_razorpay_test"
ACCOUNT = "7878780080316316"
BASIC = "Basic " + base64.b64encode(f"{KEY_ID}:{KEY_SECRET}".encode()).decode()


@pytest.fixture(autouse=True)
def razorpay_settings(monkeypatch):
    settings = get_settings()
    monkeypatch.setattr(settings, "razorpay_key_id", KEY_ID)
    monkeypatch.setattr(settings, "razorpay_key_secret", SecretStr(KEY_SECRET))
    monkeypatch.setattr(settings, "razorpay_webhook_secret", SecretStr(WEBHOOK_SECRET))
    monkeypatch.setattr(settings, "razorpay_account_number", ACCOUNT)
    monkeypatch.setattr(settings, "razorpay_api_base", API)
    monkeypatch.setattr(settings, "gateway_backoff_initial_seconds", 0.001)
    monkeypatch.setattr(settings, "gateway_backoff_max_seconds", 0.005)
    monkeypatch.setattr(settings, "gateway_max_attempts", 3)
    registry.reset()
    yield
    registry.reset()


def _link(status: str = "created", payments: list | None = None) -> dict:
    return {"id": "plink_ExjpAUN3gVHrPJ", "reference_id": "pay_1", "amount": 150_000, "amount_paid":
            150_000 if status == "paid" else 0, "currency": "INR", "status": status,
            "short_url": "https://rzp.io/i/nxrHnLJ", "expire_by": 1700010800, "payments": payments or [],
            "notes": {"reference": "pay_1"}}


CAPTURED = [{"amount": 150_000, "created_at": 1700000100, "method": "upi", "payment_id": "pay_FHfAzEJ51k8NLj",
             "plink_id": "plink_ExjpAUN3gVHrPJ", "status": "captured"}]


def _signed(payload: dict, event_id: str = "KJEQpXcAzS8cfd") -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(payload).encode()
    signature = hmac.new(WEBHOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    return raw, {"X-Razorpay-Signature": signature, "x-razorpay-event-id": event_id}


# --- checkout and payment status ---------------------------------------------------------------------


async def test_create_checkout_makes_a_payment_link_with_our_reference():
    with respx.mock() as router:
        route = router.post(f"{API}/v1/payment_links").mock(return_value=httpx.Response(200, json=_link()))
        session = await registry.get_gateway("razorpay").create_checkout(
            reference="pay_1", amount_minor=150_000, currency="INR", description="AC service",
            customer_email="c@example.com", customer_phone="+919000090000")
    assert (session.url, session.gateway_id, int(session.expires_at.timestamp())) == (
        "https://rzp.io/i/nxrHnLJ", "plink_ExjpAUN3gVHrPJ", 1700010800)
    request = route.calls.last.request
    assert request.headers["Authorization"] == BASIC
    body = json.loads(request.content)
    expire_by = body.pop("expire_by")
    assert isinstance(expire_by, int)
    assert body == {
        "amount": 150_000, "currency": "INR", "accept_partial": False, "reference_id": "pay_1",
        "description": "AC service", "customer": {"email": "c@example.com", "contact": "+919000090000"},
        "notify": {"sms": False, "email": False}, "reminder_enable": False,
        "callback_url": f"{get_settings().public_base_url}/payments/pay_1/return", "callback_method": "get",
        "notes": {"reference": "pay_1"},
    }


async def test_create_checkout_finds_the_link_made_by_a_lost_attempt_instead_of_making_another():
    with respx.mock() as router:
        create = router.post(f"{API}/v1/payment_links").mock(side_effect=httpx.ReadTimeout("lost"))
        lookup = router.get(f"{API}/v1/payment_links").mock(return_value=httpx.Response(200, json={
            "payment_links": [_link()]}))
        session = await registry.get_gateway("razorpay").create_checkout(
            reference="pay_1", amount_minor=150_000, currency="INR", description="x", customer_email="c@example.com")
    assert session.url == "https://rzp.io/i/nxrHnLJ"
    assert (create.call_count, lookup.call_count) == (1, 1)
    assert lookup.calls.last.request.url.params["reference_id"] == "pay_1"


@pytest.mark.parametrize("link_status,ours,amount", [
    ("paid", "succeeded", 150_000), ("created", "pending", 150_000), ("partially_paid", "pending", 150_000),
    ("expired", "failed", 150_000), ("cancelled", "failed", 150_000),
])
async def test_fetch_payment_maps_link_statuses(link_status, ours, amount):
    with respx.mock() as router:
        router.get(f"{API}/v1/payment_links").mock(return_value=httpx.Response(200, json={
            "payment_links": [_link(link_status)]}))
        status = await registry.get_gateway("razorpay").fetch_payment("pay_1")
    assert (status.status, status.amount_minor, status.currency, status.gateway_id) == (
        ours, amount, "INR", "plink_ExjpAUN3gVHrPJ")


async def test_fetch_payment_without_a_link_is_a_404():
    with respx.mock() as router:
        router.get(f"{API}/v1/payment_links").mock(return_value=httpx.Response(200, json={"payment_links": []}))
        with pytest.raises(GatewayError) as caught:
            await registry.get_gateway("razorpay").fetch_payment("pay_1")
    assert (caught.value.retryable, caught.value.status_code) == (False, 404)


# --- refunds ----------------------------------------------------------------------------------------


async def test_refund_finds_the_captured_payment_checks_earlier_refunds_and_posts_our_receipt():
    with respx.mock() as router:
        router.get(f"{API}/v1/payment_links").mock(return_value=httpx.Response(200, json={
            "payment_links": [_link("paid", CAPTURED)]}))
        listing = router.get(f"{API}/v1/payments/pay_FHfAzEJ51k8NLj/refunds").mock(return_value=httpx.Response(
            200, json={"entity": "collection", "count": 0, "items": []}))
        create = router.post(f"{API}/v1/payments/pay_FHfAzEJ51k8NLj/refund").mock(return_value=httpx.Response(
            200, json={"id": "rfnd_FP8QHiV938haTz", "entity": "refund", "amount": 50_000, "currency": "INR",
                       "payment_id": "pay_FHfAzEJ51k8NLj", "receipt": "re_1", "status": "processed"}))
        result = await registry.get_gateway("razorpay").refund(
            payment_reference="pay_1", refund_reference="re_1", amount_minor=50_000, currency="INR")
    assert (result.reference, result.status, result.gateway_id) == ("re_1", "succeeded", "rfnd_FP8QHiV938haTz")
    assert listing.call_count == 1
    assert json.loads(create.calls.last.request.content) == {
        "amount": 50_000, "speed": "normal", "receipt": "re_1",
        "notes": {"reference": "re_1", "payment_reference": "pay_1"}}


async def test_refund_already_made_is_returned_without_posting_again():
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{API}/v1/payments/pay_FHfAzEJ51k8NLj/refunds").mock(return_value=httpx.Response(200, json={
            "entity": "collection", "count": 1, "items": [
                {"id": "rfnd_1", "receipt": "re_1", "status": "pending", "amount": 50_000}]}))
        create = router.post(f"{API}/v1/payments/pay_FHfAzEJ51k8NLj/refund").mock(
            return_value=httpx.Response(200, json={}))
        result = await registry.get_gateway("razorpay").refund(
            payment_reference="pay_1", refund_reference="re_1", amount_minor=50_000, currency="INR",
            payment_gateway_id="pay_FHfAzEJ51k8NLj")
    assert (result.status, result.gateway_id) == ("pending", "rfnd_1")
    assert create.call_count == 0


async def test_fetch_refund_matches_our_receipt():
    with respx.mock() as router:
        router.get(f"{API}/v1/payment_links").mock(return_value=httpx.Response(200, json={
            "payment_links": [_link("paid", CAPTURED)]}))
        router.get(f"{API}/v1/payments/pay_FHfAzEJ51k8NLj/refunds").mock(return_value=httpx.Response(200, json={
            "items": [{"id": "rfnd_0", "receipt": "re_0", "status": "processed"},
                      {"id": "rfnd_1", "receipt": "re_1", "status": "failed"}]}))
        result = await registry.get_gateway("razorpay").fetch_refund("re_1", payment_reference="pay_1")
    assert (result.status, result.gateway_id) == ("failed", "rfnd_1")


# --- payouts (RazorpayX) -----------------------------------------------------------------------------


BANK = PayoutDestination(kind="bank_account", holder_name="Gaurav Kumar", country_code="IN", bank_code="HDFC0000053",
                         account_number="765432123456789")


async def test_payout_is_a_composite_payout_with_the_idempotency_header():
    with respx.mock() as router:
        route = router.post(f"{API}/v1/payouts").mock(return_value=httpx.Response(200, json={
            "id": "pout_00000000000001", "entity": "payout", "fund_account_id": "fa_00000000000001",
            "amount": 1_000_000, "currency": "INR", "status": "processing", "reference_id": "po_1", "mode": "IMPS"}))
        result = await registry.get_gateway("razorpay").create_payout(
            reference="po_1", amount_minor=1_000_000, currency="INR", destination=BANK,
            narration="Odim payout #42 (Nov)")
    assert (result.status, result.gateway_id) == ("pending", "pout_00000000000001")
    request = route.calls.last.request
    assert request.headers["X-Payout-Idempotency"] == "po_1"
    assert request.headers["Authorization"] == BASIC
    assert json.loads(request.content) == {
        "account_number": ACCOUNT, "amount": 1_000_000, "currency": "INR", "mode": "IMPS", "purpose": "payout",
        "fund_account": {"account_type": "bank_account",
                         "bank_account": {"name": "Gaurav Kumar", "ifsc": "HDFC0000053",
                                          "account_number": "765432123456789"},
                         "contact": {"name": "Gaurav Kumar", "type": "vendor"}},
        "queue_if_low_balance": True, "reference_id": "po_1", "narration": "Odim payout  42  Nov",
        "notes": {"reference": "po_1"},
    }


async def test_payout_retry_after_a_5xx_sends_the_same_idempotency_key():
    with respx.mock() as router:
        route = router.post(f"{API}/v1/payouts").mock(side_effect=[
            httpx.Response(503, json={"error": {"code": "SERVER_ERROR", "description": "try again"}}),
            httpx.Response(200, json={"id": "pout_1", "status": "queued", "reference_id": "po_1"}),
        ])
        result = await registry.get_gateway("razorpay").create_payout(
            reference="po_1", amount_minor=100, currency="INR", destination=BANK, narration="x")
    assert result.status == "pending"
    assert [call.request.headers["X-Payout-Idempotency"] for call in route.calls] == ["po_1", "po_1"]


async def test_payout_to_mobile_money_is_refused_without_http():
    momo = PayoutDestination(kind="mobile_money", holder_name="G", country_code="IN", phone="+919000090000",
                             operator="airtel")
    with respx.mock() as router:
        with pytest.raises(GatewayError) as caught:
            await registry.get_gateway("razorpay").create_payout(
                reference="po_1", amount_minor=100, currency="INR", destination=momo, narration="x")
        assert router.calls.call_count == 0
    assert (caught.value.retryable, caught.value.status_code) == (False, 400)


@pytest.mark.parametrize("rzp_status,ours", [
    ("processed", "paid"), ("reversed", "failed"), ("rejected", "failed"), ("queued", "pending"),
    ("processing", "pending"),
])
async def test_fetch_payout_finds_it_by_reference_id(rzp_status, ours):
    with respx.mock() as router:
        route = router.get(f"{API}/v1/payouts").mock(return_value=httpx.Response(200, json={
            "entity": "collection", "count": 1, "items": [{
                "id": "pout_1", "reference_id": "po_1", "status": rzp_status,
                "status_details": {"reason": "beneficiary_bank_rejected", "description": "Bank rejected the payout",
                                   "source": "beneficiary_bank"}}]}))
        result = await registry.get_gateway("razorpay").fetch_payout("po_1")
    assert (result.status, result.failure_reason) == (
        ours, "Bank rejected the payout" if ours == "failed" else None)
    assert dict(route.calls.last.request.url.params) == {"account_number": ACCOUNT, "reference_id": "po_1"}


# --- webhooks ---------------------------------------------------------------------------------------


LINK_PAID = {"entity": "event", "account_id": "acc_BFQ7uQEaa7j2z7", "event": "payment_link.paid",
             "contains": ["payment_link", "order", "payment"], "created_at": 1700000200, "payload": {
                 "payment_link": {"entity": _link("paid", CAPTURED)},
                 "payment": {"entity": {"id": "pay_FHfAzEJ51k8NLj", "amount": 150_000, "currency": "INR",
                                        "status": "captured", "notes": {}}}}}


async def test_valid_webhook_is_accepted_with_the_event_id_header():
    raw, headers = _signed(LINK_PAID)
    event = registry.get_gateway("razorpay").verify_webhook(headers, raw)
    assert (event.event_id, event.type, event.reference, event.amount_minor, event.currency) == (
        "KJEQpXcAzS8cfd", "payment.succeeded", "pay_1", 150_000, "INR")


async def test_webhook_with_tampered_body_is_rejected():
    raw, headers = _signed(LINK_PAID)
    with pytest.raises(InvalidSignature):
        registry.get_gateway("razorpay").verify_webhook(headers, raw.replace(b"150000", b"15000"))


async def test_webhook_is_verified_over_raw_bytes_not_reserialised_json():
    raw, headers = _signed(LINK_PAID)
    same_json = json.dumps(json.loads(raw), indent=2).encode()
    with pytest.raises(InvalidSignature):
        registry.get_gateway("razorpay").verify_webhook(headers, same_json)


@pytest.mark.parametrize("event_name,payload,expected", [
    ("payment.captured", {"payment": {"entity": {"amount": 100, "currency": "INR", "notes": {"reference": "pay_9"}}}},
     ("payment.succeeded", "pay_9")),
    ("payment.captured", {"payment": {"entity": {"amount": 100, "currency": "INR", "notes": []}}}, ("ignored", "")),
    ("payment.failed", {"payment": {"entity": {"amount": 100, "currency": "INR", "notes": {"reference": "pay_9"}}}},
     ("payment.failed", "pay_9")),
    ("refund.processed", {"refund": {"entity": {"id": "rfnd_1", "receipt": "re_1", "amount": 50, "currency": "INR"}}},
     ("refund.succeeded", "re_1")),
    ("refund.failed", {"refund": {"entity": {"id": "rfnd_1", "receipt": "re_1"}}}, ("refund.failed", "re_1")),
    ("payout.processed", {"payout": {"entity": {"id": "pout_1", "reference_id": "po_1", "amount": 9}}},
     ("payout.paid", "po_1")),
    ("payout.reversed", {"payout": {"entity": {"id": "pout_1", "reference_id": "po_1"}}}, ("payout.failed", "po_1")),
    ("order.paid", {"order": {"entity": {"id": "order_1", "receipt": "pay_1"}}}, ("ignored", "")),
])
async def test_webhook_event_types_map_to_ours(event_name, payload, expected):
    raw, headers = _signed({"entity": "event", "event": event_name, "payload": payload})
    event = registry.get_gateway("razorpay").verify_webhook(headers, raw)
    assert (event.type, event.reference) == expected

"""The Stripe adapter at the HTTP boundary (respx intercepts the SDK's httpx client): requests as
Stripe's API reference documents them (form-encoded, Idempotency-Key), answers shaped like Stripe's
objects, and webhooks signed exactly like Stripe does (``stripe.WebhookSignature``)."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs

import httpx
import pytest
import respx
import stripe
from pydantic import SecretStr

from gateways import registry
from gateways.base import GatewayError, InvalidSignature, PayoutDestination
from settings import get_settings

# The SDK's HTTPXClient posts form bodies with ``data=<str>``, which httpx deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning")

API = "https://api.stripe.com"
WEBHOOK_SECRET = "whsec_test_0123456789abcdef"


@pytest.fixture(autouse=True)
def stripe_settings(monkeypatch):
    settings = get_settings()
    monkeypatch.setattr(settings, "stripe_secret_key", SecretStr("sk_test_odim"))
    monkeypatch.setattr(settings, "stripe_webhook_secret", SecretStr(WEBHOOK_SECRET))
    monkeypatch.setattr(settings, "stripe_api_base", API)
    monkeypatch.setattr(settings, "gateway_backoff_initial_seconds", 0.001)
    monkeypatch.setattr(settings, "gateway_backoff_max_seconds", 0.005)
    registry.reset()
    yield
    registry.reset()


def _form(request: httpx.Request) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(request.content.decode()).items()}


def _intent(status: str = "succeeded", **extra) -> dict:
    return {"id": "pi_3Odim", "object": "payment_intent", "amount": 2000, "amount_received": 2000 if status ==
            "succeeded" else 0, "currency": "usd", "status": status, "created": 1700000000,
            "metadata": {"reference": "pay_1"}, "last_payment_error": None, **extra}


def _search(*intents: dict) -> dict:
    return {"object": "search_result", "data": list(intents), "has_more": False, "next_page": None,
            "url": "/v1/payment_intents/search"}


def _signed(payload: dict, *, timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(payload).encode()
    header = stripe.WebhookSignature.generate_signature_header(raw.decode(), WEBHOOK_SECRET, timestamp=timestamp)
    return raw, {"Stripe-Signature": header, "Content-Type": "application/json"}


def _event(event_type: str, obj: dict) -> dict:
    return {"id": "evt_1Odim", "object": "event", "type": event_type, "created": int(time.time()),
            "api_version": "2026-10-28.endive", "data": {"object": obj}, "livemode": False}


# --- checkout and payment status ---------------------------------------------------------------------


async def test_create_checkout_sends_amount_currency_reference_and_idempotency_key():
    with respx.mock() as router:
        route = router.post(f"{API}/v1/checkout/sessions").mock(return_value=httpx.Response(200, json={
            "id": "cs_test_a1", "object": "checkout.session", "url": "https://checkout.stripe.com/c/pay/cs_test_a1",
            "expires_at": 1700086400, "client_reference_id": "pay_1", "payment_status": "unpaid"}))
        session = await registry.get_gateway("stripe").create_checkout(
            reference="pay_1", amount_minor=2000, currency="USD", description="Deep cleaning",
            customer_email="c@example.com")
    assert (session.url, session.gateway_id, int(session.expires_at.timestamp())) == (
        "https://checkout.stripe.com/c/pay/cs_test_a1", "cs_test_a1", 1700086400)
    request = route.calls.last.request
    assert request.headers["Idempotency-Key"] == "pay_1"
    assert request.headers["Authorization"] == "Bearer sk_test_odim"
    form = _form(request)
    base = get_settings().public_base_url
    assert form == {
        "mode": "payment", "client_reference_id": "pay_1", "metadata[reference]": "pay_1",
        "payment_intent_data[metadata][reference]": "pay_1", "payment_intent_data[description]": "Deep cleaning",
        "line_items[0][quantity]": "1", "line_items[0][price_data][currency]": "usd",
        "line_items[0][price_data][unit_amount]": "2000",
        "line_items[0][price_data][product_data][name]": "Deep cleaning", "customer_email": "c@example.com",
        "success_url": f"{base}/payments/pay_1/return", "cancel_url": f"{base}/payments/pay_1/return?cancelled=1",
    }


async def test_zero_decimal_xaf_goes_to_stripe_as_whole_francs():
    with respx.mock() as router:
        route = router.post(f"{API}/v1/checkout/sessions").mock(return_value=httpx.Response(200, json={
            "id": "cs_test_x", "object": "checkout.session", "url": "https://checkout.stripe.com/x", "expires_at": None}))
        await registry.get_gateway("stripe").create_checkout(
            reference="pay_x", amount_minor=5000, currency="XAF", description="Repair", customer_email="c@example.com")
    form = _form(route.calls.last.request)
    assert (form["line_items[0][price_data][unit_amount]"], form["line_items[0][price_data][currency]"]) == (
        "5000", "xaf")


async def test_create_checkout_retries_a_503_with_the_same_idempotency_key():
    with respx.mock() as router:
        route = router.post(f"{API}/v1/checkout/sessions").mock(side_effect=[
            httpx.Response(503, json={"error": {"type": "api_error", "message": "overloaded"}}),
            httpx.Response(200, json={"id": "cs_1", "object": "checkout.session", "url": "https://c/1",
                                      "expires_at": 1700086400}),
        ])
        session = await registry.get_gateway("stripe").create_checkout(
            reference="pay_1", amount_minor=2000, currency="USD", description="x", customer_email="c@example.com")
    assert session.gateway_id == "cs_1"
    assert [call.request.headers["Idempotency-Key"] for call in route.calls] == ["pay_1", "pay_1"]
    assert route.calls[0].request.content == route.calls[1].request.content


async def test_a_stripe_400_is_a_refusal_and_not_retried():
    with respx.mock() as router:
        route = router.post(f"{API}/v1/checkout/sessions").mock(return_value=httpx.Response(400, json={
            "error": {"type": "idempotency_error", "message": "Keys for idempotent requests can only be used with "
                      "the same parameters they were first used with."}}))
        with pytest.raises(GatewayError) as caught:
            await registry.get_gateway("stripe").create_checkout(
                reference="pay_1", amount_minor=2000, currency="USD", description="x", customer_email="c@example.com")
    assert (caught.value.retryable, caught.value.status_code) == (False, 400)
    assert route.call_count == 1


async def test_fetch_payment_searches_the_payment_intent_by_our_reference():
    with respx.mock() as router:
        route = router.get(f"{API}/v1/payment_intents/search").mock(
            return_value=httpx.Response(200, json=_search(_intent("succeeded"))))
        status = await registry.get_gateway("stripe").fetch_payment("pay_1")
    assert (status.status, status.amount_minor, status.currency, status.gateway_id) == (
        "succeeded", 2000, "USD", "pi_3Odim")
    assert route.calls.last.request.url.params["query"] == "metadata['reference']:'pay_1'"


async def test_fetch_payment_maps_a_failed_attempt_to_failed():
    failed = _intent("requires_payment_method", last_payment_error={"code": "card_declined"})
    with respx.mock() as router:
        router.get(f"{API}/v1/payment_intents/search").mock(return_value=httpx.Response(200, json=_search(failed)))
        status = await registry.get_gateway("stripe").fetch_payment("pay_1")
    assert (status.status, status.amount_minor) == ("failed", 2000)


async def test_fetch_payment_without_a_payment_intent_is_not_found():
    with respx.mock() as router:
        router.get(f"{API}/v1/payment_intents/search").mock(return_value=httpx.Response(200, json=_search()))
        with pytest.raises(GatewayError) as caught:
            await registry.get_gateway("stripe").fetch_payment("pay_1")
    assert (caught.value.retryable, caught.value.status_code) == (False, 404)


# --- refunds ----------------------------------------------------------------------------------------


async def test_refund_posts_to_the_payment_intent_with_our_reference_as_idempotency_key():
    with respx.mock() as router:
        route = router.post(f"{API}/v1/refunds").mock(return_value=httpx.Response(200, json={
            "id": "re_3Stripe", "object": "refund", "amount": 500, "currency": "usd", "status": "pending",
            "payment_intent": "pi_3Odim", "metadata": {"reference": "re_ours1"}}))
        result = await registry.get_gateway("stripe").refund(
            payment_reference="pay_1", refund_reference="re_ours1", amount_minor=500, currency="USD",
            payment_gateway_id="pi_3Odim")
    assert (result.reference, result.status, result.gateway_id) == ("re_ours1", "pending", "re_3Stripe")
    request = route.calls.last.request
    assert request.headers["Idempotency-Key"] == "re_ours1"
    assert _form(request) == {"payment_intent": "pi_3Odim", "amount": "500", "metadata[reference]": "re_ours1",
                              "metadata[payment_reference]": "pay_1"}


async def test_refund_finds_the_payment_intent_when_only_our_reference_is_known():
    with respx.mock() as router:
        router.get(f"{API}/v1/payment_intents/search").mock(return_value=httpx.Response(200, json=_search(_intent())))
        route = router.post(f"{API}/v1/refunds").mock(return_value=httpx.Response(200, json={
            "id": "re_3S", "object": "refund", "status": "succeeded", "metadata": {"reference": "re_ours2"}}))
        result = await registry.get_gateway("stripe").refund(
            payment_reference="pay_1", refund_reference="re_ours2", amount_minor=2000, currency="USD",
            payment_gateway_id="cs_test_a1")
    assert result.status == "succeeded"
    assert _form(route.calls.last.request)["payment_intent"] == "pi_3Odim"


async def test_fetch_refund_matches_our_metadata_reference():
    refunds = {"object": "list", "url": "/v1/refunds", "has_more": False, "data": [
        {"id": "re_A", "object": "refund", "status": "succeeded", "metadata": {"reference": "re_other"}},
        {"id": "re_B", "object": "refund", "status": "failed", "metadata": {"reference": "re_ours3"}},
    ]}
    with respx.mock() as router:
        router.get(f"{API}/v1/payment_intents/search").mock(return_value=httpx.Response(200, json=_search(_intent())))
        route = router.get(f"{API}/v1/refunds").mock(return_value=httpx.Response(200, json=refunds))
        result = await registry.get_gateway("stripe").fetch_refund("re_ours3", payment_reference="pay_1")
    assert (result.status, result.gateway_id) == ("failed", "re_B")
    assert route.calls.last.request.url.params["payment_intent"] == "pi_3Odim"


# --- payouts (Connect transfers) --------------------------------------------------------------------------


async def test_payout_is_a_connect_transfer_with_our_reference():
    destination = PayoutDestination(kind="bank_account", holder_name="Ada", country_code="US",
                                    account_number="acct_1ProviderX")
    with respx.mock() as router:
        route = router.post(f"{API}/v1/transfers").mock(return_value=httpx.Response(200, json={
            "id": "tr_1", "object": "transfer", "amount": 1800, "currency": "usd", "destination": "acct_1ProviderX",
            "transfer_group": "po_1", "reversed": False, "metadata": {"reference": "po_1"}}))
        result = await registry.get_gateway("stripe").create_payout(
            reference="po_1", amount_minor=1800, currency="USD", destination=destination, narration="Odim payout")
    assert (result.status, result.gateway_id, result.failure_reason) == ("paid", "tr_1", None)
    request = route.calls.last.request
    assert request.headers["Idempotency-Key"] == "po_1"
    assert _form(request) == {"amount": "1800", "currency": "usd", "destination": "acct_1ProviderX",
                              "transfer_group": "po_1", "description": "Odim payout", "metadata[reference]": "po_1"}


async def test_payout_to_anything_but_a_connected_account_is_refused_without_http():
    bank = PayoutDestination(kind="bank_account", holder_name="Ada", country_code="US", bank_code="110000000",
                             account_number="000123456789")
    with respx.mock() as router:
        with pytest.raises(GatewayError) as caught:
            await registry.get_gateway("stripe").create_payout(
                reference="po_1", amount_minor=1800, currency="USD", destination=bank, narration="x")
        assert router.calls.call_count == 0
    assert (caught.value.retryable, caught.value.status_code) == (False, 400)
    assert "Connect" in str(caught.value)


async def test_fetch_payout_lists_transfers_by_transfer_group():
    transfers = {"object": "list", "url": "/v1/transfers", "has_more": False, "data": [
        {"id": "tr_1", "object": "transfer", "transfer_group": "po_1", "reversed": True}]}
    with respx.mock() as router:
        route = router.get(f"{API}/v1/transfers").mock(return_value=httpx.Response(200, json=transfers))
        result = await registry.get_gateway("stripe").fetch_payout("po_1")
    assert (result.status, result.failure_reason) == ("failed", "transfer reversed")
    assert route.calls.last.request.url.params["transfer_group"] == "po_1"


# --- webhooks ---------------------------------------------------------------------------------------


def _completed_session() -> dict:
    return _event("checkout.session.completed", {
        "id": "cs_test_a1", "object": "checkout.session", "client_reference_id": "pay_1",
        "metadata": {"reference": "pay_1"}, "amount_total": 2000, "currency": "usd", "payment_status": "paid",
        "payment_intent": "pi_3Odim"})


async def test_valid_webhook_is_accepted_and_normalised():
    raw, headers = _signed(_completed_session())
    event = registry.get_gateway("stripe").verify_webhook(headers, raw)
    assert (event.event_id, event.type, event.reference, event.amount_minor, event.currency) == (
        "evt_1Odim", "payment.succeeded", "pay_1", 2000, "USD")
    assert event.payload["data"]["object"]["payment_intent"] == "pi_3Odim"


async def test_webhook_with_tampered_body_is_rejected():
    raw, headers = _signed(_completed_session())
    with pytest.raises(InvalidSignature):
        registry.get_gateway("stripe").verify_webhook(headers, raw.replace(b"2000", b"1"))


async def test_webhook_with_stale_timestamp_is_rejected():
    raw, headers = _signed(_completed_session(), timestamp=int(time.time()) - 301)
    with pytest.raises(InvalidSignature, match="tolerance"):
        registry.get_gateway("stripe").verify_webhook(headers, raw)


async def test_webhook_is_verified_over_raw_bytes_not_reserialised_json():
    raw, headers = _signed(_completed_session())
    same_json = json.dumps(json.loads(raw), separators=(",", ":")).encode()
    assert same_json != raw and json.loads(same_json) == json.loads(raw)
    with pytest.raises(InvalidSignature):
        registry.get_gateway("stripe").verify_webhook(headers, same_json)


async def test_webhook_without_signature_header_is_rejected():
    raw, _ = _signed(_completed_session())
    with pytest.raises(InvalidSignature):
        registry.get_gateway("stripe").verify_webhook({}, raw)


@pytest.mark.parametrize("event_type,obj,expected", [
    ("checkout.session.completed", {"client_reference_id": "pay_1", "payment_status": "unpaid", "amount_total": 2000,
                                    "currency": "usd"}, ("ignored", "pay_1")),
    ("checkout.session.async_payment_failed", {"client_reference_id": "pay_1", "amount_total": 2000,
                                               "currency": "usd"}, ("payment.failed", "pay_1")),
    ("checkout.session.expired", {"client_reference_id": "pay_1", "currency": "usd"}, ("payment.failed", "pay_1")),
    ("payment_intent.payment_failed", {"metadata": {"reference": "pay_1"}, "amount": 2000, "currency": "usd"},
     ("payment.failed", "pay_1")),
    ("refund.updated", {"metadata": {"reference": "re_1"}, "status": "succeeded", "amount": 500, "currency": "usd"},
     ("refund.succeeded", "re_1")),
    ("refund.failed", {"metadata": {"reference": "re_1"}, "status": "failed", "amount": 500, "currency": "usd"},
     ("refund.failed", "re_1")),
    ("charge.refunded", {"amount": 2000, "currency": "usd", "metadata": {"reference": "pay_1"}, "refunds": {"data": [
        {"id": "re_A", "status": "succeeded", "amount": 500, "currency": "usd", "created": 1,
         "metadata": {"reference": "re_1"}},
        {"id": "re_B", "status": "succeeded", "amount": 700, "currency": "usd", "created": 2,
         "metadata": {"reference": "re_2"}}]}}, ("refund.succeeded", "re_2")),
    ("transfer.created", {"transfer_group": "po_1", "amount": 1800, "currency": "usd", "metadata": {}},
     ("payout.paid", "po_1")),
    ("transfer.reversed", {"transfer_group": "po_1", "amount": 1800, "currency": "usd", "metadata": {}},
     ("payout.failed", "po_1")),
    ("customer.created", {"id": "cus_1", "metadata": {}}, ("ignored", "")),
    ("payment_intent.succeeded", {"amount_received": 2000, "currency": "usd", "metadata": {}}, ("ignored", "")),
])
async def test_webhook_event_types_map_to_ours(event_type, obj, expected):
    raw, headers = _signed(_event(event_type, obj))
    event = registry.get_gateway("stripe").verify_webhook(headers, raw)
    assert (event.type, event.reference) == expected

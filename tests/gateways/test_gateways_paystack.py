"""The Paystack adapter at the HTTP boundary (respx): requests and answers shaped as Paystack's API
reference documents them, the status query before any retried create, and webhooks signed like
Paystack signs them (hex HMAC-SHA512 of the raw body with the secret key)."""

from __future__ import annotations

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

API = "https://api.paystack.co"
SECRET = "sk_test_paystack_0123456789"


@pytest.fixture(autouse=True)
def paystack_settings(monkeypatch):
    settings = get_settings()
    monkeypatch.setattr(settings, "paystack_secret_key", SecretStr(SECRET))
    monkeypatch.setattr(settings, "paystack_api_base", API)
    monkeypatch.setattr(settings, "gateway_backoff_initial_seconds", 0.001)
    monkeypatch.setattr(settings, "gateway_backoff_max_seconds", 0.005)
    monkeypatch.setattr(settings, "gateway_max_attempts", 3)
    registry.reset()
    yield
    registry.reset()


def _transaction(status: str = "success") -> dict:
    return {"status": True, "message": "Verification successful", "data": {
        "id": 4099260516, "domain": "test", "status": status, "reference": "pay_1", "amount": 2_500_000,
        "gateway_response": "Successful", "currency": "NGN", "metadata": {"reference": "pay_1"}}}


NOT_FOUND = {"status": False, "message": "Transaction reference not found", "type": "validation_error",
             "code": "transaction_not_found"}


def _signed(payload: dict) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(payload).encode()
    signature = hmac.new(SECRET.encode(), raw, hashlib.sha512).hexdigest()
    return raw, {"x-paystack-signature": signature, "content-type": "application/json"}


# --- checkout and payment status ---------------------------------------------------------------------


async def test_create_checkout_initializes_a_transaction_with_our_reference():
    with respx.mock() as router:
        route = router.post(f"{API}/transaction/initialize").mock(return_value=httpx.Response(200, json={
            "status": True, "message": "Authorization URL created", "data": {
                "authorization_url": "https://checkout.paystack.com/0peioxfhpn", "access_code": "0peioxfhpn",
                "reference": "pay_1"}}))
        session = await registry.get_gateway("paystack").create_checkout(
            reference="pay_1", amount_minor=2_500_000, currency="NGN", description="Tiling",
            customer_email="c@example.com")
    assert (session.url, session.gateway_id, session.expires_at) == (
        "https://checkout.paystack.com/0peioxfhpn", "0peioxfhpn", None)
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {SECRET}"
    assert json.loads(request.content) == {
        "email": "c@example.com", "amount": 2_500_000, "currency": "NGN", "reference": "pay_1",
        "callback_url": f"{get_settings().public_base_url}/payments/pay_1/return",
        "metadata": {"reference": "pay_1", "description": "Tiling"},
    }


async def test_create_checkout_asks_for_the_reference_before_retrying():
    with respx.mock() as router:
        initialize = router.post(f"{API}/transaction/initialize").mock(side_effect=[
            httpx.Response(502, text="Bad gateway"),
            httpx.Response(200, json={"status": True, "data": {
                "authorization_url": "https://checkout.paystack.com/abc", "access_code": "abc"}}),
        ])
        verify = router.get(f"{API}/transaction/verify/pay_1").mock(return_value=httpx.Response(400, json=NOT_FOUND))
        session = await registry.get_gateway("paystack").create_checkout(
            reference="pay_1", amount_minor=100, currency="NGN", description="x", customer_email="c@example.com")
        order = [call.request.url.path for call in router.calls]  # respx forgets its calls on exit
    assert session.url == "https://checkout.paystack.com/abc"
    assert (initialize.call_count, verify.call_count) == (2, 1)
    assert order == ["/transaction/initialize", "/transaction/verify/pay_1", "/transaction/initialize"]


async def test_create_checkout_does_not_initialize_twice_when_the_first_one_went_through():
    # given a first initialize whose answer was lost, and a customer who has already paid
    with respx.mock() as router:
        initialize = router.post(f"{API}/transaction/initialize").mock(side_effect=httpx.ReadTimeout("lost"))
        router.get(f"{API}/transaction/verify/pay_1").mock(return_value=httpx.Response(200, json=_transaction()))
        session = await registry.get_gateway("paystack").create_checkout(
            reference="pay_1", amount_minor=100, currency="NGN", description="x", customer_email="c@example.com")
    # then no second transaction is initialized, and the customer goes to our return page
    assert initialize.call_count == 1
    assert (session.url, session.gateway_id) == (f"{get_settings().public_base_url}/payments/pay_1/return",
                                                 "4099260516")


async def test_create_checkout_refuses_when_an_unpaid_transaction_already_exists():
    with respx.mock() as router:
        initialize = router.post(f"{API}/transaction/initialize").mock(return_value=httpx.Response(500))
        router.get(f"{API}/transaction/verify/pay_1").mock(
            return_value=httpx.Response(200, json=_transaction("abandoned")))
        with pytest.raises(GatewayError) as caught:
            await registry.get_gateway("paystack").create_checkout(
                reference="pay_1", amount_minor=100, currency="NGN", description="x", customer_email="c@example.com")
    assert (caught.value.retryable, caught.value.status_code) == (False, 409)
    assert initialize.call_count == 1


@pytest.mark.parametrize("paystack_status,ours", [
    ("success", "succeeded"), ("failed", "failed"), ("reversed", "failed"), ("abandoned", "pending"),
    ("ongoing", "pending"), ("pending", "pending"),
])
async def test_fetch_payment_maps_paystack_statuses(paystack_status, ours):
    with respx.mock() as router:
        router.get(f"{API}/transaction/verify/pay_1").mock(
            return_value=httpx.Response(200, json=_transaction(paystack_status)))
        status = await registry.get_gateway("paystack").fetch_payment("pay_1")
    assert (status.status, status.amount_minor, status.currency, status.gateway_id) == (
        ours, 2_500_000, "NGN", "4099260516")


async def test_fetch_payment_of_an_unknown_reference_is_a_404():
    with respx.mock() as router:
        route = router.get(f"{API}/transaction/verify/pay_1").mock(return_value=httpx.Response(400, json=NOT_FOUND))
        with pytest.raises(GatewayError) as caught:
            await registry.get_gateway("paystack").fetch_payment("pay_1")
    assert (caught.value.retryable, caught.value.status_code) == (False, 404)
    assert route.call_count == 1


# --- refunds ----------------------------------------------------------------------------------------


def _refund(status: str, note: str) -> dict:
    return {"id": 3018284, "integration": 412829, "domain": "test", "transaction": 4099260516, "amount": 500_000,
            "currency": "NGN", "status": status, "merchant_note": note, "customer_note": "Refund for transaction"}


async def test_refund_checks_for_an_earlier_one_then_posts_with_our_reference_in_the_note():
    with respx.mock() as router:
        router.get(f"{API}/transaction/verify/pay_1").mock(return_value=httpx.Response(200, json=_transaction()))
        listing = router.get(f"{API}/refund").mock(return_value=httpx.Response(200, json={
            "status": True, "message": "Refunds retrieved", "data": [_refund("processed", "odim:re_other")]}))
        create = router.post(f"{API}/refund").mock(return_value=httpx.Response(200, json={
            "status": True, "message": "Refund has been queued for processing", "data": _refund("pending", "odim:re_1")}))
        result = await registry.get_gateway("paystack").refund(
            payment_reference="pay_1", refund_reference="re_1", amount_minor=500_000, currency="NGN")
    assert (result.reference, result.status, result.gateway_id) == ("re_1", "pending", "3018284")
    assert listing.calls.last.request.url.params["transaction"] == "4099260516"
    assert json.loads(create.calls.last.request.content) == {
        "transaction": "pay_1", "amount": 500_000, "currency": "NGN", "merchant_note": "odim:re_1"}


async def test_refund_already_made_is_returned_without_posting_again():
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{API}/transaction/verify/pay_1").mock(return_value=httpx.Response(200, json=_transaction()))
        router.get(f"{API}/refund").mock(return_value=httpx.Response(200, json={
            "status": True, "data": [_refund("processed", "odim:re_1")]}))
        create = router.post(f"{API}/refund").mock(return_value=httpx.Response(200, json={"status": True, "data": {}}))
        result = await registry.get_gateway("paystack").refund(
            payment_reference="pay_1", refund_reference="re_1", amount_minor=500_000, currency="NGN")
    assert result.status == "succeeded"
    assert create.call_count == 0


async def test_fetch_refund_needs_the_payment_reference():
    with respx.mock() as router:
        with pytest.raises(GatewayError) as caught:
            await registry.get_gateway("paystack").fetch_refund("re_1")
        assert router.calls.call_count == 0
    assert caught.value.retryable is False


# --- payouts ----------------------------------------------------------------------------------------


async def test_payout_creates_a_recipient_then_a_transfer_with_our_reference():
    bank = PayoutDestination(kind="bank_account", holder_name="Tolu Ade", country_code="NG", bank_code="058",
                             account_number="0123456789")
    with respx.mock() as router:
        router.get(f"{API}/transfer/verify/po_1").mock(return_value=httpx.Response(400, json={
            "status": False, "message": "Transfer not found"}))
        recipient = router.post(f"{API}/transferrecipient").mock(return_value=httpx.Response(201, json={
            "status": True, "message": "Transfer recipient created successfully", "data": {
                "recipient_code": "RCP_m7ljkv8leesep7p", "type": "nuban"}}))
        transfer = router.post(f"{API}/transfer").mock(return_value=httpx.Response(200, json={
            "status": True, "message": "Transfer has been queued", "data": {
                "reference": "po_1", "transfer_code": "TRF_vsyqdmlzble3uii", "status": "pending", "amount": 1_800_000,
                "currency": "NGN"}}))
        result = await registry.get_gateway("paystack").create_payout(
            reference="po_1", amount_minor=1_800_000, currency="NGN", destination=bank, narration="Odim payout")
    assert (result.status, result.gateway_id) == ("pending", "TRF_vsyqdmlzble3uii")
    assert json.loads(recipient.calls.last.request.content) == {
        "type": "nuban", "name": "Tolu Ade", "currency": "NGN", "account_number": "0123456789", "bank_code": "058"}
    assert json.loads(transfer.calls.last.request.content) == {
        "source": "balance", "amount": 1_800_000, "recipient": "RCP_m7ljkv8leesep7p", "reference": "po_1",
        "reason": "Odim payout", "currency": "NGN"}


async def test_payout_already_sent_is_returned_without_a_second_transfer():
    momo = PayoutDestination(kind="mobile_money", holder_name="Kofi", country_code="GH", phone="+233241234567",
                             operator="mtn")
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{API}/transfer/verify/po_1").mock(return_value=httpx.Response(200, json={
            "status": True, "data": {"reference": "po_1", "transfer_code": "TRF_1", "status": "success"}}))
        transfer = router.post(f"{API}/transfer").mock(return_value=httpx.Response(200, json={"status": True}))
        result = await registry.get_gateway("paystack").create_payout(
            reference="po_1", amount_minor=5000, currency="GHS", destination=momo, narration="Odim payout")
    assert (result.status, result.gateway_id) == ("paid", "TRF_1")
    assert transfer.call_count == 0


@pytest.mark.parametrize("paystack_status,ours", [
    ("success", "paid"), ("failed", "failed"), ("reversed", "failed"), ("pending", "pending"), ("otp", "pending"),
])
async def test_fetch_payout_maps_transfer_statuses(paystack_status, ours):
    with respx.mock() as router:
        router.get(f"{API}/transfer/verify/po_1").mock(return_value=httpx.Response(200, json={
            "status": True, "data": {"reference": "po_1", "transfer_code": "TRF_1", "status": paystack_status}}))
        result = await registry.get_gateway("paystack").fetch_payout("po_1")
    assert result.status == ours
    assert result.failure_reason == (f"transfer {paystack_status}" if ours == "failed" else None)


# --- webhooks ---------------------------------------------------------------------------------------


CHARGE_SUCCESS = {"event": "charge.success", "data": {
    "id": 302961, "domain": "live", "status": "success", "reference": "pay_1", "amount": 2_500_000,
    "message": None, "gateway_response": "Approved", "currency": "NGN", "metadata": {"reference": "pay_1"}}}


async def test_valid_webhook_is_accepted_and_normalised():
    raw, headers = _signed(CHARGE_SUCCESS)
    event = registry.get_gateway("paystack").verify_webhook(headers, raw)
    assert (event.event_id, event.type, event.reference, event.amount_minor, event.currency) == (
        "charge.success:302961", "payment.succeeded", "pay_1", 2_500_000, "NGN")


async def test_webhook_with_tampered_body_is_rejected():
    raw, headers = _signed(CHARGE_SUCCESS)
    with pytest.raises(InvalidSignature):
        registry.get_gateway("paystack").verify_webhook(headers, raw.replace(b"2500000", b"2500001"))


async def test_webhook_is_verified_over_raw_bytes_not_reserialised_json():
    raw, headers = _signed(CHARGE_SUCCESS)
    same_json = json.dumps(json.loads(raw), indent=2).encode()
    with pytest.raises(InvalidSignature):
        registry.get_gateway("paystack").verify_webhook(headers, same_json)


async def test_webhook_signed_with_another_key_is_rejected():
    raw = json.dumps(CHARGE_SUCCESS).encode()
    forged = hmac.new(b"sk_test_someone_else", raw, hashlib.sha512).hexdigest()
    with pytest.raises(InvalidSignature):
        registry.get_gateway("paystack").verify_webhook({"x-paystack-signature": forged}, raw)


@pytest.mark.parametrize("payload,expected", [
    ({"event": "transfer.success", "data": {"id": 1, "reference": "po_1", "amount": 100, "currency": "NGN",
                                            "status": "success"}}, ("payout.paid", "po_1", "transfer.success:1")),
    ({"event": "transfer.failed", "data": {"id": 2, "reference": "po_1", "status": "failed"}},
     ("payout.failed", "po_1", "transfer.failed:2")),
    ({"event": "transfer.reversed", "data": {"id": 3, "reference": "po_1", "status": "reversed"}},
     ("payout.failed", "po_1", "transfer.reversed:3")),
    ({"event": "refund.processed", "data": {"id": 9, "status": "processed", "transaction_reference": "pay_1",
                                            "merchant_note": "odim:re_abc123", "amount": "10000", "currency": "NGN"}},
     ("refund.succeeded", "re_abc123", "refund.processed:9")),
    ({"event": "refund.failed", "data": {"id": 10, "status": "failed", "transaction_reference": "pay_1",
                                         "amount": "10000", "currency": "NGN"}},
     ("refund.failed", "pay_1", "refund.failed:10")),
    ({"event": "subscription.create", "data": {"id": 11}}, ("ignored", "", "subscription.create:11")),
])
async def test_webhook_event_types_map_to_ours(payload, expected):
    raw, headers = _signed(payload)
    event = registry.get_gateway("paystack").verify_webhook(headers, raw)
    assert (event.type, event.reference, event.event_id) == expected

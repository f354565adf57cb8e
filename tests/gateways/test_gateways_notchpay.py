"""The Notch Pay adapter at the HTTP boundary (respx): requests and answers as Notch Pay's API
reference documents them (``Authorization: <public key>``, ``X-Grant`` for transfers), XAF amounts in
whole francs, refunds refused (dashboard only), and webhooks signed like Notch Pay signs them (hex
HMAC-SHA256 of the raw body with the endpoint's hash key)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx
from pydantic import SecretStr

from gateways import registry
from gateways.base import GatewayError, InvalidSignature, PayoutDestination
from settings import get_settings

API = "https://api.notchpay.co"
PUBLIC_KEY = "pk_test.notch_public"
PRIVATE_KEY = "sk_test.notch_private"
HASH_KEY = "hsk_notch_webhook_hash"


@pytest.fixture(autouse=True)
def notchpay_settings(monkeypatch):
    settings = get_settings()
    monkeypatch.setattr(settings, "notchpay_public_key", SecretStr(PUBLIC_KEY))
    monkeypatch.setattr(settings, "notchpay_private_key", SecretStr(PRIVATE_KEY))
    monkeypatch.setattr(settings, "notchpay_hash_key", SecretStr(HASH_KEY))
    monkeypatch.setattr(settings, "notchpay_api_base", API)
    monkeypatch.setattr(settings, "operator_email", "operations@odim.local")
    monkeypatch.setattr(settings, "gateway_backoff_initial_seconds", 0.001)
    monkeypatch.setattr(settings, "gateway_backoff_max_seconds", 0.005)
    monkeypatch.setattr(settings, "gateway_max_attempts", 3)
    registry.reset()
    yield
    registry.reset()


def _payment(status: str) -> dict:
    return {"code": 200, "status": "OK", "message": "Transaction retrieved", "transaction": {
        "reference": "trx.test_6Tzx3M4q", "merchant_reference": "pay_1", "amount": 15_000, "currency": "XAF",
        "status": status, "description": "Plumbing", "created_at": "2026-11-20T10:00:00Z"}}


def _signed(payload: dict) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(payload).encode()
    return raw, {"x-notch-signature": hmac.new(HASH_KEY.encode(), raw, hashlib.sha256).hexdigest()}


MTN = PayoutDestination(kind="mobile_money", holder_name="Awa Ndiaye", country_code="CM", phone="+237670123456",
                        operator="mtn")


# --- checkout and payment status ---------------------------------------------------------------------


async def test_create_checkout_posts_the_amount_in_whole_francs_with_our_reference():
    with respx.mock() as router:
        route = router.post(f"{API}/payments").mock(return_value=httpx.Response(201, json={
            "status": "Accepted", "message": "Payment initialized", "code": 201,
            "transaction": {"reference": "trx.test_6Tzx3M4q", "amount": 15_000, "currency": "XAF", "status": "pending"},
            "authorization_url": "https://pay.notchpay.co/trx.test_6Tzx3M4q"}))
        before = datetime.now(UTC)
        session = await registry.get_gateway("notchpay").create_checkout(
            reference="pay_1", amount_minor=15_000, currency="XAF", description="Plumbing",
            customer_email="c@example.com", customer_phone="+237670000001")
    assert (session.url, session.gateway_id) == ("https://pay.notchpay.co/trx.test_6Tzx3M4q", "trx.test_6Tzx3M4q")
    assert before + timedelta(hours=3) <= session.expires_at <= datetime.now(UTC) + timedelta(hours=3)
    request = route.calls.last.request
    assert request.headers["Authorization"] == PUBLIC_KEY
    assert "X-Grant" not in request.headers
    assert json.loads(request.content) == {
        "amount": 15_000, "currency": "XAF", "email": "c@example.com",
        "customer": {"email": "c@example.com", "phone": "+237670000001"}, "description": "Plumbing",
        "reference": "pay_1", "callback": f"{get_settings().public_base_url}/payments/pay_1/return",
        "phone": "+237670000001",
    }


async def test_create_checkout_queries_the_reference_before_retrying():
    with respx.mock() as router:
        create = router.post(f"{API}/payments").mock(side_effect=[
            httpx.Response(500, json={"message": "Server error"}),
            httpx.Response(201, json={"transaction": {"reference": "trx.2"},
                                      "authorization_url": "https://pay.notchpay.co/trx.2"}),
        ])
        lookup = router.get(f"{API}/payments/pay_1").mock(return_value=httpx.Response(404, json={
            "code": 404, "status": "Not Found", "message": "Payment not found"}))
        session = await registry.get_gateway("notchpay").create_checkout(
            reference="pay_1", amount_minor=5000, currency="XAF", description="x", customer_email="c@example.com")
        order = [call.request.url.path for call in router.calls]
    assert session.url == "https://pay.notchpay.co/trx.2"
    assert (create.call_count, lookup.call_count) == (2, 1)
    assert order == ["/payments", "/payments/pay_1", "/payments"]


async def test_create_checkout_reuses_a_payment_that_already_went_through():
    with respx.mock() as router:
        create = router.post(f"{API}/payments").mock(side_effect=httpx.ConnectError("reset"))
        answer = _payment("pending") | {"authorization_url": "https://pay.notchpay.co/trx.test_6Tzx3M4q"}
        router.get(f"{API}/payments/pay_1").mock(return_value=httpx.Response(200, json=answer))
        session = await registry.get_gateway("notchpay").create_checkout(
            reference="pay_1", amount_minor=15_000, currency="XAF", description="x", customer_email="c@example.com")
    assert session.url == "https://pay.notchpay.co/trx.test_6Tzx3M4q"
    assert create.call_count == 1


@pytest.mark.parametrize("notch_status,ours", [
    ("complete", "succeeded"), ("pending", "pending"), ("processing", "pending"), ("failed", "failed"),
    ("expired", "failed"), ("canceled", "failed"), ("abandoned", "failed"), ("refunded", "succeeded"),
])
async def test_fetch_payment_maps_notch_statuses(notch_status, ours):
    with respx.mock() as router:
        router.get(f"{API}/payments/pay_1").mock(return_value=httpx.Response(200, json=_payment(notch_status)))
        status = await registry.get_gateway("notchpay").fetch_payment("pay_1")
    assert (status.status, status.amount_minor, status.currency, status.gateway_id) == (
        ours, 15_000, "XAF", "trx.test_6Tzx3M4q")


async def test_fetch_payment_of_an_unknown_reference_is_a_404():
    with respx.mock() as router:
        route = router.get(f"{API}/payments/pay_1").mock(return_value=httpx.Response(404, json={
            "message": "Payment not found"}))
        with pytest.raises(GatewayError) as caught:
            await registry.get_gateway("notchpay").fetch_payment("pay_1")
    assert (caught.value.retryable, caught.value.status_code) == (False, 404)
    assert route.call_count == 1


# --- refunds: dashboard only --------------------------------------------------------------------------


async def test_refunds_are_refused_without_any_http_call():
    gateway = registry.get_gateway("notchpay")
    with respx.mock() as router:
        with pytest.raises(GatewayError) as refused:
            await gateway.refund(payment_reference="pay_1", refund_reference="re_1", amount_minor=100, currency="XAF")
        with pytest.raises(GatewayError) as fetch_refused:
            await gateway.fetch_refund("re_1", payment_reference="pay_1")
        assert router.calls.call_count == 0
    assert (refused.value.retryable, fetch_refused.value.retryable) == (False, False)
    assert "dashboard" in str(refused.value)


# --- payouts ----------------------------------------------------------------------------------------


async def test_payout_creates_a_beneficiary_then_a_transfer_with_our_reference():
    with respx.mock() as router:
        lookup = router.get(f"{API}/transfers/po_1").mock(return_value=httpx.Response(404, json={
            "message": "Transfer not found"}))
        beneficiary = router.post(f"{API}/beneficiaries").mock(return_value=httpx.Response(201, json={
            "code": 201, "status": "Created", "message": "Beneficiary created successfully",
            "beneficiary": {"id": "ben_8xLp2", "name": "Awa Ndiaye", "phone": "237670123456", "country": "CM"}}))
        transfer = router.post(f"{API}/transfers").mock(return_value=httpx.Response(201, json={
            "code": 201, "status": "Accepted", "message": "Transfer initiated", "transfer": {
                "id": "trf_91Aa", "reference": "po_1", "amount": 9000, "currency": "XAF", "status": "pending",
                "beneficiary": "ben_8xLp2", "channel": "cm.mtn"}}))
        result = await registry.get_gateway("notchpay").create_payout(
            reference="po_1", amount_minor=9000, currency="XAF", destination=MTN, narration="Odim payout")
    assert (result.status, result.gateway_id) == ("pending", "trf_91Aa")
    for route in (lookup, beneficiary, transfer):
        assert route.calls.last.request.headers["Authorization"] == PUBLIC_KEY
        assert route.calls.last.request.headers["X-Grant"] == PRIVATE_KEY
    assert json.loads(beneficiary.calls.last.request.content) == {
        "channel": "cm.mtn", "name": "Awa Ndiaye", "account_number": "237670123456", "phone": "237670123456",
        "email": "operations@odim.local", "country": "CM"}
    assert json.loads(transfer.calls.last.request.content) == {
        "amount": 9000, "currency": "XAF", "channel": "cm.mtn", "beneficiary": "ben_8xLp2",
        "description": "Odim payout", "reference": "po_1"}


async def test_payout_already_sent_is_returned_without_a_second_transfer():
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{API}/transfers/po_1").mock(return_value=httpx.Response(200, json={
            "transfer": {"id": "trf_91Aa", "reference": "po_1", "status": "complete"}}))
        transfer = router.post(f"{API}/transfers").mock(return_value=httpx.Response(201, json={}))
        result = await registry.get_gateway("notchpay").create_payout(
            reference="po_1", amount_minor=9000, currency="XAF", destination=MTN, narration="Odim payout")
    assert (result.status, result.gateway_id) == ("paid", "trf_91Aa")
    assert transfer.call_count == 0


async def test_payout_to_a_bank_account_is_refused_without_http():
    bank = PayoutDestination(kind="bank_account", holder_name="Awa", country_code="CM", bank_code="SGCM",
                             account_number="0123456789")
    with respx.mock() as router:
        with pytest.raises(GatewayError) as caught:
            await registry.get_gateway("notchpay").create_payout(
                reference="po_1", amount_minor=9000, currency="XAF", destination=bank, narration="x")
        assert router.calls.call_count == 0
    assert (caught.value.retryable, caught.value.status_code) == (False, 400)


@pytest.mark.parametrize("notch_status,ours", [("complete", "paid"), ("failed", "failed"), ("pending", "pending")])
async def test_fetch_payout_maps_transfer_statuses(notch_status, ours):
    with respx.mock() as router:
        router.get(f"{API}/transfers/po_1").mock(return_value=httpx.Response(200, json={
            "transfer": {"id": "trf_1", "reference": "po_1", "status": notch_status}}))
        result = await registry.get_gateway("notchpay").fetch_payout("po_1")
    assert (result.status, result.gateway_id) == (ours, "trf_1")


# --- webhooks ---------------------------------------------------------------------------------------


PAYMENT_COMPLETE = {"id": "evt_5Qb1", "event": "payment.complete", "data": {
    "id": "pay_nx71", "reference": "trx.test_6Tzx3M4q", "merchant_reference": "pay_1", "amount": 15_000,
    "currency": "XAF", "status": "complete"}}


async def test_valid_webhook_is_accepted_and_normalised():
    raw, headers = _signed(PAYMENT_COMPLETE)
    event = registry.get_gateway("notchpay").verify_webhook(headers, raw)
    assert (event.event_id, event.type, event.reference, event.amount_minor, event.currency) == (
        "evt_5Qb1", "payment.succeeded", "pay_1", 15_000, "XAF")


async def test_webhook_with_tampered_body_is_rejected():
    raw, headers = _signed(PAYMENT_COMPLETE)
    with pytest.raises(InvalidSignature):
        registry.get_gateway("notchpay").verify_webhook(headers, raw.replace(b"15000", b"150000"))


async def test_webhook_is_verified_over_raw_bytes_not_reserialised_json():
    raw, headers = _signed(PAYMENT_COMPLETE)
    same_json = json.dumps(json.loads(raw), separators=(",", ":")).encode()
    with pytest.raises(InvalidSignature):
        registry.get_gateway("notchpay").verify_webhook(headers, same_json)


@pytest.mark.parametrize("payload,expected", [
    ({"id": "e1", "event": "payment.expired", "data": {"reference": "pay_1", "amount": 5000, "currency": "XAF"}},
     ("payment.failed", "pay_1")),
    ({"id": "e2", "event": "payment.failed", "data": {"merchant_reference": "pay_2", "reference": "trx.x"}},
     ("payment.failed", "pay_2")),
    ({"id": "e3", "type": "transfer.complete", "data": {"reference": "po_1", "amount": 9000, "currency": "XAF"}},
     ("payout.paid", "po_1")),
    ({"id": "e4", "event": "transfer.failed", "data": {"reference": "po_1"}}, ("payout.failed", "po_1")),
    ({"id": "e5", "event": "customer.created", "data": {"id": "cus_1"}}, ("ignored", "")),
])
async def test_webhook_event_types_map_to_ours(payload, expected):
    raw, headers = _signed(payload)
    event = registry.get_gateway("notchpay").verify_webhook(headers, raw)
    assert (event.type, event.reference) == expected

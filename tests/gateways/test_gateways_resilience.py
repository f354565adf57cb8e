"""Timeouts, retries (tenacity) and the per-gateway circuit breaker (purgatory), exercised through
real adapters at the HTTP boundary (respx)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import respx
from pydantic import SecretStr

from gateways import registry
from gateways.base import GatewayError, GatewayUnavailable
from settings import get_settings

PAYSTACK_VERIFY = "https://api.paystack.co/transaction/verify/pay_1"
VERIFIED = {"status": True, "message": "Verification successful",
            "data": {"id": 4099260516, "status": "success", "reference": "pay_1", "amount": 500000, "currency": "NGN"}}
RAZORPAY_LINKS = "https://api.razorpay.com/v1/payment_links"


@pytest.fixture(autouse=True)
def fast_gateways(monkeypatch):
    settings = get_settings()
    monkeypatch.setattr(settings, "gateway_backoff_initial_seconds", 0.001)
    monkeypatch.setattr(settings, "gateway_backoff_max_seconds", 0.005)
    monkeypatch.setattr(settings, "gateway_max_attempts", 3)
    monkeypatch.setattr(settings, "gateway_breaker_failures", 5)
    monkeypatch.setattr(settings, "gateway_breaker_reset_seconds", 30.0)
    monkeypatch.setattr(settings, "paystack_secret_key", SecretStr("sk_test_paystack"))
    monkeypatch.setattr(settings, "razorpay_key_id", "rzp_test_key")
    monkeypatch.setattr(settings, "razorpay_key_secret", SecretStr("rzp_test_secret"))
    registry.reset()
    yield
    registry.reset()


async def test_a_503_then_200_succeeds_after_one_retry():
    with respx.mock() as router:
        route = router.get(PAYSTACK_VERIFY).mock(side_effect=[
            httpx.Response(503, json={"status": False, "message": "Service unavailable"}),
            httpx.Response(200, json=VERIFIED),
        ])
        status = await registry.get_gateway("paystack").fetch_payment("pay_1")
    assert (status.status, status.amount_minor, status.currency) == ("succeeded", 500000, "NGN")
    assert route.call_count == 2


async def test_a_400_is_not_retried():
    with respx.mock() as router:
        route = router.get(PAYSTACK_VERIFY).mock(
            return_value=httpx.Response(400, json={"status": False, "message": "Invalid key"}))
        with pytest.raises(GatewayError) as caught:
            await registry.get_gateway("paystack").fetch_payment("pay_1")
    assert (caught.value.retryable, caught.value.status_code, caught.value.gateway) == (False, 400, "paystack")
    assert "Invalid key" in str(caught.value)
    assert route.call_count == 1


async def test_a_timeout_is_retried():
    with respx.mock() as router:
        route = router.get(PAYSTACK_VERIFY).mock(side_effect=[httpx.ReadTimeout("read timed out"),
                                                              httpx.Response(200, json=VERIFIED)])
        status = await registry.get_gateway("paystack").fetch_payment("pay_1")
    assert status.status == "succeeded"
    assert route.call_count == 2


async def test_a_429_is_retried_until_the_attempts_run_out():
    with respx.mock() as router:
        route = router.get(PAYSTACK_VERIFY).mock(return_value=httpx.Response(429, json={"message": "slow down"}))
        with pytest.raises(GatewayError) as caught:
            await registry.get_gateway("paystack").fetch_payment("pay_1")
    assert (caught.value.retryable, caught.value.status_code) == (True, 429)
    assert route.call_count == 3


async def test_breaker_opens_after_n_failures_and_fails_fast_without_http(monkeypatch):
    # given a breaker that opens after 2 failures and no retries
    monkeypatch.setattr(get_settings(), "gateway_max_attempts", 1)
    monkeypatch.setattr(get_settings(), "gateway_breaker_failures", 2)
    gateway = registry.get_gateway("paystack")
    with respx.mock() as router:
        route = router.get(PAYSTACK_VERIFY).mock(return_value=httpx.Response(502))
        for _ in range(2):
            with pytest.raises(GatewayError) as failed:
                await gateway.fetch_payment("pay_1")
            assert not isinstance(failed.value, GatewayUnavailable)
        # when the next call comes
        with pytest.raises(GatewayUnavailable) as caught:
            await gateway.fetch_payment("pay_1")
    # then it fails fast, retryable, and made no HTTP call
    assert route.call_count == 2
    assert (caught.value.gateway, caught.value.retryable) == ("paystack", True)
    assert 0 < caught.value.retry_after_seconds <= 30


async def test_open_breaker_stops_retries_in_flight(monkeypatch):
    # given 3 attempts per call but a breaker that opens after 2 failures
    monkeypatch.setattr(get_settings(), "gateway_breaker_failures", 2)
    with respx.mock() as router:
        route = router.get(PAYSTACK_VERIFY).mock(return_value=httpx.Response(500))
        with pytest.raises(GatewayUnavailable):
            await registry.get_gateway("paystack").fetch_payment("pay_1")
    # the third attempt met the open circuit instead of the network
    assert route.call_count == 2


async def test_after_the_reset_time_a_trial_call_goes_through_and_closes_the_breaker(monkeypatch):
    monkeypatch.setattr(get_settings(), "gateway_max_attempts", 1)
    monkeypatch.setattr(get_settings(), "gateway_breaker_failures", 1)
    monkeypatch.setattr(get_settings(), "gateway_breaker_reset_seconds", 0.05)
    gateway = registry.get_gateway("paystack")
    with respx.mock() as router:
        route = router.get(PAYSTACK_VERIFY).mock(side_effect=[
            httpx.Response(503), httpx.Response(200, json=VERIFIED), httpx.Response(200, json=VERIFIED)])
        with pytest.raises(GatewayError):
            await gateway.fetch_payment("pay_1")
        with pytest.raises(GatewayUnavailable):
            await gateway.fetch_payment("pay_1")
        # when the reset time has passed
        await asyncio.sleep(0.1)
        trial = await gateway.fetch_payment("pay_1")
        after = await gateway.fetch_payment("pay_1")
    # then the trial call reached the gateway, and the closed breaker lets the next one through too
    assert (trial.status, after.status) == ("succeeded", "succeeded")
    assert route.call_count == 3


async def test_a_failed_trial_call_opens_the_breaker_again(monkeypatch):
    monkeypatch.setattr(get_settings(), "gateway_max_attempts", 1)
    monkeypatch.setattr(get_settings(), "gateway_breaker_failures", 1)
    monkeypatch.setattr(get_settings(), "gateway_breaker_reset_seconds", 0.05)
    gateway = registry.get_gateway("paystack")
    with respx.mock() as router:
        route = router.get(PAYSTACK_VERIFY).mock(return_value=httpx.Response(503))
        with pytest.raises(GatewayError):
            await gateway.fetch_payment("pay_1")
        await asyncio.sleep(0.1)
        with pytest.raises(GatewayError) as trial:
            await gateway.fetch_payment("pay_1")
        with pytest.raises(GatewayUnavailable):
            await gateway.fetch_payment("pay_1")
    assert not isinstance(trial.value, GatewayUnavailable)
    assert route.call_count == 2


async def test_refusals_do_not_open_the_breaker(monkeypatch):
    monkeypatch.setattr(get_settings(), "gateway_breaker_failures", 2)
    gateway = registry.get_gateway("paystack")
    with respx.mock() as router:
        route = router.get(PAYSTACK_VERIFY).mock(return_value=httpx.Response(401, json={"message": "Invalid key"}))
        for _ in range(4):
            with pytest.raises(GatewayError) as caught:
                await gateway.fetch_payment("pay_1")
            assert not isinstance(caught.value, GatewayUnavailable)
    assert route.call_count == 4


async def test_each_gateway_has_its_own_breaker(monkeypatch):
    monkeypatch.setattr(get_settings(), "gateway_max_attempts", 1)
    monkeypatch.setattr(get_settings(), "gateway_breaker_failures", 1)
    with respx.mock() as router:
        router.get(PAYSTACK_VERIFY).mock(return_value=httpx.Response(503))
        razorpay_route = router.get(RAZORPAY_LINKS).mock(return_value=httpx.Response(200, json={
            "payment_links": [{"id": "plink_1", "reference_id": "pay_1", "status": "created", "amount": 1000,
                               "amount_paid": 0, "currency": "INR", "short_url": "https://rzp.io/i/x"}]}))
        with pytest.raises(GatewayError):
            await registry.get_gateway("paystack").fetch_payment("pay_1")
        with pytest.raises(GatewayUnavailable):
            await registry.get_gateway("paystack").fetch_payment("pay_1")
        status = await registry.get_gateway("razorpay").fetch_payment("pay_1")
    assert status.status == "pending"
    assert razorpay_route.call_count == 1


async def test_missing_credentials_are_a_refusal_without_http(monkeypatch):
    monkeypatch.setattr(get_settings(), "paystack_secret_key", None)
    with respx.mock() as router:
        with pytest.raises(GatewayError) as caught:
            await registry.get_gateway("paystack").fetch_payment("pay_1")
        assert router.calls.call_count == 0
    assert caught.value.retryable is False
    assert "ODIM_PAYSTACK_SECRET_KEY" in str(caught.value)

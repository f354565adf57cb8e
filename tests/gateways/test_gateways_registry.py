"""The gateway registry: adapters by name, gateways by currency (settings.gateway_routes)."""

from __future__ import annotations

import pytest

from gateways import registry
from gateways.notchpay import NotchPayGateway
from gateways.paystack import PaystackGateway
from gateways.razorpay import RazorpayGateway
from gateways.sandbox import SandboxGateway
from gateways.stripe import StripeGateway
from settings import get_settings


@pytest.mark.parametrize("name,cls", [
    ("sandbox", SandboxGateway), ("stripe", StripeGateway), ("paystack", PaystackGateway),
    ("notchpay", NotchPayGateway), ("razorpay", RazorpayGateway),
])
def test_get_gateway_builds_each_adapter_once_per_process(name, cls):
    gateway = registry.get_gateway(name)
    assert type(gateway) is cls
    assert gateway.name == name
    assert registry.get_gateway(name) is gateway


def test_unknown_gateway_name_raises_unknown_gateway():
    with pytest.raises(registry.UnknownGateway) as caught:
        registry.get_gateway("paypal")
    assert isinstance(caught.value, KeyError)


def test_gateway_for_currency_follows_the_routes_setting(monkeypatch):
    monkeypatch.setattr(get_settings(), "gateway_routes",
                        {"XAF": "notchpay", "NGN": "paystack", "INR": "razorpay", "USD": "stripe"})
    assert [registry.gateway_for_currency(c).name for c in ("XAF", "ngn", "INR", "USD")] == [
        "notchpay", "paystack", "razorpay", "stripe"]


def test_currency_without_a_route_raises_unknown_gateway(monkeypatch):
    monkeypatch.setattr(get_settings(), "gateway_routes", {"XAF": "sandbox"})
    with pytest.raises(registry.UnknownGateway):
        registry.gateway_for_currency("EUR")


def test_gateway_names_lists_every_adapter():
    assert registry.gateway_names() == ["notchpay", "paystack", "razorpay", "sandbox", "stripe"]


def test_register_adds_or_replaces_an_adapter():
    class Fake(SandboxGateway):
        name = "fake"

    registry.register("fake", Fake)
    assert type(registry.get_gateway("fake")) is Fake
    assert "fake" in registry.gateway_names()
    registry.register("sandbox", Fake)
    assert type(registry.get_gateway("sandbox")) is Fake

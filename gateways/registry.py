"""Which adapter answers to which gateway name, and which gateway takes which currency.

Adapters are listed by name in ``_ADAPTERS`` (``"module:Class"``, imported on first use so that an
unused SDK is never loaded) or added with ``register``; nothing here branches on a gateway's name.
Instances are cached per process: a gateway's circuit breaker and HTTP connections live as long as
the process. The currency routing is ``settings.gateway_routes`` (``{"XAF": "notchpay", ...}``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from gateways.base import PaymentGateway
from settings import get_settings

_ADAPTERS: dict[str, str] = {
    "sandbox": "gateways.sandbox:SandboxGateway",
    "stripe": "gateways.stripe:StripeGateway",
    "paystack": "gateways.paystack:PaystackGateway",
    "notchpay": "gateways.notchpay:NotchPayGateway",
    "razorpay": "gateways.razorpay:RazorpayGateway",
}
_factories: dict[str, Callable[[], PaymentGateway]] = {}
_instances: dict[str, PaymentGateway] = {}


class UnknownGateway(KeyError):
    """No adapter has this name, or no gateway is routed for this currency."""


def register(name: str, factory: Callable[[], PaymentGateway]) -> None:
    """Make ``factory()`` the adapter for ``name`` (replacing any earlier one and its cached instance)."""
    _factories[name] = factory
    _instances.pop(name, None)


def _factory(name: str) -> Callable[[], PaymentGateway]:
    if name in _factories:
        return _factories[name]
    target = _ADAPTERS.get(name)
    if target is None:
        raise UnknownGateway(name)
    module_name, _, attribute = target.partition(":")
    factory = getattr(importlib.import_module(module_name), attribute)
    _factories[name] = factory
    return factory


def get_gateway(name: str) -> PaymentGateway:
    """The process's adapter for gateway ``name`` (``sandbox``, ``stripe``, ``paystack``, ``notchpay``,
    ``razorpay`` or a registered one). Raises ``UnknownGateway``."""
    instance = _instances.get(name)
    if instance is None:
        instance = _factory(name)()
        _instances[name] = instance
    return instance


def gateway_for_currency(currency: str) -> PaymentGateway:
    """The adapter that takes payments in ``currency`` (ISO 4217) according to
    ``settings.gateway_routes``. Raises ``UnknownGateway`` for a currency with no route."""
    name = get_settings().gateway_routes.get(currency.upper())
    if name is None:
        raise UnknownGateway(f"no gateway is routed for currency {currency}")
    return get_gateway(name)


def gateway_names() -> list[str]:
    """Every gateway name the registry can build, sorted."""
    return sorted(set(_ADAPTERS) | set(_factories))


def reset() -> None:
    """Drop cached instances and registered overrides, and close every circuit (tests)."""
    from gateways.resilience import reset_breakers

    _instances.clear()
    _factories.clear()
    reset_breakers()

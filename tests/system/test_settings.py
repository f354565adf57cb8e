import pytest
from pydantic import ValidationError

from settings import Settings

# Production also needs its own encryption key and blind-index key (models/crypto.py).
KEYS = {"blind_index_key": "b" * 40, "encryption_keys": {"k1": "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="},
        "encryption_key_id": "k1"}


def test_production_refuses_the_development_secrets():
    with pytest.raises(ValidationError) as caught:
        Settings(environment="production")
    message = str(caught.value)
    assert "ODIM_JWT_SECRET, ODIM_GUEST_LINK_SECRET, ODIM_SANDBOX_WEBHOOK_SECRET" in message


def test_production_starts_with_strong_secrets():
    strong = "x" * 40
    settings = Settings(environment="production", jwt_secret=strong, guest_link_secret=strong,
                        sandbox_webhook_secret=strong, sandbox_in_production=True, **KEYS)
    assert settings.environment == "production"


def test_production_refuses_the_sandbox_gateway_unless_asked():
    strong = "x" * 40
    with pytest.raises(ValidationError) as caught:
        Settings(environment="production", jwt_secret=strong, guest_link_secret=strong, sandbox_webhook_secret=strong,
                 **KEYS)
    assert "ODIM_SANDBOX_IN_PRODUCTION=true" in str(caught.value)


def test_development_defaults_still_load():
    assert Settings(environment="development").jwt_secret.get_secret_value().startswith("dev-only")


def test_production_with_every_currency_routed_to_a_real_gateway_needs_no_sandbox_flag():
    strong = "x" * 40
    settings = Settings(
        environment="production", jwt_secret=strong, guest_link_secret=strong, sandbox_webhook_secret=strong,
        gateway_routes={"XAF": "notchpay", "NGN": "paystack", "INR": "razorpay", "USD": "stripe"}, **KEYS,
    )
    assert settings.gateway_routes["XAF"] == "notchpay"


def test_production_names_the_currencies_still_routed_to_the_sandbox():
    strong = "x" * 40
    with pytest.raises(ValidationError) as caught:
        Settings(environment="production", jwt_secret=strong, guest_link_secret=strong, sandbox_webhook_secret=strong,
                 gateway_routes={"XAF": "notchpay", "NGN": "sandbox"}, **KEYS)
    assert "ODIM_GATEWAY_ROUTES sends NGN to the sandbox" in str(caught.value)

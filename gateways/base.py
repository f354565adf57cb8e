"""The small interface the domain uses to talk to a payment gateway."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class InvalidSignature(Exception):
    """A webhook whose signature, timestamp or body does not verify (answer 401, store nothing)."""


@dataclass(frozen=True)
class CheckoutSession:
    url: str
    expires_at: datetime


@dataclass(frozen=True)
class GatewayEvent:
    """A verified webhook, normalised. ``type`` is ``payment.succeeded`` or ``payment.failed``;
    amounts are minor units."""

    event_id: str
    type: str
    payment_reference: str
    amount_minor: int
    currency: str
    payload: dict


class PaymentGateway(Protocol):
    name: str

    def create_checkout(
        self, *, reference: str, amount_minor: int, currency: str, description: str, customer_email: str
    ) -> CheckoutSession:
        """A hosted checkout page for payment ``reference``."""
        ...

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> GatewayEvent:
        """Verify over the raw bytes and parse. Raises ``InvalidSignature``."""
        ...

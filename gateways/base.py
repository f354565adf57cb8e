"""The one interface the domain uses to talk to a payment gateway, and the types it speaks.

Every adapter (``gateways.sandbox``, ``gateways.stripe``, ``gateways.paystack``, ``gateways.notchpay``,
``gateways.razorpay``) implements ``PaymentGateway``; ``gateways.registry`` picks one by name or by
currency (settings.gateway_routes), never by if-chains. Amounts are integers in minor units of an
ISO 4217 currency (XAF has no minor unit: 5000 means 5,000 FCFA).

Idempotency (docs/pitfalls.md): every create call carries our unique reference
(``pay_...``, ``re_...``, ``po_...``), sent as Stripe's ``Idempotency-Key`` or as the gateway's own
reference field; before retrying a create whose outcome is unknown, callers query the status by
that reference (``fetch_payment`` / ``fetch_refund`` / ``fetch_payout``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol


class InvalidSignature(Exception):
    """A webhook whose signature, timestamp or body does not verify (answer 401, store nothing)."""


class GatewayError(Exception):
    """A gateway call that failed. ``retryable`` is True for timeouts, connection errors, 429 and
    5xx answers and an open circuit (try again later); False for a refusal (4xx: bad request,
    insufficient balance, unknown reference), which retrying cannot fix."""

    def __init__(self, message: str, *, gateway: str, retryable: bool, status_code: int | None = None):
        super().__init__(message)
        self.gateway = gateway
        self.retryable = retryable
        self.status_code = status_code


class GatewayUnavailable(GatewayError):
    """The gateway's circuit is open (too many recent failures): fail fast, retry later."""

    def __init__(self, gateway: str, retry_after_seconds: float):
        super().__init__(
            f"{gateway} is not answering; try again in about {int(retry_after_seconds) + 1} s",
            gateway=gateway, retryable=True,
        )
        self.retry_after_seconds = retry_after_seconds


@dataclass(frozen=True)
class CheckoutSession:
    """Where to send the customer to pay. ``gateway_id`` is the gateway's own id for the payment
    (Stripe Checkout Session id, Paystack access code, Notch Pay transaction, Razorpay order id)."""

    url: str
    expires_at: datetime | None
    gateway_id: str | None = None


# Normalised event types, whatever the gateway calls them.
EventType = Literal[
    "payment.succeeded", "payment.failed",
    "refund.succeeded", "refund.failed",
    "payout.paid", "payout.failed",
    "ignored",
]


@dataclass(frozen=True)
class GatewayEvent:
    """A verified webhook, normalised.

    ``reference`` is OUR reference of the object the event is about (payment ``pay_...``, refund
    ``re_...`` or payout ``po_...``), read from wherever the gateway echoes it; ``amount_minor`` and
    ``currency`` are what the gateway says moved (None when the event does not carry them);
    ``type`` is ``ignored`` for events Odim does not act on (stored, acknowledged, not processed)."""

    event_id: str
    type: str
    reference: str
    amount_minor: int | None
    currency: str | None
    payload: dict


Status = Literal["pending", "succeeded", "failed"]


@dataclass(frozen=True)
class PaymentStatus:
    """A payment as the gateway sees it now (answer to ``fetch_payment``)."""

    reference: str
    status: Status
    amount_minor: int | None
    currency: str | None
    gateway_id: str | None = None
    raw: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RefundResult:
    """A refund as the gateway sees it (answer to ``refund`` and ``fetch_refund``)."""

    reference: str
    status: Status
    gateway_id: str | None = None
    raw: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PayoutDestination:
    """Where a provider is paid. ``kind`` is ``mobile_money`` (``phone`` in E.164 and ``operator``:
    mtn, orange, airtel, mpesa, ...) or ``bank_account`` (``bank_code``, ``account_number``,
    ``account_name``; ``bank_code`` is an IFSC for India, a NUBAN bank code for Nigeria)."""

    kind: Literal["mobile_money", "bank_account"]
    holder_name: str
    country_code: str
    phone: str | None = None
    operator: str | None = None
    bank_code: str | None = None
    account_number: str | None = None


@dataclass(frozen=True)
class PayoutResult:
    """A payout as the gateway sees it (answer to ``create_payout`` and ``fetch_payout``).
    ``status``: ``pending`` (accepted, not settled), ``paid`` or ``failed``."""

    reference: str
    status: Literal["pending", "paid", "failed"]
    gateway_id: str | None = None
    failure_reason: str | None = None
    raw: dict = field(default_factory=dict)


class PaymentGateway(Protocol):
    """What the domain needs from a gateway. Async methods make HTTP calls with timeouts, retries
    with exponential backoff and jitter, and a per-gateway circuit breaker; they raise
    ``GatewayError`` (``GatewayUnavailable`` when the circuit is open)."""

    name: str

    async def create_checkout(
        self, *, reference: str, amount_minor: int, currency: str, description: str,
        customer_email: str, customer_phone: str | None = None,
    ) -> CheckoutSession:
        """A hosted checkout page (or payment intent) for payment ``reference``; idempotent on it."""
        ...

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> GatewayEvent:
        """Verify the signature over the raw bytes (constant time) and parse. Raises ``InvalidSignature``."""
        ...

    async def fetch_payment(self, reference: str) -> PaymentStatus:
        """The payment's status at the gateway, looked up by our reference."""
        ...

    async def refund(
        self, *, payment_reference: str, refund_reference: str, amount_minor: int, currency: str,
        payment_gateway_id: str | None = None,
    ) -> RefundResult:
        """Refund ``amount_minor`` of a captured payment; idempotent on ``refund_reference``."""
        ...

    async def fetch_refund(self, refund_reference: str, *, payment_reference: str | None = None) -> RefundResult:
        """The refund's status at the gateway."""
        ...

    async def create_payout(
        self, *, reference: str, amount_minor: int, currency: str, destination: PayoutDestination, narration: str,
    ) -> PayoutResult:
        """Send money to a provider; idempotent on ``reference``."""
        ...

    async def fetch_payout(self, reference: str) -> PayoutResult:
        """The payout's status at the gateway, by our reference."""
        ...

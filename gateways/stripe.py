"""Stripe, through the official ``stripe`` SDK (async API over its httpx client), per Stripe's docs:

* Checkout: ``POST /v1/checkout/sessions`` (``mode=payment``, one ``price_data`` line item,
  ``client_reference_id`` and ``metadata[reference]`` = our payment reference, copied to the
  PaymentIntent with ``payment_intent_data[metadata][reference]``), ``Idempotency-Key`` = our reference.
  The parameters are a pure function of the call (no computed expiry: Stripe's default of 24 h), so a
  retried or replayed create gets Stripe's stored answer instead of an ``idempotency_error``.
* Status: PaymentIntent search ``metadata['reference']:'<ref>'`` (Stripe's Search API; data is
  searchable within about a minute). A Checkout Session has no PaymentIntent until the customer
  submits a payment, so a not-yet-attempted payment answers 404 (``GatewayError``, not retryable).
* Refunds: ``POST /v1/refunds`` on the PaymentIntent with ``metadata[reference]`` = our refund
  reference and ``Idempotency-Key`` = it; found again by listing the PaymentIntent's refunds.
* Payouts: only Connect transfers to a connected account (``acct_...`` in
  ``PayoutDestination.account_number``): ``POST /v1/transfers`` with ``transfer_group`` and
  ``metadata[reference]`` = our payout reference, ``Idempotency-Key`` = it. Anything else is refused.
* Webhooks: ``Stripe-Signature`` checked by ``stripe.Webhook.construct_event`` over the raw bytes
  (``settings.stripe_webhook_tolerance_seconds``, 300 s).
* Amounts: Stripe takes the smallest currency unit, and zero-decimal currencies (XAF, XOF, JPY, ...)
  as whole units — exactly our ``amount_minor``. Currency codes go lower-case to Stripe and come back
  upper-case.

The SDK's own retries are off (``max_network_retries=0``): ``gateways.resilience`` retries 429/5xx and
network errors and runs the circuit breaker.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import stripe as stripe_sdk

from gateways.base import (
    CheckoutSession,
    GatewayError,
    GatewayEvent,
    InvalidSignature,
    PaymentStatus,
    PayoutDestination,
    PayoutResult,
    RefundResult,
)
from gateways.resilience import Resilience, checkout_return_url, header, not_configured, unexpected
from settings import get_settings

NAME = "stripe"
SIGNATURE_HEADER = "Stripe-Signature"
T = TypeVar("T")

_REFUND_STATUS = {"succeeded": "succeeded", "failed": "failed", "canceled": "failed"}


def _to_dict(obj: Any) -> dict[str, Any]:
    if obj is None:
        return {}
    if isinstance(obj, dict):
        return obj
    return obj.to_dict()


def _map_error(exc: stripe_sdk.StripeError) -> GatewayError:
    status = exc.http_status
    retryable = isinstance(exc, stripe_sdk.APIConnectionError) or status is None or status == 429 or status >= 500
    message = getattr(exc, "user_message", None) or str(exc) or type(exc).__name__
    return GatewayError(f"stripe: {message}", gateway=NAME, retryable=retryable, status_code=status)


def _not_found(kind: str, reference: str) -> GatewayError:
    return GatewayError(f"stripe: no {kind} with reference {reference}", gateway=NAME, retryable=False, status_code=404)


class StripeGateway:
    """The Stripe adapter (``PaymentGateway``); see the module docstring for the calls it makes."""

    name = NAME

    def __init__(self) -> None:
        self.resilience = Resilience(NAME)
        self._client: stripe_sdk.StripeClient | None = None
        self._client_key: tuple[asyncio.AbstractEventLoop, str, str] | None = None

    # --- plumbing -------------------------------------------------------------------------------

    def _stripe(self) -> stripe_sdk.StripeClient:
        """One SDK client per event loop and key (its httpx pool belongs to the loop)."""
        settings = get_settings()
        if settings.stripe_secret_key is None:
            raise not_configured(NAME, "stripe_secret_key")
        key = (asyncio.get_running_loop(), settings.stripe_secret_key.get_secret_value(), settings.stripe_api_base)
        if self._client is None or self._client_key != key:
            self._client = stripe_sdk.StripeClient(
                key[1], base_addresses={"api": key[2]}, max_network_retries=0,
                http_client=stripe_sdk.HTTPXClient(timeout=settings.gateway_timeout_seconds),
            )
            self._client_key = key
        return self._client

    async def _call(self, op: Callable[[stripe_sdk.StripeClient], Awaitable[T]]) -> T:
        client = self._stripe()

        async def attempt() -> T:
            try:
                return await op(client)
            except stripe_sdk.StripeError as exc:
                raise _map_error(exc) from exc

        return await self.resilience.call(attempt)

    async def _payment_intent(self, reference: str) -> dict[str, Any]:
        """The PaymentIntent carrying ``metadata.reference == reference`` (a succeeded one first)."""
        result = await self._call(lambda c: c.v1.payment_intents.search_async(
            {"query": f"metadata['reference']:'{reference}'", "limit": 10}))
        intents = [_to_dict(pi) for pi in result.data]
        if not intents:
            raise _not_found("payment", reference)
        intents.sort(key=lambda pi: (pi.get("status") == "succeeded", pi.get("created") or 0), reverse=True)
        return intents[0]

    # --- PaymentGateway -------------------------------------------------------------------------

    async def create_checkout(
        self, *, reference: str, amount_minor: int, currency: str, description: str, customer_email: str,
        customer_phone: str | None = None,
    ) -> CheckoutSession:
        """A Stripe Checkout Session for ``amount_minor`` ``currency``; ``gateway_id`` is the session id
        (``cs_...``). Idempotent on ``reference`` (Idempotency-Key, 24 h at Stripe)."""
        return_url = checkout_return_url(reference)
        params: dict[str, Any] = {
            "mode": "payment",
            "client_reference_id": reference,
            "metadata": {"reference": reference},
            "payment_intent_data": {"metadata": {"reference": reference}, "description": description[:1000]},
            "line_items": [{
                "quantity": 1,
                "price_data": {"currency": currency.lower(), "unit_amount": amount_minor,
                               "product_data": {"name": description[:250] or reference}},
            }],
            "customer_email": customer_email,
            "success_url": return_url,
            "cancel_url": f"{return_url}?cancelled=1",
        }
        session = _to_dict(await self._call(
            lambda c: c.v1.checkout.sessions.create_async(params, {"idempotency_key": reference})))
        try:
            expires = session.get("expires_at")
            return CheckoutSession(
                url=session["url"], gateway_id=session["id"],
                expires_at=datetime.fromtimestamp(int(expires), UTC) if expires else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise unexpected(NAME, "checkout session", exc) from exc

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> GatewayEvent:
        """``Stripe-Signature`` verified by the SDK over the raw bytes (``t=...,v1=...``, HMAC-SHA256 of
        ``"{t}.{body}"`` with the endpoint secret, constant time, tolerance from settings), then mapped:
        checkout.session.completed (paid) / async_payment_succeeded / payment_intent.succeeded ->
        payment.succeeded; checkout.session.async_payment_failed / expired /
        payment_intent.payment_failed -> payment.failed; refund.created/updated by the refund's status,
        refund.failed, charge.refunded (its latest refund of ours) -> refund.*; transfer.created ->
        payout.paid; transfer.reversed -> payout.failed; anything else, or an object without our
        reference -> ``ignored``. Raises ``InvalidSignature``."""
        settings = get_settings()
        secret = settings.stripe_webhook_secret.get_secret_value() if settings.stripe_webhook_secret else None
        if not secret:
            raise InvalidSignature("stripe webhook secret is not configured (ODIM_STRIPE_WEBHOOK_SECRET)")
        try:
            stripe_sdk.Webhook.construct_event(
                raw_body, header(headers, SIGNATURE_HEADER), secret, settings.stripe_webhook_tolerance_seconds)
            event = json.loads(raw_body)
            obj = event["data"]["object"]
            event_type, reference, amount, currency = _map_event(str(event["type"]), obj)
            return GatewayEvent(
                event_id=str(event["id"]), type=event_type, reference=reference, amount_minor=amount,
                currency=currency.upper() if currency else None, payload=event,
            )
        except stripe_sdk.SignatureVerificationError as exc:
            raise InvalidSignature(str(exc).split(".")[0]) from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidSignature("signed body is not a Stripe event") from exc

    async def fetch_payment(self, reference: str) -> PaymentStatus:
        """From the PaymentIntent: ``succeeded``; ``canceled`` or a last payment error -> ``failed``;
        otherwise ``pending``. 404 while the customer has not submitted a payment."""
        pi = await self._payment_intent(reference)
        status = pi.get("status")
        if status == "succeeded":
            mapped = "succeeded"
        elif status == "canceled" or (status == "requires_payment_method" and pi.get("last_payment_error")):
            mapped = "failed"
        else:
            mapped = "pending"
        amount = pi.get("amount_received") if mapped == "succeeded" else pi.get("amount")
        currency = pi.get("currency")
        return PaymentStatus(
            reference=reference, status=mapped, amount_minor=amount, currency=currency.upper() if currency else None,
            gateway_id=pi.get("id"), raw=pi,
        )

    async def refund(
        self, *, payment_reference: str, refund_reference: str, amount_minor: int, currency: str,
        payment_gateway_id: str | None = None,
    ) -> RefundResult:
        """``POST /v1/refunds`` on the payment's PaymentIntent (``payment_gateway_id`` when it is a
        ``pi_...``, else found by our payment reference); Idempotency-Key = ``refund_reference``."""
        if payment_gateway_id and payment_gateway_id.startswith("pi_"):
            intent_id = payment_gateway_id
        else:
            intent_id = (await self._payment_intent(payment_reference))["id"]
        params = {
            "payment_intent": intent_id, "amount": amount_minor,
            "metadata": {"reference": refund_reference, "payment_reference": payment_reference},
        }
        refund = _to_dict(await self._call(
            lambda c: c.v1.refunds.create_async(params, {"idempotency_key": refund_reference})))
        return _refund_result(refund_reference, refund)

    async def fetch_refund(self, refund_reference: str, *, payment_reference: str | None = None) -> RefundResult:
        """The refund among the PaymentIntent's refunds whose ``metadata.reference`` is ours. Stripe
        cannot search refunds, so ``payment_reference`` is required (refused without it); 404 if none."""
        if payment_reference is None:
            raise GatewayError("stripe: fetch_refund needs the payment_reference", gateway=NAME, retryable=False)
        intent_id = (await self._payment_intent(payment_reference))["id"]
        result = await self._call(lambda c: c.v1.refunds.list_async({"payment_intent": intent_id, "limit": 100}))
        for item in result.data:
            refund = _to_dict(item)
            if (refund.get("metadata") or {}).get("reference") == refund_reference:
                return _refund_result(refund_reference, refund)
        raise _not_found("refund", refund_reference)

    async def create_payout(
        self, *, reference: str, amount_minor: int, currency: str, destination: PayoutDestination, narration: str,
    ) -> PayoutResult:
        """A Connect transfer to the connected account ``destination.account_number`` (``acct_...``);
        refused for any other destination (Stripe pays providers only through Connect). Transfers
        move money between Stripe balances at once: ``paid`` unless reversed."""
        account = destination.account_number or ""
        if not account.startswith("acct_"):
            raise GatewayError(
                "stripe: payouts go only to a Stripe Connect account (acct_...) through a transfer; "
                "register the provider's connected account as the payout destination",
                gateway=NAME, retryable=False, status_code=400,
            )
        params = {
            "amount": amount_minor, "currency": currency.lower(), "destination": account, "transfer_group": reference,
            "description": narration[:350], "metadata": {"reference": reference},
        }
        transfer = _to_dict(await self._call(
            lambda c: c.v1.transfers.create_async(params, {"idempotency_key": reference})))
        return _payout_result(reference, transfer)

    async def fetch_payout(self, reference: str) -> PayoutResult:
        """The transfer whose ``transfer_group`` is our payout reference; 404 if none."""
        result = await self._call(lambda c: c.v1.transfers.list_async({"transfer_group": reference, "limit": 10}))
        if not result.data:
            raise _not_found("payout", reference)
        return _payout_result(reference, _to_dict(result.data[0]))


def _refund_result(reference: str, refund: dict[str, Any]) -> RefundResult:
    return RefundResult(
        reference=reference, status=_REFUND_STATUS.get(refund.get("status") or "", "pending"),
        gateway_id=refund.get("id"), raw=refund,
    )


def _payout_result(reference: str, transfer: dict[str, Any]) -> PayoutResult:
    reversed_ = bool(transfer.get("reversed"))
    return PayoutResult(
        reference=reference, status="failed" if reversed_ else "paid", gateway_id=transfer.get("id"),
        failure_reason="transfer reversed" if reversed_ else None, raw=transfer,
    )


def _map_event(event_type: str, obj: dict[str, Any]) -> tuple[str, str, int | None, str | None]:
    """``(normalised type, our reference, amount_minor, currency)`` for a Stripe event's object."""
    metadata = obj.get("metadata") or {}
    reference = metadata.get("reference") or ""
    currency = obj.get("currency")
    mapped = "ignored"
    amount = obj.get("amount")
    if event_type.startswith("checkout.session."):
        reference = obj.get("client_reference_id") or reference
        amount = obj.get("amount_total")
        if event_type == "checkout.session.completed" and obj.get("payment_status") == "paid":
            mapped = "payment.succeeded"
        elif event_type == "checkout.session.async_payment_succeeded":
            mapped = "payment.succeeded"
        elif event_type in ("checkout.session.async_payment_failed", "checkout.session.expired"):
            mapped = "payment.failed"
    elif event_type == "payment_intent.succeeded":
        mapped, amount = "payment.succeeded", obj.get("amount_received")
    elif event_type == "payment_intent.payment_failed":
        mapped = "payment.failed"
    elif event_type in ("refund.created", "refund.updated", "charge.refund.updated"):
        mapped = {"succeeded": "refund.succeeded", "failed": "refund.failed", "canceled": "refund.failed"}.get(
            obj.get("status") or "", "ignored")
    elif event_type == "refund.failed":
        mapped = "refund.failed"
    elif event_type == "charge.refunded":
        ours = [r for r in (obj.get("refunds") or {}).get("data") or [] if (r.get("metadata") or {}).get("reference")]
        if ours:
            latest = max(ours, key=lambda r: r.get("created") or 0)
            reference, amount, currency = latest["metadata"]["reference"], latest.get("amount"), latest.get("currency")
            mapped = {"succeeded": "refund.succeeded", "failed": "refund.failed"}.get(latest.get("status"), "ignored")
    elif event_type == "transfer.created":
        mapped, reference = "payout.paid", reference or obj.get("transfer_group") or ""
    elif event_type == "transfer.reversed":
        mapped, reference = "payout.failed", reference or obj.get("transfer_group") or ""
    if not reference:
        mapped = "ignored"
    return mapped, reference, None if amount is None else int(amount), currency

"""Notch Pay (Cameroon: XAF, MTN and Orange mobile money) over httpx, per Notch Pay's developer docs
(https://developer.notchpay.co, API reference 2.1):

* Auth: ``Authorization: <public key>``; transfers add ``X-Grant: <private key>``.
* Checkout: ``POST /payments`` ``{amount, currency, email, phone, customer, description, reference,
  callback}`` -> ``authorization_url`` and ``transaction.reference`` (Notch Pay's own id, our
  ``gateway_id``). Payments expire after 3 hours. No idempotency header: our unique ``reference`` is
  the key, and ``GET /payments/{reference}`` is asked before any retry; a found payment that is
  complete sends the customer to our return URL, one with an ``authorization_url`` reuses it, any
  other is refused with 409 (store ``CheckoutSession.url``; a new attempt needs a new reference).
* Status: ``GET /payments/{reference}`` -> ``transaction.status``: ``complete`` (and the later
  ``refunded``/``partialy-refunded``) -> succeeded; ``failed``, ``canceled``, ``rejected``,
  ``abandoned``, ``expired`` -> failed; ``pending``, ``processing``, ``incomplete`` -> pending.
* Refunds: the API reference has no refund endpoint (a guide mentions ``POST /refunds`` taking no
  reference of ours, so it could not be made idempotent) and the webhook events have no refund
  events. ``refund``/``fetch_refund`` raise ``GatewayError(retryable=False)``: Notch Pay refunds are
  made by an operator from the Notch Pay dashboard (Payments > Refunds), then recorded in Odim.
* Payouts (mobile money only): ``POST /beneficiaries`` ``{channel: "cm.mtn"|"cm.orange", name,
  account_number, phone, email, country}`` then ``POST /transfers`` ``{amount, currency, channel,
  beneficiary, description, reference}``; ``GET /transfers/{reference}`` is asked first, so it is
  idempotent on our reference. ``complete`` -> paid; ``failed``, ``canceled``, ``rejected`` -> failed;
  else pending. ``email`` (required by the API) is ``settings.operator_email``.
* Webhooks: ``x-notch-signature`` = hex HMAC-SHA256 of the raw body with the endpoint's hash key
  (``settings.notchpay_hash_key``), constant time. ``payment.complete`` -> payment.succeeded;
  ``payment.failed``/``payment.expired``/``payment.canceled`` -> payment.failed; ``transfer.complete``
  -> payout.paid; ``transfer.failed`` -> payout.failed; anything else -> ignored. Our reference is
  ``data.merchant_reference`` when present, else ``data.reference``.
* Amounts: Notch Pay takes "the smallest currency unit"; XAF has no minor unit, so 5000 means
  5,000 FCFA — exactly our ``amount_minor``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

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
from gateways.resilience import (
    GatewayHttp,
    checkout_return_url,
    header,
    normalised_event,
    not_configured,
    unexpected,
    verify_hex_hmac,
)
from settings import get_settings

NAME = "notchpay"
SIGNATURE_HEADER = "x-notch-signature"
PAYMENT_LIFETIME = timedelta(hours=3)
REFUNDS_UNSUPPORTED = (
    "notchpay: refunds are not part of Notch Pay's API; make the refund from the Notch Pay dashboard "
    "(Payments > Refunds) and record it in Odim"
)

_PAYMENT_STATUS = {
    "complete": "succeeded", "refunded": "succeeded", "partialy-refunded": "succeeded",
    "partially-refunded": "succeeded", "failed": "failed", "canceled": "failed", "cancelled": "failed",
    "rejected": "failed", "abandoned": "failed", "expired": "failed",
}
_TRANSFER_STATUS = {"complete": "paid", "failed": "failed", "canceled": "failed", "cancelled": "failed",
                    "rejected": "failed"}
_EVENTS = {
    "payment.complete": "payment.succeeded",
    "payment.failed": "payment.failed",
    "payment.expired": "payment.failed",
    "payment.canceled": "payment.failed",
    "transfer.complete": "payout.paid",
    "transfer.failed": "payout.failed",
}


def _is_not_found(exc: GatewayError) -> bool:
    return exc.status_code == 404


def _not_found(kind: str, reference: str) -> GatewayError:
    return GatewayError(f"notchpay: no {kind} with reference {reference}", gateway=NAME, retryable=False,
                        status_code=404)


def _body(answer: dict[str, Any], name: str) -> dict[str, Any]:
    """Notch Pay wraps objects as ``{"transaction": {...}}`` / ``{"transfer": {...}}`` (older pages say
    ``data``)."""
    value = answer.get(name) or answer.get("data")
    return value if isinstance(value, dict) else {}


class NotchPayGateway:
    """The Notch Pay adapter (``PaymentGateway``); see the module docstring for the calls it makes."""

    name = NAME

    def __init__(self) -> None:
        self.http = GatewayHttp(NAME)

    def _headers(self, *, grant: bool = False) -> dict[str, str]:
        settings = get_settings()
        if settings.notchpay_public_key is None:
            raise not_configured(NAME, "notchpay_public_key")
        headers = {"Authorization": settings.notchpay_public_key.get_secret_value()}
        if grant:
            if settings.notchpay_private_key is None:
                raise not_configured(NAME, "notchpay_private_key")
            headers["X-Grant"] = settings.notchpay_private_key.get_secret_value()
        return headers

    def _url(self, path: str) -> str:
        return get_settings().notchpay_api_base.rstrip("/") + path

    async def _send(self, method: str, path: str, *, grant: bool = False, **kwargs: Any) -> dict[str, Any]:
        return await self.http.send(method, self._url(path), headers=self._headers(grant=grant), **kwargs)

    async def _find(self, path: str, name: str, *, grant: bool = False) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """``(object, whole answer)`` of one GET, or ``None`` when Notch Pay answers 404."""
        try:
            answer = await self._send("GET", path, grant=grant)
        except GatewayError as exc:
            if _is_not_found(exc):
                return None
            raise
        found = _body(answer, name)
        return (found, answer) if found else None

    # --- PaymentGateway -------------------------------------------------------------------------

    async def create_checkout(
        self, *, reference: str, amount_minor: int, currency: str, description: str, customer_email: str,
        customer_phone: str | None = None,
    ) -> CheckoutSession:
        """``POST /payments``; the hosted page (``authorization_url``) expires after 3 hours."""
        customer: dict[str, str] = {"email": customer_email}
        if customer_phone:
            customer["phone"] = customer_phone
        body: dict[str, Any] = {
            "amount": amount_minor, "currency": currency, "email": customer_email, "customer": customer,
            "description": description, "reference": reference, "callback": checkout_return_url(reference),
        }
        if customer_phone:
            body["phone"] = customer_phone

        async def create() -> CheckoutSession:
            answer = await self._send("POST", "/payments", json_body=body)
            url = answer.get("authorization_url")
            if not url:
                raise unexpected(NAME, "payment answer (no authorization_url)")
            transaction = _body(answer, "transaction")
            return CheckoutSession(url=str(url), expires_at=datetime.now(UTC) + PAYMENT_LIFETIME,
                                   gateway_id=transaction.get("reference"))

        async def probe() -> CheckoutSession | None:
            found = await self._find(f"/payments/{reference}", "transaction")
            if found is None:
                return None
            transaction, answer = found
            if _PAYMENT_STATUS.get(transaction.get("status") or "") == "succeeded":
                return CheckoutSession(url=checkout_return_url(reference), expires_at=None,
                                       gateway_id=transaction.get("reference"))
            url = answer.get("authorization_url") or transaction.get("authorization_url")
            if url and transaction.get("status") in ("pending", "processing", None):
                return CheckoutSession(url=str(url), expires_at=None, gateway_id=transaction.get("reference"))
            raise GatewayError(
                f"notchpay: payment {reference} already exists ({transaction.get('status')}) but its checkout link "
                "was not returned; start a new payment attempt", gateway=NAME, retryable=False, status_code=409,
            )

        return await self.http.resilience.call(create, probe=probe)

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> GatewayEvent:
        """Check ``x-notch-signature`` (hex HMAC-SHA256 of the raw body with the hash key, constant
        time) and map the event (module docstring). Raises ``InvalidSignature``."""
        verify_hex_hmac(get_settings().notchpay_hash_key, "notchpay_hash_key", header(headers, SIGNATURE_HEADER), raw_body, hashlib.sha256)
        try:
            event = json.loads(raw_body)
            name = str(event.get("event") or event["type"])
            data = event["data"]
            reference = str(data.get("merchant_reference") or data.get("reference") or "")
            mapped = _EVENTS.get(name, "ignored")
            amount = data.get("amount")
            currency = data.get("currency")
            return normalised_event(str(event["id"]), mapped, reference, amount, currency, event)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidSignature("signed body is not a Notch Pay event") from exc

    async def fetch_payment(self, reference: str) -> PaymentStatus:
        """``GET /payments/{reference}``; 404 if Notch Pay does not know it."""
        found = await self.http.resilience.call(lambda: self._find(f"/payments/{reference}", "transaction"))
        if found is None:
            raise _not_found("payment", reference)
        transaction = found[0]
        try:
            return PaymentStatus(
                reference=reference, status=_PAYMENT_STATUS.get(transaction.get("status") or "", "pending"),
                amount_minor=int(transaction["amount"]), currency=str(transaction["currency"]).upper(),
                gateway_id=transaction.get("reference"), raw=transaction,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise unexpected(NAME, "payment", exc) from exc

    async def refund(
        self, *, payment_reference: str, refund_reference: str, amount_minor: int, currency: str,
        payment_gateway_id: str | None = None,
    ) -> RefundResult:
        """Always refused: refunds are made from the Notch Pay dashboard (module docstring)."""
        raise GatewayError(REFUNDS_UNSUPPORTED, gateway=NAME, retryable=False, status_code=501)

    async def fetch_refund(self, refund_reference: str, *, payment_reference: str | None = None) -> RefundResult:
        """Always refused: refunds are made from the Notch Pay dashboard (module docstring)."""
        raise GatewayError(REFUNDS_UNSUPPORTED, gateway=NAME, retryable=False, status_code=501)

    async def create_payout(
        self, *, reference: str, amount_minor: int, currency: str, destination: PayoutDestination, narration: str,
    ) -> PayoutResult:
        """Beneficiary, then transfer with our reference, to a mobile money number (channel
        ``<country>.<operator>``, e.g. ``cm.mtn``); bank accounts are refused. Idempotent on
        ``reference`` (the transfer is looked up first)."""
        if destination.kind != "mobile_money" or not destination.phone or not destination.operator:
            raise GatewayError("notchpay: payouts go to a mobile money number with its operator (MTN, Orange)",
                               gateway=NAME, retryable=False, status_code=400)
        channel = f"{destination.country_code.lower()}.{destination.operator.lower()}"
        number = destination.phone.lstrip("+")
        beneficiary = {
            "channel": channel, "name": destination.holder_name, "account_number": number, "phone": number,
            "email": get_settings().operator_email.split("<")[-1].rstrip(">").strip(),
            "country": destination.country_code.upper(),
        }

        async def create() -> PayoutResult:
            created = _body(await self._send("POST", "/beneficiaries", grant=True, json_body=beneficiary),
                            "beneficiary")
            if not created.get("id"):
                raise unexpected(NAME, "beneficiary answer")
            body = {
                "amount": amount_minor, "currency": currency, "channel": channel, "beneficiary": created["id"],
                "description": narration, "reference": reference,
            }
            return _payout_result(reference, _body(await self._send("POST", "/transfers", grant=True, json_body=body),
                                                   "transfer"))

        async def probe() -> PayoutResult | None:
            found = await self._find(f"/transfers/{reference}", "transfer", grant=True)
            return None if found is None else _payout_result(reference, found[0])

        return await self.http.resilience.call(create, probe=probe, probe_first=True)

    async def fetch_payout(self, reference: str) -> PayoutResult:
        """``GET /transfers/{reference}``; 404 if Notch Pay does not know it."""
        found = await self.http.resilience.call(lambda: self._find(f"/transfers/{reference}", "transfer", grant=True))
        if found is None:
            raise _not_found("transfer", reference)
        return _payout_result(reference, found[0])


def _payout_result(reference: str, transfer: dict[str, Any]) -> PayoutResult:
    status = _TRANSFER_STATUS.get(transfer.get("status") or "", "pending")
    return PayoutResult(
        reference=reference, status=status, gateway_id=transfer.get("id"),
        failure_reason=f"transfer {transfer.get('status')}" if status == "failed" else None, raw=transfer,
    )

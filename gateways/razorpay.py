"""Razorpay (payments) and RazorpayX (payouts) over httpx, per Razorpay's API docs
(https://razorpay.com/docs/api/):

* Auth: HTTP Basic ``key_id:key_secret``.
* Checkout: a Standard Payment Link, ``POST /v1/payment_links`` ``{amount, currency, reference_id:
  <our reference>, description, customer, notify (off), callback_url, callback_method: "get",
  expire_by, notes.reference}`` -> ``short_url``, ``id`` (``plink_...``, our ``gateway_id``). Razorpay
  keeps ``reference_id`` unique, and before any retry ``GET /v1/payment_links?reference_id=`` finds
  the link already made (its ``short_url`` is returned again).
* Status: the same lookup; link ``paid`` -> succeeded (``amount_paid``), ``cancelled``/``expired`` ->
  failed, ``created``/``partially_paid`` -> pending. 404 when no link has our reference.
* Refunds: ``POST /v1/payments/{payment id}/refund`` ``{amount, speed: "normal", receipt: <our refund
  reference>, notes}``; the payment id is ``payment_gateway_id`` when it is Razorpay's, else the
  captured payment of our payment link. Razorpay refunds take no idempotency header:
  ``GET /v1/payments/{id}/refunds`` is searched for our ``receipt`` first, so a repeated call never
  refunds twice. ``processed`` -> succeeded, ``failed`` -> failed, else pending.
* Payouts (RazorpayX, from ``settings.razorpay_account_number``): the composite
  ``POST /v1/payouts`` with ``fund_account`` (bank account: IFSC + number) and ``contact``,
  ``reference_id`` = our reference and ``X-Payout-Idempotency`` = our reference (mandatory since
  March 2025). Mode IMPS up to 5,00,000 INR, NEFT above. Found again with
  ``GET /v1/payouts?account_number=&reference_id=``. ``processed`` -> paid; ``reversed``,
  ``failed``, ``rejected``, ``cancelled`` -> failed; else (``queued``, ``pending``, ``processing``) pending.
* Webhooks: ``X-Razorpay-Signature`` = hex HMAC-SHA256 of the raw body with the webhook secret
  (constant time); the event id is the ``x-razorpay-event-id`` header (deduplicate on it).
  ``payment_link.paid`` and ``payment.captured`` (when the payment's notes carry our reference) ->
  payment.succeeded; ``payment.failed``, ``payment_link.expired``/``cancelled`` -> payment.failed;
  ``refund.processed`` -> refund.succeeded; ``refund.failed`` -> refund.failed (``receipt``);
  ``payout.processed`` -> payout.paid; ``payout.failed``/``reversed``/``rejected`` -> payout.failed
  (``reference_id``); anything else -> ignored.
* Amounts: Razorpay takes the smallest unit (paise for INR) = our ``amount_minor``.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
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
    CHECKOUT_TTL_SECONDS,
    GatewayHttp,
    checkout_return_url,
    header,
    normalised_event,
    not_configured,
    unexpected,
    verify_hex_hmac,
)
from settings import get_settings

NAME = "razorpay"
SIGNATURE_HEADER = "X-Razorpay-Signature"
EVENT_ID_HEADER = "x-razorpay-event-id"
IMPS_LIMIT_MINOR = 5_00_000 * 100  # 5 lakh INR in paise

_LINK_STATUS = {"paid": "succeeded", "cancelled": "failed", "expired": "failed"}
_REFUND_STATUS = {"processed": "succeeded", "failed": "failed"}
_PAYOUT_STATUS = {"processed": "paid", "reversed": "failed", "failed": "failed", "rejected": "failed",
                  "cancelled": "failed"}
# event -> (normalised type, payload entity, field holding our reference)
_EVENTS: dict[str, tuple[str, str, str]] = {
    "payment_link.paid": ("payment.succeeded", "payment_link", "reference_id"),
    "payment_link.expired": ("payment.failed", "payment_link", "reference_id"),
    "payment_link.cancelled": ("payment.failed", "payment_link", "reference_id"),
    "payment.captured": ("payment.succeeded", "payment", "notes.reference"),
    "payment.failed": ("payment.failed", "payment", "notes.reference"),
    "refund.processed": ("refund.succeeded", "refund", "receipt"),
    "refund.failed": ("refund.failed", "refund", "receipt"),
    "payout.processed": ("payout.paid", "payout", "reference_id"),
    "payout.failed": ("payout.failed", "payout", "reference_id"),
    "payout.reversed": ("payout.failed", "payout", "reference_id"),
    "payout.rejected": ("payout.failed", "payout", "reference_id"),
}
_RAZORPAY_PAYMENT_ID = re.compile(r"^pay_[A-Za-z0-9]{14}$")


def _not_found(kind: str, reference: str) -> GatewayError:
    return GatewayError(f"razorpay: no {kind} with reference {reference}", gateway=NAME, retryable=False,
                        status_code=404)


def _narration(text: str) -> str:
    """RazorpayX narrations: at most 30 characters, letters, digits and spaces only."""
    return re.sub(r"[^A-Za-z0-9 ]", " ", text).strip()[:30] or "Odim payout"


class RazorpayGateway:
    """The Razorpay adapter (``PaymentGateway``); see the module docstring for the calls it makes."""

    name = NAME

    def __init__(self) -> None:
        self.http = GatewayHttp(NAME)

    def _auth(self) -> tuple[str, str]:
        settings = get_settings()
        if not settings.razorpay_key_id:
            raise not_configured(NAME, "razorpay_key_id")
        if settings.razorpay_key_secret is None:
            raise not_configured(NAME, "razorpay_key_secret")
        return settings.razorpay_key_id, settings.razorpay_key_secret.get_secret_value()

    def _url(self, path: str) -> str:
        return get_settings().razorpay_api_base.rstrip("/") + path

    async def _send(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return await self.http.send(method, self._url(path), auth=self._auth(), **kwargs)

    async def _link(self, reference: str) -> dict[str, Any] | None:
        answer = await self._send("GET", "/v1/payment_links", params={"reference_id": reference})
        links = [link for link in answer.get("payment_links") or [] if link.get("reference_id") == reference]
        return links[0] if links else None

    @staticmethod
    def _session(link: dict[str, Any]) -> CheckoutSession:
        try:
            expire_by = link.get("expire_by")
            return CheckoutSession(
                url=link["short_url"], gateway_id=link["id"],
                expires_at=datetime.fromtimestamp(int(expire_by), UTC) if expire_by else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise unexpected(NAME, "payment link", exc) from exc

    # --- PaymentGateway -------------------------------------------------------------------------

    async def create_checkout(
        self, *, reference: str, amount_minor: int, currency: str, description: str, customer_email: str,
        customer_phone: str | None = None,
    ) -> CheckoutSession:
        """A Standard Payment Link with ``reference_id`` = our reference (at most 40 characters),
        payable for ``CHECKOUT_TTL_SECONDS``."""
        customer = {"email": customer_email}
        if customer_phone:
            customer["contact"] = customer_phone
        body = {
            "amount": amount_minor, "currency": currency, "accept_partial": False, "reference_id": reference,
            "description": description[:2048], "customer": customer, "notify": {"sms": False, "email": False},
            "reminder_enable": False, "callback_url": checkout_return_url(reference), "callback_method": "get",
            "expire_by": int(time.time()) + CHECKOUT_TTL_SECONDS, "notes": {"reference": reference},
        }

        async def create() -> CheckoutSession:
            return self._session(await self._send("POST", "/v1/payment_links", json_body=body))

        async def probe() -> CheckoutSession | None:
            link = await self._link(reference)
            return None if link is None else self._session(link)

        return await self.http.resilience.call(create, probe=probe)

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> GatewayEvent:
        """Check ``X-Razorpay-Signature`` (hex HMAC-SHA256 of the raw body with the webhook secret,
        constant time) and map the event (module docstring); ``event_id`` is the
        ``x-razorpay-event-id`` header. Raises ``InvalidSignature``."""
        verify_hex_hmac(get_settings().razorpay_webhook_secret, "razorpay_webhook_secret", header(headers, SIGNATURE_HEADER), raw_body, hashlib.sha256)
        try:
            event = json.loads(raw_body)
            name = str(event["event"])
            event_id = header(headers, EVENT_ID_HEADER) or "sha256:" + hashlib.sha256(raw_body).hexdigest()
            mapped, entity_name, field = _EVENTS.get(name, ("ignored", "", ""))
            entity = (event.get("payload") or {}).get(entity_name, {}).get("entity") or {} if entity_name else {}
            value: Any = entity
            for part in field.split(".") if field else []:
                value = value.get(part) if isinstance(value, dict) else None
            reference = str(value or "") if field else ""
            amount = entity.get("amount_paid") if entity_name == "payment_link" else entity.get("amount")
            currency = entity.get("currency")
            return normalised_event(event_id, mapped, reference, amount, currency, event)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidSignature("signed body is not a Razorpay event") from exc

    async def fetch_payment(self, reference: str) -> PaymentStatus:
        """The payment link with our ``reference_id``; 404 if none."""
        link = await self.http.resilience.call(lambda: self._link(reference))
        if link is None:
            raise _not_found("payment link", reference)
        status = _LINK_STATUS.get(link.get("status") or "", "pending")
        try:
            amount = int(link["amount_paid"] if status == "succeeded" else link["amount"])
            return PaymentStatus(reference=reference, status=status, amount_minor=amount,
                                 currency=str(link["currency"]).upper(), gateway_id=link.get("id"), raw=link)
        except (KeyError, TypeError, ValueError) as exc:
            raise unexpected(NAME, "payment link", exc) from exc

    async def _payment_id(self, payment_reference: str, payment_gateway_id: str | None) -> str:
        if payment_gateway_id and _RAZORPAY_PAYMENT_ID.match(payment_gateway_id):
            return payment_gateway_id
        link = await self._link(payment_reference)
        if link is None:
            raise _not_found("payment link", payment_reference)
        captured = [p for p in link.get("payments") or [] if p.get("status") == "captured" and p.get("payment_id")]
        if not captured:
            raise GatewayError(f"razorpay: payment {payment_reference} has no captured payment to refund",
                               gateway=NAME, retryable=False, status_code=409)
        return str(captured[-1]["payment_id"])

    async def _find_refund(self, payment_id: str, refund_reference: str) -> RefundResult | None:
        answer = await self._send("GET", f"/v1/payments/{payment_id}/refunds", params={"count": 100})
        for refund in answer.get("items") or []:
            if refund.get("receipt") == refund_reference:
                return _refund_result(refund_reference, refund)
        return None

    async def refund(
        self, *, payment_reference: str, refund_reference: str, amount_minor: int, currency: str,
        payment_gateway_id: str | None = None,
    ) -> RefundResult:
        """A normal-speed refund with ``receipt`` = ``refund_reference``; idempotent on it (the
        payment's refunds are searched first)."""
        payment_id = await self.http.resilience.call(lambda: self._payment_id(payment_reference, payment_gateway_id))
        body = {
            "amount": amount_minor, "speed": "normal", "receipt": refund_reference,
            "notes": {"reference": refund_reference, "payment_reference": payment_reference},
        }

        async def create() -> RefundResult:
            return _refund_result(refund_reference,
                                  await self._send("POST", f"/v1/payments/{payment_id}/refund", json_body=body))

        return await self.http.resilience.call(
            create, probe=lambda: self._find_refund(payment_id, refund_reference), probe_first=True)

    async def fetch_refund(self, refund_reference: str, *, payment_reference: str | None = None) -> RefundResult:
        """The refund with our ``receipt`` among the payment's refunds; ``payment_reference`` is
        required (refused without); 404 if none."""
        if payment_reference is None:
            raise GatewayError("razorpay: fetch_refund needs the payment_reference", gateway=NAME, retryable=False)

        async def find() -> RefundResult | None:
            return await self._find_refund(await self._payment_id(payment_reference, None), refund_reference)

        found = await self.http.resilience.call(find)
        if found is None:
            raise _not_found("refund", refund_reference)
        return found

    def _account_number(self) -> str:
        account = get_settings().razorpay_account_number
        if not account:
            raise not_configured(NAME, "razorpay_account_number")
        return account

    async def create_payout(
        self, *, reference: str, amount_minor: int, currency: str, destination: PayoutDestination, narration: str,
    ) -> PayoutResult:
        """A RazorpayX composite payout to a bank account (IFSC in ``bank_code``); other destinations
        are refused. ``X-Payout-Idempotency`` = ``reference``, so a repeat returns the first payout."""
        if destination.kind != "bank_account" or not destination.bank_code or not destination.account_number:
            raise GatewayError("razorpay: payouts go to a bank account (IFSC and account number)", gateway=NAME,
                               retryable=False, status_code=400)
        body = {
            "account_number": self._account_number(), "amount": amount_minor, "currency": currency,
            "mode": "IMPS" if amount_minor <= IMPS_LIMIT_MINOR else "NEFT", "purpose": "payout",
            "fund_account": {
                "account_type": "bank_account",
                "bank_account": {"name": destination.holder_name, "ifsc": destination.bank_code,
                                 "account_number": destination.account_number},
                "contact": {"name": destination.holder_name, "type": "vendor"},
            },
            "queue_if_low_balance": True, "reference_id": reference, "narration": _narration(narration),
            "notes": {"reference": reference},
        }

        async def create() -> PayoutResult:
            return _payout_result(reference, await self._send(
                "POST", "/v1/payouts", json_body=body, headers={"X-Payout-Idempotency": reference}))

        return await self.http.resilience.call(create)

    async def fetch_payout(self, reference: str) -> PayoutResult:
        """``GET /v1/payouts?account_number=&reference_id=``; 404 if none."""
        params = {"account_number": self._account_number(), "reference_id": reference}
        answer = await self.http.request("GET", self._url("/v1/payouts"), params=params, auth=self._auth())
        items = [p for p in answer.get("items") or [] if p.get("reference_id") == reference]
        if not items:
            raise _not_found("payout", reference)
        return _payout_result(reference, items[0])


def _refund_result(reference: str, refund: dict[str, Any]) -> RefundResult:
    return RefundResult(reference=reference, status=_REFUND_STATUS.get(refund.get("status") or "", "pending"),
                        gateway_id=refund.get("id"), raw=refund)


def _payout_result(reference: str, payout: dict[str, Any]) -> PayoutResult:
    status = _PAYOUT_STATUS.get(payout.get("status") or "", "pending")
    details = payout.get("status_details") or {}
    reason = details.get("description") or payout.get("failure_reason") or f"payout {payout.get('status')}"
    return PayoutResult(reference=reference, status=status, gateway_id=payout.get("id"),
                        failure_reason=reason if status == "failed" else None, raw=payout)

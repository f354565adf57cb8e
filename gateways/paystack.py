"""Paystack over httpx, per Paystack's API docs (https://paystack.com/docs/api/):

* Auth: ``Authorization: Bearer <secret key>`` (``settings.paystack_secret_key``).
* Checkout: ``POST /transaction/initialize`` ``{email, amount, currency, reference, callback_url,
  metadata}`` -> ``data.authorization_url`` / ``data.access_code``. Paystack has no idempotency header:
  our unique ``reference`` is the key (Paystack refuses a duplicate), and before any retry we ask
  ``GET /transaction/verify/:reference``. If that finds the transaction, its checkout link cannot be
  recovered (verify does not return it): a paid one sends the customer to our return URL, an unpaid
  one is refused with 409 (store ``CheckoutSession.url`` and reuse it; a new attempt needs a new reference).
* Status: ``GET /transaction/verify/:reference``; ``success`` -> succeeded, ``failed``/``reversed`` ->
  failed, anything else (``abandoned`` is also the state before the customer pays, ``ongoing``,
  ``pending``, ``processing``, ``queued``) -> pending. Paystack answers an unknown reference with 400
  "Transaction reference not found": reported as 404.
* Refunds: ``POST /refund`` ``{transaction: <our payment reference>, amount, currency, merchant_note}``.
  Paystack refunds take no reference of ours, so ``merchant_note`` carries ``odim:<refund reference>``,
  and the refund is found again by listing ``GET /refund?transaction=<transaction id>``; that lookup
  runs before the first create too, so a repeated call never refunds twice.
  Status ``processed`` -> succeeded, ``failed`` -> failed, else pending.
* Payouts: ``POST /transferrecipient`` (``nuban`` for Nigerian banks, ``basa`` South Africa, ``ghipss``
  Ghana, ``mobile_money`` with the operator as ``bank_code``: MTN, ATL, VOD, MPESA...) then
  ``POST /transfer`` ``{source: "balance", amount, recipient, reference, reason, currency}``; our
  reference (lower-case letters, digits, ``_``: Paystack's rule) is the idempotency key and
  ``GET /transfer/verify/:reference`` is asked first. ``success`` -> paid; ``failed``, ``reversed``,
  ``abandoned``, ``blocked``, ``rejected`` -> failed; else (``pending``, ``received``, ``otp``: disable
  OTP for API transfers in the dashboard) pending.
* Webhooks: ``x-paystack-signature`` = hex HMAC-SHA512 of the raw body with the secret key (constant
  time). ``charge.success`` -> payment.succeeded; ``transfer.success`` -> payout.paid;
  ``transfer.failed``/``transfer.reversed`` -> payout.failed; ``refund.processed`` -> refund.succeeded;
  ``refund.failed`` -> refund.failed; anything else -> ignored. Paystack events carry no event id: ours
  is ``"<event>:<data.id>"`` (a redelivery has the same one). Refund events echo the transaction's
  reference, not ours: ``reference`` is our ``re_...`` when the ``merchant_note`` is echoed, else the
  payment's ``pay_...`` (match the refund by payment and amount, or let reconciliation settle it).
* Amounts: Paystack takes subunits (kobo, pesewas, cents) = our ``amount_minor``. It has no XAF.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
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

NAME = "paystack"
SIGNATURE_HEADER = "x-paystack-signature"
NOTE_PREFIX = "odim:"

_PAYMENT_STATUS = {"success": "succeeded", "failed": "failed", "reversed": "failed"}
_REFUND_STATUS = {"processed": "succeeded", "failed": "failed"}
_TRANSFER_STATUS = {
    "success": "paid", "failed": "failed", "reversed": "failed", "abandoned": "failed", "blocked": "failed",
    "rejected": "failed",
}
_EVENTS = {
    "charge.success": "payment.succeeded",
    "transfer.success": "payout.paid",
    "transfer.failed": "payout.failed",
    "transfer.reversed": "payout.failed",
    "refund.processed": "refund.succeeded",
    "refund.failed": "refund.failed",
}
_BANK_RECIPIENT_TYPE = {"NG": "nuban", "ZA": "basa", "GH": "ghipss"}
_MOBILE_OPERATORS = {"airteltigo": "ATL", "airtel": "ATL", "vodafone": "VOD", "telecel": "VOD", "m-pesa": "MPESA"}
_OUR_REFUND = re.compile(r"\bre_[A-Za-z0-9]+")


def _is_not_found(exc: GatewayError) -> bool:
    return exc.status_code == 404 or (exc.status_code == 400 and "not found" in str(exc).lower())


def _not_found(kind: str, reference: str) -> GatewayError:
    return GatewayError(f"paystack: no {kind} with reference {reference}", gateway=NAME, retryable=False,
                        status_code=404)


class PaystackGateway:
    """The Paystack adapter (``PaymentGateway``); see the module docstring for the calls it makes."""

    name = NAME

    def __init__(self) -> None:
        self.http = GatewayHttp(NAME)

    def _auth(self) -> dict[str, str]:
        key = get_settings().paystack_secret_key
        if key is None:
            raise not_configured(NAME, "paystack_secret_key")
        return {"Authorization": f"Bearer {key.get_secret_value()}"}

    def _url(self, path: str) -> str:
        return get_settings().paystack_api_base.rstrip("/") + path

    async def _send(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return await self.http.send(method, self._url(path), headers=self._auth(), **kwargs)

    async def _find(self, path: str) -> dict[str, Any] | None:
        """One GET of a Paystack object; ``None`` when Paystack says it does not exist."""
        try:
            return (await self._send("GET", path)).get("data") or None
        except GatewayError as exc:
            if _is_not_found(exc):
                return None
            raise

    async def _transaction(self, reference: str) -> dict[str, Any] | None:
        return await self._find(f"/transaction/verify/{reference}")

    # --- PaymentGateway -------------------------------------------------------------------------

    async def create_checkout(
        self, *, reference: str, amount_minor: int, currency: str, description: str, customer_email: str,
        customer_phone: str | None = None,
    ) -> CheckoutSession:
        """``POST /transaction/initialize``; ``gateway_id`` is Paystack's access code."""
        body = {
            "email": customer_email, "amount": amount_minor, "currency": currency, "reference": reference,
            "callback_url": checkout_return_url(reference),
            "metadata": {"reference": reference, "description": description},
        }

        async def create() -> CheckoutSession:
            data = (await self._send("POST", "/transaction/initialize", json_body=body)).get("data") or {}
            try:
                return CheckoutSession(url=data["authorization_url"], expires_at=None, gateway_id=data.get("access_code"))
            except KeyError as exc:
                raise unexpected(NAME, "initialize answer", exc) from exc

        async def probe() -> CheckoutSession | None:
            found = await self._transaction(reference)
            if found is None:
                return None
            if found.get("status") == "success":
                return CheckoutSession(url=checkout_return_url(reference), expires_at=None,
                                       gateway_id=str(found.get("id")))
            raise GatewayError(
                f"paystack: transaction {reference} already exists but its checkout link was not returned; "
                "start a new payment attempt", gateway=NAME, retryable=False, status_code=409,
            )

        return await self.http.resilience.call(create, probe=probe)

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> GatewayEvent:
        """Check ``x-paystack-signature`` (hex HMAC-SHA512 of the raw body with the secret key,
        constant time) and map the event (module docstring). Raises ``InvalidSignature``."""
        verify_hex_hmac(get_settings().paystack_secret_key, "paystack_secret_key", header(headers, SIGNATURE_HEADER), raw_body, hashlib.sha512)
        try:
            event = json.loads(raw_body)
            name = str(event["event"])
            data = event["data"]
            mapped = _EVENTS.get(name, "ignored")
            reference = str(data.get("reference") or "")
            if name.startswith("refund."):
                note = _OUR_REFUND.search(str(data.get("merchant_note") or ""))
                transaction = data.get("transaction")
                reference = note.group(0) if note else str(
                    data.get("transaction_reference")
                    or (transaction.get("reference") if isinstance(transaction, dict) else "") or "")
            object_id = data.get("id") or data.get("transfer_code") or reference
            event_id = f"{name}:{object_id}" if object_id else "sha256:" + hashlib.sha256(raw_body).hexdigest()
            amount = data.get("amount")
            currency = data.get("currency")
            return normalised_event(event_id, mapped, reference, amount, currency, event)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidSignature("signed body is not a Paystack event") from exc

    async def fetch_payment(self, reference: str) -> PaymentStatus:
        """``GET /transaction/verify/:reference``; 404 if Paystack does not know it."""
        data = await self.http.resilience.call(lambda: self._transaction(reference))
        if data is None:
            raise _not_found("transaction", reference)
        try:
            return PaymentStatus(
                reference=reference, status=_PAYMENT_STATUS.get(data.get("status"), "pending"),
                amount_minor=int(data["amount"]), currency=str(data["currency"]).upper(),
                gateway_id=str(data.get("id")), raw=data,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise unexpected(NAME, "transaction", exc) from exc

    async def _find_refund(self, payment_reference: str, refund_reference: str) -> RefundResult | None:
        transaction = await self._transaction(payment_reference)
        if transaction is None:
            raise _not_found("transaction", payment_reference)
        listing = await self._send("GET", "/refund", params={"transaction": transaction.get("id"), "perPage": 100})
        for refund in listing.get("data") or []:
            if f"{NOTE_PREFIX}{refund_reference}" in str(refund.get("merchant_note") or ""):
                return _refund_result(refund_reference, refund)
        return None

    async def refund(
        self, *, payment_reference: str, refund_reference: str, amount_minor: int, currency: str,
        payment_gateway_id: str | None = None,
    ) -> RefundResult:
        """``POST /refund`` (queued at Paystack: usually ``pending`` first). Looks for an earlier refund
        with our reference first, so it is idempotent on ``refund_reference``."""
        body = {
            "transaction": payment_reference, "amount": amount_minor, "currency": currency,
            "merchant_note": f"{NOTE_PREFIX}{refund_reference}",
        }

        async def create() -> RefundResult:
            return _refund_result(refund_reference, (await self._send("POST", "/refund", json_body=body)).get("data") or {})

        return await self.http.resilience.call(
            create, probe=lambda: self._find_refund(payment_reference, refund_reference), probe_first=True)

    async def fetch_refund(self, refund_reference: str, *, payment_reference: str | None = None) -> RefundResult:
        """The refund of ``payment_reference`` whose merchant note is ours. Paystack cannot look refunds
        up by a reference of ours, so ``payment_reference`` is required (refused without); 404 if none."""
        if payment_reference is None:
            raise GatewayError("paystack: fetch_refund needs the payment_reference", gateway=NAME, retryable=False)
        found = await self.http.resilience.call(lambda: self._find_refund(payment_reference, refund_reference))
        if found is None:
            raise _not_found("refund", refund_reference)
        return found

    def _recipient(self, destination: PayoutDestination, currency: str) -> dict[str, Any]:
        if destination.kind == "mobile_money":
            operator = (destination.operator or "").lower()
            return {
                "type": "mobile_money", "name": destination.holder_name, "currency": currency,
                "account_number": (destination.phone or "").lstrip("+"),
                "bank_code": _MOBILE_OPERATORS.get(operator, operator.upper()),
            }
        recipient_type = _BANK_RECIPIENT_TYPE.get(destination.country_code.upper())
        if recipient_type is None:
            raise GatewayError(f"paystack: no bank transfers to country {destination.country_code}", gateway=NAME,
                               retryable=False, status_code=400)
        return {
            "type": recipient_type, "name": destination.holder_name, "currency": currency,
            "account_number": destination.account_number, "bank_code": destination.bank_code,
        }

    async def create_payout(
        self, *, reference: str, amount_minor: int, currency: str, destination: PayoutDestination, narration: str,
    ) -> PayoutResult:
        """Transfer recipient, then transfer with our reference; idempotent on ``reference`` (the
        transfer is looked up first)."""
        recipient = self._recipient(destination, currency)

        async def create() -> PayoutResult:
            created = (await self._send("POST", "/transferrecipient", json_body=recipient)).get("data") or {}
            code = created.get("recipient_code")
            if not code:
                raise unexpected(NAME, "transfer recipient answer")
            body = {
                "source": "balance", "amount": amount_minor, "recipient": code, "reference": reference,
                "reason": narration[:100], "currency": currency,
            }
            return _payout_result(reference, (await self._send("POST", "/transfer", json_body=body)).get("data") or {})

        async def probe() -> PayoutResult | None:
            found = await self._find(f"/transfer/verify/{reference}")
            return None if found is None else _payout_result(reference, found)

        return await self.http.resilience.call(create, probe=probe, probe_first=True)

    async def fetch_payout(self, reference: str) -> PayoutResult:
        """``GET /transfer/verify/:reference``; 404 if Paystack does not know it."""
        found = await self.http.resilience.call(lambda: self._find(f"/transfer/verify/{reference}"))
        if found is None:
            raise _not_found("transfer", reference)
        return _payout_result(reference, found)


def _refund_result(reference: str, refund: dict[str, Any]) -> RefundResult:
    return RefundResult(
        reference=reference, status=_REFUND_STATUS.get(refund.get("status") or "", "pending"),
        gateway_id=None if refund.get("id") is None else str(refund["id"]), raw=refund,
    )


def _payout_result(reference: str, transfer: dict[str, Any]) -> PayoutResult:
    status = _TRANSFER_STATUS.get(transfer.get("status") or "", "pending")
    return PayoutResult(
        reference=reference, status=status, gateway_id=transfer.get("transfer_code"),
        failure_reason=f"transfer {transfer.get('status')}" if status == "failed" else None, raw=transfer,
    )

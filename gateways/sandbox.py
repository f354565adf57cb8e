"""The built-in sandbox payment gateway: a hosted checkout page with Pay and Decline buttons and
signed webhooks, shaped like Stripe's so that real adapters slot in the same way.

* Checkout URL: ``{public_base_url}/sandbox/checkout/{token}``; ``token`` carries the payment
  reference, amount (minor units), currency, description and expiry, HMAC-SHA256-signed.
* The page POSTs ``outcome=paid|declined`` to the same URL; the sandbox then sends the webhook.
* Webhook: ``POST /webhooks/sandbox`` with JSON body
  ``{"id": "evt_...", "type": "payment.succeeded"|"payment.failed", "created": <unix s>,
  "data": {"reference", "amount_minor", "currency"}}`` and header
  ``Odim-Sandbox-Signature: t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`` — the
  Stripe scheme (FIELD-NOTES.md): verified over the raw bytes, constant-time, 300 s tolerance.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from gateways.base import CheckoutSession, GatewayEvent, InvalidSignature
from settings import get_settings

SIGNATURE_HEADER = "Odim-Sandbox-Signature"
EVENT_TYPES = {"paid": "payment.succeeded", "declined": "payment.failed"}


class InvalidCheckout(Exception):
    """A checkout token that was tampered with or has expired."""


@dataclass(frozen=True)
class CheckoutDetails:
    reference: str
    amount_minor: int
    currency: str
    description: str
    customer_email: str
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def _secret() -> bytes:
    return get_settings().sandbox_webhook_secret.get_secret_value().encode()


def sign_payload(raw_body: bytes, timestamp: int, secret: bytes | None = None) -> str:
    """The signature header value for ``raw_body`` sent at ``timestamp`` (unix seconds)."""
    mac = hmac.new(secret or _secret(), f"{timestamp}.".encode() + raw_body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


class SandboxGateway:
    name = "sandbox"

    def create_checkout(
        self, *, reference: str, amount_minor: int, currency: str, description: str, customer_email: str
    ) -> CheckoutSession:
        settings = get_settings()
        exp = int(time.time()) + settings.sandbox_checkout_ttl_seconds
        body = json.dumps(
            {"r": reference, "a": amount_minor, "c": currency, "d": description, "e": customer_email, "x": exp},
            separators=(",", ":"),
        ).encode()
        sig = hmac.new(_secret(), b"checkout." + body, hashlib.sha256).digest()
        token = f"{_b64(body)}.{_b64(sig)}"
        url = f"{settings.public_base_url.rstrip('/')}/sandbox/checkout/{token}"
        return CheckoutSession(url=url, expires_at=datetime.fromtimestamp(exp, UTC))

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> GatewayEvent:
        header = headers.get(SIGNATURE_HEADER) or headers.get(SIGNATURE_HEADER.lower())
        if not header:
            raise InvalidSignature("missing signature header")
        parts: dict[str, list[str]] = {}
        for item in header.split(","):
            key, _, value = item.strip().partition("=")
            parts.setdefault(key, []).append(value)
        try:
            timestamp = int(parts["t"][0])
        except (KeyError, ValueError) as exc:
            raise InvalidSignature("malformed signature header") from exc
        tolerance = get_settings().sandbox_webhook_tolerance_seconds
        if abs(time.time() - timestamp) > tolerance:
            raise InvalidSignature("timestamp outside the tolerance window")
        expected = sign_payload(raw_body, timestamp).split("v1=", 1)[1]
        if not any(hmac.compare_digest(expected, candidate) for candidate in parts.get("v1", [])):
            raise InvalidSignature("signature mismatch")
        try:
            event = json.loads(raw_body)
            data = event["data"]
            return GatewayEvent(
                event_id=str(event["id"]), type=str(event["type"]), payment_reference=str(data["reference"]),
                amount_minor=int(data["amount_minor"]), currency=str(data["currency"]), payload=event,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidSignature("signed body is not a sandbox event") from exc


# --- the sandbox's own side: the hosted page and the webhook sender ------------------------------


def parse_checkout(token: str) -> CheckoutDetails:
    """Raises ``InvalidCheckout`` when the token was not issued by us or has expired."""
    try:
        body_b64, sig_b64 = token.split(".", 1)
        body = _unb64(body_b64)
        sig = _unb64(sig_b64)
    except ValueError as exc:
        raise InvalidCheckout("malformed checkout link") from exc
    expected = hmac.new(_secret(), b"checkout." + body, hashlib.sha256).digest()
    if not hmac.compare_digest(sig, expected):
        raise InvalidCheckout("this checkout link is not valid")
    data = json.loads(body)
    if data["x"] < time.time():
        raise InvalidCheckout("this checkout link has expired")
    return CheckoutDetails(data["r"], data["a"], data["c"], data["d"], data["e"], data["x"])


def build_event(details: CheckoutDetails, outcome: str) -> tuple[bytes, dict[str, str]]:
    """The webhook the sandbox sends for ``outcome`` (``paid`` or ``declined``): ``(raw_body, headers)``."""
    now = int(time.time())
    raw = json.dumps(
        {
            "id": f"evt_{secrets.token_hex(12)}",
            "type": EVENT_TYPES[outcome],
            "created": now,
            "data": {"reference": details.reference, "amount_minor": details.amount_minor, "currency": details.currency},
        },
        separators=(",", ":"),
    ).encode()
    return raw, {"Content-Type": "application/json", SIGNATURE_HEADER: sign_payload(raw, now)}


async def deliver_event(raw_body: bytes, headers: dict[str, str], *, attempts: int = 3) -> int:
    """POST the webhook to ``{public_base_url}/webhooks/sandbox`` like a gateway would, retrying
    non-2xx answers; returns the last HTTP status (0 when unreachable)."""
    url = f"{get_settings().public_base_url.rstrip('/')}/webhooks/sandbox"
    status = 0
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(attempts):
            try:
                response = await client.post(url, content=raw_body, headers=headers)
                status = response.status_code
                if 200 <= status < 300:
                    return status
            except httpx.HTTPError:
                status = 0
    return status


def render_checkout_page(details: CheckoutDetails, amount_text: str, message: str | None = None) -> str:
    """The hosted page: what is being paid, and Pay / Decline buttons POSTing ``outcome``."""
    e = html.escape
    note = f'<p class="msg">{e(message)}</p>' if message else ""
    buttons = "" if message else (
        '<form method="post"><button name="outcome" value="paid" class="pay">Pay '
        f'{e(amount_text)}</button> <button name="outcome" value="declined" class="decline">Decline</button></form>'
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Odim sandbox checkout</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}}
.card{{border:1px solid #ddd;border-radius:8px;padding:1.5rem}} button{{font-size:1rem;padding:.6rem 1.2rem;margin-right:.5rem}}
.pay{{background:#0a7d32;color:#fff;border:0;border-radius:4px}} .decline{{background:#fff;border:1px solid #b00;color:#b00;border-radius:4px}}
.badge{{background:#fe3;padding:.1rem .4rem;border-radius:3px;font-size:.8rem}}</style></head>
<body><div class="card"><p><span class="badge">SANDBOX</span> No real money moves.</p>
<h1>{e(amount_text)}</h1><p>{e(details.description)}</p><p>Payment reference: <code>{e(details.reference)}</code></p>
{note}{buttons}</div></body></html>"""

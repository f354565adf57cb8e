"""The built-in sandbox payment gateway: a hosted checkout page with Pay and Decline buttons, signed
webhooks shaped like Stripe's, refunds and payouts — so that real adapters slot in the same way.

The sandbox plays an outside system, so it keeps its own records in Redis (``settings.redis_url``,
keys ``odim:sandbox:{payment|refund|payout}:<our reference>``, 30-day TTL), never in our database. It
makes no network call except ``deliver_event`` (the webhook POST).

* Checkout URL: ``{public_base_url}/sandbox/checkout/{token}``; ``token`` carries the payment
  reference, amount (minor units), currency, description and expiry, HMAC-SHA256-signed.
* The page POSTs ``outcome=paid|declined`` to the same URL; the page handler records the outcome
  (``record_checkout_outcome``: the payment stays ``pending`` until then) and sends the webhook.
* Webhook: ``POST /webhooks/sandbox`` with JSON body
  ``{"id": "evt_...", "type": <normalised type>, "created": <unix s>,
  "data": {"reference", "amount_minor", "currency"}}`` and header
  ``Odim-Sandbox-Signature: t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`` — the
  Stripe scheme (docs/pitfalls.md): verified over the raw bytes, constant-time, 300 s tolerance.
  ``build_event`` builds any normalised event (payment, refund or payout) for a reference.
* Refunds succeed at once, are idempotent per refund reference and never exceed what was paid minus
  what was refunded (``GatewayError(retryable=False)``).
* Payouts are idempotent per reference. Magic destinations, like Stripe's test numbers (the phone or
  account number): ending ``0000`` -> ``failed`` ("destination rejected"); ending ``1111`` ->
  ``pending``, and the next ``fetch_payout`` says ``paid``; anything else is ``paid`` at once.
* ``fetch_*`` of a reference the sandbox never saw: ``GatewayError(retryable=False, status_code=404)``.
"""

from __future__ import annotations

import asyncio
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
import redis.asyncio as aioredis

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
from settings import get_settings

NAME = "sandbox"
SIGNATURE_HEADER = "Odim-Sandbox-Signature"
# The hosted page's two buttons, and the webhook each one sends.
EVENT_TYPES = {"paid": "payment.succeeded", "declined": "payment.failed"}
NORMALISED_TYPES = frozenset({
    "payment.succeeded", "payment.failed", "refund.succeeded", "refund.failed", "payout.paid", "payout.failed",
})
RECORD_TTL_SECONDS = 30 * 24 * 3600
KEY_PREFIX = "odim:sandbox"


class InvalidCheckout(Exception):
    """A checkout token that was tampered with or has expired."""


@dataclass(frozen=True)
class CheckoutDetails:
    """What a checkout token says: our payment reference, amount in minor units, currency, the
    description shown on the page, the customer's email and the expiry (unix seconds)."""

    reference: str
    amount_minor: int
    currency: str
    description: str
    customer_email: str
    expires_at: int


@dataclass(frozen=True)
class EventSubject:
    """What a sandbox webhook is about: our reference (``pay_``/``re_``/``po_``), amount and currency."""

    reference: str
    amount_minor: int | None
    currency: str | None


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


# --- the sandbox's own records (Redis) ------------------------------------------------------------

_redis_clients: dict[tuple[int, str], tuple[asyncio.AbstractEventLoop, aioredis.Redis]] = {}


def _redis() -> aioredis.Redis:
    """One client per event loop and URL (redis.asyncio connections belong to the loop that opened
    them; the URL is part of the key so a changed ``sandbox_redis_url`` takes effect at once)."""
    loop = asyncio.get_running_loop()
    settings = get_settings()  # the sandbox stands for a remote gateway: its records may live apart
    url = settings.sandbox_redis_url or settings.redis_url
    entry = _redis_clients.get((id(loop), url))
    if entry is None or entry[0] is not loop:
        entry = (loop, aioredis.from_url(url, decode_responses=True))
        _redis_clients[(id(loop), url)] = entry
    return entry[1]


def _key(kind: str, reference: str) -> str:
    return f"{KEY_PREFIX}:{kind}:{reference}"


# Create the hash KEYS[1] from ARGV[2..] unless it exists; ARGV[1] is the TTL. Returns 1 if created.
_CREATE_IF_ABSENT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""

# Refund KEYS[2] against payment KEYS[1], atomically. ARGV: amount, currency, payment reference, TTL,
# gateway id. Returns {code, detail}.
_REFUND = """
if redis.call('EXISTS', KEYS[2]) == 1 then return {'exists', ''} end
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown_payment', ''} end
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'succeeded' then return {'not_paid', status} end
local currency = redis.call('HGET', KEYS[1], 'currency')
if currency ~= ARGV[2] then return {'currency', currency} end
local paid = tonumber(redis.call('HGET', KEYS[1], 'amount_minor'))
local refunded = tonumber(redis.call('HGET', KEYS[1], 'refunded_minor') or '0')
local amount = tonumber(ARGV[1])
if amount > paid - refunded then return {'over', tostring(paid - refunded)} end
redis.call('HINCRBY', KEYS[1], 'refunded_minor', amount)
redis.call('HSET', KEYS[2], 'payment_reference', ARGV[3], 'amount_minor', ARGV[1], 'currency', ARGV[2],
           'status', 'succeeded', 'gateway_id', ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return {'ok', ''}
"""

# Settle a pending payment KEYS[1] with ARGV[1] (succeeded|failed); returns the status it ends in.
_SETTLE = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'pending' then redis.call('HSET', KEYS[1], 'status', ARGV[1]); return ARGV[1] end
return status
"""

# A payout KEYS[1] that was pending is paid now; returns the status the caller should report.
_POLL_PAYOUT = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'pending' then redis.call('HSET', KEYS[1], 'status', 'paid'); return 'paid' end
return status
"""


def _refusal(message: str, status_code: int) -> GatewayError:
    return GatewayError(message, gateway=NAME, retryable=False, status_code=status_code)


def _not_found(kind: str, reference: str) -> GatewayError:
    return _refusal(f"sandbox: no {kind} with reference {reference}", 404)


async def _create_if_absent(key: str, fields: dict[str, str | int]) -> bool:
    flat: list[str | int] = []
    for name, value in fields.items():
        flat += [name, value]
    return bool(await _redis().eval(_CREATE_IF_ABSENT, 1, key, RECORD_TTL_SECONDS, *flat))


async def record_checkout_outcome(details: CheckoutDetails, outcome: str) -> str:
    """The hosted page's Pay (``outcome="paid"``) or Decline (``"declined"``) button: settle the
    payment in the sandbox's records before its webhook goes out. The record is (re)created from the
    signed checkout token when missing. A settled payment stays settled (paying a declined payment
    or declining a paid one changes nothing). Returns the payment's status afterwards:
    ``succeeded`` or ``failed``. Raises ``ValueError`` for another outcome."""
    if outcome not in EVENT_TYPES:
        raise ValueError(f"outcome must be one of {sorted(EVENT_TYPES)}")
    key = _key("payment", details.reference)
    await _create_if_absent(key, {
        "status": "pending", "amount_minor": details.amount_minor, "currency": details.currency,
        "refunded_minor": 0, "gateway_id": f"sbx_{details.reference}",
    })
    return await _redis().eval(_SETTLE, 1, key, "succeeded" if outcome == "paid" else "failed")


def _digits(destination: PayoutDestination) -> str:
    number = destination.phone if destination.kind == "mobile_money" else destination.account_number
    return "".join(ch for ch in (number or "") if ch.isdigit())


class SandboxGateway:
    """The sandbox adapter (``PaymentGateway``). Amounts are minor units as given; the sandbox takes
    any ISO currency."""

    name = NAME

    async def create_checkout(
        self, *, reference: str, amount_minor: int, currency: str, description: str, customer_email: str,
        customer_phone: str | None = None,
    ) -> CheckoutSession:
        """A signed hosted-page URL for payment ``reference``; the payment is ``pending`` in the
        sandbox until the page's Pay or Decline is pressed. Idempotent on ``reference``: a second call
        keeps the first record (a new token and expiry each time)."""
        if amount_minor <= 0:
            raise _refusal("sandbox: amount_minor must be positive", 400)
        settings = get_settings()
        exp = int(time.time()) + settings.sandbox_checkout_ttl_seconds
        body = json.dumps(
            {"r": reference, "a": amount_minor, "c": currency, "d": description, "e": customer_email, "x": exp},
            separators=(",", ":"),
        ).encode()
        sig = hmac.new(_secret(), b"checkout." + body, hashlib.sha256).digest()
        token = f"{_b64(body)}.{_b64(sig)}"
        await _create_if_absent(_key("payment", reference), {
            "status": "pending", "amount_minor": amount_minor, "currency": currency, "refunded_minor": 0,
            "gateway_id": f"sbx_{reference}",
        })
        url = f"{settings.public_base_url.rstrip('/')}/sandbox/checkout/{token}"
        return CheckoutSession(url=url, expires_at=datetime.fromtimestamp(exp, UTC), gateway_id=f"sbx_{reference}")

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> GatewayEvent:
        """Check ``Odim-Sandbox-Signature`` over the raw bytes (constant time, 300 s tolerance) and
        parse. A type outside the normalised set becomes ``ignored``. Raises ``InvalidSignature``."""
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
            event_type = str(event["type"])
            amount = data.get("amount_minor")
            currency = data.get("currency")
            return GatewayEvent(
                event_id=str(event["id"]), type=event_type if event_type in NORMALISED_TYPES else "ignored",
                reference=str(data["reference"]), amount_minor=None if amount is None else int(amount),
                currency=None if currency is None else str(currency), payload=event,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidSignature("signed body is not a sandbox event") from exc

    async def fetch_payment(self, reference: str) -> PaymentStatus:
        """``pending`` until the hosted page is used, then ``succeeded`` or ``failed``. 404 if unknown."""
        record = await _redis().hgetall(_key("payment", reference))
        if not record:
            raise _not_found("payment", reference)
        return PaymentStatus(
            reference=reference, status=record["status"], amount_minor=int(record["amount_minor"]),
            currency=record["currency"], gateway_id=record.get("gateway_id"), raw=record,
        )

    async def refund(
        self, *, payment_reference: str, refund_reference: str, amount_minor: int, currency: str,
        payment_gateway_id: str | None = None,
    ) -> RefundResult:
        """Refund at once, atomically against the paid-minus-refunded balance. Idempotent on
        ``refund_reference``: the same call returns the first result; the same reference with another
        payment, amount or currency is refused (like Stripe's ``idempotency_error``). Refusals
        (``GatewayError(retryable=False)``): unknown payment (404), payment not paid (409), currency
        mismatch, non-positive amount or more than refundable (400)."""
        if amount_minor <= 0:
            raise _refusal("sandbox: refund amount must be positive", 400)
        refund_key = _key("refund", refund_reference)
        code, detail = await _redis().eval(
            _REFUND, 2, _key("payment", payment_reference), refund_key, amount_minor, currency, payment_reference,
            RECORD_TTL_SECONDS, f"sbx_{refund_reference}",
        )
        if code == "exists":
            record = await _redis().hgetall(refund_key)
            same = (record.get("payment_reference"), record.get("amount_minor"), record.get("currency")) == (
                payment_reference, str(amount_minor), currency)
            if not same:
                raise _refusal(f"sandbox: refund {refund_reference} was already made with other parameters", 400)
            return RefundResult(reference=refund_reference, status=record["status"], gateway_id=record.get("gateway_id"),
                                raw=record)
        if code == "unknown_payment":
            raise _not_found("payment", payment_reference)
        if code == "not_paid":
            raise _refusal(f"sandbox: payment {payment_reference} is {detail}, not paid", 409)
        if code == "currency":
            raise _refusal(f"sandbox: payment {payment_reference} is in {detail}, not {currency}", 400)
        if code == "over":
            raise _refusal(f"sandbox: refund of {amount_minor} exceeds the refundable {detail}", 400)
        return RefundResult(reference=refund_reference, status="succeeded", gateway_id=f"sbx_{refund_reference}",
                            raw={"payment_reference": payment_reference, "amount_minor": amount_minor,
                                 "currency": currency})

    async def fetch_refund(self, refund_reference: str, *, payment_reference: str | None = None) -> RefundResult:
        """The refund's status (always ``succeeded`` once made). 404 if unknown."""
        record = await _redis().hgetall(_key("refund", refund_reference))
        if not record:
            raise _not_found("refund", refund_reference)
        return RefundResult(reference=refund_reference, status=record["status"], gateway_id=record.get("gateway_id"),
                            raw=record)

    async def create_payout(
        self, *, reference: str, amount_minor: int, currency: str, destination: PayoutDestination, narration: str,
    ) -> PayoutResult:
        """Pay out by the magic-number rules of the module docstring. Idempotent on ``reference``: the
        same call returns the first result; other parameters under the same reference are refused."""
        if amount_minor <= 0:
            raise _refusal("sandbox: payout amount must be positive", 400)
        digits = _digits(destination)
        if not digits:
            raise _refusal("sandbox: the destination has no phone or account number", 400)
        if digits.endswith("0000"):
            status, reason = "failed", "destination rejected"
        elif digits.endswith("1111"):
            status, reason = "pending", ""
        else:
            status, reason = "paid", ""
        key = _key("payout", reference)
        created = await _create_if_absent(key, {
            "status": status, "failure_reason": reason, "amount_minor": amount_minor, "currency": currency,
            "destination": digits, "gateway_id": f"sbx_{reference}",
        })
        record = await _redis().hgetall(key)
        if not created and (record["amount_minor"], record["currency"], record["destination"]) != (
                str(amount_minor), currency, digits):
            raise _refusal(f"sandbox: payout {reference} was already made with other parameters", 400)
        return self._payout(reference, record)

    async def fetch_payout(self, reference: str) -> PayoutResult:
        """The payout's status; a ``pending`` one (destination ending 1111) is ``paid`` from the first
        fetch after its creation. 404 if unknown."""
        key = _key("payout", reference)
        if not await _redis().exists(key):
            raise _not_found("payout", reference)
        await _redis().eval(_POLL_PAYOUT, 1, key)
        return self._payout(reference, await _redis().hgetall(key))

    @staticmethod
    def _payout(reference: str, record: dict[str, str]) -> PayoutResult:
        return PayoutResult(
            reference=reference, status=record["status"], gateway_id=record.get("gateway_id"),
            failure_reason=record.get("failure_reason") or None, raw=record,
        )


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


def build_event(
    details: CheckoutDetails | EventSubject, outcome: str, *, timestamp: int | None = None,
    event_id: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The webhook the sandbox sends: ``(raw_body, headers)``. ``outcome`` is a hosted-page button
    (``paid``, ``declined``) or any normalised type (``refund.succeeded``, ``payout.failed``, ...);
    ``details`` gives the reference, amount and currency. ``timestamp`` (unix s, default now) and
    ``event_id`` (default random ``evt_...``) let tests build stale or duplicate deliveries."""
    event_type = EVENT_TYPES.get(outcome, outcome)
    if event_type not in NORMALISED_TYPES:
        raise ValueError(f"unknown sandbox event {outcome!r}")
    now = int(time.time()) if timestamp is None else timestamp
    raw = json.dumps(
        {
            "id": event_id or f"evt_{secrets.token_hex(12)}",
            "type": event_type,
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

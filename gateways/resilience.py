"""Shared plumbing for the real gateway adapters: timeouts, retries and a circuit breaker per gateway.

* Timeouts: every HTTP call uses ``settings.gateway_timeout_seconds`` (httpx ``AsyncClient``).
* Retries (tenacity): at most ``settings.gateway_max_attempts`` attempts, exponential backoff with
  jitter (``gateway_backoff_initial_seconds`` doubling up to ``gateway_backoff_max_seconds``, plus up to
  ``gateway_backoff_initial_seconds`` of random jitter), and only for what retrying can fix:
  transport errors, timeouts, HTTP 429 and 5xx (``GatewayError.retryable``). A 4xx is a refusal
  (``GatewayError(retryable=False)``) and is never retried.
* Circuit breaker (purgatory, in memory, one per gateway name per process): every HTTP attempt goes
  through it; ``settings.gateway_breaker_failures`` consecutive retryable failures open it, and while it
  is open every call raises ``GatewayUnavailable`` at once, without HTTP. After
  ``settings.gateway_breaker_reset_seconds`` one trial call goes through: success closes the circuit,
  failure opens it again. Refusals (4xx) do not count as failures: the gateway answered.
* Creates without an idempotency header (Paystack, Notch Pay, Razorpay): ``Resilience.call(op, probe=...)``
  runs ``probe`` (a status query by our reference) before every retry of ``op`` — and before the first
  attempt too with ``probe_first=True`` — and returns what it found instead of creating twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import httpx
import structlog
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState
from pydantic import SecretStr
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from gateways.base import GatewayError, GatewayEvent, GatewayUnavailable, InvalidSignature
from settings import get_settings

log = structlog.get_logger("odim.gateways")

T = TypeVar("T")

# How long a hosted checkout page stays payable at the gateways that let us choose (Razorpay
# ``expire_by``); Notch Pay expires payments after 3 hours on its own (docs/pitfalls.md).
CHECKOUT_TTL_SECONDS = 3 * 3600

_factory: AsyncCircuitBreakerFactory | None = None


def _breakers() -> AsyncCircuitBreakerFactory:
    global _factory
    if _factory is None:
        settings = get_settings()
        _factory = AsyncCircuitBreakerFactory(
            default_threshold=settings.gateway_breaker_failures, default_ttl=settings.gateway_breaker_reset_seconds
        )
    return _factory


def reset_breakers() -> None:
    """Forget every gateway's circuit state (tests; a process starts with all circuits closed)."""
    global _factory
    _factory = None


def _is_refusal(exc: BaseException) -> bool:
    return isinstance(exc, GatewayError) and not exc.retryable


def _should_retry(exc: BaseException) -> bool:
    return isinstance(exc, GatewayError) and exc.retryable and not isinstance(exc, GatewayUnavailable)


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.warning(
        "gateway.retry", gateway=getattr(exc, "gateway", None), attempt=state.attempt_number,
        error=str(exc), sleep_s=round(state.upcoming_sleep, 3),
    )


def checkout_return_url(reference: str) -> str:
    """Where a gateway's hosted page sends the customer back after paying:
    ``{public_base_url}/payments/{reference}/return`` (the webhook, not this redirect, confirms payment)."""
    return f"{get_settings().public_base_url.rstrip('/')}/payments/{reference}/return"


class Resilience:
    """Retries and the circuit breaker for one gateway (``gateway`` is its registry name)."""

    def __init__(self, gateway: str):
        self.gateway = gateway

    async def guarded(self, op: Callable[[], Awaitable[T]]) -> T:
        """Run one attempt of ``op`` through this gateway's circuit breaker. Raises
        ``GatewayUnavailable`` without running ``op`` while the circuit is open."""
        settings = get_settings()
        breaker = await _breakers().get_breaker(
            self.gateway, threshold=settings.gateway_breaker_failures, ttl=settings.gateway_breaker_reset_seconds,
            exclude=[(GatewayError, _is_refusal)],
        )
        try:
            async with breaker:
                return await op()
        except OpenedState as exc:
            remaining = max(0.0, exc.opened_at + breaker.context.ttl - time.time())
            raise GatewayUnavailable(self.gateway, remaining) from None

    async def call(
        self, op: Callable[[], Awaitable[T]], *, probe: Callable[[], Awaitable[T | None]] | None = None,
        probe_first: bool = False,
    ) -> T:
        """``op`` with retries (see the module docstring). ``probe`` answers "does the object this create
        would make already exist?" (``None``: no); it runs before each retry of ``op`` (and before the
        first attempt with ``probe_first``). Raises the last ``GatewayError``."""
        settings = get_settings()
        initial = settings.gateway_backoff_initial_seconds
        retrying = AsyncRetrying(
            stop=stop_after_attempt(max(1, settings.gateway_max_attempts)),
            wait=wait_exponential_jitter(multiplier=initial, max=settings.gateway_backoff_max_seconds, jitter=initial),
            retry=retry_if_exception(_should_retry),
            before_sleep=_log_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if probe is not None and (probe_first or attempt.retry_state.attempt_number > 1):
                    found = await self.guarded(probe)
                    if found is not None:
                        return found
                return await self.guarded(op)
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("description") or error.get("message") or error)
        return str(body.get("message") or error or body)[:300]
    return str(body)[:300]


class GatewayHttp:
    """JSON over HTTP for one gateway: ``send`` is one attempt (no retry, no breaker) that maps every
    outcome to a dict or a ``GatewayError``; ``request`` is ``send`` with retries and the breaker.
    One ``httpx.AsyncClient`` per event loop (connection pools are bound to their loop)."""

    def __init__(self, gateway: str):
        self.gateway = gateway
        self.resilience = Resilience(gateway)
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop or self._client.is_closed:
            self._client = httpx.AsyncClient()
            self._loop = loop
        return self._client

    async def send(
        self, method: str, url: str, *, json_body: Any = None, params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None, auth: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        """One HTTP attempt. 2xx: the JSON body (``{}`` when empty). Raises ``GatewayError``: retryable
        for transport errors, timeouts, 429 and 5xx; not retryable for other 4xx (``status_code`` set)
        and for a 2xx body that is not JSON."""
        try:
            response = await self._http().request(
                method, url, json=json_body, params=params, headers=headers, auth=auth,
                timeout=get_settings().gateway_timeout_seconds,
            )
        except httpx.TimeoutException as exc:
            raise GatewayError(f"{self.gateway}: timed out ({type(exc).__name__})", gateway=self.gateway,
                               retryable=True) from exc
        except httpx.TransportError as exc:
            raise GatewayError(f"{self.gateway}: connection failed ({type(exc).__name__})", gateway=self.gateway,
                               retryable=True) from exc
        status = response.status_code
        if status == 429 or status >= 500:
            raise GatewayError(f"{self.gateway}: HTTP {status}: {_error_message(response)}", gateway=self.gateway,
                               retryable=True, status_code=status)
        if status >= 400:
            raise GatewayError(f"{self.gateway}: HTTP {status}: {_error_message(response)}", gateway=self.gateway,
                               retryable=False, status_code=status)
        if not response.content:
            return {}
        try:
            body = response.json()
        except json.JSONDecodeError as exc:
            raise GatewayError(f"{self.gateway}: answer is not JSON", gateway=self.gateway, retryable=False,
                               status_code=status) from exc
        return body if isinstance(body, dict) else {"data": body}

    async def request(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        """``send`` with retries and the circuit breaker (for reads and idempotent calls)."""
        return await self.resilience.call(lambda: self.send(method, url, **kwargs))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def unexpected(gateway: str, what: str, exc: Exception | None = None) -> GatewayError:
    """A 2xx answer whose shape we do not understand: not retryable (retrying gets the same answer)."""
    detail = f" ({type(exc).__name__}: {exc})" if exc else ""
    return GatewayError(f"{gateway}: unexpected {what}{detail}", gateway=gateway, retryable=False)


def not_configured(gateway: str, setting: str) -> GatewayError:
    """The adapter is missing a credential: not retryable until someone sets ``ODIM_<SETTING>``."""
    return GatewayError(f"{gateway} is not configured: set ODIM_{setting.upper()}", gateway=gateway, retryable=False)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup that works for Starlette ``Headers`` and plain dicts."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None


def verify_hex_hmac(
    secret: SecretStr | None, setting: str, received: str | None, raw_body: bytes, digestmod: Callable = hashlib.sha256
) -> None:
    """The webhook scheme Paystack (SHA-512), Notch Pay and Razorpay (SHA-256) document: the header is
    the hex HMAC of the raw body under ``secret``. Compared in constant time over the raw bytes.
    Raises ``InvalidSignature`` (also when the secret, named by ODIM_<setting>, is not configured)."""
    if secret is None:
        raise InvalidSignature(f"{setting.lower()} is not configured (ODIM_{setting.upper()})")
    expected = hmac.new(secret.get_secret_value().encode(), raw_body, digestmod).hexdigest()
    received = (received or "").strip()
    if not received or not hmac.compare_digest(expected, received):
        raise InvalidSignature("signature mismatch")


def normalised_event(
    event_id: str, mapped: str, reference: str, amount: object, currency: object, payload: dict
) -> GatewayEvent:
    """A ``GatewayEvent`` from a gateway's fields: ``ignored`` when we cannot tell which of our
    objects it is about; amount as int minor units and currency upper-cased when present."""
    return GatewayEvent(
        event_id=event_id, type=mapped if reference else "ignored", reference=reference,
        amount_minor=None if amount is None else int(amount),  # type: ignore[call-overload]
        currency=None if currency is None else str(currency).upper(), payload=payload,
    )

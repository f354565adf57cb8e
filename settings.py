"""One settings object for the whole process, read from the environment (and ``.env`` in development).

Every variable is prefixed ``ODIM_``; ``.env.example`` lists them all. Nothing else in the code reads
``os.environ``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent
_DEV_ENCRYPTION_KEY = "ZGV2LW9ubHkgZW5jcnlwdGlvbiBrZXkgMzIgYnl0ZXM="  # base64 of 32 ASCII bytes: development only


class Settings(BaseSettings):
    """Runtime configuration. Durations are seconds unless the name says otherwise."""

    model_config = SettingsConfigDict(env_prefix="ODIM_", env_file=".env", extra="ignore", env_ignore_empty=True)

    environment: str = Field("development", description="development | test | production")
    # --- real parts -----------------------------------------------------------------------------
    database_url: str = "postgresql+asyncpg://odim@127.0.0.1:54320/odim"
    redis_url: str = "redis://127.0.0.1:63790/0"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    mail_from: str = "Odim <no-reply@odim.local>"
    operator_email: str = "operations@odim.local"
    # --- local services (odim services up) ------------------------------------------------------
    data_dir: Path = PROJECT_ROOT / ".data"
    pg_port: int = 54320
    redis_port: int = 63790
    smtp_sink_port: int = 2525
    # --- HTTP -----------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    public_base_url: str = "http://127.0.0.1:8000"
    allowed_origins: list[str] = ["http://127.0.0.1:8000", "http://localhost:8000", "http://localhost:3000"]
    # GraphiQL at GET /graphql (HTML). Unset: on in development only. Introspection follows the
    # environment and the caller instead (schema/security.py: development, or admins).
    graphql_ide: bool | None = None
    # --- security -------------------------------------------------------------------------------
    jwt_secret: SecretStr = SecretStr("dev-only-jwt-secret-change-me-0123456789abcdef")
    jwt_ttl_seconds: int = 900  # access tokens live 15 minutes; refresh them with refreshToken
    refresh_token_ttl_seconds: int = 30 * 24 * 3600  # a sign-in (refresh-token family) lasts at most 30 days
    password_reset_ttl_seconds: int = 3600  # an emailed password-reset link works once, for 1 hour
    email_verification_ttl_seconds: int = 7 * 24 * 3600  # an emailed verification link works once, for 7 days
    mfa_issuer: str = "Odim"  # the issuer shown by authenticator apps (otpauth:// URI)
    mfa_valid_window: int = 1  # TOTP codes of this many 30-second steps before/after now are accepted (clock skew)
    guest_link_secret: SecretStr = SecretStr("dev-only-guest-link-secret-change-me-0123456789")
    guest_link_ttl_seconds: int = 60 * 60 * 24 * 90
    # --- payments -------------------------------------------------------------------------------
    sandbox_webhook_secret: SecretStr = SecretStr("whsec_dev_only_sandbox_secret_0123456789")
    sandbox_webhook_tolerance_seconds: int = 300
    sandbox_checkout_ttl_seconds: int = 3 * 3600
    # The sandbox's Pay button marks orders paid without money moving: production refuses it
    # unless this is set on purpose (a public demo or staging).
    sandbox_in_production: bool = False
    default_currency: str = "XAF"
    # Which gateway takes payments in each currency (gateways.registry). Production would route
    # e.g. {"XAF": "notchpay", "NGN": "paystack", "INR": "razorpay", "USD": "stripe"}.
    gateway_routes: dict[str, str] = {"XAF": "sandbox", "NGN": "sandbox", "INR": "sandbox", "USD": "sandbox"}
    gateway_timeout_seconds: float = 10.0
    gateway_max_attempts: int = 3  # tenacity: exponential backoff with jitter between attempts
    gateway_backoff_initial_seconds: float = 0.5
    gateway_backoff_max_seconds: float = 8.0
    gateway_breaker_failures: int = 5  # consecutive failures that open a gateway's circuit
    gateway_breaker_reset_seconds: float = 30.0  # open circuit -> one trial call after this long
    stripe_secret_key: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = None
    stripe_api_base: str = "https://api.stripe.com"
    stripe_webhook_tolerance_seconds: int = 300
    paystack_secret_key: SecretStr | None = None
    paystack_api_base: str = "https://api.paystack.co"
    notchpay_public_key: SecretStr | None = None
    notchpay_private_key: SecretStr | None = None  # X-Grant for transfers
    notchpay_hash_key: SecretStr | None = None  # webhook endpoint hash (x-notch-signature)
    notchpay_api_base: str = "https://api.notchpay.co"
    razorpay_key_id: str | None = None
    razorpay_key_secret: SecretStr | None = None
    razorpay_webhook_secret: SecretStr | None = None
    razorpay_account_number: str | None = None  # RazorpayX account payouts are sent from
    razorpay_api_base: str = "https://api.razorpay.com"
    # --- fees, escrow, payouts, refunds (the one place fees are configured) ----------------------
    # Basis points of the service price: 1000 = 10 %. Snapshotted onto each order at purchase.
    fee_commission_bps: int = 1000  # platform commission, taken from the provider's share
    fee_guest_surcharge_bps: int = 1000  # added to the customer's total on guest checkout
    # Per service category: {"cleaning": {"commission_bps": 1200, "guest_surcharge_bps": 500}}
    fee_category_overrides: dict[str, dict[str, int]] = {}
    # After a provider marks an order completed, escrow is released this long later unless a
    # dispute is open (an admin's "completed" releases at once).
    escrow_release_grace_seconds: int = 72 * 3600
    # Rows each hot ledger account (gateway clearing, platform revenue, refunds payable, dispute losses)
    # is striped into, so concurrent captures and releases do not queue on one row (domain/money/ledger.py).
    ledger_hot_account_stripes: int = Field(default=16, ge=1, le=256)
    dispute_window_seconds: int = 14 * 24 * 3600  # customers may dispute until this long after completion
    payout_minimum_minor: dict[str, int] = {"XAF": 1000, "NGN": 10000, "INR": 10000, "USD": 500}
    payout_interval_seconds: int = 3600
    # Refund on cancellation by time before the scheduled start: (hours before, percent refunded),
    # first matching row wins; later than every row refunds 0 %.
    refund_policy: list[tuple[int, int]] = [(48, 100), (24, 50), (0, 0)]
    reconcile_interval_seconds: int = 3600
    reconcile_after_seconds: int = 900  # pending this long -> ask the gateway
    idempotency_key_ttl_seconds: int = 48 * 3600  # at least 24 h (issue requirement)
    # --- bookings ----------------------------------------------------------------------
    booking_hold_seconds: int = 600  # a held slot is kept this long for the customer to pay
    booking_response_seconds: int = 4 * 3600  # a paid booking the provider has not accepted by then expires (full refund)
    booking_auto_complete_seconds: int = 24 * 3600  # in progress this long after the slot's end -> completed by the system
    booking_no_show_wait_seconds: int = 15 * 60  # after "arrived", the provider may mark the customer absent
    booking_substitution_seconds: int = 30 * 60  # nobody takes over a visit its provider cannot make -> admins alerted
    booking_default_slot_minutes: int = 60  # a provider's service without its own slot length
    booking_default_notice_minutes: int = 120  # minimum notice before a slot can be held
    booking_default_buffer_minutes: int = 0  # free time kept before and after every booking
    booking_default_horizon_days: int = 30  # how far ahead slots can be booked
    booking_max_window_days: int = 31  # widest from..to an availableSlots query may ask for
    booking_sweep_seconds: int = 30  # how often the scheduler runs the booking timers
    booking_substitution_radius_km: float = 25.0  # substitutes are offered to providers this close
    ticket_escalation_seconds: int = 2 * 3600  # a ticket without an accepted visit this long -> escalated
    ticket_urgent_surcharge_bps: int = 2500  # urgent tickets: 25 % on top of the visit's price (provider's share)
    # --- workers --------------------------------------------------------------------------------
    outbox_sweep_seconds: float = 2.0
    actor_max_retries: int = 8
    actor_min_backoff_ms: int = 500
    actor_max_backoff_ms: int = 60_000
    # A worker that stops sending heartbeats for this long is dead: its unacknowledged messages are
    # requeued by another worker's broker maintenance (Dramatiq's defaults: 60 s, 1,000 per million commands).
    broker_heartbeat_timeout_ms: int = 60_000
    broker_maintenance_chance: int = 1_000
    # --- chat --------------------------------------------------------------------------
    # Messages one account may send, all conversations together, per moving window: "<count>/<period>"
    # in the `limits` library's notation ("30/minute", "5/second", "500/day"). Over it: RATE_LIMITED.
    chat_rate_limit: str = "30/minute"
    chat_presence_ttl_seconds: int = 60  # a participant is "present" this long after its last touch
    chat_redis_timeout_seconds: float = 0.5  # rate limit and presence calls give up (fail open / offline) after this
    # --- email delivery ------------------------------------------------------------------
    email_max_retries: int = 3  # retries after the first SMTP attempt (1 + 3 attempts), then dead-lettered
    email_min_backoff_ms: int = 60_000  # milliseconds before the first retry; doubles per retry (Dramatiq jitter: up to 2x)
    email_max_backoff_ms: int = 1_800_000  # milliseconds: the longest wait before one retry (30 min)
    email_smtp_timeout_seconds: float = 15.0  # seconds: SMTP connect and per-command timeout
    # --- live: subscriptions and WebSockets ---------------------------------------------
    # "shared": subscribers with the same selection share one GraphQL execution per event and one
    # serialised frame (schema/fanout.py); "naive": Strawberry's per-subscriber execution (the baseline).
    live_fanout: Literal["shared", "naive"] = "shared"
    live_poll_seconds: float = 5.0  # while Redis pub/sub is down, live streams poll PostgreSQL this often
    live_member_queue_limit: int = 1000  # frames queued for a socket that does not read: closed (4429) beyond
    ws_max_subscriptions: int = 50  # operations at once per WebSocket
    ws_keep_alive_seconds: float = 15.0  # the server pings each socket this often
    ws_idle_seconds: float = 300.0  # a socket with no subscription and no client message this long is closed (4408)
    ws_max_messages_per_10s: int = 100  # client messages per socket per 10 s; more closes it (4429)
    # seconds: how often a socket re-checks that its sign-in was not signed out or revoked (closed with
    # 4403 if it was; a socket is also closed with 4403 the moment its access token expires)
    ws_session_check_seconds: float = 60.0
    # --- audit log ----------------------------------------------------------------------
    audit_export_batch_rows: int = 500  # rows: the CSV export fetches (server-side cursor) and sends this many at a time
    # --- abuse limits and HTTP hardening ------------------------------------------------
    # Rate limits are "<count>/<period>" in the `limits` library's notation ("100/minute", "5/hour"),
    # counted in a moving window on Redis (domain/shared/ratelimit.py). Over one: HTTP 429 + Retry-After,
    # and a RATE_LIMITED error in the GraphQL payload.
    rate_limit_public: str = "100/minute"  # HTTP requests to /graphql per client IP (seed requirement); fails open
    rate_limit_login: str = "10/minute"  # login attempts per email address; fails closed when Redis is down
    rate_limit_login_ip: str = "30/minute"  # login attempts per client IP, all email addresses together
    rate_limit_register: str = "5/hour"  # sign-ups per email address; fails closed
    rate_limit_register_ip: str = "20/hour"  # sign-ups per client IP
    rate_limit_password_reset: str = "5/hour"  # password-reset requests per email address; fails closed
    rate_limit_password_reset_ip: str = "20/hour"  # password-reset requests per client IP
    rate_limit_purchase: str = "20/minute"  # purchases and slot holds per account (guests: per email); fails open
    rate_limit_closed_retry_seconds: int = 30  # seconds: "retry in" given when a fail-closed limit cannot reach Redis
    # Peers (reverse proxies, IPs or CIDR networks) whose left-most X-Forwarded-For entry is taken as
    # the client IP; from anyone else the header is ignored. JSON list: '["10.0.0.0/8"]'.
    trusted_proxies: list[str] = []
    max_request_body_bytes: int = 1_048_576  # bytes: larger HTTP request bodies are refused with 413
    max_query_depth: int = 10  # nesting levels of fields in one GraphQL operation
    max_query_tokens: int = 2000  # lexical tokens in one GraphQL document
    max_query_aliases: int = 30  # aliased fields in one GraphQL document
    # true: only GraphQL documents listed in persisted_queries_file run (by APQ sha256Hash or full
    # text); anything else gets PERSISTED_QUERY_NOT_ALLOWED. Production can switch it on.
    persisted_queries_only: bool = False
    persisted_queries_file: Path | None = None  # JSON {"<sha256 hex of the query>": "<query>"}; relative: to the project
    hsts_max_age_seconds: int = 63_072_000  # seconds: Strict-Transport-Security max-age (sent in production only)
    # --- resilience and observability ---------------------------------------------------
    # Log lines: "json" (one JSON object per line, for log shippers) or "console" (readable);
    # unset: json in production, console elsewhere.
    log_format: Literal["json", "console"] | None = None
    health_timeout_seconds: float = 2.0  # seconds: /readyz gives up on PostgreSQL or Redis after this (503)
    metrics_sample_timeout_seconds: float = 0.5  # seconds: /metrics leaves out queue depths a source did not give by then
    # Distinct GraphQL operation names kept as metric labels per process; later new names count as "other".
    metrics_max_operation_names: int = 200
    # Seconds a client is told to wait (Retry-After, extensions.retryAfterSeconds) when PostgreSQL is unreachable.
    unavailable_retry_after_seconds: int = 5
    # Where the sandbox gateway keeps its own payment records (it stands for a remote gateway, so an
    # outage of Odim's Redis need not take it down); unset: redis_url.
    sandbox_redis_url: str | None = None
    # --- encryption at rest ------------------------------------------------------------
    # AES-256-GCM keys of personal data at rest (models/crypto.py): key id -> base64 of 32 random bytes
    # (`odim keys generate`), as JSON in ODIM_ENCRYPTION_KEYS. Each stored value names its key id, so a
    # retired key stays listed until `odim keys rotate` has re-encrypted every value under the current one.
    # Key ids: letters, digits, "_" and "-". The "dev-only" key is refused in production.
    encryption_keys: dict[str, SecretStr] = {"dev-only": SecretStr(_DEV_ENCRYPTION_KEY)}
    encryption_key_id: str = "dev-only"  # the key id new values are encrypted with (must be in encryption_keys)
    # HMAC-SHA256 key of the blind indexes (*_bidx columns: exact lookups of encrypted emails and phones).
    # Changing it orphans every stored index: it is not rotated by `odim keys rotate`.
    blind_index_key: SecretStr = SecretStr("dev-only-blind-index-key-change-me-0123456789")
    # --- provider onboarding ---
    # Where uploaded application documents are kept (gateways/storage.py): "local" (files under
    # storage_local_dir) or "s3" (an S3-compatible bucket: AWS, MinIO, R2 ...).
    storage_backend: Literal["local", "s3"] = "local"
    storage_local_dir: Path | None = None  # directory of the local backend; unset: <data_dir>/uploads
    storage_s3_bucket: str = "odim-uploads"  # S3 bucket name (it must exist)
    storage_s3_endpoint_url: str | None = None  # S3-compatible endpoint URL; unset: AWS's own
    storage_s3_region: str = "us-east-1"  # S3 region name
    storage_s3_access_key_id: SecretStr | None = None  # S3 access key id; unset: boto3's credential chain
    storage_s3_secret_access_key: SecretStr | None = None  # S3 secret key; unset: boto3's credential chain
    upload_max_bytes: int = 10 * 1024 * 1024  # bytes: largest application document accepted (FILE_TOO_LARGE above)
    # bytes: room for the GraphQL multipart fields (operations, map, part headers) on top of
    # upload_max_bytes; a multipart/form-data request to /graphql may be upload_max_bytes + this long.
    upload_multipart_overhead_bytes: int = 64 * 1024
    # --- contracts ---
    # bool: moving an order or a visit to in_progress requires its current contract version accepted by
    # both the customer and the provider (CONTRACT_NOT_ACCEPTED otherwise). Off only for old test fixtures.
    contracts_required_before_work: bool = True
    # path of a TrueType font for contract PDFs (Unicode text: ₦, ₹, accents); when the file is missing the
    # PDF falls back to the built-in Courier (Latin-1 only: other characters print as "?").
    contract_pdf_font_path: str = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
    # --- discovery ranking and cache ---
    # Ranking weights (domain/providers/discovery.py): score = sum of weight * term, each term normalised to
    # 0..1 (1 = best). Unitless; the defaults sum to 1 so a score is in 0..1.
    discovery_weight_distance: float = 0.40  # closeness: 1 - distance / search radius
    discovery_weight_rating: float = 0.30  # Bayesian average rating / 5
    discovery_weight_jobs: float = 0.10  # completed jobs, log-scaled up to discovery_jobs_saturation
    discovery_weight_response: float = 0.10  # median response time (lower is better)
    discovery_weight_cancellation: float = 0.10  # 1 - provider-caused cancellation rate
    discovery_rating_prior_mean: float = 4.0  # stars (1-5): the prior mean m of the Bayesian rating
    discovery_rating_prior_weight: float = 10.0  # reviews: the prior weight C (as if C reviews of m)
    discovery_jobs_saturation: int = 500  # completed jobs at which the jobs term reaches 1 (log scale)
    discovery_response_reference_seconds: int = 3600  # seconds: a median response this long scores 0.5
    discovery_candidates: int = 300  # providers: nearest N live candidates (KNN on the index) ranked per search
    discovery_cache_ttl_seconds: int = 90  # seconds a ranked page stays in Redis (0: no cache)
    discovery_cell_resolution: int = 8  # H3 resolution of the search point (cache key; ~0.5 km cells)
    discovery_invalidation_resolution: int = 4  # H3 resolution of the version cells (~26 km edges)
    discovery_stats_refresh_seconds: int = 900  # seconds between the scheduler's provider-stats refreshes
    # --- reviews and the two-strike policy ---
    # days after an order's or a visit's completion during which either side may review it; blind
    # reviews are published when both sides reviewed or when this window closes (domain/reviews/review.py).
    review_window_days: int = 14
    # stars (1-5): a provider whose average of published customer reviews falls below this ...
    rating_flag_threshold: float = 3.5
    # ... after at least this many completed jobs (completed catalogue orders + completed visits) is
    # flagged for an admin's review (providers.flagged_at).
    rating_flag_min_jobs: int = 10
    # seconds between the scheduler's runs of the review publisher (reviews whose window closed)
    review_publish_sweep_seconds: int = 300
    # --- pagination -----------------------------------------------------------------------------
    max_page_size: int = 100

    @model_validator(mode="after")
    def _graphql_ide_default(self) -> "Settings":
        """GraphiQL defaults to on in development and off elsewhere."""
        if self.graphql_ide is None:
            self.graphql_ide = self.environment == "development"
        return self

    @model_validator(mode="after")
    def _encryption_keys_usable(self) -> "Settings":
        """Every encryption key is base64 of 32 bytes under a plain key id, and the current one is listed."""
        import base64
        import binascii
        import re

        for kid, key in self.encryption_keys.items():
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", kid):
                raise ValueError(f"encryption key id {kid!r}: use 1-32 letters, digits, '_' or '-'")
            try:
                size = len(base64.b64decode(key.get_secret_value(), validate=True))
            except (binascii.Error, ValueError):
                size = -1
            if size != 32:
                raise ValueError(f"encryption key {kid!r} must be base64 of 32 random bytes (`odim keys generate`)")
        if self.encryption_key_id not in self.encryption_keys:
            raise ValueError(f"ODIM_ENCRYPTION_KEY_ID {self.encryption_key_id!r} is not in ODIM_ENCRYPTION_KEYS")
        return self

    @model_validator(mode="after")
    def _no_development_secrets_in_production(self) -> "Settings":
        """Production refuses to start with the development secrets that ship in the code."""
        if self.environment == "production":
            weak = [
                name for name in ("jwt_secret", "guest_link_secret", "sandbox_webhook_secret", "blind_index_key")
                if "dev_only" in getattr(self, name).get_secret_value().replace("-", "_")
                or len(getattr(self, name).get_secret_value()) < 32
            ]
            if weak:
                raise ValueError(
                    f"set strong values (32+ characters) for {', '.join('ODIM_' + w.upper() for w in weak)} in production"
                )
            dev_keys = [kid for kid, key in self.encryption_keys.items()
                        if "dev-only" in kid or key.get_secret_value() == _DEV_ENCRYPTION_KEY]
            if dev_keys:
                raise ValueError(
                    f"ODIM_ENCRYPTION_KEYS holds the development key {', '.join(dev_keys)}: generate one with "
                    "`odim keys generate`, set ODIM_ENCRYPTION_KEY_ID to it, then run `odim keys rotate`"
                )
            sandboxed = sorted(c for c, g in self.gateway_routes.items() if g == "sandbox")
            if sandboxed and not self.sandbox_in_production:
                raise ValueError(
                    f"ODIM_GATEWAY_ROUTES sends {', '.join(sandboxed)} to the sandbox, which marks orders paid without "
                    "money moving: route them to a real gateway (stripe, paystack, notchpay, razorpay) or set "
                    "ODIM_SANDBOX_IN_PRODUCTION=true to run a production-mode demo anyway"
                )
        return self


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; tests clear the cache with ``get_settings.cache_clear()``)."""
    return Settings()


def configure_logging() -> None:
    """structlog: one JSON object per line when ``log_format`` is "json" (the default in
    production), readable lines when "console"; tracebacks without local variables (they could hold
    personal data). Values bound with ``structlog.contextvars`` (the request id) join every line."""
    import logging

    import structlog

    settings = get_settings()
    as_json = (settings.log_format or ("json" if settings.environment == "production" else "console")) == "json"
    renderer = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.dict_tracebacks if as_json else structlog.processors.StackInfoRenderer(),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=True,
    )

"""Settings, read from the environment once at start (never at import time)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta

from .domain.durations import parse_duration, parse_positive, parse_schedule
from .domain.fulfilment import DEFAULT_GRACE

DEFAULT_DATABASE_URL = "sqlite:///toffeepay.db"
MAX_REQUEST_BYTES = 1024 * 1024
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True, slots=True)
class Secret:
    """A credential: shown as *** in reprs, logs and tracebacks; `reveal()` hands it to its one user."""

    _value: str = field(repr=False)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the variable and what it accepts."""


def _private_targets(value: str | None) -> str:
    value = (value or "none").strip().lower()
    if value not in ("none", "sandbox", "all"):
        raise ConfigError(f"TOFFEEPAY_WEBHOOK_PRIVATE_TARGETS must be none, sandbox or all, not {value!r}")
    return value


DEFAULT_RETRY_SCHEDULE = "5s,30s,2m,10m,30m,1h,3h,6h"


def _webhook_duration(env: Mapping[str, str], name: str, default: str) -> timedelta:
    try:
        return parse_positive(env.get(name) or default)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _retry_schedule(env: Mapping[str, str]) -> tuple[timedelta, ...]:
    name = "TOFFEEPAY_WEBHOOK_RETRY_SCHEDULE"
    try:
        return parse_schedule(env.get(name) or DEFAULT_RETRY_SCHEDULE)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc} (comma-separated durations such as 5s,30s,2m,1h)") from None


def _secret(value: str | None) -> Secret | None:
    return Secret(value) if value else None


def parse_address(address: str) -> tuple[str, int]:
    """`127.0.0.1:9464`, `[::1]:9464` or `:9464` (all interfaces) as (host, port)."""
    host, sep, port = address.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"TOFFEEPAY_METRICS_ADDRESS must be host:port, e.g. 127.0.0.1:9464 (got {address!r})")
    return host.strip("[]") or "0.0.0.0", int(port)


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    # Base of payment page URLs; `toffeepay serve` defaults it to its own address.
    public_url: str = DEFAULT_PUBLIC_URL
    site_id: str = "toffeepay"
    # Run the expiry sweeper and webhook dispatcher inside the web process.
    background: bool = True
    sweep_interval: float = 1.0
    # Webhook dispatcher: how often it looks for work when nothing woke it (seconds), and how
    # many requests it keeps in flight in all and per endpoint.
    dispatch_poll: float = 0.02
    # Least time between two webhook fan-outs woken by commits (batches them under load).
    dispatch_batch_window: float = 0.01
    # Which webhook endpoints may use http and private or loopback addresses: none (every
    # endpoint public https), sandbox (sandbox ones), all (live ones too).
    private_webhook_targets: str = "none"
    # Requests in flight: per mode in all, per game and mode, and per endpoint.
    webhook_concurrency: int = 256
    webhook_game_concurrency: int = 64
    webhook_endpoint_concurrency: int = 16
    # Waits between delivery attempts (the last repeats), and how long after the first attempt
    # to keep trying; an endpoint failing for `warn_after` is reported, for `disable_after` disabled.
    webhook_retry_schedule: tuple[timedelta, ...] = parse_schedule(DEFAULT_RETRY_SCHEDULE)
    webhook_retry_for: timedelta = timedelta(days=3)
    webhook_warn_after: timedelta = timedelta(days=1)
    webhook_disable_after: timedelta = timedelta(days=5)
    max_request_bytes: int = MAX_REQUEST_BYTES
    # How long a repeated Idempotency-Key waits for the first request before `idempotency_key_in_use`.
    idempotency_wait: float = 10.0
    # How long a request holds its Idempotency-Key before a retry may take it over (seconds);
    # a request that outlives it is rolled back, so the retry after a crash waits this long at most.
    idempotency_lease: float = 60.0
    # Per API key, in the `limits` notation ("1000/second", "100/second;5000/minute"); "off" disables.
    rate_limit: str = "1000/second"
    # Where counters live: memory:// (per process) or redis://host:port to share them across processes.
    rate_limit_storage: str = "memory://"
    # Per client address, for requests without a valid API key (unknown keys, the payment
    # page and its forms, processor notifications).
    public_rate_limit: str = "100/second"
    # Proxies (addresses or networks) whose X-Forwarded-For names the client; nobody else's is believed.
    trusted_proxies: tuple[str, ...] = ()
    # A request body must have arrived this many seconds after its headers (else 408).
    request_body_timeout: float = 10.0
    # The installation key's material: it encrypts the stored secrets (webhook secrets, the
    # payment page's CSRF key). When unset, a key is generated into `key_file` (mode 0600).
    secret_key: str | None = field(default=None, repr=False)
    key_file: str = "toffeepay.key"
    # How long the sandbox processor keeps a payment page's payment `processing`.
    sandbox_settle_seconds: float = 1.0
    # A payment still `processing` this long after it started is looked up at its processor
    # and settled or failed (seconds; events/reconciler.py).
    reconcile_after: float = 600.0
    # A paid session the game has not fulfilled this long after payment is reported overdue.
    fulfillment_grace: timedelta = DEFAULT_GRACE
    # The live processor (docs/stripe.md): a Stripe secret key, the signing secret of the Stripe
    # webhook endpoint, and an API base other than Stripe's own (localstripe in tests).
    stripe_api_key: Secret | None = None
    stripe_webhook_secret: Secret | None = None
    stripe_api_base: str | None = None
    # Where GET /metrics is served (host:port), apart from the public port; None: no metrics.
    metrics_address: str | None = None
    # Dashboard: a signed-in session ends after this long without a request (seconds), and
    # sign-in attempts are limited per email and per client address (`limits` notation).
    dashboard_idle_timeout: float = 12 * 3600
    dashboard_signin_limit: str = "5/minute;30/hour"
    dashboard_signin_address_limit: str = "30/minute;300/hour"

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        settings = cls(
            database_url=env.get("TOFFEEPAY_DATABASE_URL") or DEFAULT_DATABASE_URL,
            public_url=(env.get("TOFFEEPAY_PUBLIC_URL") or DEFAULT_PUBLIC_URL).rstrip("/"),
            site_id=env.get("TOFFEEPAY_SITE_ID") or "toffeepay",
            background=env.get("TOFFEEPAY_BACKGROUND", "1") not in ("0", "false", "no"),
            sweep_interval=float(env.get("TOFFEEPAY_SWEEP_INTERVAL") or 1.0),
            dispatch_poll=float(env.get("TOFFEEPAY_DISPATCH_POLL") or 0.02),
            dispatch_batch_window=float(env.get("TOFFEEPAY_DISPATCH_BATCH_WINDOW") or 0.01),
            private_webhook_targets=_private_targets(env.get("TOFFEEPAY_WEBHOOK_PRIVATE_TARGETS")),
            webhook_concurrency=int(env.get("TOFFEEPAY_WEBHOOK_CONCURRENCY") or 256),
            webhook_game_concurrency=int(env.get("TOFFEEPAY_WEBHOOK_GAME_CONCURRENCY") or 64),
            webhook_endpoint_concurrency=int(env.get("TOFFEEPAY_WEBHOOK_ENDPOINT_CONCURRENCY") or 16),
            webhook_retry_schedule=_retry_schedule(env),
            webhook_retry_for=_webhook_duration(env, "TOFFEEPAY_WEBHOOK_RETRY_FOR", "3d"),
            webhook_warn_after=_webhook_duration(env, "TOFFEEPAY_WEBHOOK_WARN_AFTER", "1d"),
            webhook_disable_after=_webhook_duration(env, "TOFFEEPAY_WEBHOOK_DISABLE_AFTER", "5d"),
            idempotency_wait=float(env.get("TOFFEEPAY_IDEMPOTENCY_WAIT") or 10.0),
            idempotency_lease=float(env.get("TOFFEEPAY_IDEMPOTENCY_LEASE") or 60.0),
            rate_limit=env.get("TOFFEEPAY_RATE_LIMIT") or "1000/second",
            rate_limit_storage=env.get("TOFFEEPAY_RATE_LIMIT_STORAGE") or "memory://",
            public_rate_limit=env.get("TOFFEEPAY_PUBLIC_RATE_LIMIT") or "100/second",
            trusted_proxies=tuple(p.strip() for p in env.get("TOFFEEPAY_TRUSTED_PROXIES", "").split(",") if p.strip()),
            request_body_timeout=float(env.get("TOFFEEPAY_REQUEST_BODY_TIMEOUT") or 10.0),
            secret_key=env.get("TOFFEEPAY_SECRET_KEY") or None,
            key_file=env.get("TOFFEEPAY_KEY_FILE") or "toffeepay.key",
            reconcile_after=float(env.get("TOFFEEPAY_RECONCILE_AFTER") or 600.0),
            sandbox_settle_seconds=float(env.get("TOFFEEPAY_SANDBOX_SETTLE_SECONDS") or 1.0),
            fulfillment_grace=parse_duration(env.get("TOFFEEPAY_FULFILLMENT_GRACE") or "10m"),
            stripe_api_key=_secret(env.get("TOFFEEPAY_STRIPE_API_KEY")),
            stripe_webhook_secret=_secret(env.get("TOFFEEPAY_STRIPE_WEBHOOK_SECRET")),
            stripe_api_base=(env.get("TOFFEEPAY_STRIPE_API_BASE") or "").rstrip("/") or None,
            metrics_address=env.get("TOFFEEPAY_METRICS_ADDRESS") or None,
            dashboard_idle_timeout=float(env.get("TOFFEEPAY_DASHBOARD_IDLE_TIMEOUT") or 12 * 3600),
            dashboard_signin_limit=env.get("TOFFEEPAY_DASHBOARD_SIGNIN_LIMIT") or "5/minute;30/hour",
            dashboard_signin_address_limit=env.get("TOFFEEPAY_DASHBOARD_SIGNIN_ADDRESS_LIMIT") or "30/minute;300/hour",
        )
        settings = replace(settings, **overrides)  # type: ignore[arg-type]
        if settings.webhook_warn_after > settings.webhook_disable_after:
            raise ConfigError(
                "TOFFEEPAY_WEBHOOK_WARN_AFTER must not be longer than TOFFEEPAY_WEBHOOK_DISABLE_AFTER "
                "(an endpoint is reported failing before it is disabled)"
            )
        return settings

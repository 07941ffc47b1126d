"""Settings, read from the environment once at start (never at import time)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

DEFAULT_DATABASE_URL = "sqlite:///toffeepay.db"
MAX_REQUEST_BYTES = 1024 * 1024
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    # Base of payment page URLs; `toffeepay serve` defaults it to its own address.
    public_url: str = DEFAULT_PUBLIC_URL
    site_id: str = "toffeepay"
    # Run the expiry sweeper and webhook dispatcher inside the web process.
    background: bool = True
    sweep_interval: float = 1.0
    max_request_bytes: int = MAX_REQUEST_BYTES
    # How long a repeated Idempotency-Key waits for the first request before `idempotency_key_in_use`.
    idempotency_wait: float = 10.0
    # Per API key, in the `limits` notation ("1000/second", "100/second;5000/minute"); "off" disables.
    rate_limit: str = "1000/second"
    # Where counters live: memory:// (per process) or redis://host:port to share them across processes.
    rate_limit_storage: str = "memory://"

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        settings = cls(
            database_url=env.get("TOFFEEPAY_DATABASE_URL") or DEFAULT_DATABASE_URL,
            public_url=(env.get("TOFFEEPAY_PUBLIC_URL") or DEFAULT_PUBLIC_URL).rstrip("/"),
            site_id=env.get("TOFFEEPAY_SITE_ID") or "toffeepay",
            background=env.get("TOFFEEPAY_BACKGROUND", "1") not in ("0", "false", "no"),
            sweep_interval=float(env.get("TOFFEEPAY_SWEEP_INTERVAL") or 1.0),
            idempotency_wait=float(env.get("TOFFEEPAY_IDEMPOTENCY_WAIT") or 10.0),
            rate_limit=env.get("TOFFEEPAY_RATE_LIMIT") or "1000/second",
            rate_limit_storage=env.get("TOFFEEPAY_RATE_LIMIT_STORAGE") or "memory://",
        )
        return replace(settings, **overrides)  # type: ignore[arg-type]

"""The caller of the current request, set by the gateway and read by the services' adapters."""

from __future__ import annotations

from contextvars import ContextVar

from ..domain.errors import DomainError, Reason
from ..domain.keys import Mode, Principal

_current: ContextVar[Principal | None] = ContextVar("toffeepay_principal", default=None)


def set_principal(principal: Principal | None) -> None:
    _current.set(principal)


def principal() -> Principal:
    current = _current.get()
    if current is None:  # the gateway guarantees one; this guards against misrouting
        raise DomainError(Reason.UNAUTHENTICATED, "missing API key")
    return current


def sandbox_principal() -> Principal:
    current = principal()
    if current.mode is not Mode.SANDBOX:
        raise DomainError(Reason.SANDBOX_ONLY, "SandboxService needs a sandbox key (sk_test_...)")
    return current


def bearer_key(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    key = key.strip()
    return key or None

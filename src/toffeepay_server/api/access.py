"""Who may call the API: the API key, and how often (per key, or per address without one)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..domain.errors import DomainError, Reason
from ..domain.keys import Principal
from ..services import games
from ..services.context import ServiceContext
from . import auth
from .guard import CLIENT_ADDRESS
from .rate_limit import RateLimiter, client_address
from .respond import Scope


@dataclass(frozen=True)
class Refusal:
    """Why a request may not go on, with the answer headers that go with it."""

    error: DomainError
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


class Access:
    def __init__(
        self, ctx: ServiceContext, *, rate_limiter: RateLimiter | None = None, public_limiter: RateLimiter | None = None
    ) -> None:
        self.ctx = ctx
        self.rate_limiter = rate_limiter or RateLimiter("off")
        # Requests without a valid key count against their client address.
        self.public_limiter = public_limiter or RateLimiter("off")

    async def admit(self, scope: Scope, authorization: str | None) -> Principal | Refusal:
        """The caller (also set as the request's principal), or why it is refused."""
        principal = await games.authenticate(self.ctx, auth.bearer_key(authorization) or "")
        if principal is None:
            address = scope.get(CLIENT_ADDRESS) or client_address(scope, ())
            if (wait := await self.public_limiter.retry_after(address)) is not None:
                return _rate_limited(f"too many requests without a valid API key, retry in {wait} s", wait)
            return Refusal(
                DomainError(
                    Reason.UNAUTHENTICATED,
                    "missing, malformed, unknown or revoked API key (Authorization: Bearer sk_...)",
                ),
                [(b"www-authenticate", b"Bearer")],
            )
        auth.set_principal(principal)
        if (wait := await self.rate_limiter.retry_after(principal.api_key_id)) is not None:
            return _rate_limited(f"too many requests for this API key, retry in {wait} s", wait)
        return principal


def _rate_limited(message: str, wait: int) -> Refusal:
    return Refusal(DomainError(Reason.RATE_LIMITED, message), [(b"retry-after", str(wait).encode())])

"""The return token: a signed statement of a session's outcome added to the return_url redirect.

A compact JWS (EdDSA over Ed25519) a game client verifies offline against the installation's
published keys. The rules here are pure: what the token says, how long it lives, and which
signing keys are published and which one signs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from .sessions import Session

LIFETIME = timedelta(minutes=10)
# A process may sign with a key it read just before a rotation retired it.
SIGNING_MARGIN = timedelta(minutes=1)
ALGORITHM = "EdDSA"
CURVE: Final = "Ed25519"


def claims(session: Session, now: datetime) -> dict[str, Any]:
    """`session_id`, `game_id`, `user_id`, `status`, `iat`, `exp` (+10 minutes), in unix seconds."""
    issued = int(now.timestamp())
    return {
        "session_id": session.id,
        "game_id": session.game_id,
        "user_id": session.user_id,
        "status": session.status.value,
        "iat": issued,
        "exp": issued + int(LIFETIME.total_seconds()),
    }


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One Ed25519 key of the installation. `private_jwk` is only ever in memory in the clear."""

    kid: str
    generation: int
    public_x: str
    created_at: datetime
    retired_at: datetime | None = None
    private_jwk: dict[str, str] | None = None

    def public_jwk(self) -> dict[str, str]:
        return {"kty": "OKP", "crv": CURVE, "x": self.public_x, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}


def is_published(key: SigningKey, now: datetime) -> bool:
    """The active key, and a retired one until every token it signed has expired.

    A retired key may still sign for a moment in a process that read it just before the
    rotation, hence the margin.
    """
    return key.retired_at is None or now < key.retired_at + LIFETIME + SIGNING_MARGIN


def signing_key(keys: Sequence[SigningKey]) -> SigningKey | None:
    """The key that signs new tokens: the newest that is not retired."""
    active = [k for k in keys if k.retired_at is None]
    return max(active, key=lambda k: k.generation) if active else None

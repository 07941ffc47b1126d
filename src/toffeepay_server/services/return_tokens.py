"""Return tokens: sign a session's outcome for the game client, publish the keys, rotate them.

Keys are generated on first use and shared by every process through the database, their
private halves sealed (services/secrets.py). Signing reads the current key each time, so a
rotation made by another process (`toffeepay tokens rotate`) takes effect at once.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from typing import Any

from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import OKPKey

from ..domain import return_tokens as rules
from ..domain.return_tokens import SigningKey
from ..domain.sessions import Session
from ..store import signing_keys as store
from .context import ServiceContext
from .secrets import seal, unseal


def _new_key(ctx: ServiceContext, generation: int) -> tuple[SigningKey, str]:
    """A fresh Ed25519 key (kid: its RFC 7638 thumbprint) and its sealed private JWK."""
    key = OKPKey.generate_key(rules.CURVE)
    private = {k: str(v) for k, v in key.as_dict(private=True).items()}
    signing = SigningKey(kid=key.thumbprint(), generation=generation, public_x=private["x"], created_at=ctx.clock())
    return signing, seal(ctx, json.dumps(private))


def _opened(ctx: ServiceContext, key: SigningKey, sealed: str) -> SigningKey:
    return replace(key, private_jwk=json.loads(unseal(ctx, sealed)))


async def current_key(ctx: ServiceContext) -> SigningKey:
    """The key that signs now, with its private half; the first one is created on first use."""
    async with ctx.db.read() as conn:
        found = await store.newest(conn)
    if found is None or found[0].retired_at is not None:
        generation = found[0].generation + 1 if found else 1
        key, sealed = _new_key(ctx, generation)
        async with ctx.db.transaction() as uow:
            # Two processes starting together: the first insert of this generation wins.
            await store.insert_key(uow.conn, ctx.db.dialect, key, sealed)
        async with ctx.db.read() as conn:
            found = await store.newest(conn)
        assert found is not None
    return _opened(ctx, *found)


async def rotate(ctx: ServiceContext) -> SigningKey:
    """Make a new key the signing one; the old one stays published until its tokens expire."""
    previous = await current_key(ctx)
    key, sealed = _new_key(ctx, previous.generation + 1)
    async with ctx.db.transaction() as uow:
        if not await store.insert_key(uow.conn, ctx.db.dialect, key, sealed):
            raise RuntimeError("another rotation happened at the same time; run it again")
        await store.retire(uow.conn, previous.kid, key.created_at)
    return key


async def published_keys(ctx: ServiceContext) -> list[SigningKey]:
    """The keys a verifier needs now: the signing one and those retired less than a token lifetime ago."""
    await current_key(ctx)
    now = ctx.clock()
    async with ctx.db.read() as conn:
        keys = await store.all_keys(conn)
    return [key for key, _sealed in keys if rules.is_published(key, now)]


async def jwks(ctx: ServiceContext) -> dict[str, Any]:
    """The JSON Web Key Set served at /.well-known/jwks.json."""
    return {"keys": [key.public_jwk() for key in await published_keys(ctx)]}


async def issue(ctx: ServiceContext, session: Session) -> str:
    """The compact JWS for a session's outcome, signed with the current key."""
    key = await current_key(ctx)
    assert key.private_jwk is not None
    header = {"alg": rules.ALGORITHM, "kid": key.kid, "typ": "JWT"}
    with warnings.catch_warnings():
        # joserfc flags EdDSA as superseded by the fully-specified "Ed25519" name (RFC 9864);
        # the signature is the same, and EdDSA is what verifiers everywhere accept today.
        warnings.simplefilter("ignore", SecurityWarning)
        return jwt.encode(
            header, rules.claims(session, ctx.clock()), OKPKey.import_key(dict(key.private_jwk)), algorithms=["EdDSA"]
        )

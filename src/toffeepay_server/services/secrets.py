"""Secrets of the installation that no operator configured: generated once, kept in the database
(encrypted with the installation key, like every stored secret)."""

from __future__ import annotations

import secrets

from ..store import secrets as store
from .context import ServiceContext


async def installation_secret(ctx: ServiceContext, name: str) -> str:
    """The secret `name`, the same in every process; created on first use."""
    async with ctx.db.transaction() as uow:
        return await store.get_or_create(uow.conn, ctx.db.dialect, name, secrets.token_urlsafe(48), ctx.clock())


def seal(ctx: ServiceContext, value: str, purpose: str = "signing_keys.private_key") -> str:
    """What a secret generated here (a signing key) is stored as: encrypted with the
    installation key (`purpose` names where it is stored, and binds the ciphertext to it)."""
    return ctx.db.keyring.box().seal(value, purpose)


def unseal(ctx: ServiceContext, stored: str, purpose: str = "signing_keys.private_key") -> str:
    """The secret `seal` stored."""
    return ctx.db.keyring.box().open(stored, purpose)


async def check_installation_key(ctx: ServiceContext) -> None:
    """Raise KeyMismatch unless this process's installation key opens the database's secrets.

    The first start stores a value sealed with its key; any later start with another key
    (a lost key file, a changed TOFFEEPAY_SECRET_KEY) is refused here, before it serves.
    """
    await installation_secret(ctx, "key_check")

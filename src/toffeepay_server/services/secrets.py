"""Secrets of the installation that no operator configured: generated once, kept in the database."""

from __future__ import annotations

import secrets

from ..store import secrets as store
from .context import ServiceContext


async def installation_secret(ctx: ServiceContext, name: str) -> str:
    """The secret `name`, the same in every process; created on first use."""
    async with ctx.db.transaction() as uow:
        return await store.get_or_create(uow.conn, ctx.db.dialect, name, secrets.token_urlsafe(48), ctx.clock())


def seal(ctx: ServiceContext, value: str) -> str:
    """What a secret generated here (a signing key) is stored as.

    The one place where such secrets go to the database: encryption at rest with the
    installation key belongs here, and `unseal` is its inverse.
    """
    return value


def unseal(ctx: ServiceContext, stored: str) -> str:
    """The secret `seal` stored."""
    return stored

"""Idempotency-Key records: claim a key for a request, store its answer, release or purge it.

Every transaction on the records is opened here; the API gateway decides when to call.
`finish` alone writes inside the caller's unit of work, so the answer commits with the
request's own writes.
"""

from __future__ import annotations

from datetime import timedelta

from ..store import idempotency as store
from ..store.database import UnitOfWork
from .context import ServiceContext

LostClaim = store.LostClaim
Stored = store.Stored


async def claim(
    ctx: ServiceContext, *, api_key_id: str, key: str, request_hash: str, owner: str, lease: timedelta
) -> Stored | None:
    """Claim the key for this request as `owner`; None when claimed, else the record already there."""
    now = ctx.clock()
    if await store.claim_new(
        ctx.db, api_key_id=api_key_id, key=key, request_hash=request_hash, owner=owner, now=now, lease=lease
    ):
        return None  # the usual case: a key not used before
    async with ctx.db.transaction() as uow:
        return await store.claim(
            uow.conn,
            ctx.db.dialect,
            api_key_id=api_key_id,
            key=key,
            request_hash=request_hash,
            owner=owner,
            now=now,
            lease=lease,
        )


async def finish(
    uow: UnitOfWork, *, api_key_id: str, key: str, owner: str, status: int, headers: list[list[str]], body: bytes
) -> None:
    """Store the answer in the request's own unit of work; raises LostClaim when the key is no longer `owner`'s."""
    await store.finish(uow.conn, api_key_id=api_key_id, key=key, owner=owner, status=status, headers=headers, body=body)


async def release(ctx: ServiceContext, *, api_key_id: str, key: str, owner: str) -> None:
    """Forget the claim (the answer is not stored), unless another request took it over."""
    async with ctx.db.transaction() as uow:
        await store.release(uow.conn, api_key_id=api_key_id, key=key, owner=owner)


async def purge(ctx: ServiceContext) -> None:
    """Delete records past their retention."""
    async with ctx.db.transaction() as uow:
        await store.purge(uow.conn, ctx.clock())

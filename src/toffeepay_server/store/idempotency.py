"""Stored answers of mutating requests made with an Idempotency-Key.

A claim carries an `owner` token. `finish` and `release` act only while the claim is still
the caller's, so a request whose lease ran out and was taken over by a retry cannot also
store its answer: `finish` raises LostClaim and the caller rolls its transaction back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.idempotency import IdempotencyState
from . import prepared
from .database import Database
from .prepared import Prepared
from .tables import idempotency_keys as t

RETENTION = timedelta(hours=24)


class LostClaim(Exception):
    """Another request took the key over (this one outlived its lease): roll back."""


@dataclass(frozen=True, slots=True)
class Stored:
    request_hash: str
    state: IdempotencyState
    response_status: int | None
    response_headers: list[list[str]] | None
    response_body: bytes | None


_CLAIMED = ("api_key_id", "key", "request_hash", "owner", "state", "locked_until", "created_at")
_CLAIM = Prepared(
    lambda engine: (
        (pg_insert if engine == "postgresql" else sqlite_insert)(t)
        .values({name: bindparam(name) for name in _CLAIMED})
        .on_conflict_do_nothing()
    )
)


def _claimed(
    *, api_key_id: str, key: str, request_hash: str, owner: str, now: datetime, lease: timedelta
) -> dict[str, Any]:
    return dict(
        api_key_id=api_key_id,
        key=key,
        request_hash=request_hash,
        owner=owner,
        state=IdempotencyState.RUNNING.value,
        locked_until=now + lease,
        created_at=now,
    )


async def claim_new(
    db: Database, *, api_key_id: str, key: str, request_hash: str, owner: str, now: datetime, lease: timedelta
) -> bool:
    """Claim a key no request used yet, in one statement that commits on its own; False when
    the key has a record (then `claim` decides)."""
    values = _claimed(api_key_id=api_key_id, key=key, request_hash=request_hash, owner=owner, now=now, lease=lease)
    return await db.execute_alone(_CLAIM, values) == 1


async def claim(
    conn: AsyncConnection,
    dialect: str,
    *,
    api_key_id: str,
    key: str,
    request_hash: str,
    owner: str,
    now: datetime,
    lease: timedelta,
) -> Stored | None:
    """Claim the key for this request as `owner`; None when claimed, else what is already there."""
    values = _claimed(api_key_id=api_key_id, key=key, request_hash=request_hash, owner=owner, now=now, lease=lease)
    if await prepared.execute(conn, _CLAIM, values) == 1:
        return None
    # Take over a record past its retention, or a run whose process died (lease over).
    taken = await conn.execute(
        update(t)
        .where(
            t.c.api_key_id == api_key_id,
            t.c.key == key,
            or_(
                t.c.created_at < now - RETENTION,
                (t.c.state == IdempotencyState.RUNNING.value) & (t.c.locked_until < now),
            ),
        )
        .values(**values, response_status=None, response_headers=None, response_body=None)
    )
    if taken.rowcount == 1:
        return None
    row = (await conn.execute(select(t).where(t.c.api_key_id == api_key_id, t.c.key == key))).first()
    if row is None:  # released between our insert and select: try again
        return await claim(
            conn,
            dialect,
            api_key_id=api_key_id,
            key=key,
            request_hash=request_hash,
            owner=owner,
            now=now,
            lease=lease,
        )
    return Stored(
        row.request_hash, IdempotencyState(row.state), row.response_status, row.response_headers, row.response_body
    )


async def peek(conn: AsyncConnection, *, api_key_id: str, key: str) -> Stored | None:
    row = (await conn.execute(select(t).where(t.c.api_key_id == api_key_id, t.c.key == key))).first()
    if row is None:
        return None
    return Stored(
        row.request_hash, IdempotencyState(row.state), row.response_status, row.response_headers, row.response_body
    )


async def finish(
    conn: AsyncConnection,
    *,
    api_key_id: str,
    key: str,
    owner: str,
    status: int,
    headers: list[list[str]],
    body: bytes,
) -> None:
    """Store the answer; raises LostClaim when the key is no longer this owner's."""
    done = await prepared.execute(
        conn,
        _FINISH,
        {
            "api_key_id": api_key_id,
            "key": key,
            "owner": owner,
            "running": IdempotencyState.RUNNING.value,
            "state": IdempotencyState.DONE.value,
            "response_status": status,
            "response_headers": headers,
            "response_body": body,
        },
    )
    if done != 1:
        raise LostClaim(key)


_FINISH = Prepared(
    update(t)
    .where(
        t.c.api_key_id == bindparam("api_key_id"),
        t.c.key == bindparam("key"),
        t.c.owner == bindparam("owner"),
        t.c.state == bindparam("running"),
    )
    .values({name: bindparam(name) for name in ("state", "response_status", "response_headers", "response_body")})
)


async def release(conn: AsyncConnection, *, api_key_id: str, key: str, owner: str) -> None:
    """Forget the claim (the answer is not stored), unless another request took it over."""
    await conn.execute(
        delete(t).where(
            t.c.api_key_id == api_key_id,
            t.c.key == key,
            t.c.owner == owner,
            t.c.state == IdempotencyState.RUNNING.value,
        )
    )


async def purge(conn: AsyncConnection, now: datetime) -> Any:
    return await conn.execute(delete(t).where(t.c.created_at < now - RETENTION))

"""Registering games and managing their API keys (operator actions)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from weakref import WeakKeyDictionary

from ..domain import ids
from ..domain.errors import DomainError, Reason
from ..domain.keys import Mode, Principal, display_prefix, generate_key, hash_key, mode_of
from ..domain.sessions import GAME_ID
from ..store import games as store
from ..store.database import Database
from .context import ServiceContext


@dataclass(frozen=True, slots=True)
class NewGame:
    game_id: str
    sandbox_api_key: str
    live_api_key: str


async def _issue_key(ctx: ServiceContext, conn, game_id: str, mode: Mode) -> str:  # type: ignore[no-untyped-def]
    key = generate_key(mode)
    await store.insert_key(
        conn,
        store.KeyRecord(
            id=ctx.new_id(ids.API_KEY),
            game_id=game_id,
            mode=mode,
            key_hash=hash_key(key),
            display_prefix=display_prefix(key),
            created_at=ctx.clock(),
            revoked_at=None,
        ),
    )
    return key


async def create_game(ctx: ServiceContext, game_id: str) -> NewGame:
    if not GAME_ID.fullmatch(game_id):
        raise DomainError(Reason.INVALID_GAME_ID, "game_id must match [a-z0-9_-]{1,64}")
    async with ctx.db.transaction() as uow:
        if await store.game_exists(uow.conn, game_id):
            raise DomainError(Reason.INVALID_GAME_ID, f"game {game_id!r} already exists")
        await store.insert_game(uow.conn, game_id, ctx.clock())
        sandbox = await _issue_key(ctx, uow.conn, game_id, Mode.SANDBOX)
        live = await _issue_key(ctx, uow.conn, game_id, Mode.LIVE)
    return NewGame(game_id, sandbox, live)


async def roll_key(ctx: ServiceContext, game_id: str, mode: Mode) -> str:
    """Revoke the game's keys of this mode and issue a new one, atomically."""
    async with ctx.db.transaction() as uow:
        if not await store.game_exists(uow.conn, game_id):
            raise DomainError(Reason.NOT_FOUND, f"no game {game_id!r}")
        await store.revoke_keys(uow.conn, ctx.clock(), game_id=game_id, mode=mode)
        key = await _issue_key(ctx, uow.conn, game_id, mode)
    ctx.db.keys_changed()
    return key


async def add_key(ctx: ServiceContext, game_id: str, mode: Mode) -> str:
    """Issue one more key for a game and mode, leaving its other keys working (e.g. a CLI's short-lived key)."""
    async with ctx.db.transaction() as uow:
        if not await store.game_exists(uow.conn, game_id):
            raise DomainError(Reason.NOT_FOUND, f"no game {game_id!r}")
        return await _issue_key(ctx, uow.conn, game_id, mode)


async def revoke_key(ctx: ServiceContext, key_or_id: str, *, game_id: str | None = None) -> int:
    """Revoke one key, named by its id (`key_...`) or by the secret key itself (of `game_id` when given)."""
    async with ctx.db.transaction() as uow:
        if mode_of(key_or_id) is not None:
            record = await store.key_by_hash(uow.conn, hash_key(key_or_id))
            if record is None:
                raise DomainError(Reason.NOT_FOUND, "no such key")
            key_or_id = record.id
        revoked = await store.revoke_keys(uow.conn, ctx.clock(), key_id=key_or_id, game_id=game_id)
    ctx.db.keys_changed()
    return revoked


async def get_key(ctx: ServiceContext, game_id: str, key_id: str) -> store.KeyRecord:
    async with ctx.db.read() as conn:
        found = [k for k in await store.keys_of(conn, game_id) if k.id == key_id]
    if not found:
        raise DomainError(Reason.NOT_FOUND, f"no key {key_id!r} in game {game_id!r}")
    return found[0]


async def list_keys(ctx: ServiceContext, game_id: str) -> list[store.KeyRecord]:
    async with ctx.db.read() as conn:
        return await store.keys_of(conn, game_id)


async def list_games(ctx: ServiceContext) -> list[str]:
    async with ctx.db.read() as conn:
        return await store.list_games(conn)


async def authenticate(ctx: ServiceContext, key: str) -> Principal | None:
    """The principal of a live, unrevoked key; None for anything else."""
    if mode_of(key) is None or len(key) > 200:
        return None
    key_hash = hash_key(key)
    # Kept while no key changed since it was read (in any process), so a revoked or rolled
    # key stops working on the next request (see Database.keys_version).
    version = ctx.db.keys_version()
    known = _known.setdefault(ctx.db, {})
    cached = known.get(key_hash)
    if cached is not None and version is not None and cached[0] == version:
        record: store.KeyRecord | None = cached[1]
    else:
        async with ctx.db.point_read() as conn:
            record = await store.key_by_hash(conn, key_hash)
        if version is not None and record is not None:
            if len(known) >= _KNOWN_KEYS:
                known.clear()
            known[key_hash] = (version, record)
    # The lookup is by hash, so timing reveals nothing about the key itself.
    if record is None or record.revoked_at is not None:
        return None
    now = ctx.clock()
    stale = record.last_used_at is None or now - record.last_used_at >= KEY_USE_RESOLUTION
    # The last use is shown to people, so once a minute is enough (and one write per process).
    if stale and _touched.get(record.id, _NEVER) <= now - KEY_USE_RESOLUTION:
        _touched[record.id] = now
        async with ctx.db.transaction() as uow:
            await store.touch_key(uow.conn, record.id, now)
    return Principal(record.id, record.game_id, record.mode)


KEY_USE_RESOLUTION = timedelta(minutes=1)
_NEVER = datetime.min.replace(tzinfo=UTC)
# Keys this process recorded a use of, and when: concurrent requests write it once.
_touched: dict[str, datetime] = {}
# Keys looked up, by hash, with the database's commit version they were read at.
_known: WeakKeyDictionary[Database, dict[str, tuple[int, store.KeyRecord]]] = WeakKeyDictionary()
_KNOWN_KEYS = 10_000

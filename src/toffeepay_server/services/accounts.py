"""Dashboard accounts: creating them, roles per game, signing in and out, idle sessions.

Passwords are hashed with Argon2id (argon2-cffi's defaults, the parameters OWASP
recommends), off the event loop since each hash takes tens of milliseconds on purpose.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..domain import ids
from ..domain.accounts import (
    Account,
    Role,
    check_password,
    idle_expired,
    new_password,
    new_session_token,
    normalize_email,
    session_token_hash,
    touch_due,
)
from ..domain.errors import DomainError, Reason
from ..store import accounts as store
from ..store import games as games_store
from . import audit
from .audit import Actor
from .context import ServiceContext

FIRST_OPERATOR_EMAIL = "operator@toffeepay.local"
_hasher = PasswordHasher()
# Verified when the email is unknown, so a wrong email takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not a password of anyone")


async def _hash(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def _verify(password_hash: str, password: str) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


async def create_user(
    ctx: ServiceContext, email: str, password: str, *, operator: bool = False, actor: Actor = audit.COMMAND_LINE
) -> store.UserRecord:
    email = normalize_email(email)
    record = store.UserRecord(
        id=ctx.new_id(ids.USER),
        email=email,
        password_hash=await _hash(check_password(password)),
        operator=operator,
        created_at=ctx.clock(),
    )
    with audit.recording(ctx, actor, "user.created", target=email, details={"operator": operator}):
        async with ctx.db.transaction() as uow:
            if await store.user_by_email(uow.conn, email) is not None:
                raise DomainError(Reason.INVALID_ARGUMENT, f"an account for {email} already exists")
            await store.insert_user(uow.conn, record)
    return record


async def _user(conn, email: str) -> store.UserRecord:  # type: ignore[no-untyped-def]
    user = await store.user_by_email(conn, normalize_email(email))
    if user is None:
        raise DomainError(Reason.NOT_FOUND, f"no account for {email}")
    return user


async def grant(
    ctx: ServiceContext, email: str, game_id: str, role: Role, *, actor: Actor = audit.COMMAND_LINE
) -> None:
    """Give an account a role in a game (replacing the role it had there)."""
    with audit.recording(
        ctx, actor, "member.granted", game_id=game_id, target=normalize_email(email), details={"role": role.value}
    ):
        async with ctx.db.transaction() as uow:
            user = await _user(uow.conn, email)
            if not await games_store.game_exists(uow.conn, game_id):
                raise DomainError(Reason.NOT_FOUND, f"no game {game_id!r}")
            await store.put_membership(uow.conn, user.id, game_id, role, ctx.clock())


async def revoke(ctx: ServiceContext, email: str, game_id: str, *, actor: Actor = audit.COMMAND_LINE) -> None:
    """Take an account's role in a game away."""
    with audit.recording(ctx, actor, "member.revoked", game_id=game_id, target=normalize_email(email)):
        async with ctx.db.transaction() as uow:
            user = await _user(uow.conn, email)
            if not await store.delete_membership(uow.conn, user.id, game_id):
                raise DomainError(Reason.NOT_FOUND, f"{user.email} has no role in {game_id!r}")


async def members(ctx: ServiceContext, game_id: str) -> list[tuple[str, Role, datetime]]:
    async with ctx.db.read() as conn:
        return await store.members_of(conn, game_id)


async def sign_in(ctx: ServiceContext, email: str, password: str, *, address: str | None) -> str | None:
    """A new session token for the right email and password; None otherwise (never says which was wrong)."""
    try:
        email = normalize_email(email)
    except DomainError:
        email = ""
    async with ctx.db.lookup() as conn:
        user = await store.user_by_email(conn, email) if email else None
    ok = await _verify(user.password_hash if user else _DUMMY_HASH, password[:1024])
    if user is None or not ok:
        return None
    token = new_session_token()
    now = ctx.clock()
    async with ctx.db.transaction() as uow:
        if _hasher.check_needs_rehash(user.password_hash):
            await store.set_password_hash(uow.conn, user.id, await _hash(password))
        await store.insert_session(
            uow.conn,
            store.SessionRecord(session_token_hash(token), user.id, now, now),
            address[:64] if address else None,
        )
    return token


async def account_of(ctx: ServiceContext, token: str | None, *, idle: timedelta) -> Account | None:
    """The account signed in with this token, unless it is unknown or has been idle too long."""
    if not token or len(token) > 100:
        return None
    token_hash = session_token_hash(token)
    now = ctx.clock()
    async with ctx.db.lookup() as conn:
        session = await store.get_session(conn, token_hash)
        user = await store.user_by_id(conn, session.user_id) if session else None
        roles = await store.roles_of(conn, user.id) if user else {}
    if session is None or user is None:
        return None
    if idle_expired(session.last_seen_at, now, idle):
        async with ctx.db.transaction() as uow:
            await store.delete_session(uow.conn, token_hash)
        return None
    if touch_due(session.last_seen_at, now, idle):
        async with ctx.db.transaction() as uow:
            await store.touch_session(uow.conn, token_hash, now)
    return Account(user.id, user.email, user.operator, roles)


async def sign_out(ctx: ServiceContext, token: str | None, *, idle: timedelta) -> None:
    if not token or len(token) > 100:
        return
    async with ctx.db.transaction() as uow:
        await store.delete_session(uow.conn, session_token_hash(token))
        # Sessions idle past the timeout are dead anyway: drop them while here.
        await store.delete_idle_sessions(uow.conn, ctx.clock() - idle)


@dataclass(frozen=True, slots=True)
class FirstOperator:
    email: str
    password: str


async def ensure_first_operator(ctx: ServiceContext) -> FirstOperator | None:
    """On an installation with no operator account yet, create one with a generated password."""
    async with ctx.db.read() as conn:
        if await store.count_operators(conn):
            return None
        taken = await store.user_by_email(conn, FIRST_OPERATOR_EMAIL) is not None
    if taken:
        return None
    password = new_password()
    await create_user(ctx, FIRST_OPERATOR_EMAIL, password, operator=True)
    return FirstOperator(FIRST_OPERATOR_EMAIL, password)


async def games_of(ctx: ServiceContext, account: Account) -> list[str]:
    """The games an account may open: every game for an operator."""
    if account.operator:
        async with ctx.db.read() as conn:
            return await games_store.list_games(conn)
    return sorted(account.roles)


@dataclass(frozen=True, slots=True)
class Reveal:
    """A new secret to show once, on the page an action redirects to, so that reloading that
    page neither shows it again nor repeats the action. `what` names the page it belongs to
    (an endpoint id, or `api_key:<mode>`); `until` says how long a previous secret still works."""

    what: str
    secret: str
    until: str | None = None


async def reveal_once(ctx: ServiceContext, token: str, reveal: Reveal) -> None:
    """Keep `reveal` for the browser session holding `token`, replacing any not yet shown."""
    value = json.dumps({"what": reveal.what, "secret": reveal.secret, "until": reveal.until})
    async with ctx.db.transaction() as uow:
        await store.set_reveal(uow.conn, session_token_hash(token), value)


async def take_reveal(ctx: ServiceContext, token: str, what: str) -> Reveal | None:
    """The secret kept for this page, forgotten as it is returned; None when there is none."""
    token_hash = session_token_hash(token)
    async with ctx.db.transaction() as uow:
        value = await store.get_reveal(uow.conn, token_hash)
        if value is None:
            return None
        kept = json.loads(value)
        if kept["what"] != what:
            return None
        await store.clear_reveal(uow.conn, token_hash)
    return Reveal(kept["what"], kept["secret"], kept["until"])

"""Dashboard accounts: who may do what to a game (roles), and the rules of emails and passwords."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from .errors import DomainError, Reason
from .keys import Mode

MIN_PASSWORD = 12
MAX_PASSWORD = 1024
MAX_EMAIL = 254
# A pragmatic shape check: one @, no spaces or control characters, a dot in the domain.
_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+")
DEFAULT_IDLE_TIMEOUT = timedelta(hours=12)


class Role(StrEnum):
    VIEWER = "viewer"
    DEVELOPER = "developer"
    OWNER = "owner"


_RANK = {Role.VIEWER: 0, Role.DEVELOPER: 1, Role.OWNER: 2}


class Action(StrEnum):
    """What a dashboard request may ask; each needs at least one role."""

    READ = "read"
    MANAGE_WEBHOOKS = "manage_webhooks"
    MANAGE_SANDBOX_KEYS = "manage_sandbox_keys"
    MANAGE_LIVE_KEYS = "manage_live_keys"
    MANAGE_MEMBERS = "manage_members"
    REFUND = "refund"


_NEEDS = {
    Action.READ: Role.VIEWER,
    Action.MANAGE_WEBHOOKS: Role.DEVELOPER,
    Action.MANAGE_SANDBOX_KEYS: Role.DEVELOPER,
    Action.REFUND: Role.DEVELOPER,
    Action.MANAGE_LIVE_KEYS: Role.OWNER,
    Action.MANAGE_MEMBERS: Role.OWNER,
}


class AccessDenied(Exception):
    """The signed-in account's role does not allow this; nothing was changed."""


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    email: str
    operator: bool
    # game_id -> role; an operator acts as owner of every game.
    roles: dict[str, Role]

    def role_in(self, game_id: str) -> Role | None:
        return Role.OWNER if self.operator else self.roles.get(game_id)

    def may(self, action: Action, game_id: str) -> bool:
        role = self.role_in(game_id)
        return role is not None and _RANK[role] >= _RANK[_NEEDS[action]]

    def require(self, action: Action, game_id: str) -> None:
        if not self.may(action, game_id):
            raise AccessDenied(f"{action.value} on {game_id} needs the {_NEEDS[action].value} role")


def key_action(mode: Mode) -> Action:
    return Action.MANAGE_LIVE_KEYS if mode is Mode.LIVE else Action.MANAGE_SANDBOX_KEYS


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise DomainError(Reason.INVALID_ARGUMENT, "role must be owner, developer or viewer") from None


def normalize_email(value: str) -> str:
    email = value.strip().lower()
    if len(email) > MAX_EMAIL or not _EMAIL.fullmatch(email):
        raise DomainError(Reason.INVALID_ARGUMENT, "email must look like name@example.com")
    return email


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise DomainError(Reason.INVALID_ARGUMENT, f"password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


def new_password() -> str:
    """A generated password for a first account: 24 URL-safe characters."""
    return secrets.token_urlsafe(18)


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def session_token_hash(token: str) -> str:
    """Dashboard session tokens are long random secrets: stored and looked up by SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()


def idle_expired(last_seen: datetime, now: datetime, idle: timedelta) -> bool:
    return now - last_seen >= idle


def touch_due(last_seen: datetime, now: datetime, idle: timedelta) -> bool:
    """Record activity at most once a minute (or per tenth of a short idle timeout)."""
    return now - last_seen >= min(timedelta(minutes=1), idle / 10)

"""API keys: `sk_test_...` for sandbox, `sk_live_...` for live, stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets
from enum import StrEnum


class Mode(StrEnum):
    SANDBOX = "sandbox"
    LIVE = "live"


KEY_PREFIX = {Mode.SANDBOX: "sk_test_", Mode.LIVE: "sk_live_"}


def generate_key(mode: Mode) -> str:
    """A new secret key with 256 bits of entropy."""
    return KEY_PREFIX[mode] + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """Keys are long random secrets, so a fast hash is safe to store and look up by."""
    return hashlib.sha256(key.encode()).hexdigest()


def mode_of(key: str) -> Mode | None:
    for mode, prefix in KEY_PREFIX.items():
        if key.startswith(prefix):
            return mode
    return None


def display_prefix(key: str) -> str:
    """What may be shown of a key once it is stored: `sk_test_AbCd…`."""
    return key[: len(KEY_PREFIX[mode_of(key) or Mode.SANDBOX]) + 4]


class Principal:
    """Who is calling: one API key, of one game, in one mode."""

    __slots__ = ("api_key_id", "game_id", "mode")

    def __init__(self, api_key_id: str, game_id: str, mode: Mode) -> None:
        self.api_key_id = api_key_id
        self.game_id = game_id
        self.mode = mode

    @property
    def live(self) -> bool:
        return self.mode is Mode.LIVE

    def __repr__(self) -> str:
        return f"Principal({self.game_id!r}, {self.mode.value})"

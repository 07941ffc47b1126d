"""A short-lived sandbox key: the CLI mints one in the database and revokes it when done.

Keys are stored only hashed, so the CLI cannot read a game's existing key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from sqlalchemy import make_url
from sqlalchemy.exc import SQLAlchemyError

from ..config import Settings
from ..domain.keys import Mode
from ..services import games
from ..services.context import ServiceContext, run_with_context

T = TypeVar("T")


class DatabaseUnavailable(Exception):
    """The server's database cannot be used from here; the message says what to do."""


def _with_db(settings: Settings, action: Callable[[ServiceContext], Awaitable[T]]) -> T:
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        # Opening it would create an empty database; this is a wrong working directory or URL.
        raise DatabaseUnavailable(
            f"no database at {url.database} (run this where `toffeepay serve` runs, "
            "set TOFFEEPAY_DATABASE_URL, or pass --api-key)"
        )

    try:
        return run_with_context(settings, action, pool_size=1)
    except (SQLAlchemyError, OSError) as exc:
        raise DatabaseUnavailable(
            f"cannot use the database ({type(exc).__name__}); set TOFFEEPAY_DATABASE_URL "
            "to the server's database, or pass --api-key"
        ) from exc


@contextmanager
def sandbox_key(settings: Settings, game_id: str) -> Iterator[str]:
    """A new sandbox key of `game_id`, revoked on exit (the game's other keys keep working)."""
    key = _with_db(settings, lambda ctx: games.add_key(ctx, game_id, Mode.SANDBOX))
    try:
        yield key
    finally:
        _with_db(settings, lambda ctx: games.revoke_key(ctx, key))

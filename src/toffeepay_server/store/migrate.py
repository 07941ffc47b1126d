"""Apply migrations (on start and by `toffeepay migrate`)."""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config

from .database import async_url, create_private_sqlite_file
from .secret_box import Keyring

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str, keyring: Keyring | None = None) -> Config:
    config = Config()
    if keyring is not None:  # seals secrets written in clear by older versions
        config.attributes["toffeepay_keyring"] = keyring
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", async_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, keyring: Keyring | None = None) -> None:
    """Bring the schema to the newest revision. Safe to call from inside an event loop.

    `keyring` (else the environment's) seals secrets that older versions stored in clear."""
    create_private_sqlite_file(database_url)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            command.upgrade(alembic_config(database_url, keyring), "head")
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    # env.py runs its own event loop, so it gets a thread of its own.
    thread = threading.Thread(target=run, name="toffeepay-migrate")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def head_revisions() -> set[str]:
    """The revisions a current schema is at: the heads of the migrations shipped with this code."""
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return set(ScriptDirectory.from_config(config).get_heads())

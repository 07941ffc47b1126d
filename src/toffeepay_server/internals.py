"""The private parts of libraries the server relies on, checked once at start-up.

These couplings have no public API to use instead:

- store/database.py, store/prepared.py and store/group_commit.py reach the sqlite3
  connection under SQLAlchemy's aiosqlite adapter (`driver_connection._conn`) to send
  BEGIN, the hot statements and COMMIT without SQLAlchemy's execution layer.
- store/prepared.py begins the transaction of SQLAlchemy's asyncpg adapter
  (`_transaction`, `_start_transaction`) before running a statement on its asyncpg
  connection, and reads a compiled statement's positional parameters and result columns.
- store/sqlite_inline.py stands in for aiosqlite's private queue to its thread (`_tx`).

Each is tested with the exact release pinned in pyproject.toml. Another release may have
moved them, so the server refuses to start with one, saying which, unless the operator sets
TOFFEEPAY_ALLOW_UNTESTED_LIBRARIES=1 (then it warns and starts).
"""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version

from .config import ConfigError

ESCAPE_HATCH = "TOFFEEPAY_ALLOW_UNTESTED_LIBRARIES"
# Distribution -> (the release the coupling is tested with, what the server reaches into).
TESTED: dict[str, tuple[str, str]] = {
    "aiosqlite": ("0.22.1", "Connection._tx and Connection._conn, run inline on the event loop"),
    "sqlalchemy": (
        "2.1.9",
        "the aiosqlite adapter's driver_connection, the asyncpg adapter's transaction start, "
        "compiled statements' positional parameters and result columns",
    ),
}


def untested() -> list[str]:
    """One line per library whose installed release is not the one its coupling was tested with."""
    found = []
    for name, (tested, what) in TESTED.items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = "missing"
        if installed != tested:
            found.append(f"{name} {installed} (tested with {tested}: {what})")
    return found


def check_internals(environ: dict[str, str] | os._Environ[str] = os.environ) -> list[str]:
    """Refuse (ConfigError) an untested release unless the escape hatch is set; returns what was let through."""
    problems = untested()
    if problems and environ.get(ESCAPE_HATCH) != "1":
        raise ConfigError(
            "these libraries are not the releases the server was tested with: "
            + "; ".join(problems)
            + f". Install the pinned releases, or set {ESCAPE_HATCH}=1 to start anyway."
        )
    return problems

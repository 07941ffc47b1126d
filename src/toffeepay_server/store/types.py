"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, LargeBinary, Text
from sqlalchemy.types import TypeDecorator


class Instant(TypeDecorator[datetime]):
    """An aware UTC datetime stored as integer microseconds since the epoch.

    Exact, ordered and identical on both engines (no textual dates on SQLite).
    """

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> int | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to an Instant column")
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds

    def process_result_value(self, value: int | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        seconds, micros = divmod(value, 1_000_000)
        return datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# json.dumps with these options would build an encoder per call.
_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class JsonText(TypeDecorator[Any]):
    """JSON kept as compact text, so both engines store the same bytes."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        return _compact(value)

    def process_result_value(self, value: str | None, dialect: Any) -> Any:
        return None if value is None else json.loads(value)


def _box(dialect: Any) -> Any:
    keyring = getattr(dialect, "toffeepay_keyring", None)
    if keyring is None:
        raise RuntimeError("this engine has no installation key: create it through store.database.Database")
    return keyring.box()


class Sealed(TypeDecorator[str]):
    """A secret string, stored encrypted with the installation key (see secret_box.py).

    `purpose` (the column's name) is bound into the ciphertext. The key comes from the
    engine: `Database` gives each of its engines the installation's Keyring.
    """

    impl = Text
    cache_ok = True

    def __init__(self, purpose: str) -> None:
        super().__init__()
        self.purpose = purpose

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else _box(dialect).seal(value, self.purpose)

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else _box(dialect).open(value, self.purpose)


class SealedBytes(TypeDecorator[bytes]):
    """Bytes that may hold a secret (a stored answer), encrypted like Sealed."""

    impl = LargeBinary
    cache_ok = True

    def __init__(self, purpose: str) -> None:
        super().__init__()
        self.purpose = purpose

    def process_bind_param(self, value: bytes | None, dialect: Any) -> bytes | None:
        return None if value is None else _box(dialect).seal_bytes(bytes(value), self.purpose)

    def process_result_value(self, value: bytes | None, dialect: Any) -> bytes | None:
        return None if value is None else _box(dialect).open_bytes(bytes(value), self.purpose)

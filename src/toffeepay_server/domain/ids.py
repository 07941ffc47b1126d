"""Object ids: a prefix, `_`, and a UUIDv7 in 26 base32 characters (TypeID)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from typeid import TypeID

SESSION = "sess"
PAYMENT = "pay"
DISPUTE = "dp"
REFUND = "re"
API_KEY = "key"
ENDPOINT = "we"
DELIVERY = "dlv"

IdFactory = Callable[[str], str]


def new_id(prefix: str) -> str:
    """A random, time-ordered id such as `sess_01kw1w89abcdefghij...`."""
    return str(TypeID(prefix=prefix))


def new_event_id() -> str:
    """Webhook event ids are plain UUIDs (seed 000's sample)."""
    return str(uuid.uuid4())


def has_prefix(value: str, prefix: str) -> bool:
    head, sep, tail = value.partition("_")
    return bool(sep) and head == prefix and len(tail) == 26

"""Object ids: a prefix, `_`, and a UUIDv7 in 26 base32 characters (TypeID)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from typeid import TypeID

from .errors import DomainError, Reason

SESSION = "sess"
PAYMENT = "pay"
DISPUTE = "dp"
REFUND = "re"
API_KEY = "key"
ENDPOINT = "we"
DELIVERY = "dlv"
USER = "usr"
ATTEMPT = "atmpt"
REPLAY = "rpl"

IdFactory = Callable[[str], str]


def new_id(prefix: str) -> str:
    """A random, time-ordered id such as `sess_01kw1w89abcdefghij...`."""
    return str(TypeID(prefix=prefix))


def new_event_id() -> str:
    """Webhook event ids are plain UUIDs (as in the Payments guide's sample): version 4, as
    `str(uuid.uuid4())` writes it, without building a `uuid.UUID` (half the time)."""
    value = int.from_bytes(os.urandom(16)) & _V4_KEEP | _V4_SET
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# The version (4) and variant (RFC 4122) bits of a random UUID, as uuid.UUID(version=4) sets them.
_V4_KEEP = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_V4_SET = (0x4000 << 64) | (0x8000 << 48)


def has_prefix(value: str, prefix: str) -> bool:
    head, sep, tail = value.partition("_")
    return bool(sep) and head == prefix and len(tail) == 26


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def requested_id(value: str, name: str) -> str:
    """An id named in a request: control characters are refused (they name no object on any engine)."""
    if _CONTROL.search(value):
        raise DomainError(Reason.INVALID_ARGUMENT, f"{name} contains control characters")
    return value

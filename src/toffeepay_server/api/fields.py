"""Every field of a decoded request, checked once for what no RPC accepts.

Text (ids, `user_id`, `item.title`, metadata keys and values, descriptions, URLs) may not
carry control characters, and a timestamp must lie in 0001-01-01..9999-12-31 (a binary
request can carry any 64-bit seconds; the JSON decoder already refuses such values).
"""

from __future__ import annotations

from typing import Any

from protobuf import Message
from protobuf.wkt.google.protobuf.timestamp_pb import Timestamp

from ..domain.errors import DomainError, Reason
from ..domain.text import has_control

# RFC 3339's range, as google.protobuf.Timestamp defines it.
_MIN_SECONDS = -62_135_596_800
_MAX_SECONDS = 253_402_300_799
_MAX_NANOS = 999_999_999

# The reason a field's own rules use, so a control character is refused like other bad values.
_TEXT_REASON = {
    "return_url": Reason.INVALID_RETURN_URL,
    "image": Reason.INVALID_IMAGE,
    "url": Reason.INVALID_URL,
    "metadata": Reason.INVALID_METADATA,
}
_TIME_REASON = {
    "from": Reason.INVALID_TIME_RANGE,
    "to": Reason.INVALID_TIME_RANGE,
    "expires_at": Reason.INVALID_EXPIRES_AT,
}
_CONTROL_MESSAGE = "must not contain control characters (U+0000-U+001F, U+007F-U+009F)"


def check_request(message: Message) -> None:
    """Raise a DomainError naming the first field that breaks a rule above."""
    _check_message(message, "")


def _check_message(message: Message, prefix: str) -> None:
    for field in message.desc().fields:
        value = getattr(message, field.local_name)
        if value is None:
            continue
        name = prefix + field.name
        top = prefix.split(".", 1)[0] if prefix else field.name
        _check_value(value, name, top)


def _check_value(value: Any, name: str, top: str) -> None:
    if isinstance(value, str):
        if has_control(value):
            raise DomainError(_TEXT_REASON.get(top, Reason.INVALID_ARGUMENT), f"{name} {_CONTROL_MESSAGE}")
    elif isinstance(value, Timestamp):
        if not (_MIN_SECONDS <= value.seconds <= _MAX_SECONDS and 0 <= value.nanos <= _MAX_NANOS):
            reason = _TIME_REASON.get(name, Reason.INVALID_ARGUMENT)
            raise DomainError(reason, f"{name} is outside 0001-01-01T00:00:00Z..9999-12-31T23:59:59Z")
    elif isinstance(value, Message):
        _check_message(value, name + ".")
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and has_control(key):
                raise DomainError(_TEXT_REASON.get(top, Reason.INVALID_ARGUMENT), f"{name} key {_CONTROL_MESSAGE}")
            _check_value(item, f"{name}[{key!r}]" if isinstance(key, str) else name, top)
    elif isinstance(value, list):
        for item in value:
            _check_value(item, name, top)

"""Wire codecs: snake_case JSON with every implicit field, and refusals with reason codes."""

from __future__ import annotations

import json
import re
from typing import Any

from connectrpc.errors import ConnectError
from protobuf import Message
from protobuf.wkt.google.protobuf.timestamp_pb import Timestamp

from ..domain.errors import DomainError, Reason, reason_message
from .errors import connect_code
from .fields import check_request
from .json_depth import TOO_DEEP, too_deep

# A field named in a decode error, e.g. "for field pay.v1.Item.price".
_FIELD = re.compile(r"for field [\w.]+\.(\w+)\b")
_UNKNOWN = re.compile(r"key: '([^']*)' is unknown")
_FIELD_REASON = {
    "price": Reason.INVALID_PRICE,
    "limit": Reason.INVALID_LIMIT,
    "offset": Reason.INVALID_OFFSET,
    "metadata": Reason.INVALID_METADATA,
    "expires_at": Reason.INVALID_EXPIRES_AT,
    "from": Reason.INVALID_TIME_RANGE,
    "to": Reason.INVALID_TIME_RANGE,
}
_TIMESTAMP_KEYS = {"from": "from", "to": "to", "expires_at": "expires_at", "expiresAt": "expires_at"}


def _refusal(reason: Reason, message: str) -> ConnectError:
    return ConnectError(connect_code(reason), reason_message(reason, message))


def _checked(message: Any) -> Any:
    try:
        check_request(message)
    except DomainError as exc:
        raise _refusal(exc.reason, exc.detail) from None
    return message


def _bad_timestamp_field(data: bytes | bytearray) -> str | None:
    """Which top-level timestamp field of a JSON body does not parse (slow path only)."""
    try:
        body = json.loads(data)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    for key, name in _TIMESTAMP_KEYS.items():
        if key in body and body[key] is not None:
            try:
                Timestamp.from_json(json.dumps(body[key]))
            except Exception:
                return name
    return None


def json_decode_error(exc: Exception, data: bytes | bytearray) -> ConnectError:
    text = str(exc)
    if isinstance(exc, json.JSONDecodeError) or ("expected" in text and "line" in text):
        return _refusal(Reason.INVALID_ARGUMENT, "request body is not valid JSON")
    if match := _UNKNOWN.search(text):
        return _refusal(Reason.INVALID_ARGUMENT, f"unknown field {match.group(1)!r}")
    if "google.protobuf.Timestamp" in text:
        name = _bad_timestamp_field(data) or "timestamp"
        reason = _FIELD_REASON.get(name, Reason.INVALID_ARGUMENT)
        return _refusal(reason, f"{name} must be an RFC 3339 timestamp such as 2023-06-01T12:00:00Z")
    if match := _FIELD.search(text):
        name = match.group(1)
        reason = _FIELD_REASON.get(name, Reason.INVALID_ARGUMENT)
        detail = text[: match.start()].strip().rstrip(":")
        return _refusal(reason, f"field {name!r}: {detail}")
    if isinstance(exc, TypeError) and "cannot decode" in text:
        return _refusal(Reason.INVALID_ARGUMENT, "request body must be a JSON object")
    return _refusal(Reason.INVALID_ARGUMENT, f"malformed request: {text[:200]}")


class JsonCodec:
    """Proto3 JSON: snake_case names out (as the guides show), both spellings in.

    Implicit fields are always written, so lists carry `total: 0` and `has_more: false`;
    unset optional fields and timestamps stay absent, never null.
    """

    def name(self) -> str:
        return "json"

    def encode(self, message: Message) -> bytes:
        return message.to_json(use_proto_field_name=True, always_emit_implicit=True).encode()

    def decode(self, data: bytes | bytearray, message_class: type[Any]) -> Any:
        if not data.strip():
            data = b"{}"
        if too_deep(data):
            raise _refusal(Reason.INVALID_ARGUMENT, TOO_DEEP)
        try:
            message = message_class.from_json(data, ignore_unknown_fields=False)
        except Exception as exc:
            raise json_decode_error(exc, data) from None
        # JSON carries a control character escaped (a backslash), or raw only as DEL (7F) or
        # U+0080-U+009F (the UTF-8 bytes C2 80..C2 9F); its decoder already refuses
        # out-of-range timestamps. Without any of these bytes there is nothing to check.
        if b"\\" in data or b"\x7f" in data or b"\xc2" in data:
            _checked(message)
        return message


class BinaryCodec:
    def name(self) -> str:
        return "proto"

    def encode(self, message: Message) -> bytes:
        return message.to_binary()

    def decode(self, data: bytes | bytearray, message_class: type[Any]) -> Any:
        try:
            message = message_class.from_binary(data)
        except Exception as exc:
            text = str(exc)
            match = _FIELD.search(text)
            reason = _FIELD_REASON.get(match.group(1), Reason.INVALID_ARGUMENT) if match else Reason.INVALID_ARGUMENT
            raise _refusal(reason, f"malformed protobuf message: {text[:200]}") from None
        return _checked(message)


CODECS = [BinaryCodec(), JsonCodec()]

"""Turning keyword arguments into request fields, refusing wrong ones before anything is sent."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

from protobuf import Message
from protobuf.wkt.google.protobuf.timestamp_pb import Timestamp

from .._proto.pay.v1.resources_pb import Item
from ..errors import ArgumentError
from ..types import ItemParams

M = TypeVar("M", bound=Message)
_ITEM_FIELDS = {"title": str, "price": int, "currency": str, "image": str}
_EXAMPLE = '{"title": "50 Gold Coins", "price": 499, "currency": "USD"}'


def timestamp(value: datetime | None, argument: str = "time") -> Timestamp | None:
    """A datetime as a Timestamp (a naive datetime is read as local time)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise ArgumentError(argument, f"must be a datetime, not {type(value).__name__}")
    return Timestamp.from_datetime(value)


def item(value: Item | ItemParams | Mapping[str, Any]) -> Item:
    """An `Item`, given as one or as a dict like {"title": ..., "price": 499, "currency": "USD"}."""
    if isinstance(value, Item):
        return value
    if not isinstance(value, Mapping):
        raise ArgumentError("item", f"must be a dict like {_EXAMPLE}, not {type(value).__name__}")
    for key, given in value.items():
        kind = _ITEM_FIELDS.get(key)
        if kind is None:
            raise ArgumentError(f"item.{key}", "is not an item field (title, price, currency, image)")
        if given is None and key == "image":
            continue
        if not isinstance(given, kind) or isinstance(given, bool):
            hint = " in minor units, e.g. 499 for $4.99" if key == "price" else ""
            raise ArgumentError(f"item.{key}", f"must be {kind.__name__}{hint}, not {given!r}")
    for key in ("title", "price", "currency"):
        if key not in value:
            raise ArgumentError(f"item.{key}", f"is required, e.g. item={_EXAMPLE}")
    return Item(**value)


def text_map(value: Mapping[str, str] | None, argument: str) -> dict[str, str]:
    """A string-to-string mapping such as `metadata`."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ArgumentError(argument, f"must be a dict of strings, not {type(value).__name__}")
    for key, given in value.items():
        if not isinstance(key, str) or not isinstance(given, str):
            raise ArgumentError(f"{argument}[{key!r}]", f"keys and values must be strings, not {given!r}")
    return dict(value)


def checked(request: M) -> M:
    """The request, once every field is known to encode; else the first wrong field, named."""
    try:
        request.to_binary()
    except (TypeError, ValueError, OverflowError) as exc:
        raise ArgumentError(_culprit(request) or "request", str(exc)) from None
    return request


def _culprit(message: Message, prefix: str = "") -> str | None:
    for name in type(message).__slots__:
        value = getattr(message, name, None)
        if value is None:
            continue
        if isinstance(value, Message):
            if (inner := _culprit(value, f"{prefix}{name}.")) is not None:
                return inner
            continue
        try:
            type(message)(**{name: value}).to_binary()
        except (TypeError, ValueError, OverflowError):
            return prefix + name.rstrip("_")
    return None

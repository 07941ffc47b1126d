"""Turning keyword arguments into request fields."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from protobuf.wkt.google.protobuf.timestamp_pb import Timestamp

from .._proto.pay.v1.resources_pb import Item


def timestamp(value: datetime | None) -> Timestamp | None:
    """A datetime as a Timestamp (a naive datetime is read as local time)."""
    return None if value is None else Timestamp.from_datetime(value)


def item(value: Item | Mapping[str, Any]) -> Item:
    """An `Item`, given as one or as a dict like {"title": ..., "price": 499, "currency": "USD"}."""
    return value if isinstance(value, Item) else Item(**value)

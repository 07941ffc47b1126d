"""Domain objects to wire messages and back."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from protobuf import Oneof
from protobuf.wkt.google.protobuf.struct_pb import ListValue, Struct, Value
from protobuf.wkt.google.protobuf.timestamp_pb import Timestamp
from toffeepay._proto.pay.v1 import resources_pb as pb
from toffeepay._proto.pay.v1 import webhook_pb as wpb

from ..domain.errors import DomainError, Reason
from ..domain.payments import Dispute, Payment
from ..domain.refunds import Refund
from ..domain.sessions import Session
from ..domain.webhooks import Attempt, Chaos, Endpoint


def ts(value: datetime | None) -> Timestamp | None:
    return None if value is None else Timestamp.from_datetime(value)


def when(message: object, name: str) -> datetime | None:
    """A timestamp field of a request as an aware datetime, or None when unset."""
    if not message.has_field(name):  # type: ignore[attr-defined]
        return None
    attr = "from_" if name == "from" else name
    return getattr(message, attr).to_datetime()


def one_id(request: object, alias: str) -> str:
    """`id` or its alias (`session_id`, `payment_id`): one of them, and not two different."""
    primary = request.id  # type: ignore[attr-defined]
    other = getattr(request, alias)
    if primary and other and primary != other:
        raise DomainError(Reason.INVALID_ARGUMENT, f"id and {alias} name different objects")
    value = primary or other
    if not value:
        raise DomainError(Reason.INVALID_ARGUMENT, f"id (or {alias}) is required")
    return value


def optional(message: Any, name: str) -> Any:
    """A field that may be absent (proto3 `optional`): its value, or None when unset."""
    return getattr(message, name) if message.has_field(name) else None


def session(s: Session, page_url: str) -> pb.Session:
    return pb.Session(
        id=s.id,
        status=s.status.value,
        payment_id=s.payment_id,
        game_id=s.game_id,
        user_id=s.user_id,
        item=pb.Item(title=s.item.title, price=s.item.price, currency=s.item.currency),
        return_url=s.return_url,
        url=page_url,
        metadata=dict(s.metadata),
        expires_at=ts(s.expires_at),
        created_at=ts(s.created_at),
        paid_at=ts(s.paid_at),
        failed_at=ts(s.failed_at),
        cancelled_at=ts(s.cancelled_at),
        expired_at=ts(s.expired_at),
        fulfilled_at=ts(s.fulfilled_at),
    )


def payment(p: Payment) -> pb.Payment:
    return pb.Payment(
        id=p.id,
        session_id=p.session_id,
        status=p.status.value,
        amount=p.amount,
        currency=p.currency,
        method=p.method.value,
        details=p.details,
        game_id=p.game_id,
        user_id=p.user_id,
        failure_code=p.failure_code.value if p.failure_code else None,
        failure_message=p.failure_message,
        amount_received=p.amount_received,
        created_at=ts(p.created_at),
        succeeded_at=ts(p.succeeded_at),
        failed_at=ts(p.failed_at),
        amount_refunded=p.amount_refunded,
        refunded_at=ts(p.refunded_at),
    )


def refund(r: Refund) -> pb.Refund:
    return pb.Refund(
        id=r.id,
        payment_id=r.payment_id,
        session_id=r.session_id,
        amount=r.amount,
        currency=r.currency,
        reason=r.reason.value,
        status=r.status.value,
        failure_code=r.failure_code.value if r.failure_code else None,
        created_at=ts(r.created_at),
        succeeded_at=ts(r.succeeded_at),
        failed_at=ts(r.failed_at),
    )


def dispute(d: Dispute) -> pb.Dispute:
    return pb.Dispute(
        id=d.id,
        payment_id=d.payment_id,
        reason=d.reason,
        amount=d.amount,
        currency=d.currency,
        created_at=ts(d.created_at),
        game_id=d.game_id,
        session_id=d.session_id,
        user_id=d.user_id,
    )


def json_value(value: Any) -> Value:
    """A JSON value as a protobuf Value; integers stay integers, so JSON shows 499, not 499.0."""
    if isinstance(value, bool):
        flag: Oneof[Literal["bool_value"], bool] = Oneof(field="bool_value", value=value)
        return Value(kind=flag)
    if isinstance(value, int | float):
        number: Oneof[Literal["number_value"], float] = Oneof(field="number_value", value=value)
        return Value(kind=number)
    if isinstance(value, str):
        text: Oneof[Literal["string_value"], str] = Oneof(field="string_value", value=value)
        return Value(kind=text)
    if isinstance(value, dict):
        nested: Oneof[Literal["struct_value"], Struct] = Oneof(field="struct_value", value=struct(value))
        return Value(kind=nested)
    if isinstance(value, list):
        items = ListValue(values=[json_value(v) for v in value])
        listed: Oneof[Literal["list_value"], ListValue] = Oneof(field="list_value", value=items)
        return Value(kind=listed)
    return Value.from_python(None)


def struct(value: dict[str, Any]) -> Struct:
    return Struct(fields={key: json_value(v) for key, v in value.items()})


def endpoint(e: Endpoint) -> wpb.Endpoint:
    return wpb.Endpoint(
        id=e.id,
        url=e.url,
        mode=e.mode,
        format=e.format,
        events=list(e.events),
        enabled=e.enabled,
        description=e.description,
        created_at=ts(e.created_at),
        disabled_reason=e.disabled_reason.value if e.disabled_reason is not None else None,
        failing_since=ts(e.failing_since),
        last_success_at=ts(e.last_success_at),
        last_failure_at=ts(e.last_failure_at),
        chaos=wpb.Chaos(**e.chaos.as_dict()) if e.chaos else None,
    )


def chaos(message: Any) -> Chaos | None:
    """The chaos settings of a request, when it sets them."""
    if not message.has_field("chaos"):
        return None
    c = message.chaos
    return Chaos(c.duplicate_percent, c.delay_max_seconds, c.bad_signature_percent)


def attempt(a: Attempt) -> wpb.DeliveryAttempt:
    return wpb.DeliveryAttempt(
        id=a.id,
        event_id=a.event_id,
        endpoint_id=a.endpoint_id,
        attempt_number=a.attempt_number,
        status=a.status,
        http_status=a.http_status,
        latency_ms=a.latency_ms,
        response_excerpt=a.response_excerpt,
        error=a.error,
        trigger=a.trigger,
        created_at=ts(a.created_at),
        next_attempt_at=ts(a.next_attempt_at),
    )


def event(body: dict[str, Any]) -> wpb.Event:
    """An event exactly as its JSON webhook body carries it."""
    return wpb.Event(
        id=body["id"],
        event=body["event"],
        timestamp=Timestamp.from_json(json.dumps(body["timestamp"])),
        mode=body["mode"],
        data=struct(body["data"]),
        session_id=body.get("session_id"),
        user_id=body.get("user_id"),
        game_id=body.get("game_id"),
        status=body.get("status"),
        item=pb.Item(**body["item"]) if "item" in body else None,
    )

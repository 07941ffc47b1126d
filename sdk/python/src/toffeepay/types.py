"""The objects the client returns, and the names of statuses, methods and outcomes.

Objects are the messages generated from `proto/pay/v1`: typed (every field is an
attribute), they print readably and serialise with `to_json()`. Timestamps are
`Timestamp` values (`.to_datetime()` gives an aware datetime); an unset timestamp is
None. An event's `data` is a `Struct` (`.to_python()` gives a dict; JSON numbers come
back as floats).

The `Literal` types name the values a field or argument takes, for type checkers:
`def on_status(status: toffeepay.types.SessionStatus) -> None: ...`.
"""

from typing import Literal, NotRequired, TypedDict

from protobuf.wkt.google.protobuf.struct_pb import Struct
from protobuf.wkt.google.protobuf.timestamp_pb import Timestamp

from ._proto.pay.v1.payment_pb import CreateSessionResponse, GetSessionStatusResponse
from ._proto.pay.v1.resources_pb import Dispute, Item, Payment, Refund, Session
from ._proto.pay.v1.webhook_pb import CreateEndpointResponse, Endpoint, Event, RotateSecretResponse

SessionStatus = Literal["pending", "paid", "failed", "cancelled", "expired"]
PaymentStatus = Literal["processing", "succeeded", "failed"]
PaymentMethod = Literal["card", "apple_pay", "google_pay"]
RefundStatus = Literal["pending", "succeeded", "failed"]
RefundReason = Literal["requested_by_customer", "duplicate", "fraudulent", "other"]
# What the sandbox makes of a payment (`client.sandbox.pay_session(..., outcome=...)`).
SandboxOutcome = Literal["succeeded", "insufficient_funds", "card_declined", "partial", "processor_error"]
EndpointFormat = Literal["json", "legacy_form"]
# The event types this version knows; a newer server may send others, so handlers should
# ignore (and acknowledge) types they do not handle.
EventType = Literal[
    "session.created",
    "session.paid",
    "session.failed",
    "session.expired",
    "session.cancelled",
    "session.fulfillment_overdue",
    "payment.created",
    "payment.succeeded",
    "payment.failed",
    "dispute.created",
    "refund.created",
    "refund.succeeded",
    "refund.failed",
    "endpoint.failing",
    "endpoint.disabled",
    "ping",
]


class ItemParams(TypedDict):
    """What a session sells: `{"title": "50 Gold Coins", "price": 499, "currency": "USD"}`.

    `price` is in minor units (cents for USD); `image` is an https URL or a data URL.
    """

    title: str
    price: int
    currency: str
    image: NotRequired[str]


__all__ = [
    "CreateEndpointResponse",
    "CreateSessionResponse",
    "Dispute",
    "Endpoint",
    "EndpointFormat",
    "Event",
    "EventType",
    "GetSessionStatusResponse",
    "Item",
    "ItemParams",
    "Payment",
    "PaymentMethod",
    "PaymentStatus",
    "Refund",
    "RefundReason",
    "RefundStatus",
    "RotateSecretResponse",
    "SandboxOutcome",
    "Session",
    "SessionStatus",
    "Struct",
    "Timestamp",
]

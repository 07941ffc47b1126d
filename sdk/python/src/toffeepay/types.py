"""The objects the client returns: the messages generated from `proto/pay/v1`.

They are typed (every field is an attribute), print readably, and serialise with
`to_json()`. Timestamps are `Timestamp` values (`.to_datetime()` gives an aware
datetime); an unset timestamp is None. An event's `data` is a `Struct`
(`.to_python()` gives a dict; JSON numbers come back as floats).
"""

from protobuf.wkt.google.protobuf.struct_pb import Struct
from protobuf.wkt.google.protobuf.timestamp_pb import Timestamp

from ._proto.pay.v1.payment_pb import CreateSessionResponse, GetSessionStatusResponse
from ._proto.pay.v1.resources_pb import Dispute, Item, Payment, Refund, Session
from ._proto.pay.v1.webhook_pb import CreateEndpointResponse, Endpoint, Event, RotateSecretResponse

__all__ = [
    "CreateEndpointResponse",
    "CreateSessionResponse",
    "Dispute",
    "Endpoint",
    "Event",
    "GetSessionStatusResponse",
    "Item",
    "Payment",
    "Refund",
    "RotateSecretResponse",
    "Session",
    "Struct",
    "Timestamp",
]

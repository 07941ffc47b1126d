"""The reason codes clients see (docs/api.md, Errors) and the one exception the domain raises."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Every reason code a client can see (docs/api.md lists them with their Connect codes)."""

    UNAUTHENTICATED = "unauthenticated"
    INVALID_GAME_ID = "invalid_game_id"
    INVALID_ARGUMENT = "invalid_argument"
    INVALID_CURRENCY = "invalid_currency"
    INVALID_PRICE = "invalid_price"
    INVALID_IMAGE = "invalid_image"
    INVALID_RETURN_URL = "invalid_return_url"
    INVALID_METADATA = "invalid_metadata"
    INVALID_LIMIT = "invalid_limit"
    INVALID_OFFSET = "invalid_offset"
    INVALID_STATUS = "invalid_status"
    INVALID_TIME_RANGE = "invalid_time_range"
    INVALID_EXPIRES_AT = "invalid_expires_at"
    INVALID_IDEMPOTENCY_KEY = "invalid_idempotency_key"
    INVALID_URL = "invalid_url"
    INVALID_EVENT_TYPE = "invalid_event_type"
    INVALID_FORMAT = "invalid_format"
    NOT_FOUND = "not_found"
    SESSION_EXPIRED = "session_expired"
    SESSION_NOT_PENDING = "session_not_pending"
    PAYMENT_IN_PROGRESS = "payment_in_progress"
    SESSION_NOT_PAID = "session_not_paid"
    ENDPOINT_DISABLED = "endpoint_disabled"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    IDEMPOTENCY_KEY_IN_USE = "idempotency_key_in_use"
    RATE_LIMITED = "rate_limited"
    REQUEST_TOO_LARGE = "request_too_large"
    REQUEST_TIMEOUT = "request_timeout"
    UNSUPPORTED_ENCODING = "unsupported_encoding"
    UNAVAILABLE = "unavailable"
    SANDBOX_ONLY = "sandbox_only"
    PROCESSOR_UNAVAILABLE = "processor_unavailable"
    PAYMENT_NOT_REFUNDABLE = "payment_not_refundable"
    INVALID_REFUND_AMOUNT = "invalid_refund_amount"
    INTERNAL = "internal"
    # Requests the API cannot take at all: no such RPC, the wrong HTTP method or encoding.
    UNKNOWN_METHOD = "unknown_method"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    UNSUPPORTED_CONTENT_TYPE = "unsupported_content_type"


def reason_message(reason: Reason, sentence: str) -> str:
    """The one form of every error message: `<reason>: <sentence>`."""
    return f"{reason.value}: {sentence}"


class DomainError(Exception):
    """A refusal with a reason code; the API layer maps it to a Connect code."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(reason_message(reason, message))
        self.reason = reason
        self.detail = message

    @property
    def message(self) -> str:
        return reason_message(self.reason, self.detail)

"""ToffeePay SDK for game servers."""

from . import types
from ._client import AsyncToffeePay, ToffeePay
from ._version import VERSION as __version__
from .errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    ConflictError,
    FailedPreconditionError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ToffeePayError,
)
from .pagination import AsyncPage, Page
from .resources.webhooks import event_to_dict
from .return_token import ReturnToken
from .webhook import LegacyCallback, SignatureVerificationError, Webhook, WebhookSignature

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncPage",
    "AsyncToffeePay",
    "AuthenticationError",
    "ConflictError",
    "FailedPreconditionError",
    "InvalidRequestError",
    "LegacyCallback",
    "NotFoundError",
    "Page",
    "PermissionDeniedError",
    "RateLimitError",
    "ReturnToken",
    "SignatureVerificationError",
    "ToffeePay",
    "ToffeePayError",
    "Webhook",
    "WebhookSignature",
    "__version__",
    "event_to_dict",
    "types",
]

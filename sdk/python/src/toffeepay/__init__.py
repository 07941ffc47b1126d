"""ToffeePay SDK for game servers."""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import VERSION as __version__
from .webhook import Diagnosis, LegacyCallback, SignatureVerificationError, Webhook, WebhookSignature

if TYPE_CHECKING:
    from . import types
    from ._client import AsyncToffeePay, ToffeePay
    from .errors import (
        APIConnectionError,
        APIError,
        APITimeoutError,
        ArgumentError,
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

# Loaded on first use, so verifying a webhook (`toffeepay.Webhook`, `toffeepay.webhook`) needs
# only the standard library, and a return token only `cryptography`: no HTTP or Connect stack.
_LAZY = {
    "types": ".types",
    "AsyncToffeePay": "._client",
    "ToffeePay": "._client",
    "APIConnectionError": ".errors",
    "APIError": ".errors",
    "APITimeoutError": ".errors",
    "ArgumentError": ".errors",
    "AuthenticationError": ".errors",
    "ConflictError": ".errors",
    "FailedPreconditionError": ".errors",
    "InvalidRequestError": ".errors",
    "NotFoundError": ".errors",
    "PermissionDeniedError": ".errors",
    "RateLimitError": ".errors",
    "ToffeePayError": ".errors",
    "AsyncPage": ".pagination",
    "Page": ".pagination",
    "event_to_dict": ".resources.webhooks",
    "ReturnToken": ".return_token",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = import_module(module_name, __name__)
    value = module if name == "types" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "ArgumentError",
    "AsyncPage",
    "AsyncToffeePay",
    "AuthenticationError",
    "ConflictError",
    "Diagnosis",
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

"""Security headers of the payment page, with a Content-Security-Policy made for each page.

The page loads only its own CSS and JS; the one exception is the item image, allowed
exactly (the data: scheme for an inline image, the image's own URL for an https one).
Forms may post only to the page itself, and the cancel form's answer may redirect to
the return_url (Chromium applies form-action to redirects), so its scheme or origin is
allowed too.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, quote, urlsplit

_HOST = re.compile(r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")

BASE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(self)",
}


def _split(url: str) -> SplitResult | None:
    try:
        return urlsplit(url)
    except ValueError:
        return None


def _origin(parts: SplitResult) -> str | None:
    """`scheme://host:port` of a URL, when it can be written safely as a CSP source."""
    host = parts.netloc.rpartition("@")[2]
    name, _, port = host.rpartition(":") if not host.endswith("]") and ":" in host else (host, "", "")
    try:
        name = name.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    if not _HOST.fullmatch(name) or (port and not port.isdigit()):
        return None
    return f"{parts.scheme.lower()}://{name.lower()}{':' + port if port else ''}"


def image_source(image: str | None) -> str:
    """The img-src of a page showing `image` (a data URL or an https URL)."""
    if not image:
        return "'none'"
    if image.startswith("data:"):
        return "data:"
    parts = _split(image)
    origin = _origin(parts) if parts else None
    if parts is None or origin is None:
        return "'none'"
    # Browsers compare percent-decoded paths, so encoding keeps the source exact and parseable.
    return origin + quote(parts.path or "/", safe="/%-._~")


def redirect_source(return_url: str | None) -> str:
    """What form-action must allow for the cancel form's redirect to `return_url`."""
    parts = _split(return_url) if return_url else None
    if parts is None or not _SCHEME.fullmatch(parts.scheme):
        return ""
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return _origin(parts) or ""
    return f"{scheme}:"


def page_headers(*, image: str | None = None, return_url: str | None = None) -> dict[str, str]:
    form_action = " ".join(filter(None, ["'self'", redirect_source(return_url)]))
    csp = "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {image_source(image)}",
            "connect-src 'self'",
            f"form-action {form_action}",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ]
    )
    return {**BASE_HEADERS, "Content-Security-Policy": csp, "Cache-Control": "no-store"}

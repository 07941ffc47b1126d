"""Answers for the root URL and for paths nothing serves: a short page for a browser, otherwise a
Connect error JSON that says where the API is."""

from __future__ import annotations

from html import escape

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from .api.errors import connect_code, error_body, http_status
from .domain.errors import Reason, reason_message
from .observability.request_id import request_id_of

API_HINT = (
    "the API is POST /pay.v1.PaymentService/<Method> (e.g. CreateSession) with "
    "Content-Type: application/json and Authorization: Bearer sk_test_...; every method is listed in docs/api.md"
)
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#222}}
code{{background:#f3f3f3;padding:.1rem .3rem;border-radius:3px}}</style></head>
<body><h1>{title}</h1>{body}</body></html>
"""


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _page(title: str, body: str, status: int) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=escape(title), body=body), status_code=status)


def _json(request: Request, reason: Reason, message: str) -> Response:
    """A Connect error answer outside the API; its code and HTTP status come from the one error table."""
    request_id = request_id_of(request.scope)
    message = reason_message(reason, message)
    body = error_body(connect_code(reason).value, message, reason=reason.value, request_id=request_id)
    return Response(body, status_code=http_status(reason), media_type="application/json")


async def root(request: Request) -> Response:
    """GET / : what this server is and where to go."""
    if _wants_html(request):
        return _page(
            "ToffeePay",
            "<p>This is a ToffeePay server. Players reach payment pages through the links games give them "
            "(<code>/sess_…</code>).</p><p>Game servers use the API: <code>POST /pay.v1.PaymentService/CreateSession"
            "</code> with <code>Content-Type: application/json</code> and <code>Authorization: Bearer sk_test_…</code>."
            "</p><p>Operators: <code>/healthz</code>, <code>/readyz</code>.</p>",
            404,
        )
    return _json(request, Reason.UNKNOWN_METHOD, f"this is a ToffeePay server: {API_HINT}")


async def not_found(request: Request, exc: Exception) -> Response:
    """No route (404) or not this HTTP method (405) outside the API."""
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    path = escape(request.url.path)
    if status == 405:
        if _wants_html(request):
            return _page("Not allowed", f"<p>{escape(request.method)} is not allowed on <code>{path}</code>.</p>", 405)
        message = f"{request.method} is not allowed on {request.url.path}; {API_HINT}"
        return _json(request, Reason.METHOD_NOT_ALLOWED, message)
    if _wants_html(request):
        return _page(
            "Page not found",
            f"<p>Nothing is at <code>{path}</code>. A payment page link may be mistyped; "
            "ask the game for a new one.</p>",
            404,
        )
    return _json(request, Reason.NOT_FOUND, f"nothing is at {request.url.path}; {API_HINT}")

"""`GET /.well-known/jwks.json`: the public keys that verify return tokens."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..services import return_tokens
from ..services.context import ServiceContext
from .headers import BASE_HEADERS

PATH = "/.well-known/jwks.json"
# Short, so a rotation reaches verifiers soon; a verifier meeting an unknown `kid` fetches again.
_HEADERS = {
    **BASE_HEADERS,
    "Cache-Control": "public, max-age=60",
    # Public keys: any origin may read them (a web game's client verifies in the browser).
    "Access-Control-Allow-Origin": "*",
    "Cross-Origin-Resource-Policy": "cross-origin",
}


def route(ctx: ServiceContext) -> Route:
    async def jwks(_request: Request) -> Response:
        return JSONResponse(await return_tokens.jwks(ctx), headers=_HEADERS)

    return Route(PATH, jwks, methods=["GET"])

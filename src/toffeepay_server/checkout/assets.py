"""The page's own CSS and JS, read once and served with a content hash in their URL."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response

from .headers import BASE_HEADERS

PREFIX = "/static/checkout"
_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    version: str


class Assets:
    """The files of a package's `static/` folder, served under `prefix` (the payment page's by default)."""

    def __init__(self, package: str = __package__ or "", prefix: str = PREFIX) -> None:
        self.prefix = prefix
        folder = resources.files(package).joinpath("static")
        self.files: dict[str, Asset] = {}
        for entry in folder.iterdir():
            suffix = "." + entry.name.rpartition(".")[2]
            if suffix in _TYPES:
                body = entry.read_bytes()
                self.files[entry.name] = Asset(body, _TYPES[suffix], hashlib.sha256(body).hexdigest()[:12])

    def url(self, name: str) -> str:
        return f"{self.prefix}/{name}?v={self.files[name].version}"

    async def serve(self, request: Request) -> Response:
        asset = self.files.get(request.path_params["name"])
        if asset is None:
            return Response("not found", status_code=404, media_type="text/plain", headers=BASE_HEADERS)
        headers = {**BASE_HEADERS, "Cache-Control": "public, max-age=31536000, immutable", "ETag": f'"{asset.version}"'}
        if request.headers.get("if-none-match") == headers["ETag"]:
            return Response(status_code=304, headers=headers)
        return Response(asset.body, media_type=asset.media_type, headers=headers)

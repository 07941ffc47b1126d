"""The dashboard's own CSS (and its few lines of JS), served by us with a content hash in the URL."""

from __future__ import annotations

from ..checkout import assets

PREFIX = "/static"


class Assets(assets.Assets):
    def __init__(self) -> None:
        super().__init__(__package__ or "", PREFIX)

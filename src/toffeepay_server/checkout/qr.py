"""QR codes of payment page URLs (segno), so a player can pay on a phone.

Black on white with the standard four-module quiet zone, whatever the page's colour
scheme, so every phone camera reads it.
"""

from __future__ import annotations

import io

import segno

TITLE = "QR code of this payment page"


def _code(url: str) -> segno.QRCode:
    return segno.make_qr(url, error="m")


def inline_svg(url: str) -> str:
    """An <svg> element to put in the page (its container names it)."""
    return _code(url).svg_inline(scale=4, border=4, dark="#000", light="#fff")


def svg_document(url: str) -> bytes:
    """A standalone SVG document, for games that show the code themselves."""
    out = io.BytesIO()
    _code(url).save(out, kind="svg", scale=8, border=4, dark="#000", light="#fff", title=TITLE)
    return out.getvalue()

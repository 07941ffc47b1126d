"""Item images: a base64 data URL checked by its bytes, or an https URL."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import urlsplit

import filetype

from .errors import DomainError, Reason
from .urls import NON_ASCII_DIGITS, has_non_ascii_digits

MAX_IMAGE_BYTES = 300 * 1024
MAX_IMAGE_URL = 2048
_ALLOWED = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WebP"}
_DECLARED_ALIASES = {"image/jpg": "image/jpeg"}


def _refuse(message: str) -> DomainError:
    return DomainError(Reason.INVALID_IMAGE, message)


def check_image(image: str) -> str:
    """Accept a PNG/JPEG/WebP data URL of at most 300 KB decoded, or an https URL."""
    if image.startswith("data:"):
        _check_data_url(image)
        return image
    if len(image) > MAX_IMAGE_URL:
        raise _refuse(f"image URL is longer than {MAX_IMAGE_URL} characters")
    try:
        parts = urlsplit(image)
        host = parts.hostname
    except ValueError:
        raise _refuse("image URL is not a valid URL") from None
    if has_non_ascii_digits(parts.netloc):
        raise _refuse(NON_ASCII_DIGITS.format(name="image URL"))
    if parts.scheme.lower() != "https" or not host:
        raise _refuse("image must be a data:image/...;base64 URL or an https:// URL")
    return image


def _check_data_url(image: str) -> None:
    header, comma, payload = image[5:].partition(",")
    if not comma:
        raise _refuse("data URL has no ',' before its data")
    declared, _, encoding = header.partition(";")
    declared = _DECLARED_ALIASES.get(declared.lower(), declared.lower())
    if encoding.lower() != "base64":
        raise _refuse("data URL must be base64-encoded (data:image/png;base64,...)")
    if declared not in _ALLOWED:
        raise _refuse(f"image type {declared or 'missing'!r} is not PNG, JPEG or WebP")
    # Refuse oversize payloads before decoding them.
    if len(payload) > (MAX_IMAGE_BYTES * 4) // 3 + 4:
        raise _refuse("image is larger than 300 KB")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise _refuse("image data is not valid base64") from None
    if len(data) > MAX_IMAGE_BYTES:
        raise _refuse("image is larger than 300 KB")
    kind = filetype.guess_mime(data)
    if kind not in _ALLOWED:
        raise _refuse("image content is not a PNG, JPEG or WebP file")
    if kind != declared:
        raise _refuse(f"image is declared {declared} but its content is {_ALLOWED[kind]}")

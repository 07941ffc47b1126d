"""Text a client sends: no control characters (C0, DEL, C1) in any field.

PostgreSQL cannot store NUL in text at all, and the others have no place in an id, a
title or a URL; refusing them everywhere keeps both engines alike.
"""

from __future__ import annotations

import re

from .errors import DomainError, Reason

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def has_control(value: str) -> bool:
    return _CONTROL.search(value) is not None


def check_text(value: str, name: str, reason: Reason = Reason.INVALID_ARGUMENT) -> str:
    if _CONTROL.search(value) is not None:
        raise DomainError(reason, f"{name} must not contain control characters (U+0000-U+001F, U+007F-U+009F)")
    return value

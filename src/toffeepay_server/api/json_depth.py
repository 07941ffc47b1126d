"""How deeply a JSON text nests, found without parsing it.

The native JSON parsers recurse once per level, and a body of a few kilobytes of `[`
overflows the C stack and kills the process. This scan only counts brackets outside
strings, so it costs a few microseconds for an ordinary body and is linear for any.
"""

from __future__ import annotations

import re

MAX_DEPTH = 32
TOO_DEEP = f"JSON is nested deeper than {MAX_DEPTH} levels"

# A JSON string, escapes included; an unterminated one is left in place (its brackets then
# count, which can only make the answer stricter for a body that is not JSON anyway).
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
# Every bracket kept as "(" or ")", everything else dropped.
_PARENS = bytes.maketrans(b"[{]}", b"(())")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def too_deep(data: bytes | bytearray, limit: int = MAX_DEPTH) -> bool:
    """True when `data` nests deeper than `limit` levels.

    Each pass removes the innermost pairs "()", so a balanced text is empty after exactly
    as many passes as it is deep. Brackets left unclosed count as levels too (a parser
    descends into them before it finds the text truncated).
    """
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    parens = _STRING.sub(b"", data).translate(_PARENS, _NOT_BRACKETS)
    passes = 0
    while b"()" in parens:
        passes += 1
        if passes > limit:
            return True
        parens = parens.replace(b"()", b"")
    return passes + parens.count(b"(") > limit

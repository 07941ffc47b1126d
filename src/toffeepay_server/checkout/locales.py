"""The player's locale, from Accept-Language, for formatting prices."""

from __future__ import annotations

from babel import Locale, UnknownLocaleError

DEFAULT_LOCALE = "en_US"
_MAX_HEADER = 512
_MAX_ENTRIES = 16


def _weight(part: str) -> float:
    for param in part.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def preferred_locale(accept_language: str | None) -> str:
    """The best locale Babel knows among the header's languages, by weight; else en_US."""
    if not accept_language:
        return DEFAULT_LOCALE
    parts = accept_language[:_MAX_HEADER].split(",")[:_MAX_ENTRIES]
    ranked = sorted(
        ((_weight(p), i, p.split(";")[0].strip()) for i, p in enumerate(parts)), key=lambda r: (-r[0], r[1])
    )
    for weight, _, tag in ranked:
        if weight <= 0 or not tag or tag == "*":
            continue
        try:
            return str(Locale.parse(tag, sep="-"))
        except (UnknownLocaleError, ValueError, TypeError):
            continue
    return DEFAULT_LOCALE

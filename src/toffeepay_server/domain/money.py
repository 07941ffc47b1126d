"""Currencies and amounts: integer minor units, ISO 4217 data from Babel (CLDR)."""

from __future__ import annotations

from datetime import date
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.core import get_global
from babel.numbers import format_currency, get_currency_precision

from .errors import DomainError, Reason

MAX_PRICE = 99_999_999


@lru_cache(maxsize=1)
def active_currencies() -> frozenset[str]:
    """Codes that are legal tender somewhere today (CLDR territory data)."""
    today = date.today()
    codes: set[str] = set()
    for territory_currencies in get_global("territory_currencies").values():
        for code, start, end, tender in territory_currencies:
            if not tender:
                continue
            if start and date(*start) > today:
                continue
            if end and date(*end) < today:
                continue
            codes.add(code)
    return frozenset(codes)


def check_currency(code: str) -> str:
    if code not in active_currencies():
        raise DomainError(
            Reason.INVALID_CURRENCY,
            f"{code!r} is not an active ISO 4217 currency code (use e.g. USD, EUR, JPY)",
        )
    return code


def check_price(price: int) -> int:
    if not 1 <= price <= MAX_PRICE:
        raise DomainError(
            Reason.INVALID_PRICE,
            f"price must be an integer of minor units in 1..{MAX_PRICE:,}, got {price}",
        )
    return price


def minor_units(currency: str) -> int:
    """Decimal places of a currency: USD 2, JPY 0, KWD 3."""
    return get_currency_precision(currency)


def to_major(amount: int, currency: str) -> str:
    """An exact decimal string of an amount of minor units: 499 USD -> '4.99'."""
    places = minor_units(currency)
    if places == 0:
        return str(amount)
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**places)
    return f"{sign}{whole}.{frac:0{places}d}"


def format_amount(amount: int, currency: str, locale: str = "en_US") -> str:
    """A price for people, in the currency's own number of decimals."""
    from decimal import Decimal

    try:
        loc = Locale.parse(locale)
    except (UnknownLocaleError, ValueError, TypeError):
        loc = Locale.parse("en_US")
    return format_currency(Decimal(to_major(amount, currency)), currency, locale=loc, currency_digits=True)

"""Money as integer minor units with an ISO 4217 currency. No floats, no silent currency mixing."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Minor-unit exponents for the currencies closeout handles (ISO 4217).
EXPONENTS = {"HKD": 2, "CNY": 2, "JPY": 0, "USD": 2, "EUR": 2, "MOP": 2, "TWD": 2, "KWD": 3, "BHD": 3}


_DIGITS = re.compile(r"[0-9]+")


class CurrencyMismatch(ValueError):
    """Raised when two amounts of different currencies meet."""


def exponent(currency: str) -> int:
    """Return the number of minor-unit digits of a currency.

    :raises ValueError: for a currency closeout does not know.
    """
    try:
        return EXPONENTS[currency]
    except KeyError:
        raise ValueError(f"unsupported currency {currency!r}") from None


@dataclass(frozen=True, order=False)
class Money:
    minor: int
    currency: str

    def __post_init__(self) -> None:
        if type(self.minor) is not int:
            raise TypeError("Money.minor must be an int of minor units")
        exponent(self.currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    def _check(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency} and {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._check(other)
        return self.minor < other.minor

    def __le__(self, other: Money) -> bool:
        self._check(other)
        return self.minor <= other.minor

    def min(self, other: Money) -> Money:
        return self if self <= other else other

    def max(self, other: Money) -> Money:
        return other if self <= other else self

    def percent_bp(self, basis_points: int) -> Money:
        """Return this amount times basis_points / 10000, rounded half up (fees favour neither side twice)."""
        numerator = self.minor * basis_points
        return Money((numerator + 5000) // 10000, self.currency)

    def format(self) -> str:
        """Return a plain, locale-neutral rendering like 'HKD 12.30'."""
        exp = exponent(self.currency)
        sign = "-" if self.minor < 0 else ""
        units, frac = divmod(abs(self.minor), 10**exp) if exp else (abs(self.minor), 0)
        return f"{sign}{self.currency} {units:,}" + (f".{frac:0{exp}d}" if exp else "")

    def as_json(self) -> dict:
        return {"amount": self.minor, "currency": self.currency}

    def __str__(self) -> str:
        return self.format()


def parse_major(text: str, currency: str) -> Money:
    """Parse '12.30' into Money(1230, currency) exactly.

    :raises ValueError: naming what is wrong with the text.
    """
    exp = exponent(currency)
    text = text.strip()
    negative = text.startswith("-")
    body = text[1:] if negative else text
    whole, _, frac = body.partition(".")
    if not _DIGITS.fullmatch(whole) or (frac and not _DIGITS.fullmatch(frac)):  # ASCII 0-9 only
        raise ValueError("amount must be digits with an optional decimal point")
    if len(frac) > exp:
        raise ValueError(f"{currency} has {exp} decimal places")
    minor = int(whole) * 10**exp + (int(frac.ljust(exp, "0")) if exp else 0)
    return Money(-minor if negative else minor, currency)

"""Formats of card numbers and ID documents: pure validation, normalisation and masking."""

from __future__ import annotations

import functools
import re
import unicodedata

from stdnum.cn import ric
from stdnum.exceptions import ValidationError as StdnumError

from closeout.common.text import ascii_digits


class InvalidDocument(ValueError):
    """Raised with a message safe to show: it never repeats the number."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


ID_TYPES = ("cn_resident_id", "hkid", "passport")


def luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def luhn_check_digit(partial: str) -> str:
    """Return the digit that makes partial + digit pass the Luhn check."""
    for digit in "0123456789":
        if luhn_ok(partial + digit):
            return digit
    raise AssertionError("unreachable")


# Full-width forms (U+FF01-FF5E) to their ASCII letters, digits and signs, and the ideographic
# space to a space: Chinese and Japanese keyboards type "８１０３" and "Ａ１２３４５６（３）".
_HALF_WIDTH = {0xFF01 + i: 0x21 + i for i in range(0x5E)} | {0x3000: 0x20}


def half_width(raw: str | None) -> str:
    """Text as typed, with full-width letters, digits and signs read as their ASCII forms."""
    return (raw or "").translate(_HALF_WIDTH)


def without_separators(raw: str | None) -> str:
    """A number as typed (full-width digits read as ASCII), without the spaces and dashes people
    group its digits with."""
    return re.sub(r"[\s-]", "", half_width(raw))


def normalize_card_number(raw: str, field: str = "card_number") -> str:
    """Return the card number as digits only.

    Stored-value cards carry 16 digits, SIM cards their 19- or 20-digit ICCID; the last digit is a
    Luhn check digit.

    :raises InvalidDocument: when the format or check digit is wrong.
    """
    digits = without_separators(raw)
    if not ascii_digits(digits) or len(digits) not in (16, 19, 20):
        raise InvalidDocument(field, "Card number must be 16 digits, or 19-20 digits for a SIM card.")
    if not luhn_ok(digits):
        raise InvalidDocument(field, "Card number check digit is wrong; please check the number.")
    return digits


def mask_card_number(number: str) -> str:
    return "•••• " + number[-4:]


def mask_account(number: str) -> str:
    """Show only the last four characters of a bank account or e-wallet ID, e.g. '••••9012'; none
    of one that short, which four would give away whole."""
    return "••••" + (number[-4:] if len(number) > 4 else "")


_HKID = re.compile(r"^([A-Z]{1,2})([0-9]{6})\(?([0-9A])\)?$")


def hkid_check_digit(prefix: str, digits: str) -> str:
    letters = prefix.rjust(2, " ")
    values = [36 if c == " " else ord(c) - ord("A") + 10 for c in letters] + [int(d) for d in digits]
    total = sum(v * w for v, w in zip(values, range(9, 1, -1), strict=True))
    check = (11 - total % 11) % 11
    return "A" if check == 10 else str(check)


def normalize_id_number(id_type: str, raw: str, field: str = "id_document.number") -> str:
    """Return the canonical form of an ID number.

    :raises InvalidDocument: for an unknown type or a number that fails its format or check digit.
    """
    if id_type not in ID_TYPES:
        raise InvalidDocument("id_document.type", "ID document type must be cn_resident_id, hkid or passport.")
    value = re.sub(r"\s", "", half_width(raw)).upper()
    if id_type == "cn_resident_id":
        try:
            return ric.validate(value)
        except StdnumError:
            raise InvalidDocument(field, "Resident ID number is not valid (18 characters with a check digit).")
    if id_type == "hkid":
        match = _HKID.match(value)
        if not match or hkid_check_digit(match[1], match[2]) != match[3]:
            raise InvalidDocument(field, "HKID number is not valid, e.g. A123456(3).")
        return f"{match[1]}{match[2]}{match[3]}"
    if not re.fullmatch(r"[A-Z0-9]{6,9}", value):
        raise InvalidDocument(field, "Passport number must be 6-9 letters or digits.")
    return value


@functools.cache
def _to_simplified():
    import opencc

    return opencc.OpenCC("t2s")


@functools.cache
def _to_traditional():
    import opencc

    return opencc.OpenCC("s2hk")


def name_spellings(text: str) -> set[str]:
    """`text` as typed and, when it holds Chinese characters, in both scripts: what to look for
    when a name may have been registered in the other one."""
    if not has_han(text):
        return {text}
    return {text, _to_simplified().convert(text), _to_traditional().convert(text)}


def has_han(text: str) -> bool:
    return any("\u3400" <= char <= "\u9fff" or "\uf900" <= char <= "\ufaff" for char in text)


def _name_parts(name: str) -> list[str]:
    """A name's parts, case-folded, full-width letters read as ASCII, Chinese characters in their
    simplified forms (a Hong Kong clerk types 陳大文 for a holder registered as 陈大文), without
    the commas, dots, hyphens and middle dots people write between them ("CHAN, Tai-man")."""
    text = unicodedata.normalize("NFKC", half_width(name))
    if has_han(text):
        text = _to_simplified().convert(text)
    return re.sub(r"[,.\-·・'’]", " ", text).casefold().split()


def same_name(given: str, stored: str) -> bool:
    """Whether a name someone typed is the holder's: the same parts in any order ("Tai Man CHAN"
    for "CHAN Tai Man", as forms and passports order them differently), or the same letters
    with the spaces elsewhere ("Chan Taiman", "陈 大文"), in either Chinese script."""
    given_parts, stored_parts = _name_parts(given), _name_parts(stored)
    if not given_parts:
        return False
    return sorted(given_parts) == sorted(stored_parts) or "".join(given_parts) == "".join(stored_parts)


def mask_id_number(number: str) -> str:
    """Show only the first character and the last two, e.g. 'A•••••3'."""
    if len(number) <= 4:
        return "•" * len(number)
    return number[0] + "•" * (len(number) - 3) + number[-2:]


def normalize_email(raw: str) -> str:
    value = half_width(raw).strip().lower()
    if not re.fullmatch(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}", value) or len(value) > 254:
        raise InvalidDocument("contact.email", "Email address is not valid.")
    return value


def normalize_phone(raw: str, *, local_country: str = "") -> str:
    """Return an E.164-like phone number: '+' and 8-15 digits.

    With `local_country` (digits, e.g. "852"), a number of 8 digits or fewer typed without "+" is
    read as a local one in that country, as staff and partners type their own country's numbers.
    """
    value = re.sub(r"[\s()-]", "", half_width(raw))
    if local_country and ascii_digits(value) and 4 <= len(value) <= 8:
        value = f"+{local_country}{value}"
    if not re.fullmatch(r"\+?[0-9]{8,15}", value):
        raise InvalidDocument("contact.phone", "Phone number must have 8-15 digits, with the country code.")
    return value if value.startswith("+") else "+" + value


def mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}"


def mask_phone(phone: str) -> str:
    return phone[:4] + "•" * max(0, len(phone) - 6) + phone[-2:]

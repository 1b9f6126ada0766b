"""Small checks on text typed by people or read from files."""

from __future__ import annotations


def ascii_digits(text: str) -> bool:
    """Whether `text` is one or more of the digits 0-9.

    `str.isdigit` also accepts other scripts' digits and marks such as "²" or "①", which `int()`
    then refuses or reads as something else: numbers typed by a person pass through this instead.
    """
    return text.isascii() and text.isdigit()

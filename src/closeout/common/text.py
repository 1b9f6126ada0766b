"""Small checks on text typed by people or read from files, and translated words filled in."""

from __future__ import annotations

import re
import unicodedata


def ascii_digits(text: str) -> bool:
    """Whether `text` is one or more of the digits 0-9.

    `str.isdigit` also accepts other scripts' digits and marks such as "²" or "①", which `int()`
    then refuses or reads as something else: numbers typed by a person pass through this instead.
    """
    return text.isascii() and text.isdigit()


class UnusableLabel(ValueError):
    """A name typed for a person or a place that cannot be shown as it is: `problem` says why
    (`empty`, `too_long` or `control`)."""

    def __init__(self, problem: str, *, length: int = 0, limit: int = 0):
        super().__init__(problem)
        self.problem, self.length, self.limit = problem, length, limit


def one_line_label(text: str, *, limit: int, blank_ok: bool = False) -> str:
    """Return a short name typed by a person (a member of staff's, a warehouse desk's) on one
    line: runs of spaces, tabs and line breaks become one space, ends trimmed. With `blank_ok`, a
    field that may stay empty: nothing typed (or only spaces) is "".

    :raises UnusableLabel: when nothing is left (unless `blank_ok`), when it is longer than `limit`
        characters, or when it holds a control or formatting character (invisible on the page, and
        able to turn the text around it, e.g. a right-to-left override).
    """
    label = " ".join((text or "").split())
    if not label and blank_ok:
        return ""
    if not label:
        raise UnusableLabel("empty", limit=limit)
    if len(label) > limit:
        raise UnusableLabel("too_long", length=len(label), limit=limit)
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs") for ch in label):
        raise UnusableLabel("control", limit=limit)
    return label


# Chinese characters, beside which catalogs set Latin letters and digits apart by a space ("eSIM 設定檔").
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def fill(words: str, values: dict[str, object]) -> str:
    """Return `words % values` (translated words with `%(name)s` placeholders), with a space where
    a value's Latin letter or digit meets a Chinese character of the words: "經合作夥伴 API 申請",
    not "經合作夥伴 API申請". Chinese values and English words are filled in as they are."""

    def value(match: re.Match) -> str:
        if match[0] == "%%":
            return "%"
        text = str(values[match[1]])
        if _latin(text[:1]) and _HAN.fullmatch(words[max(match.start() - 1, 0):match.start()]):
            text = " " + text
        if _latin(text[-1:]) and _HAN.fullmatch(words[match.end():match.end() + 1]):
            text += " "
        return text

    return re.sub(r"%%|%\((\w+)\)s", value, words)


def _latin(char: str) -> bool:
    return char.isascii() and char.isalnum()


def first_line(exc: BaseException) -> str:
    """An error's first non-blank line (a database driver's message goes on for several), or the
    name of its type when it says nothing."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)

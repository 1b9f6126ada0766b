"""The form of an Idempotency-Key, checked by the view rather than by ninja: ninja would answer a
422 quoting its regular expression, and an empty header (no key at all) the same way as a bad one.

A missing or empty key is a 400, as the IETF Idempotency-Key draft asks for a missing one; a key
of another form is a 422 naming the header, like any other invalid field. A comma is refused
because a proxy joins repeated headers with commas: two keys must not read as one."""

from __future__ import annotations

import re

from django.http import HttpResponse

from closeout.api.problems import problem

HEADER = "Idempotency-Key"
MAX_LENGTH = 200
PATTERN = r"^[\x21-\x2b\x2d-\x7e]+$"  # visible ASCII but the comma
RULE = f"{HEADER} must be 1 to {MAX_LENGTH} visible ASCII characters, without spaces or commas."
_KEY = re.compile(PATTERN)


def key_problem(key: str | None) -> HttpResponse | None:
    """The problem to answer for this Idempotency-Key header, or None when the key may be used."""
    if not key:
        return problem(400, "idempotency-key-missing", f"{HEADER} header required",
                       f"Send a unique {HEADER} header with every POST that creates a closure.")
    if len(key) > MAX_LENGTH or not _KEY.fullmatch(key):
        return problem(422, "idempotency-key-invalid", f"Invalid {HEADER}", RULE,
                       errors=[{"field": HEADER, "message": RULE}])
    return None

"""gunicorn settings loaded by `closeout serve`: release the DBOS client when a web worker exits,
and write access log lines that can be neither forged nor read for card numbers."""

from __future__ import annotations

import re

from gunicorn.glogging import Logger

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LONG_NUMBER = re.compile(r"\d{8,}")


def _masked(number: re.Match) -> str:
    digits = number.group()
    return "*" * (len(digits) - 4) + digits[-4:]


def log_safe(value: str) -> str:
    """A request value as it may appear in a log line: control characters escaped (a path decoded
    from `%0a` must not start a line of its own) and runs of eight or more digits (card numbers,
    ICCIDs, phone numbers in simulator paths) masked to their last four."""
    value = _CONTROL.sub(lambda c: f"\\x{ord(c.group()):02x}", value)
    return _LONG_NUMBER.sub(_masked, value)


class AccessLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        return {name: log_safe(value) if isinstance(value, str) else value for name, value in atoms.items()}


logger_class = AccessLogger


def worker_exit(server, worker):
    from closeout.closures import dispatch

    dispatch.reset_client()

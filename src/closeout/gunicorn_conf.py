"""gunicorn settings loaded by `closeout serve`: release the DBOS client when a web worker exits,
and write the server's own log lines (start-up, errors, one line per request) in the product's
format, JSON by default, with access lines that can be neither forged nor read for card numbers."""

from __future__ import annotations

import os
import re

from gunicorn.glogging import Logger

from closeout.common.text import ascii_digits

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


def _whole(value) -> int | None:
    text = str(value)
    return int(text) if ascii_digits(text) else None


class AccessLogger(Logger):
    json = False

    def setup(self, cfg):
        super().setup(cfg)
        self.json = os.environ.get("CLOSEOUT_LOG_FORMAT", "json") == "json"
        if self.json:
            from closeout.ops.logs import JsonFormatter

            for log in (self.error_log, self.access_log):
                for handler in log.handlers:
                    handler.setFormatter(JsonFormatter())

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        return {name: log_safe(value) if isinstance(value, str) else value for name, value in atoms.items()}

    def access(self, resp, req, environ, request_time):
        if not self.json:
            return super().access(resp, req, environ, request_time)
        if not self.access_log_enabled:
            return None
        atoms = self.atoms(resp, req, environ, request_time)
        self.access_log.info("%s %s -> %s", atoms["m"], atoms["U"], atoms["s"], extra={
            "remote": atoms["h"], "method": atoms["m"], "path": atoms["U"], "status": _whole(atoms["s"]),
            "bytes": _whole(atoms["b"]), "duration_ms": round(request_time.total_seconds() * 1000, 1),
        })
        return None


logger_class = AccessLogger


def worker_exit(server, worker):
    from closeout.closures import dispatch

    dispatch.reset_client()

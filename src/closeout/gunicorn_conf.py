"""gunicorn settings loaded by `closeout serve`: release the DBOS client when a web worker exits,
write the server's own log lines (start-up, errors, one line per request) in the product's
format, JSON by default, with access lines that can be neither forged nor read for card numbers,
and answer the requests gunicorn refuses itself (over its size limits) as closeout answers."""

from __future__ import annotations

import json
import os
import re

from gunicorn import util
from gunicorn.glogging import Logger
from gunicorn.http.errors import LimitRequestHeaders, LimitRequestLine
from gunicorn.workers.sync import SyncWorker as GunicornSyncWorker

from closeout.api.problems import BASE as PROBLEM_BASE
from closeout.common.security import ALWAYS, DATA_CSP
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


# gunicorn's own limits, written out because docs/reliability.md quotes them: a request over one
# is refused while gunicorn reads it, before Django sees it. The longest address closeout makes
# is far shorter; raising them (or 0, unlimited) would only let a client make each worker hold more.
limit_request_line = 4094  # bytes: method, path, query and protocol
limit_request_fields = 100  # header fields
limit_request_field_size = 8190  # bytes, each header field


class SyncWorker(GunicornSyncWorker):
    """gunicorn's sync worker, answering a request over gunicorn's limits with a 414 or 431 as
    application/problem+json with the security headers: gunicorn's own answer is a text/html page
    without them (the request never reaches Django, so no middleware can add them)."""

    def handle_error(self, req, client, addr, exc):
        answer = limit_answer(exc, self.cfg)
        if answer is None:
            return super().handle_error(req, client, addr, exc)
        self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], log_safe(str(exc)))
        try:
            util.write_nonblock(client, answer)
        except Exception:  # noqa: BLE001 - the client went away: nothing left to tell it
            self.log.debug("Failed to send error message.")
        return None


worker_class = "closeout.gunicorn_conf.SyncWorker"


def limit_answer(exc: BaseException, cfg) -> bytes | None:
    """The whole HTTP answer to a request refused for one of gunicorn's limits, or None for any
    other error (gunicorn answers those itself)."""
    if isinstance(exc, LimitRequestLine):
        status, title = 414, "URI Too Long"
        detail = f"The request line (method, address and query) may be at most {cfg.limit_request_line} bytes."
    elif isinstance(exc, LimitRequestHeaders):
        status, title = 431, "Request Header Fields Too Large"
        if str(exc) == "limit request headers fields":
            detail = f"A request may carry at most {cfg.limit_request_fields} header fields."
        elif str(exc) == "limit request headers fields size":
            detail = f"Each header field may be at most {cfg.limit_request_field_size} bytes."
        else:
            detail = "The request's header fields are too large."
    else:
        return None
    slug = title.lower().replace(" ", "-")
    body = json.dumps({"type": PROBLEM_BASE + slug, "title": title, "status": status,
                       "detail": detail}).encode()
    headers = {"Connection": "close", "Content-Type": "application/problem+json", "Content-Length": str(len(body)),
               "Content-Security-Policy": DATA_CSP, **ALWAYS, "Cache-Control": "no-store"}
    head = f"HTTP/1.1 {status} {title}\r\n" + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (head + "\r\n").encode("latin-1") + body

# gunicorn's control socket sits at one path per user ($XDG_RUNTIME_DIR or ~/.gunicorn): a second
# closeout on the machine (another data dir, a test run beside the demo) would take it over from
# the first. closeout is stopped and started by its supervisor, not through gunicornc.
control_socket_disable = True

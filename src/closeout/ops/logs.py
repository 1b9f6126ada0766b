"""Structured JSON log lines, one object a line, with the case reference as context.

Inside a workflow step the case comes from the running DBOS workflow id (`<reference>:<action>`);
elsewhere from `observe.case_context`. Messages are scrubbed of anything that looks like an email
address, a phone, card, bank or ID number before they are written, so a careless format string
cannot leak PII into the logs.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from datetime import UTC, datetime

from closeout.ops import observe

_SCRUB = [
    (re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+"), "[email]"),
    # IBAN-style bank accounts: HK12 3456 7890 12, GB29NWBK60161331926819
    (re.compile(r"\b[A-Z]{2}\d{2}(?:[\s-]?[A-Z0-9]{2,4}){3,}\b"), "[account]"),
    # Hong Kong / mainland style identity numbers with letters: A123456(3), AB9876543
    (re.compile(r"\b[A-Z]{1,2}\d{6}\(?[0-9A]\)?"), "[id]"),
    # Runs of 7+ digits, possibly split by spaces or dashes: phones, card, bank and ID numbers.
    (re.compile(r"(?<![\w-])(?!\d{4}-\d\d-\d\d)\+?\d(?:[\s-]?\d){6,}[\dXx]?"), "[number]"),
]
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def scrub(text: str) -> str:
    """Replace anything that looks like PII in `text`."""
    for pattern, replacement in _SCRUB:
        text = pattern.sub(replacement, text)
    return text


class StderrHandler(logging.StreamHandler):
    """A stream handler that writes to whatever `sys.stderr` is when a record comes, not the one it
    found when logging was configured (test runners and daemon wrappers swap and close it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


_REFERENCE_IN_PATH = re.compile(r"/(CL-\d{4}-\d+)(?=[/?]|$)")


def _requested_case(record: logging.LogRecord) -> str | None:
    """The case a request's address names: gunicorn's access lines carry `path`, Django's
    `django.request` lines (a 4xx, a 5xx) the request itself. A partner's refused call or a staff
    member's visit to a case page is part of that case's story."""
    request = getattr(record, "request", None)
    path = getattr(record, "path", None) or getattr(request, "path", None)
    found = _REFERENCE_IN_PATH.search(path) if isinstance(path, str) else None
    return found.group(1) if found else None


class CaseContextFilter(logging.Filter):
    """Attach `case` and `workflow_id` to every record (None outside a case); a record logged with
    its own (`extra={"case": …}`) keeps them."""

    def filter(self, record: logging.LogRecord) -> bool:
        workflow_id = getattr(record, "workflow_id", None) or observe.current_workflow() or observe._dbos_workflow_id()
        record.case = (getattr(record, "case", None) or observe.current_case() or observe.reference_of(workflow_id)
                       or _requested_case(record))
        record.workflow_id = workflow_id
        return True


class RepeatsFilter(logging.Filter):
    """Let a warning that repeats outside any case through once a `window` (seconds), the next one
    saying how many like it were left out (`repeated`).

    DBOS warns twice per queue at each poll while its system database is down, each with a
    traceback: some 50 lines a second per worker. Messages alike but for their figures (an attempt
    number, a polling interval) count as one. Lines about a case (a step being retried) are that
    case's story and always pass.
    """

    MAX_KINDS = 1000  # distinct messages remembered; forgetting one only lets it through again

    def __init__(self, window: float = 60.0):
        super().__init__()
        self.window = window
        self._seen: dict[tuple, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or observe.current_case() or observe._dbos_workflow_id():
            return True
        key = (record.name, record.levelno, re.sub(r"\d+", "#", record.getMessage().split("\n", 1)[0])[:160])
        now = time.monotonic()
        with self._lock:
            since, left_out = self._seen.get(key, (None, 0))
            if since is not None and now - since < self.window:
                self._seen[key] = (since, left_out + 1)
                return False
            if len(self._seen) >= self.MAX_KINDS:
                self._seen.clear()
            self._seen[key] = (now, 0)
        if left_out:
            record.repeated = left_out
        return True


def _executor_id() -> str | None:
    """The worker this process runs as (None in web processes and tools, which never load it)."""
    worker = sys.modules.get("closeout.worker")
    return worker.current_executor_id() if worker is not None else None


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "case"):
            CaseContextFilter().filter(record)
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        if record.case:
            entry["case"] = record.case
        if record.workflow_id:
            entry["workflow_id"] = record.workflow_id
        if executor := _executor_id():
            entry["executor_id"] = executor  # several workers write to one log store: which one said it
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in ("case", "workflow_id") and not key.startswith("_"):
                entry[key] = value if isinstance(value, int | float | bool) or value is None else scrub(str(value))
        if record.exc_info:
            entry["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)

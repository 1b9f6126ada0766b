"""The web server's access log: one line per request, whatever the path holds."""

from __future__ import annotations

import datetime
import io
import logging
from types import SimpleNamespace

from gunicorn.config import Config

from closeout.gunicorn_conf import AccessLogger, log_safe


def _logged(path: str) -> str:
    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("access_log_format", '%(h)s "%(m)s %(U)s" %(s)s')
    logger = AccessLogger(cfg)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.access_log.handlers = [handler]
    environ = {"REMOTE_ADDR": "10.0.0.7", "REQUEST_METHOD": "GET", "RAW_URI": path, "PATH_INFO": path,
               "SERVER_PROTOCOL": "HTTP/1.1", "QUERY_STRING": ""}
    response = SimpleNamespace(status="404 Not Found", headers=[], sent=0)
    logger.access(response, SimpleNamespace(headers=[]), environ, datetime.timedelta(milliseconds=3))
    return out.getvalue()


def test_a_path_with_a_decoded_newline_cannot_forge_a_second_line():
    logged = _logged('/verify/x\n127.0.0.1 "GET /console/forged" 200')

    assert logged.count("\n") == 1
    assert logged.startswith('10.0.0.7 "GET /verify/x\\x0a127.0.0.1')


def test_card_numbers_in_paths_are_masked_to_their_last_four_digits():
    logged = _logged("/sim/cards/api/cards/8103113636000036/block")

    assert "8103113636000036" not in logged
    assert "/cards/************0036/block" in logged


def test_short_numbers_and_plain_text_pass_unchanged():
    assert log_safe("/api/v1/closures/CL-2026-000123") == "/api/v1/closures/CL-2026-000123"
    assert log_safe("tab\there") == "tab\\x09here"

"""The web server's own log: one line per request, whatever the path holds, in the product's format."""

from __future__ import annotations

import datetime
import json
from types import SimpleNamespace

import pytest
from gunicorn.config import Config

from closeout.gunicorn_conf import AccessLogger, log_safe


def _server_logger(monkeypatch, log_format: str) -> AccessLogger:
    monkeypatch.setenv("CLOSEOUT_LOG_FORMAT", log_format)
    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("errorlog", "-")
    cfg.set("access_log_format", '%(h)s "%(m)s %(U)s" %(s)s')
    return AccessLogger(cfg)


def _logged(monkeypatch, capsys, path: str, log_format: str = "plain") -> str:
    logger = _server_logger(monkeypatch, log_format)
    environ = {"REMOTE_ADDR": "10.0.0.7", "REQUEST_METHOD": "GET", "RAW_URI": path, "PATH_INFO": path,
               "SERVER_PROTOCOL": "HTTP/1.1", "QUERY_STRING": ""}
    response = SimpleNamespace(status="404 Not Found", headers=[], sent=179)
    logger.access(response, SimpleNamespace(headers=[]), environ, datetime.timedelta(milliseconds=3))
    return capsys.readouterr().out


def test_a_path_with_a_decoded_newline_cannot_forge_a_second_line(monkeypatch, capsys):
    logged = _logged(monkeypatch, capsys, '/verify/x\n127.0.0.1 "GET /console/forged" 200')

    assert logged.count("\n") == 1
    assert logged.startswith('10.0.0.7 "GET /verify/x\\x0a127.0.0.1')


@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_card_numbers_in_paths_are_masked_to_their_last_four_digits(monkeypatch, capsys, log_format):
    logged = _logged(monkeypatch, capsys, "/sim/cards/api/cards/8103113636000036/block", log_format)

    assert "8103113636000036" not in logged
    assert "/cards/************0036/block" in logged


def test_in_json_the_message_keeps_the_last_digits_of_a_masked_number(monkeypatch, capsys):
    entry = json.loads(_logged(monkeypatch, capsys, "/sim/cards/api/cards/8103113636000036", "json"))

    assert entry["msg"] == "GET /sim/cards/api/cards/************0036 -> 404"


def test_in_json_each_request_is_one_object_with_its_fields(monkeypatch, capsys):
    logged = _logged(monkeypatch, capsys, '/verify/x\n{"level": "forged"}', "json")

    assert logged.count("\n") == 1
    entry = json.loads(logged)
    assert entry["logger"] == "gunicorn.access" and entry["level"] == "INFO"
    assert entry["path"] == '/verify/x\\x0a{"level": "forged"}'
    assert (entry["method"], entry["status"], entry["bytes"], entry["remote"]) == ("GET", 404, 179, "10.0.0.7")
    assert entry["duration_ms"] == 3.0


def test_in_json_the_servers_own_messages_are_objects_too(monkeypatch, capsys):
    logger = _server_logger(monkeypatch, "json")
    logger.error("Worker (pid:%s) was sent SIGKILL!", 4242)

    entry = json.loads(capsys.readouterr().err)
    assert (entry["logger"], entry["level"]) == ("gunicorn.error", "ERROR")
    assert entry["msg"] == "Worker (pid:4242) was sent SIGKILL!"


def test_short_numbers_and_plain_text_pass_unchanged():
    assert log_safe("/api/v1/closures/CL-2026-000123") == "/api/v1/closures/CL-2026-000123"
    assert log_safe("tab\there") == "tab\\x09here"

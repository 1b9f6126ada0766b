"""HEAD gets GET's status and headers and no body from the application itself: gunicorn would
drop a body too, but logs a warning for every HEAD answer that has one."""

from __future__ import annotations

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.test import RequestFactory

pytestmark = pytest.mark.django_db


def served(method: str, path: str) -> tuple[str, dict, bytes]:
    """What the WSGI server is handed (Django's test client would drop a HEAD body itself)."""
    answer = {}

    def start_response(status, headers, exc_info=None):
        answer.update(status=status, headers=dict(headers))

    chunks = WSGIHandler()(RequestFactory().generic(method, path).environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        chunks.close()
    return answer["status"], answer["headers"], body


@pytest.mark.parametrize("path", ["/api/v1/openapi.json", "/api/v1/certificates/keys", "/healthz"])
def test_head_is_answered_with_get_s_headers_and_no_body(path):
    get_status, get_headers, get_body = served("GET", path)
    status, headers, body = served("HEAD", path)

    assert status == get_status and get_body
    assert body == b""
    assert headers["Content-Length"] == str(len(get_body))
    assert headers["Content-Type"] == get_headers["Content-Type"]
    assert "frame-ancestors" in headers["Content-Security-Policy"]


def test_a_head_problem_has_no_body_either():
    status, headers, body = served("HEAD", "/api/v1/closures/CL-2026-000001")
    assert status.startswith("401") and headers["Content-Type"] == "application/problem+json" and body == b""

"""RFC 9457 problem details: every API error is application/problem+json."""

from __future__ import annotations

import functools
import json

from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

BASE = "https://closeout.dev/problems/"


def problem(status: int, slug: str, title: str, detail: str = "", errors: list[dict] | None = None,
            **extra) -> HttpResponse:
    body = {"type": BASE + slug, "title": title, "status": status, "detail": detail or title}
    if errors:
        body["errors"] = errors
    body.update(extra)
    return HttpResponse(json.dumps(body, ensure_ascii=False), status=status,
                        content_type="application/problem+json")


def unreadable_json_detail(cause: BaseException | None) -> str:
    """Say why a body could not be read as JSON, and where, without quoting any of it (it may hold
    a card number or an ID document)."""
    if isinstance(cause, json.JSONDecodeError):
        return f"The body is not valid JSON: {cause.msg} at line {cause.lineno} column {cause.colno}."
    if isinstance(cause, UnicodeDecodeError):
        return f"The body is not valid JSON: it is not UTF-8 text ({cause.reason} at byte {cause.start})."
    if isinstance(cause, RecursionError):
        return "The body is not valid JSON that can be read: arrays or objects are nested too deeply."
    return "The body could not be read as JSON."


def field_errors_from_ninja(errors: list[dict]) -> list[dict]:
    """Turn pydantic errors into [{field, message}] without echoing the submitted values."""
    out = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", []) if part not in ("body", "payload")]
        out.append({"field": ".".join(loc) or "body", "message": error.get("msg", "invalid")})
    return out


def methods_allowed(*methods: str):
    """Let a view answer only `methods` (HEAD too wherever GET is); any other is a 405 problem with Allow.

    Django's own `require_http_methods` answers an empty text/html 405, and the CSRF check runs
    before it, so a POST to a GET-only address would get the CSRF failure page instead. These
    views change nothing for a browser's session (GET-only ones, or simulators and machine
    endpoints that authenticate by signature or not at all), so they are exempt from CSRF and
    every wrong method gets the same machine-readable answer.
    """
    allowed = tuple(dict.fromkeys(m for method in methods for m in ((method, "HEAD") if method == "GET" else (method,))))

    def decorator(view):
        @functools.wraps(view)
        def inner(request, *args, **kwargs):
            if request.method not in allowed:
                response = problem(405, "method-not-allowed", "Method not allowed",
                                   f"This address takes {', '.join(allowed)}.")
                response["Allow"] = ", ".join(allowed)
                return response
            return view(request, *args, **kwargs)

        exempt = csrf_exempt(inner)
        exempt.allowed_methods = allowed  # read by the CSRF audit in tests/hardening/test_security.py
        return exempt

    return decorator

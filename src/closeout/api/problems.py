"""RFC 9457 problem details: every API error is application/problem+json."""

from __future__ import annotations

import json

from django.http import HttpResponse

BASE = "https://closeout.dev/problems/"


def problem(status: int, slug: str, title: str, detail: str = "", errors: list[dict] | None = None,
            **extra) -> HttpResponse:
    body = {"type": BASE + slug, "title": title, "status": status, "detail": detail or title}
    if errors:
        body["errors"] = errors
    body.update(extra)
    return HttpResponse(json.dumps(body, ensure_ascii=False), status=status,
                        content_type="application/problem+json")


def field_errors_from_ninja(errors: list[dict]) -> list[dict]:
    """Turn pydantic errors into [{field, message}] without echoing the submitted values."""
    out = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", []) if part not in ("body", "payload")]
        out.append({"field": ".".join(loc) or "body", "message": error.get("msg", "invalid")})
    return out

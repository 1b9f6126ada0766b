"""One HTTP client for the real-protocol adapters: timeouts, and the error mapping every adapter
shares (connection trouble and 5xx are transient, other 4xx permanent)."""

from __future__ import annotations

import httpx

from closeout.integrations.errors import PermanentError, TransientError

TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def client(base_url: str, *, headers: dict | None = None, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    return httpx.Client(base_url=base_url.rstrip("/"), headers=headers or {}, timeout=TIMEOUT, transport=transport)


def send(http: httpx.Client, method: str, url: str, *, what: str, **kwargs) -> httpx.Response:
    """Send one request; return the response for 2xx.

    :raises TransientError: for timeouts, connection errors, 429 and 5xx.
    :raises PermanentError: for any other 4xx.
    """
    try:
        response = http.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        raise TransientError(f"{what}: timed out") from exc
    except httpx.TransportError as exc:
        raise TransientError(f"{what}: {type(exc).__name__}") from exc
    if response.status_code == 429 or response.status_code >= 500:
        raise TransientError(f"{what}: answered {response.status_code}")
    if response.status_code >= 400:
        detail = ""
        if response.headers.get("content-type", "").startswith(("application/json", "application/problem+json")):
            detail = str(response.json().get("detail", ""))[:120]
        raise PermanentError(f"{what}: answered {response.status_code} {detail}".strip())
    return response

"""Reject oversized bodies (413), bodies without a length (411) and non-JSON bodies (415) on the
API before any parsing. (A WSGI request without Content-Length reads as empty: a chunked body
would otherwise be ignored silently.) Errors Django answers itself under the API (an unknown path,
a method not allowed, a crash) become application/problem+json like every other API error."""

from __future__ import annotations

from http import HTTPStatus

from django.conf import settings

from closeout.api.problems import problem

API_PREFIX = "/api/"
PROBLEM_TYPES = ("application/problem+json", "application/json")


class ApiBodyGuard:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith(API_PREFIX) and request.method in ("POST", "PUT", "PATCH"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if not request.META.get("CONTENT_LENGTH") and "chunked" in request.META.get(
                    "HTTP_TRANSFER_ENCODING", "").lower():
                return problem(411, "length-required", "Length required",
                               "Send the body with a Content-Length header (chunked bodies are not accepted).")
            if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
                return problem(413, "body-too-large", "Request body too large",
                               f"The body may be at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")
            content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
            if length and content_type != "application/json":
                return problem(415, "unsupported-media-type", "Unsupported media type",
                               "Send the body as application/json.")
        response = self.get_response(request)
        if request.path.startswith(API_PREFIX) and response.status_code >= 400:
            content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if content_type not in PROBLEM_TYPES:
                return _as_problem(response)
        return response


class ApiHead:
    """Answer HEAD under the API as GET (ninja routes GET only, and answered HEAD with a 405): the
    view runs as for GET, and `common.head.HeadWithoutBody` drops the body while keeping the
    Content-Length GET would carry. An address that takes GET lists HEAD in the Allow header of its
    405 too."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        head = request.method == "HEAD"
        if head:
            request.method = "GET"
        response = self.get_response(request)
        if head:
            request.method = "HEAD"  # what the server (and Django's test client) drops the body by
        allowed = [method.strip() for method in response.headers.get("Allow", "").split(",") if method.strip()]
        if "GET" in allowed and "HEAD" not in allowed:
            response.headers["Allow"] = ", ".join([*allowed, "HEAD"])
        return response


def _as_problem(response):
    status = response.status_code
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    slug = phrase.lower().replace(" ", "-")
    detail = {404: "There is nothing at this address.", 405: "This address does not take this method."}.get(
        status, "The request could not be handled." if status < 500 else "Something went wrong on our side.")
    replacement = problem(status, slug, phrase, detail)
    if "Allow" in response.headers:
        replacement.headers["Allow"] = response.headers["Allow"]
    return replacement

"""The answer to an error no view handled. A database that cannot be reached or is out of
connections (a failover, a restart, every connection slot taken) is not a bug in the request:
it gets a 503 with Retry-After, so clients and load balancers try again, instead of a 500."""

from __future__ import annotations

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from django.template.loader import render_to_string

from closeout.api.problems import problem

RETRY_AFTER_SECONDS = 5
MACHINE_PREFIXES = ("/api/", "/sim/", "/feeds/")


def server_error(request) -> HttpResponse:
    unavailable = isinstance(sys.exc_info()[1], (OperationalError, InterfaceError))
    status = 503 if unavailable else 500
    if request.path.startswith(MACHINE_PREFIXES):
        response = (problem(503, "service-unavailable", "Service unavailable",
                            "The service is briefly unavailable. Try again in a moment (with the same "
                            "Idempotency-Key for a POST).")
                    if unavailable else problem(500, "internal-error", "Internal error",
                                                "Something went wrong on our side."))
    else:
        response = HttpResponse(render_to_string("503.html" if unavailable else "500.html"), status=status)
    if unavailable:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response

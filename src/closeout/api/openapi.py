"""The OpenAPI document says what the API really answers: every error is
application/problem+json; any operation may answer 400 (unreadable request), 404 and 422
(invalid parameters), and 401 when it needs a key; every body-taking call may answer 411, 413 or
415 (ApiBodyGuard); and a POST that takes an Idempotency-Key requires it."""

from __future__ import annotations

from ninja import NinjaAPI

from closeout.api import idempotency

PROBLEM_JSON = "application/problem+json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
BODY_METHODS = ("post", "put", "patch")
GUARD_RESPONSES = {411: "Length Required", 413: "Content Too Large", 415: "Unsupported Media Type"}
COMMON_RESPONSES = {400: "Bad Request", 404: "Not Found", 422: "Unprocessable Content"}


class ProblemNinjaAPI(NinjaAPI):
    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        for operations in schema.get("paths", {}).values():
            for method, operation in operations.items():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                # ninja keys its responses by int, JSON by text: one key per status, or the
                # document holds "401" twice and viewers (Swagger UI) refuse to show it.
                responses = operation["responses"] = {str(status): response for status, response
                                                       in operation["responses"].items()}
                for status, response in responses.items():
                    content = response.get("content") or {}
                    if int(status) >= 400 and "application/json" in content:
                        response["content"] = {PROBLEM_JSON: content["application/json"]}
                declared = dict(COMMON_RESPONSES)
                if operation.get("security"):
                    declared[401] = "Unauthorized"
                if method in BODY_METHODS:
                    declared.update(GUARD_RESPONSES)
                for status, description in declared.items():
                    responses.setdefault(str(status), {
                        "description": description, "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}}})
                for parameter in operation.get("parameters", []):
                    if parameter.get("in") == "header" and parameter.get("name") == idempotency.HEADER:
                        parameter["required"] = True
                        # The view checks the form itself (api/idempotency.py): declare it here.
                        parameter["schema"].update(minLength=1, maxLength=idempotency.MAX_LENGTH,
                                                   pattern=idempotency.PATTERN)
        return schema

"""Schemathesis against the OpenAPI document of a real running closeout (gunicorn, and PostgreSQL
in the PostgreSQL pass): no 5xx, every response as the schema declares it (status, content type,
body, headers), problem+json on every 4xx, invalid input rejected, auth never ignored.

The normal suite sends at least 2,000 generated requests on SQLite and 1,000 on PostgreSQL
(`scripts/run_tests.py`); `make fuzz` sets CLOSEOUT_FUZZ_MIN_CASES to 10,000.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

# At least this many generated requests; spread over every operation x (valid, invalid), with a
# margin for runs that cannot be generated (an operation with nothing that can be invalid).
FUZZ_MIN_CASES = int(os.environ.get("CLOSEOUT_FUZZ_MIN_CASES", "2000"))
EXAMPLES = os.environ.get("CLOSEOUT_FUZZ_EXAMPLES")  # examples per run, to force a figure
RESERVED_FOR_RACES = 6
SENT: Counter[str] = Counter()
STATUSES: Counter[int] = Counter()


@pytest.fixture(scope="session")
def api_schema(closeout_server):
    config = schemathesis.Config.from_dict({
        "generation": {"with-security-parameters": False},
        "checks": {"positive_data_acceptance": {
            # The schema cannot say that a card number needs its check digit or that the ID must match
            # the card: schema-valid data may still be refused with a 422 problem, or a 429 once wrong
            # ID documents have locked a card, never otherwise.
            "expected-statuses": ["2XX", "401", "403", "404", "409", "422", "429"]},
            # A body over the size limit is refused before it is read, with a 413 problem: an array
            # longer than its maxItems can be that large (1001 contacts to check, for one).
            "negative_data_rejection": {"expected-statuses": [
                "400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]}},
    })
    loaded = schemathesis.openapi.from_url(closeout_server.url + "/api/v1/openapi.json", config=config)
    loaded.config.update(base_url=closeout_server.url)
    return loaded


@pytest.fixture(scope="session")
def known(closeout_server):
    """Real values the generator mixes in so that requests also get past validation: demo cards
    with their ID documents, and references of closures opened by both API keys."""
    cards = [c for c in closeout_server.demo_cards if c["status"] == "active"]
    references = []
    for index, card in enumerate(cards[:4]):
        scope = "operator" if index % 2 else "partner"
        response = requests.post(closeout_server.url + "/api/v1/closures", json={
            "card_number": card["number"], "holder_name": card["holder_name"], "id_document": card["id_document"],
        }, headers=closeout_server.headers(scope=scope, **{"Idempotency-Key": f"fuzz-seed-{index}"}))
        assert response.status_code == 201, response.text
        references.append(response.json()["reference"])
    # The last demo cards are kept for the HTTP race tests (test_concurrency.py), which need them untouched.
    return {"cards": cards[4:-RESERVED_FOR_RACES], "references": references,
            "auth": [closeout_server.headers(scope="operator"), closeout_server.headers(scope="partner")]}


def _mix_in_real_values(case, known, data) -> None:
    """Replace generated values by real ones some of the time (valid cases only: an invalid case
    must stay invalid)."""
    if "reference" in (case.path_parameters or {}) and data.draw(st.booleans()):
        case.path_parameters["reference"] = data.draw(st.sampled_from(known["references"]))
    body = case.body if isinstance(case.body, dict) else None
    if body is None:
        return
    if "card_number" in body and data.draw(st.booleans()):
        card = data.draw(st.sampled_from(known["cards"]))
        body["card_number"] = card["number"]
        if "id_document" in body and data.draw(st.booleans()):
            body["id_document"] = dict(card["id_document"])
    if "currency" in body and data.draw(st.booleans()):
        body["currency"] = data.draw(st.sampled_from(["HKD", "CNY", "JPY", "hkd", "KWD", "USD"]))


def problem_json_on_every_4xx(ctx, response, case):
    """Every client error is RFC 9457 problem details with a type, title, status and detail."""
    if not 400 <= response.status_code < 500:
        return None
    content_type = (response.headers.get("content-type") or [""])[0].split(";")[0].strip()
    assert content_type == "application/problem+json", (
        f"{response.status_code} answered with {content_type!r}, expected application/problem+json")
    body = json.loads(response.content)
    assert body.get("status") == response.status_code, "problem status differs from the HTTP status"
    for member in ("type", "title", "detail"):
        assert isinstance(body.get(member), str) and body[member], f"problem without {member}"
    return None


def _fuzz(operation, http, known, mode: GenerationMode, examples: int) -> None:
    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              phases=[Phase.explicit, Phase.generate, Phase.shrink])
    def run(case, data):
        if mode == GenerationMode.POSITIVE:
            _mix_in_real_values(case, known, data)
        headers = data.draw(st.sampled_from(known["auth"]))
        response = case.call_and_validate(session=http, headers=headers,
                                          additional_checks=[problem_json_on_every_4xx])
        SENT[f"{operation.label} {mode.value}"] += 1
        STATUSES[response.status_code] += 1

    run()


def _fuzz_one(operation, closeout_known, mode, examples) -> str | None:
    """Fuzz one operation in one mode on its own HTTP session; return the failure report, if any."""
    with requests.Session() as http:
        try:
            _fuzz(operation, http, closeout_known, mode, examples)
        except Unsatisfiable:
            # Nothing of this operation can be invalid (e.g. a GET with one free string in its path).
            if mode == GenerationMode.POSITIVE:
                return f"--- {operation.label}: no valid request can be generated"
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collect every operation's failures
            return f"--- {operation.label} ({mode.value})\n{exc}"
    return None


def test_api_answers_every_generated_request_as_declared(api_schema, known):
    """Every operation in the OpenAPI document, with valid and with invalid data. (One run at a
    time: schemathesis' strategy caches are not safe to share between threads.)"""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert operations, "the OpenAPI document lists no operation"
    runs = [(operation, mode) for operation in operations for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
    failures = []
    for _ in range(4):  # rounds: runs that can give more (not exhausted) share what is missing
        missing = FUZZ_MIN_CASES - sum(SENT.values())
        if missing <= 0 or not runs or failures:
            break
        examples = int(EXAMPLES) if EXAMPLES else math.ceil(missing * 1.1 / len(runs))
        productive = []
        for operation, mode in runs:
            label = f"{operation.label} {mode.value}"
            before = SENT[label]
            failure = _fuzz_one(operation, known, mode, examples)
            if failure:
                failures.append(failure)
            elif SENT[label] - before >= examples:
                productive.append((operation, mode))
        runs = productive
    assert not failures, "\n\n".join(failures)
    total = sum(SENT.values())
    print(f"\nschemathesis: {total} generated requests; by operation {dict(SENT)}; statuses {dict(STATUSES)}")
    assert total >= FUZZ_MIN_CASES

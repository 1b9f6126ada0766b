"""Operations surface: /metrics in the Prometheus text format, /healthz, /readyz, and JSON logs
that carry the case reference and no personal data."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from closeout.closures import dispatch, services, states
from closeout.closures.models import ClosureCase
from closeout.common import clock
from closeout.integrations.models import SimFault
from closeout.ops import observe
from closeout.ops import services as services_ops
from closeout.ops.logs import CaseContextFilter, JsonFormatter
from tests.fixtures import unique_dbos_url, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _samples(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    found = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0)


def _step_count(samples, step):
    return sum(v for (name, labels), v in samples.items()
               if name == "closeout_step_duration_seconds_count" and ("step", step) in labels)


@pytest.fixture
def json_log():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(CaseContextFilter())
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    root.removeHandler(handler)
    root.setLevel(level)


def test_metrics_count_cases_refunds_steps_and_adapter_errors(dbos_worker, make_card, client, json_log):
    before = _samples(client)
    # The card system fails five times in a row for the second card: its block step gives up.
    ok_card = make_card("YKT", balance=45000)
    ok = services.closure_request(card=ok_card, channel="web", requester="customer:web")
    wait_for(lambda: ClosureCase.objects.get(reference=ok.reference).state == states.CLOSED)
    SimFault.objects.create(system="card_system", operation="block", mode="error_5xx", remaining=5)
    bad = services.closure_request(card=make_card("YKT", balance=900), channel="web", requester="customer:web")
    wait_for(lambda: ClosureCase.objects.get(reference=bad.reference).state == states.FAILED, timeout=60)

    after = _samples(client)
    assert _value(after, "closeout_cases", state="closed") == 1
    assert _value(after, "closeout_cases", state="failed_needs_attention") == 1
    assert _value(after, "closeout_cases", state="draft") == 0  # every state is listed, even empty ones
    assert _value(after, "closeout_refunds", currency="CNY", status="succeeded") == 2
    assert _value(after, "closeout_refund_amount_minor", currency="CNY", status="succeeded") == (
        ok.quote["refund"] + bad.quote["refund"])
    errors = ("closeout_adapter_errors_total", {"system": "card_system", "call": "block", "kind": "transient"})
    assert _value(after, errors[0], **errors[1]) - _value(before, errors[0], **errors[1]) == 5
    assert _step_count(after, "refund") - _step_count(before, "refund") == 2
    assert _step_count(after, "closure_verify") - _step_count(before, "closure_verify") == 2
    failed_blocks = _value(after, "closeout_step_duration_seconds_count", step="block", system="card_system",
                           outcome="error") - _value(before, "closeout_step_duration_seconds_count", step="block",
                                                     system="card_system", outcome="error")
    assert failed_blocks == 5

    lines = json_log()
    failure = [e for e in lines if e["msg"].startswith(f"action {bad.reference}:deactivate failed")]
    assert failure and failure[0]["case"] == bad.reference and failure[0]["level"] == "WARNING"
    assert failure[0]["workflow_id"] == f"{bad.reference}:deactivate"
    # Each case's way is in the log under its reference: every transition, every step with its system.
    moves = [(e["from_state"], e["to_state"]) for e in lines if e.get("event") == "transition" and e.get("case") == ok.reference]
    assert moves == [("draft", "submitted"), ("submitted", "verified"), ("verified", "settled"),
                     ("settled", "refund_pending"), ("refund_pending", "refunded"), ("refunded", "deactivating"),
                     ("deactivating", "closed")]
    calls = {(e["step"], e["system"], e["outcome"]) for e in lines if e.get("step") and e.get("case") == ok.reference}
    assert {("refund", "payments", "ok"), ("block", "card_system", "ok"), ("closure_settle", "closeout", "ok")} <= calls
    failed = [e for e in lines if e.get("step") == "block" and e.get("case") == bad.reference and e["outcome"] == "error"]
    assert len(failed) == 5 and {e["level"] for e in failed} == {"WARNING"} and all("duration_ms" in e for e in failed)
    text = "\n".join(json.dumps(e, ensure_ascii=False) for e in lines)
    for canary in ("holder@example.test", "91234567", ok_card.number, "A1234563", "陈大文"):
        assert canary not in text


def test_adapter_errors_are_counted_under_the_external_system_that_failed(dbos_worker, make_card, client):
    # An alert on one system's errors must see them all: a partner endpoint's 5xx answers and the
    # carrier's outage were counted under no system (or "closeout").
    before = _samples(client)
    SimFault.objects.create(system="partners", operation="maps-app", mode="error_5xx", remaining=2)
    SimFault.objects.create(system="shipping", operation="create_label", mode="error_5xx", remaining=5)
    bound = services.closure_request(card=make_card("YKT", balance=500, bindings=["maps-app"]), channel="web",
                                     requester="customer:web")
    mailed = services.closure_request(card=make_card("OCTO", balance=500), channel="web", requester="customer:web")
    wait_for(lambda: ClosureCase.objects.get(reference=bound.reference).state == states.CLOSED)
    wait_for(lambda: ClosureCase.objects.get(reference=mailed.reference).events.filter(
        note="no carrier label: the customer prints the prepaid label").exists())

    after = _samples(client)

    def delta(name, **labels):
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert delta("closeout_adapter_errors_total", system="partners", call="send", kind="transient") == 2
    assert delta("closeout_adapter_errors_total", system="shipping", call="create_return_label",
                 kind="transient") == 5
    assert not any(name == "closeout_adapter_errors_total" and ("system", "closeout") in labels
                   for name, labels in after)
    # Step times carry the system too: "the payment provider answers slowly" is one query.
    assert delta("closeout_step_duration_seconds_count", step="send", system="partners", outcome="error") == 2
    assert delta("closeout_step_duration_seconds_count", step="refund", system="payments", outcome="ok") == 1


def test_refusals_answered_rather_than_raised_are_counted_as_permanent_adapter_errors(dbos_worker, make_card, client):
    # A refund the provider declined and a partner's 422 parked their cases for staff but were
    # counted nowhere: an alert on kind="permanent" saw only refusals raised (the card system's).
    before = _samples(client)
    SimFault.objects.create(system="payments", operation="refund", mode="decline", remaining=1)
    declined = services.closure_request(card=make_card("YKT", balance=900), channel="web", requester="customer:web")
    wait_for(lambda: ClosureCase.objects.get(reference=declined.reference).state == states.FAILED, timeout=60)
    SimFault.objects.create(system="partners", operation="maps-app", mode="decline", remaining=1)
    refused = services.closure_request(card=make_card("YKT", balance=900, bindings=["maps-app"]), channel="web",
                                       requester="customer:web")
    wait_for(lambda: ClosureCase.objects.get(reference=refused.reference).state == states.FAILED, timeout=60)
    SimFault.objects.create(system="card_system", operation="block", mode="decline", remaining=1)
    blocked = services.closure_request(card=make_card("YKT", balance=900), channel="web", requester="customer:web")
    wait_for(lambda: ClosureCase.objects.get(reference=blocked.reference).state == states.FAILED, timeout=60)

    after = _samples(client)

    def delta(**labels):
        return (_value(after, "closeout_adapter_errors_total", **labels)
                - _value(before, "closeout_adapter_errors_total", **labels))

    assert delta(system="payments", call="refund", kind="permanent") == 1
    assert delta(system="partners", call="send", kind="permanent") == 1
    assert delta(system="card_system", call="block", kind="permanent") == 1
    assert delta(system="payments", call="refund", kind="transient") == 0  # a refusal is not retried


def _refused_by_the_card_system():
    from closeout.integrations.errors import PermanentError

    @observe.calls("card_system", "block")
    def block():
        raise PermanentError("card system answered 422")

    with pytest.raises(PermanentError), observe.step(block):
        block()


def test_a_permanent_refusal_is_not_counted_again_when_dbos_runs_its_step_again(client, monkeypatch):
    # A worker killed after counting a refusal and before DBOS recorded its step: DBOS runs the step
    # again under the same workflow and step ids, and the system refuses again. With
    # PROMETHEUS_MULTIPROC_DIR the dead worker's count outlives it; the second run must not add one.
    before = _samples(client)
    monkeypatch.setattr(observe, "_dbos_step", lambda: ("CL-2026-990001:refund", 3), raising=False)
    for _ in range(2):
        observe.refusals_count("payments", "refund")
        _refused_by_the_card_system()
    monkeypatch.setattr(observe, "_dbos_step", lambda: ("CL-2026-990001:refund:2", 3), raising=False)
    observe.refusals_count("payments", "refund")  # the case resumed: a new workflow, a new refusal
    observe.refusals_count("partners", "send", kind="transient")
    observe.refusals_count("partners", "send", kind="transient")  # each failed attempt is one

    after = _samples(client)

    def delta(**labels):
        return (_value(after, "closeout_adapter_errors_total", **labels)
                - _value(before, "closeout_adapter_errors_total", **labels))

    assert delta(system="payments", call="refund", kind="permanent") == 2
    assert delta(system="card_system", call="block", kind="permanent") == 1
    assert delta(system="partners", call="send", kind="transient") == 2


def test_a_refusal_outside_a_dbos_step_counts_each_time(client):
    before = _samples(client)
    _refused_by_the_card_system()
    _refused_by_the_card_system()

    after = _samples(client)

    labels = dict(system="card_system", call="block", kind="permanent")
    assert _value(after, "closeout_adapter_errors_total", **labels) - _value(
        before, "closeout_adapter_errors_total", **labels) == 2


def test_a_real_workflows_refusal_is_marked_with_its_workflow_and_step(dbos_worker, make_card):
    from closeout.ops.models import RefusalCounted

    SimFault.objects.create(system="payments", operation="refund", mode="decline", remaining=1)
    declined = services.closure_request(card=make_card("YKT", balance=900), channel="web", requester="customer:web")
    wait_for(lambda: ClosureCase.objects.get(reference=declined.reference).state == states.FAILED, timeout=60)

    [mark] = RefusalCounted.objects.filter(workflow_id__startswith=f"{declined.reference}:")
    assert (mark.system, mark.call) == ("payments", "refund") and mark.workflow_id.startswith(
        f"{declined.reference}:refund") and mark.step_id >= 0


def test_metrics_can_require_a_token(client, settings):
    settings.METRICS_TOKEN = "s3cret-scrape-token"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token").status_code == 200


def test_healthz_answers_while_the_process_is_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_is_ready_with_migrated_databases_and_a_live_worker(dbos_system, client):
    services_ops.heartbeat_start(executor_id="worker-a")
    services_ops.heartbeat_beat(executor_id="worker-a")  # launched: a worker beats once DBOS runs
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "migrations": "ok",
                                                             "system_database": "ok", "workers": "ok"}}


def test_readyz_is_not_ready_without_a_worker_with_a_fresh_heartbeat(dbos_system, client, settings):
    # Nothing moves the closures: the web answers, but the operator must hear of it.
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "migrations": "ok", "system_database": "ok",
                                         "workers": "failed"}
    services_ops.heartbeat_start(executor_id="worker-a", now=clock.now() - timedelta(seconds=settings.HEARTBEAT_STALE_SEC + 1))
    assert client.get("/readyz").json()["checks"]["workers"] == "failed"  # stale
    services_ops.heartbeat_beat(executor_id="worker-a")
    assert client.get("/readyz").status_code == 200
    services_ops.heartbeat_stop(executor_id="worker-a")
    assert client.get("/readyz").status_code == 503  # stopped

    # A load balancer in front of the web processes leaves the workers out.
    response = client.get("/readyz?exclude=workers")
    assert response.status_code == 200 and response.json()["checks"]["workers"] == "excluded"
    response = client.get("/readyz?exclude=worker")
    assert response.status_code == 400 and response["Content-Type"] == "application/problem+json"
    assert "worker" in response.json()["detail"] and "workers" in response.json()["detail"]


def test_readyz_names_an_unmigrated_system_database(transactional_db, client, settings, tmp_path):
    settings.DBOS_SYSTEM_DATABASE_URL = unique_dbos_url(tmp_path)  # never migrated (or created)
    dispatch.reset_client()
    try:
        response = client.get("/readyz")
    finally:
        dispatch.reset_client()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["checks"] == {"database": "ok", "migrations": "ok", "system_database": "failed", "workers": "failed"}


def test_json_log_lines_carry_the_case_and_scrub_personal_data():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(CaseContextFilter())
    log = logging.getLogger("closeout.test.logs")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("outside any case")
        with observe.case_context("CL-2026-000042", "CL-2026-000042:refund"):
            log.warning("holder %s, phone %s, id %s / %s, card %s, bank %s at %s",
                        "chan.tai.man@example.com", "+852 9123 4567", "A123456(3)", "11010119900307803X",
                        "8101 0000 0000 1234", "HK12-3456-7890-12", "2026-01-02T10:00:00")
    finally:
        log.removeHandler(handler)
        log.propagate = True
    outside, inside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert "case" not in outside and outside["msg"] == "outside any case"
    assert inside["case"] == "CL-2026-000042" and inside["workflow_id"] == "CL-2026-000042:refund"
    for canary in ("chan.tai.man", "9123", "123456", "11010119900307803X", "0000", "3456"):
        assert canary not in inside["msg"], canary
    assert inside["msg"].endswith("at 2026-01-02T10:00:00")  # dates survive the scrub


def test_json_log_lines_of_a_worker_name_its_executor_id(monkeypatch):
    # "heartbeat failed", "notice 75 failed": with two workers logging to one store, which one?
    from closeout import worker

    record = logging.getLogger("closeout.ops.heartbeat").makeRecord(
        "closeout.ops.heartbeat", logging.WARNING, __file__, 1, "heartbeat failed", (), None)
    assert "executor_id" not in json.loads(JsonFormatter().format(record))  # a web process has none

    monkeypatch.setattr(worker, "_current_executor", "worker-b")
    record = logging.getLogger("closeout.ops.heartbeat").makeRecord(
        "closeout.ops.heartbeat", logging.WARNING, __file__, 1, "heartbeat failed", (), None)
    assert json.loads(JsonFormatter().format(record))["executor_id"] == "worker-b"


def test_dbos_warnings_are_json_lines_with_the_case(settings):
    from dbos._logger import init_logger

    init_logger()  # what DBOS does at start: it must find our handler and add none of its own
    dbos_log = logging.getLogger("dbos")
    assert "__dbos_console_log_handler__" not in [h.name for h in dbos_log.handlers]
    [handler] = [h for h in dbos_log.handlers if any(isinstance(f, CaseContextFilter) for f in h.filters)]
    record = dbos_log.makeRecord("dbos", logging.WARNING, __file__, 1, "Step being automatically retried: %s",
                                 ("Traceback (most recent call last):\n  boom",), None)
    with observe.case_context("CL-2026-000077", "CL-2026-000077:refund"):
        assert handler.filter(record)
        line = handler.format(record)

    if settings.LOG_FORMAT == "json":
        assert "\n" not in line
        entry = json.loads(line)
        assert entry["case"] == "CL-2026-000077" and entry["logger"] == "dbos"
        assert entry["msg"].startswith("Step being automatically retried: Traceback")
    else:
        assert "[CL-2026-000077]" in line


def test_requests_about_a_case_are_logged_under_its_reference(client, make_card, settings, json_log):
    # `jq 'select(.case == "CL-…")'` tells a case's story: the partner's refused card-received and
    # the staff's visits to the case page belong to it, though no workflow is running then.
    from closeout.api.keys import apikey_create

    settings.CLOSEOUT_DISPATCH = False
    case = services.closure_request(card=make_card("YKT", balance=500), channel="web", requester="customer:web")
    _, secret = apikey_create(name="ops", scope="operator")
    answer = client.post(f"/api/v1/closures/{case.reference}/card-received", content_type="application/json",
                         HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_IDEMPOTENCY_KEY="k-1", data={})
    assert answer.status_code == 409  # the card was never asked for
    access = logging.getLogger("gunicorn.access").makeRecord(
        "gunicorn.access", logging.INFO, __file__, 1, "%s %s -> %s", ("GET", f"/console/cases/{case.reference}/", 200),
        None, extra={"path": f"/console/cases/{case.reference}/", "status": 200})  # as gunicorn_conf writes it

    refused = [e for e in json_log() if e["logger"] == "django.request"]
    assert refused and refused[0]["case"] == case.reference
    assert json.loads(JsonFormatter().format(access))["case"] == case.reference


def test_a_failed_step_is_logged_with_what_the_system_answered(json_log):
    # "step refund error" alone sent the on-call engineer to the DBOS traceback lines for the why.
    from closeout.integrations.errors import TransientError
    from closeout.integrations.payments.simulator import SimulatedPaymentProvider

    with pytest.raises(TransientError), observe.case_context("CL-2026-000051", "CL-2026-000051:refund"), \
            observe.step(SimulatedPaymentProvider.refund):
        raise TransientError("payment provider answered 503")

    [line] = [e for e in json_log() if e.get("step") == "refund"]
    assert (line["case"], line["system"], line["outcome"], line["level"]) == (
        "CL-2026-000051", "payments", "error", "WARNING")
    assert line["error"] == "payment provider answered 503"
    assert line["msg"] == "step refund error: payment provider answered 503"


def test_dbos_repeating_itself_through_an_outage_is_one_line_a_minute_with_a_count(monkeypatch):
    # With its system database down, DBOS warned twice per queue at each poll, with a traceback:
    # about 50 lines a second per worker, burying everything else the on-call engineer looks for.
    from closeout.ops import logs

    assert [f for f in logging.getLogger("dbos").filters if isinstance(f, logs.RepeatsFilter)]  # as configured
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(CaseContextFilter())
    handler.addFilter(logs.RepeatsFilter())  # one of its own: the configured one remembers earlier tests' lines
    clock_now = [1000.0]
    monkeypatch.setattr(logs.time, "monotonic", lambda: clock_now[0])
    dbos_log = logging.getLogger("closeout.test.dbos_like")
    dbos_log.propagate = False
    dbos_log.addHandler(handler)
    try:
        for second in range(90):
            clock_now[0] = 1000.0 + second
            for queue in ("payments", "card_system"):
                dbos_log.warning(f"Exception encountered in queue thread for {queue}: connection failed: "
                                 f"port 5432 (attempt {second})")
        with observe.case_context("CL-2026-000061", "CL-2026-000061:refund"):
            for _ in range(3):  # a case's own warnings (step retries) are its story: all kept
                dbos_log.warning("Step being automatically retried (attempt 1 of 5)")
    finally:
        dbos_log.removeHandler(handler)
        dbos_log.propagate = True

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    queue_lines = [e for e in lines if "queue thread" in e["msg"]]
    assert len(queue_lines) == 4  # each queue's once, then again a minute later with what was left out
    assert [e.get("repeated") for e in queue_lines] == [None, None, 59, 59]
    assert len([e for e in lines if e.get("case") == "CL-2026-000061"]) == 3


def test_a_notice_that_fails_is_logged_with_its_case_and_where_it_was_going(make_card, settings, json_log):
    # "notice 75 (receipt by email) failed: ConnectionRefusedError" named neither the case nor the relay.
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # nothing listens there
    SimFault.objects.create(system="sms", operation="send", mode="error_5xx")
    card = make_card("YKT", balance=500)
    case = services.closure_request(card=card, channel="web", requester="customer:web")
    services.closure_verify(reference=case.reference, workflow_id=f"{case.reference}:verify")  # sends the receipt

    failed = [e for e in json_log() if e["logger"] == "closeout.notifications.services" and "failed" in e["msg"]]
    by_channel = {e["channel"]: e for e in failed}
    assert set(by_channel) == {"email", "sms"}
    assert all(e["case"] == case.reference and e["level"] == "WARNING" for e in failed)
    assert "mail relay 127.0.0.1:9" in by_channel["email"]["msg"]
    assert "ConnectionRefusedError" in by_channel["email"]["msg"]
    assert "SMS gateway: SMS gateway answered 503" in by_channel["sms"]["msg"]
    text = json.dumps(failed, ensure_ascii=False)
    for canary in ("holder@example.test", "91234567", card.number):
        assert canary not in text


def test_notices_a_relay_outage_leaves_undelivered_show_with_their_age(client, make_card, settings):
    from datetime import timedelta

    from closeout.common import clock
    from closeout.notifications import services as notices
    from closeout.notifications.models import Notice

    card = make_card("YKT")
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # nothing listens there
    notices.notice_send_holder(holder=card.holder, template="status", card=card, key="CL-1:closed",
                               context={"reference": "CL-1", "state": "closed"})
    Notice.objects.filter(channel="email").update(created_at=clock.now() - timedelta(minutes=7))

    samples = _samples(client)
    assert _value(samples, "closeout_notices_undelivered", channel="email", status="failed") == 1
    assert _value(samples, "closeout_notices_undelivered", channel="sms", status="failed") == 0  # it was sent
    assert 7 * 60 <= _value(samples, "closeout_notice_oldest_undelivered_seconds", channel="email") < 8 * 60
    assert _value(samples, "closeout_notice_oldest_undelivered_seconds", channel="sms") == 0

    # Its attempts spent, it is counted as given up and no longer ages the alert.
    Notice.objects.filter(channel="email").update(attempts=notices.NOTICE_ATTEMPTS)
    samples = _samples(client)
    assert _value(samples, "closeout_notices_undelivered", channel="email", status="given_up") == 1
    assert _value(samples, "closeout_notices_undelivered", channel="email", status="failed") == 0
    assert _value(samples, "closeout_notice_oldest_undelivered_seconds", channel="email") == 0
    # A queued one whose last attempt was cut off is given up too: one series, both counted.
    Notice.objects.filter(channel="sms").update(status="queued", attempts=notices.NOTICE_ATTEMPTS,
                                                channel="email")
    assert _value(_samples(client), "closeout_notices_undelivered", channel="email", status="given_up") == 2

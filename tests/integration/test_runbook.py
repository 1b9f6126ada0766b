"""The on-call runbook (docs/reliability.md, "On call: alerts and what to do") against what closeout
serves: every figure it alerts on is on /metrics with the labels it names, it takes rates only of
counters, and its thresholds are crossed, for long enough to fire, by the outages they are for."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from closeout.common import clock
from closeout.ops import observe

pytestmark = pytest.mark.django_db(transaction=True)

RUNBOOK = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
SUFFIXES = ("_total", "_bucket", "_count", "_sum")


def _on_call_section() -> str:
    text = RUNBOOK.read_text()
    return text[text.index("## On call: alerts and what to do"):]


def _alert_rows() -> dict[str, str]:
    """Alert name → its PromQL, from the runbook table's first column."""
    rows = {}
    for line in _on_call_section().splitlines():
        found = re.match(r"\| \*\*(\w+)\*\* (.*?) \| ", line)
        if found:
            rows[found.group(1)] = found.group(2)
    return rows


def _families(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {f.name: f for f in text_string_to_metric_families(response.content.decode())}


def _family_of(name: str, families: dict):
    for suffix in ("", *SUFFIXES):
        if suffix and name.endswith(suffix) and name.removesuffix(suffix) in families:
            return families[name.removesuffix(suffix)]
        if not suffix and name in families:
            return families[name]
    return None


def _relay_down(settings) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # nothing listens there


def _notice_undelivered(card) -> None:
    from closeout.notifications import services as notices

    notices.notice_send_holder(holder=card.holder, template="status", card=card, key="CL-1:closed",
                               channels=("email",), context={"reference": "CL-1", "state": "closed"})


@pytest.fixture
def busy_installation(make_card, settings):
    """One of each thing the runbook's figures count, so every family has samples with labels."""
    from closeout.closures import services
    from closeout.ops.services import heartbeat_start

    card = make_card("YKT", balance=500)
    services.closure_request(card=card, channel="web", requester="customer:web")
    _relay_down(settings)
    _notice_undelivered(card)
    heartbeat_start(executor_id="worker-a")
    observe.STEP_SECONDS.labels(step="refund", system="payments", outcome="ok").observe(0.01)
    observe.ADAPTER_ERRORS.labels(system="payments", call="refund", kind="transient").inc()
    observe.refusals_count("payments", "refund")  # a refund the provider declined


def test_every_figure_the_runbook_alerts_on_is_served_with_the_labels_it_names(client, busy_installation):
    families = _families(client)
    section = _on_call_section()
    names = set(re.findall(r"\bcloseout_[a-z_]+", section))
    assert {"closeout_workers_live", "closeout_cases", "closeout_adapter_errors_total"} <= names
    for name in names:
        family = _family_of(name, families)
        assert family is not None, f"{name} is not on /metrics"
        labels = {label for sample in family.samples for label in sample.labels}
        for used in re.findall(rf"{name}\{{([^}}]*)\}}", section):
            for label in re.findall(r"(\w+)\s*[!=]~?", used):
                assert label in labels, f"{name} has no label {label!r} (it has {sorted(labels)})"


def test_the_adapter_error_alert_tells_apart_every_kind_of_error_the_metric_counts(client, busy_installation):
    # Refusals (kind="permanent") were never counted, so an alert on them could not fire.
    row = next(line for line in _on_call_section().splitlines() if line.startswith("| **AdapterErrors**"))
    served = {s.labels["kind"] for s in _families(client)["closeout_adapter_errors"].samples if "kind" in s.labels}

    assert "by (system, kind)" in _alert_rows()["AdapterErrors"]
    assert served == {"transient", "permanent"}
    assert served == set(re.findall(r'`kind="(\w+)"`', row))


def test_the_runbook_takes_rates_and_increases_of_counters_only(client, busy_installation):
    # increase() on a gauge reads each fall (a case resumed) as a counter reset and adds the whole
    # value again: "many cases parked at once" would fire each time a supervisor resumed one.
    families = _families(client)
    for alert, query in _alert_rows().items():
        for function, name in re.findall(r"\b(rate|irate|increase)\((closeout_[a-z_]+)", query):
            family = _family_of(name, families)
            assert family.type in ("counter", "histogram"), f"{alert}: {function}() of the {family.type} {name}"


def test_a_mail_relay_outage_keeps_the_notice_alert_firing_until_the_notices_are_given_up(
        client, make_card, settings, monkeypatch):
    # The sweep gives a notice up after its third attempt, 15 minutes after it was written; its age
    # then leaves the figure. A threshold at 15 minutes was crossed for a few seconds, if at all.
    from closeout.notifications import services as notices
    from closeout.notifications.models import Notice

    threshold = float(re.search(r"closeout_notice_oldest_undelivered_seconds > (\d+)",
                                _alert_rows()["NoticesUndelivered"]).group(1))
    _relay_down(settings)
    card = make_card("YKT")
    start = clock.now()
    _notice_undelivered(card)

    firing = 0.0
    for tick in range(0, 20 * 60, 15):  # a scrape every 15 s, the sweep's retries in between
        monkeypatch.setattr(clock, "now", lambda at=start + timedelta(seconds=tick): at)
        notices.notices_retry_due(now=clock.now())
        age = next(s.value for s in _families(client)["closeout_notice_oldest_undelivered_seconds"].samples
                   if s.labels == {"channel": "email"})
        firing += 15 if age > threshold else 0

    assert Notice.objects.get().attempts == notices.NOTICE_ATTEMPTS  # given up, for staff to resend
    assert firing >= 4 * 60, f"above {threshold:.0f} s for {firing:.0f} s only"

"""The SLA dashboard: queues, charts and the CSV export."""

from __future__ import annotations

import csv
import io
from datetime import UTC, timedelta

import pytest
from django.utils import timezone

from closeout.closures import services
from closeout.closures.models import ClosureCase
from tests.integration import test_console_support as support
from tests.integration.test_console_support import case_in_state

staff_client = support.staff_client
pytestmark = pytest.mark.django_db


def test_breached_at_risk_and_needs_attention_queues_and_csv(staff_client, make_card):
    client, _ = staff_client("supervisor")
    late = case_in_state(make_card("OCTO"), "submitted")
    ClosureCase.objects.filter(id=late.id).update(sla_due_date=late.sla_due_date - timedelta(days=60))
    soon = case_in_state(make_card("OCTO"), "submitted")
    ClosureCase.objects.filter(id=soon.id).update(sla_due_date=timezone.localdate(soon.created_at))
    fine = case_in_state(make_card("OCTO"), "submitted")
    stuck = case_in_state(make_card("OCTO"), "submitted")
    services.closure_action_failed(reference=stuck.reference, workflow_id=stuck.next_action_id,
                                   error="card system timed out")

    page = client.get("/console/sla/").content.decode()
    breached = page.split("<h2>Breached")[1].split("<h2>At risk")[0]
    at_risk = page.split("<h2>At risk")[1].split("<h2>Needs attention")[0]
    attention = page.split("<h2>Needs attention")[1]
    assert late.reference in breached and soon.reference not in breached
    assert soon.reference in at_risk and fine.reference not in at_risk
    assert stuck.reference in attention and "card system timed out" in attention
    assert page.count("<svg") == 3

    export = client.get("/console/sla.csv")
    assert export["Content-Type"].startswith("text/csv")
    rows = {row["reference"]: row for row in csv.DictReader(io.StringIO(export.content.decode("utf-8-sig")))}
    assert rows[late.reference]["sla_status"] == "breached"
    assert rows[fine.reference]["sla_status"] == "on_track"
    assert "holder" not in ",".join(rows[late.reference]) and late.card.number not in export.content.decode()


def test_the_dashboard_counts_days_in_the_branches_local_time(make_card, monkeypatch):
    """At 02:30 in Hong Kong (18:30 UTC the day before) today is the local day: a refund paid
    then is today's, and a case opened then is still 0 working days old later that morning."""
    from datetime import datetime

    from closeout.closures.models import Refund
    from closeout.common import clock
    from closeout.console.selectors import sla_board

    early = datetime(2026, 12, 2, 18, 30, tzinfo=UTC)  # Thursday 2026-12-03 02:30 in Hong Kong
    monkeypatch.setattr(clock, "now", lambda: early)
    case = case_in_state(make_card("OCTO"), "submitted")
    Refund.objects.create(case=case, idempotency_key="local-day", amount_minor=100, currency="HKD",
                          destination_type="original", status="succeeded", created_at=early, settled_at=early)

    assert sla_board()["refunds_per_day"][-1] == ("12-03", 1)
    monkeypatch.setattr(clock, "now", lambda: early + timedelta(hours=8))  # 10:30 the same morning
    row = next(r for r in sla_board()["rows"] if r["reference"] == case.reference)
    assert row["age_working_days"] == 0  # opened today, not yesterday


def test_a_case_opened_before_dawn_is_due_counted_from_the_local_day(make_card, monkeypatch):
    """07:00 in Hong Kong is still yesterday in UTC; the promise counts from the customer's day."""
    from datetime import date, datetime

    from closeout.common import calendars, clock

    dawn = datetime(2026, 12, 2, 23, 0, tzinfo=UTC)  # Thursday 2026-12-03 07:00 in Hong Kong
    monkeypatch.setattr(clock, "now", lambda: dawn)
    card = make_card("OCTO")
    case = case_in_state(card, "submitted")

    product = card.product
    expected = calendars.add_working_days(date(2026, 12, 3), product.sla_working_days, product.calendar)
    assert case.sla_due_date == expected
    assert expected != calendars.add_working_days(date(2026, 12, 2), product.sla_working_days, product.calendar)
    assert services.sla_due(product, dawn) == expected


def test_the_csv_gives_times_in_hong_kong_time_and_states_in_the_readers_words(staff_client, make_card):
    """A case opened at 02:30 in Hong Kong (18:30 UTC the day before) is listed on the local day,
    with its offset; the state keeps its code for machines and gains a label for people."""
    from datetime import datetime

    client, _ = staff_client("supervisor")
    case = case_in_state(make_card("OCTO"), "submitted")
    ClosureCase.objects.filter(id=case.id).update(created_at=datetime(2026, 12, 2, 18, 30, 5, tzinfo=UTC))

    export = client.get("/console/sla.csv", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode("utf-8-sig")
    header = next(csv.reader(io.StringIO(export)))
    assert header[:9] == ["reference", "product", "channel", "state", "created_at", "sla_due_date",
                          "age_working_days", "working_days_left", "sla_status"]  # the columns machines read
    row = next(csv.DictReader(io.StringIO(export)))
    assert row["created_at"] == "2026-12-03T02:30:05+08:00"
    assert datetime.fromisoformat(row["created_at"]) == datetime(2026, 12, 2, 18, 30, 5, tzinfo=UTC)
    assert (row["state"], row["state_label"]) == ("submitted", "已提交")

    english = next(csv.DictReader(io.StringIO(client.get("/console/sla.csv", HTTP_ACCEPT_LANGUAGE="en")
                                              .content.decode("utf-8-sig"))))
    assert (english["state"], english["state_label"]) == ("submitted", "Submitted")


def test_the_csv_opens_in_a_spreadsheet_with_its_chinese_intact_and_is_named_by_when_it_was_taken(
        staff_client, make_card, monkeypatch):
    """Excel reads a CSV without a byte order mark in the PC's code page (GBK, Big5): 已提交 came
    out as mojibake. Each export is named by its local time, so the day's exports do not overwrite."""
    from datetime import datetime

    from closeout.common import clock

    monkeypatch.setattr(clock, "now", lambda: datetime(2026, 12, 3, 1, 5, tzinfo=UTC))  # 09:05 in Hong Kong
    client, _ = staff_client("supervisor")
    case_in_state(make_card("OCTO"), "submitted")

    export = client.get("/console/sla.csv", HTTP_ACCEPT_LANGUAGE="zh-hant")

    assert export.content.startswith("\ufeff".encode())
    assert "已提交" in export.content.decode("utf-8-sig")
    assert export["Content-Disposition"] == 'attachment; filename="closeout-sla-2026-12-03-0905.csv"'


def test_the_dashboard_counts_the_return_exceptions_and_refunds_waiting_on_people(staff_client, make_card):
    from closeout.returns import services as returns

    client, _ = staff_client("supervisor")
    for code in ("RL20260000003", "RL20260000011"):
        returns.return_check_in(code=code, actor="staff:wh")
    case_in_state(make_card("YKT", balance=90000), "refund_pending")  # above the approval threshold

    page = client.get("/console/sla/").content.decode()

    exceptions = page.split('data-queue="exceptions">')[1].split("</span>")[0]
    approvals = page.split('data-queue="approvals">')[1].split("</span>")[0]
    assert 'href="/console/warehouse/exceptions/"' in exceptions and "<strong>2</strong>" in exceptions
    assert 'href="/console/refunds/"' in approvals and "<strong>1</strong>" in approvals
    admin, _ = staff_client("admin")  # reads the dashboard, works neither queue
    assert 'href="/console/refunds/"' not in admin.get("/console/sla/").content.decode()

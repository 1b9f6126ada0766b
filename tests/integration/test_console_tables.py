"""The console's tables read well with a screen reader: each says what it lists (a caption), each
header cell which way it reads, and each row starts with the cell that names it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from closeout.closures.models import ClosureCase
from tests.integration import test_console_support as support
from tests.integration.test_console_cases import _identify
from tests.integration.test_console_support import case_in_state, next_working_day
from tests.tables import data_table_problems, data_tables

branch = support.branch
staff_client = support.staff_client
pytestmark = pytest.mark.django_db


@pytest.fixture
def busy_console(make_card, branch):
    """A case with a fee, notices and a late due date; a refund to approve; a return exception and
    an appointment: every console table has rows."""
    from closeout.appointments import services as appointments
    from closeout.returns import services as returns

    card = make_card("OCTO", charges=[("overdraft", 500)])
    case = case_in_state(card, "submitted")
    ClosureCase.objects.filter(id=case.id).update(sla_due_date=timezone.localdate() - timedelta(days=10))
    day = next_working_day()
    appointments.appointment_book(card=card, branch=branch, starts_at=support.local(day, 10), actor="staff:x",
                                  case=case)
    returns.return_check_in(code="RL20269999999", actor="staff:w")
    approval = case_in_state(make_card("YKT", balance=90000), "refund_pending")
    return {"reference": case.reference, "approval": approval.reference, "day": day}


def test_every_table_of_the_console_has_a_caption_scoped_headers_and_row_headers(busy_console, staff_client,
                                                                                  make_card):
    reference = busy_console["reference"]
    pages = {
        "supervisor": [("get", f"/console/cases/{reference}/", {}), ("post", "/console/cases/", {"q": reference}),
                       ("get", "/console/refunds/", {}), ("get", "/console/warehouse/exceptions/", {}),
                       ("get", "/console/sla/", {}),
                       ("get", "/console/appointments/", {"branch": "HK-CEN", "day": busy_console["day"]})],
        "warehouse": [("get", "/console/warehouse/", {})],
        "admin": [("get", "/console/staff/", {})],
    }
    for role, requests in pages.items():
        client, _ = staff_client(role)
        for method, path, data in requests:
            for language in ("en", "zh-hant"):
                page = getattr(client, method)(path, data, HTTP_ACCEPT_LANGUAGE=language).content.decode()
                assert data_tables(page), (path, "no table to check")
                assert data_table_problems(page) == [], (path, language)

    client, _ = staff_client("agent")
    _identify(client, make_card("YKT", balance=45000))
    quote = client.get("/console/open/quote/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert data_table_problems(quote) == []
    assert [t["caption"] for t in data_tables(quote)] == ["退款计算方式"]


def test_the_case_page_names_its_tables_in_the_staff_members_language(busy_console, staff_client):
    client, _ = staff_client("supervisor")
    page = client.get(f"/console/cases/{busy_console['reference']}/", HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()
    tables = data_tables(page)
    assert [t["caption"] for t in tables] == ["費用", "發給客戶的通知"]
    header, fee = tables[0]["rows"][:2]
    assert [(c["tag"], c["scope"]) for c in header] == [("th", "col")] * 4
    assert (fee[0]["tag"], fee[0]["scope"]) == ("th", "row") and "負值" in fee[0]["text"]
    assert header[-1]["text"].strip() == "操作"  # the column of buttons is named too

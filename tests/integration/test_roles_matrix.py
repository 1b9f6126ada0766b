"""The authorization matrix: every role × every console action, through HTTP, plus
maker-checker: nobody approves a refund they requested themself."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import get_resolver

from closeout.closures import states
from closeout.closures.models import ClosureCase, RefundApproval
from closeout.console import roles
from tests.integration import test_console_support as support
from tests.integration.test_console_support import case_in_state, make_staff, next_working_day, sign_in

branch = support.branch
staff_client = support.staff_client

pytestmark = pytest.mark.django_db

# The specification, written out by hand: what each role may do.
EXPECTED = {
    "agent": {"case.search", "case.view", "case.open", "case.note", "case.hold", "case.resume", "notice.resend",
              "appointment.manage"},
    "branch_clerk": {"case.search", "case.view", "case.open", "case.note", "appointment.manage", "counter.serve",
                     "refund.cash"},
    "warehouse": {"warehouse.checkin", "warehouse.destroy", "warehouse.hand_back", "warehouse.exceptions"},
    "refund_approver": {"case.search", "case.view", "case.note", "refund.approve"},
    "supervisor": {"case.search", "case.view", "case.open", "case.note", "case.hold", "case.resume", "case.reject",
                   "charge.waive", "notice.resend", "appointment.manage", "warehouse.exceptions", "refund.approve",
                   "sla.view"},
    "admin": {"sla.view", "staff.manage"},
}
PUBLIC = {"sign_in", "sign_in_code", "sign_out"}


def test_the_role_table_is_the_specification():
    assert set(EXPECTED) == set(roles.ROLES)
    for role in roles.ROLES:
        assert {a for a in roles.ACTIONS if roles.can(role, a)} == EXPECTED[role], role


def test_every_console_page_declares_the_action_it_needs():
    resolver = get_resolver().url_patterns
    console = next(p for p in resolver if getattr(p, "namespace", None) == "console")
    for pattern in console.url_patterns:
        if pattern.name in PUBLIC:
            continue
        action = getattr(pattern.callback, "console_action", "missing")
        assert action is None or action in roles.PERMISSIONS, f"{pattern.name} has no role check"


@pytest.fixture
def world(make_card, branch):
    """One of everything a console action can act on."""
    from closeout.appointments import services as appointments
    from closeout.cards.models import CardCharge
    from closeout.returns import services as returns

    card = make_card("OCTO", charges=[("overdraft", 500)])
    case = case_in_state(card, "submitted")
    day = next_working_day()
    appointment = appointments.appointment_book(card=card, branch=branch, starts_at=support.local(day, 10),
                                                actor="staff:x", case=case)
    exception = returns.return_check_in(code="RL20269999999", actor="staff:w").exception
    approval_case = case_in_state(make_card("YKT", balance=90000), "refund_pending")
    target, _, _ = make_staff("agent")
    return {
        "reference": case.reference, "charge": CardCharge.objects.get(card=card).id, "appointment": appointment.id,
        "exception": exception.id, "approval": approval_case.reference, "staff": target.id, "slot": day,
    }


def endpoints(w) -> list[tuple[str, str, str, dict]]:
    ref = w["reference"]
    return [
        ("case.search", "get", "/console/cases/?q=" + ref, {}),
        ("case.view", "get", f"/console/cases/{ref}/", {}),
        ("case.note", "post", f"/console/cases/{ref}/note", {"text": "called back"}),
        ("notice.resend", "post", f"/console/cases/{ref}/resend", {}),
        ("charge.waive", "post", f"/console/charges/{w['charge']}/waive", {"reason": "goodwill"}),
        ("case.hold", "post", f"/console/cases/{ref}/hold", {"reason": "customer asked"}),
        ("case.resume", "post", f"/console/cases/{ref}/resume", {}),
        ("case.reject", "post", f"/console/cases/{ref}/reject", {"reason": "fraud suspected"}),
        ("case.open", "get", "/console/open/", {}),
        ("case.open", "get", "/console/open/quote/", {}),
        ("appointment.manage", "get", "/console/appointments/", {}),
        ("appointment.manage", "post", "/console/appointments/book",
         {"branch": "HK-CEN", "card_number": "0", "starts_at": f"{w['slot']}T11:00"}),
        ("appointment.manage", "post", f"/console/appointments/{w['appointment']}/reschedule",
         {"starts_at": f"{w['slot']}T11:30"}),
        ("appointment.manage", "post", f"/console/appointments/{w['appointment']}/cancel", {}),
        ("refund.cash", "post", f"/console/cases/{ref}/cash", {}),
        ("counter.serve", "get", "/console/counter/", {}),
        ("counter.serve", "get", "/console/counter/999999/", {}),
        ("counter.serve", "get", "/console/counter/999999/confirm", {}),
        ("counter.serve", "get", "/console/counter/999999/receipt.pdf", {}),
        ("warehouse.checkin", "get", "/console/warehouse/", {}),
        ("warehouse.checkin", "post", "/console/warehouse/", {"code": "RL20260000000"}),
        ("warehouse.checkin", "post", "/console/warehouse/desk", {"desk": "Desk 1"}),
        ("warehouse.destroy", "post", "/console/warehouse/destroy", {"method": "SHRED", "batch": "B1"}),
        ("warehouse.hand_back", "post", "/console/warehouse/received/999999/hand-back", {"method": "COUNTER"}),
        ("warehouse.hand_back", "post", f"/console/warehouse/exceptions/{w['exception']}/hand-back",
         {"method": "COUNTER"}),
        ("warehouse.exceptions", "get", "/console/warehouse/exceptions/", {}),
        ("warehouse.exceptions", "post", f"/console/warehouse/exceptions/{w['exception']}/resolve",
         {"resolution": "returned to sender"}),
        ("refund.approve", "get", "/console/refunds/", {}),
        ("refund.approve", "post", f"/console/refunds/{w['approval']}/reject", {"reason": "check the account"}),
        ("refund.approve", "post", f"/console/refunds/{w['approval']}/approve", {}),
        ("sla.view", "get", "/console/sla/", {}),
        ("sla.view", "get", "/console/sla.csv", {}),
        ("staff.manage", "get", "/console/staff/", {}),
        ("staff.manage", "post", f"/console/staff/{w['staff']}/unlock", {}),
        ("staff.manage", "post", f"/console/staff/{w['staff']}/branch", {"branch": "HK-OLD"}),
        ("staff.manage", "post", f"/console/staff/{w['staff']}/name", {"name": "Chan Tai Man"}),
    ]


def test_the_endpoint_list_covers_every_console_page(world):
    listed = {path.split("?")[0] for _, _, path, _ in endpoints(world)}
    resolver = get_resolver()
    names = {resolver.resolve(path).url_name for path in listed}
    console = next(p for p in resolver.url_patterns if getattr(p, "namespace", None) == "console")
    assert {p.name for p in console.url_patterns} - PUBLIC - {"home"} <= names


@pytest.mark.parametrize("role", roles.ROLES)
def test_each_role_reaches_exactly_its_actions(role, world, staff_client):
    client, _ = staff_client(role)
    mismatches = []
    for action, method, path, data in endpoints(world):
        response = getattr(client, method)(path, data)
        assert response.status_code < 500, (role, path, response.status_code)
        allowed = action in EXPECTED[role]
        if allowed == (response.status_code == 403):
            mismatches.append((action, path, response.status_code))
    assert mismatches == []
    assert client.get("/console/").status_code == 200  # every role has a home page


def test_a_refusal_names_the_roles_that_may_do_it(staff_client):
    client, _ = staff_client("supervisor")
    page = client.get("/console/staff/", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 403 and "It is done by: Administrator." in page.content.decode()
    assert "Ask a supervisor" not in page.content.decode()  # a supervisor was asking


@pytest.mark.parametrize("language", ["en", "zh-hans", "zh-hant"])
def test_the_staff_page_names_each_role_as_the_home_page_does(staff_client, language):
    from django.utils import translation

    admin, _ = staff_client("admin")
    for role in roles.ROLES:
        make_staff(role)

    page = admin.get("/console/staff/", HTTP_ACCEPT_LANGUAGE=language).content.decode()

    shown = set(re.findall(r"</form></td><td>([^<]+)</td>", page))
    with translation.override(language):
        assert shown == {str(roles.ROLE_LABELS[role]) for role in roles.ROLES}
        home = admin.get("/console/", HTTP_ACCEPT_LANGUAGE=language).content.decode()
        assert str(roles.ROLE_LABELS[roles.ADMIN]) in home
    assert {"Agent", "Admin"}.isdisjoint(shown)


def test_anonymous_visitors_are_sent_to_sign_in(world):
    for _, method, path, data in endpoints(world):
        response = getattr(Client(), method)(path, data)
        assert response.status_code == 302 and response["Location"].startswith("/console/login/"), path


def test_a_role_without_the_right_cannot_open_a_case_through_the_service(make_card):
    from closeout.console.services import assisted_closure_open

    profile, _, _ = make_staff("warehouse")
    with pytest.raises(roles.NotAllowed):
        assisted_closure_open(staff=profile, card=make_card("YKT"), channel="phone", channel_ref="CALL-1",
                              checks={"card_number": True, "name": True, "contact": True, "id_document": True})


def test_nobody_approves_a_refund_they_requested_themself(make_card):
    from closeout.console.services import assisted_closure_open

    maker, maker_device, _ = make_staff("supervisor")
    card = make_card("YKT", balance=1000)
    case = assisted_closure_open(
        staff=maker, card=card, channel="phone", channel_ref="CALL-77",
        checks={"card_number": True, "name": True, "contact": True, "id_document": True},
        refund_destination={"type": "bank", "bank_code": "004", "account_number": "123456789012"})
    from closeout.closures import services

    services.closure_verify(reference=case.reference, workflow_id=ClosureCase.objects.get(id=case.id).next_action_id)
    services.closure_settle(reference=case.reference, workflow_id=ClosureCase.objects.get(id=case.id).next_action_id)
    assert ClosureCase.objects.get(id=case.id).state == states.REFUND_PENDING

    maker_client = sign_in(Client(), maker, maker_device)
    queue = maker_client.get("/console/refunds/").content.decode()
    assert case.reference in queue
    for page in (queue, maker_client.get(f"/console/cases/{case.reference}/").content.decode()):
        # no buttons that can only fail: the maker is told a second person decides
        assert f"/console/refunds/{case.reference}/approve" not in page and "data-own-request" in page
    refused = maker_client.post(f"/console/refunds/{case.reference}/approve", {"note": "ok"}, follow=True)
    assert "another approver must decide it" in refused.content.decode()
    assert RefundApproval.objects.get(case=case).decision == ""

    checker, checker_device, _ = make_staff("refund_approver")
    checker_client = sign_in(Client(), checker, checker_device)
    assert f"/console/refunds/{case.reference}/approve" in checker_client.get("/console/refunds/").content.decode()
    seen = re.search(r'name="seen" value="([0-9a-f]+)"', checker_client.get("/console/refunds/").content.decode())[1]
    approved = checker_client.post(f"/console/refunds/{case.reference}/approve", {"note": "destination checked",
                                                                                  "seen": seen},
                                   follow=True)
    assert "approved" in approved.content.decode()
    approval = RefundApproval.objects.get(case=case)
    assert (approval.decision, approval.decided_by) == ("approved", checker.actor)
    shown = maker_client.get(f"/console/cases/{case.reference}/").content.decode()
    assert f"Approved by {checker.user.email}" in shown and "staff:" not in shown  # people, not actor codes
    assert ClosureCase.objects.get(id=case.id).next_action == "refund"

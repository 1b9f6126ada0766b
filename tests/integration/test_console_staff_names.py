"""Staff are shown by name in the console: given at `staff create --name` or by an admin on the
staff page (on record), falling back to the email; the audit trail keeps the email as the actor,
and customers never read either."""

from __future__ import annotations

import io
import re

import pytest
from django.test import Client
from pypdf import PdfReader

from closeout import cli
from closeout.audit.models import AuditEvent
from closeout.closures import services as closures
from closeout.console import services
from closeout.console.models import StaffProfile
from closeout.returns import services as returns
from tests.aftercare_support import run_to_end
from tests.integration import test_console_support as support
from tests.integration.test_console_support import case_in_state, make_staff, sign_in

staff_client = support.staff_client
pytestmark = pytest.mark.django_db

BANK = {"type": "bank", "bank_code": "004", "account_number": "123456789012"}


def _named(role: str, name: str):
    profile, device, _ = make_staff(role)
    services.staff_name_set(staff_id=profile.id, name=name, actor="staff:admin@staff.example.test")
    profile.refresh_from_db()
    return sign_in(Client(), profile, device), profile


# --- giving a name --------------------------------------------------------------------------------


@pytest.mark.sqlite_only  # `staff create` migrates first (see test_cli_errors)
def test_staff_create_takes_a_name_and_prints_what_it_printed_before(capsys):
    assert cli.main(["staff", "create", "--role", "warehouse", "--email", "wh@staff.example.test",
                     "--name", "  Chan   Tai Man ", "--no-qr"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "staff account wh@staff.example.test (warehouse) created"
    assert lines[1].startswith("password (shown once): ") and lines[2].startswith("TOTP enrolment URI: otpauth://")
    assert len(lines) == 3
    assert StaffProfile.objects.get(user__email="wh@staff.example.test").name == "Chan Tai Man"


@pytest.mark.sqlite_only  # `staff create` migrates first (see test_cli_errors)
@pytest.mark.parametrize(("name", "said"), [("x" * 101, "--name is 101 characters long; at most 100 fit"),
                                            ("Chan\u202eTai", "--name holds a control character")])
def test_staff_create_refuses_a_name_it_cannot_show_naming_the_option(capsys, name, said):
    assert cli.main(["staff", "create", "--role", "agent", "--email", "a@staff.example.test", "--name", name,
                     "--no-qr"]) == 2

    err = capsys.readouterr().err
    assert f"cannot create staff account: {said}" in err
    assert not StaffProfile.objects.exists()


def test_an_account_made_without_a_name_has_none_on_either_database():
    profile, _, _ = services.staff_create(email="plain@staff.example.test", role="agent")
    named, _, _ = services.staff_create(email="named@staff.example.test", role="agent", name="李小龍")

    assert (profile.name, profile.shown_name) == ("", "plain@staff.example.test")
    assert (named.name, named.shown_name) == ("李小龍", "李小龍")


def test_an_admin_names_and_renames_a_member_of_staff_on_record(staff_client):
    admin, admin_profile = staff_client("admin")
    agent, _, _ = make_staff("agent")

    page = admin.get("/console/staff/").content.decode()
    row = page.split(f'data-staff="{agent.id}"')[1].split("</tr>")[0]
    assert agent.user.email in row and "no name yet" in row and "Set name" in row

    named = admin.post(f"/console/staff/{agent.id}/name", {"name": " Wong  Siu Ming "}, follow=True).content.decode()
    assert f"{agent.user.email} is now shown as Wong Siu Ming." in named
    admin.post(f"/console/staff/{agent.id}/name", {"name": "Wong Siu-ming"})
    admin.post(f"/console/staff/{agent.id}/name", {"name": "Wong Siu-ming"})  # the same again: nothing to record

    agent.refresh_from_db()
    assert agent.name == "Wong Siu-ming"
    events = list(AuditEvent.objects.filter(action="staff.name_changed").order_by("id"))
    assert [(e.actor, e.subject, e.before, e.after) for e in events] == [
        (admin_profile.actor, f"staff:{agent.id}", "", "Wong Siu Ming"),
        (admin_profile.actor, f"staff:{agent.id}", "Wong Siu Ming", "Wong Siu-ming")]
    row = admin.get("/console/staff/").content.decode().split(f'data-staff="{agent.id}"')[1].split("</tr>")[0]
    assert agent.user.email in row and 'value="Wong Siu-ming"' in row and "Change name" in row


@pytest.mark.parametrize(("name", "language", "said"), [
    ("   ", "en", "Enter a name."),
    ("x" * 101, "en", "Use at most 100 characters (this has 101)."),
    ("Chan\u202eTai", "en", "Use letters, digits, spaces and punctuation only."),
    ("", "zh-hans", "请输入姓名。"),
    ("x" * 101, "zh-hant", "最多 100 個字元（現有 101 個）。"),
])
def test_a_name_that_cannot_be_shown_is_refused_in_the_admins_language(staff_client, name, language, said):
    admin, _ = staff_client("admin")
    agent, _, _ = services.staff_create(email="agent@staff.example.test", role="agent", name="Chan Tai Man")

    page = admin.post(f"/console/staff/{agent.id}/name", {"name": name}, follow=True,
                      HTTP_ACCEPT_LANGUAGE=language)

    assert page.status_code == 200 and said in page.content.decode()
    agent.refresh_from_db()
    assert agent.name == "Chan Tai Man" and not AuditEvent.objects.filter(action="staff.name_changed").exists()


def test_an_unknown_account_has_no_name_to_set(staff_client):
    admin, _ = staff_client("admin")
    assert admin.post("/console/staff/999999/name", {"name": "Nobody"}).status_code == 404


# --- the console shows names ----------------------------------------------------------------------


def test_the_case_page_names_staff_and_falls_back_to_the_email_of_one_without_a_name(make_card):
    supervisor, boss = _named("supervisor", "Lee Ka Yan")
    warehouse, desk = _named("warehouse", "何志明")
    witness, witness_device, _ = make_staff("warehouse")  # no name yet
    card = make_card("OCTO")
    case = case_in_state(card, "awaiting_return")
    label = returns.return_label_issue(reference=case.reference)
    supervisor.post(f"/console/cases/{case.reference}/note", {"text": "customer called about the envelope"})
    warehouse.post("/console/warehouse/", {"code": label.code, "card_number": ""})
    checkin = returns.return_check_in(code=label.code, actor=desk.actor)
    destroyed = warehouse.post("/console/warehouse/destroy", {
        "checkin": [checkin.id], "method": "SHRED", "batch": "B-1", "witness_email": witness.user.email,
        "witness_code": support.totp_code(witness_device)}, follow=True).content.decode()

    page = supervisor.get(f"/console/cases/{case.reference}/").content.decode()

    assert f"witnessed by {witness.user.email}" in destroyed  # no name: the email
    header = page.split('class="who">')[1].split("<")[0]
    assert header == "Lee Ka Yan"
    timeline = page.split('class="timeline"')[1]
    assert "(Lee Ka Yan)" in timeline and boss.user.email not in timeline
    returned = page.split('id="card-return"')[1].split("<h2")[0]
    assert "何志明" in returned and desk.user.email not in returned
    assert f"<td data-witness>{witness.user.email}</td>" in returned
    assert "staff:" not in page
    # The audit trail keeps who it was by the account's stable identifier.
    assert AuditEvent.objects.filter(action="closure.note", actor=boss.actor).exists()
    assert AuditEvent.objects.get(action="card.destroyed").actor == desk.actor


def test_a_renamed_member_of_staff_is_shown_by_the_new_name_on_earlier_records(make_card):
    supervisor, _ = _named("supervisor", "Lee Ka Yan")
    agent, agent_profile = _named("agent", "Chan Siu Fong")
    case = case_in_state(make_card("OCTO"), "submitted")
    agent.post(f"/console/cases/{case.reference}/note", {"text": "called back"})
    services.staff_name_set(staff_id=agent_profile.id, name="Chan Siu-fong (Mrs)", actor="staff:admin")

    timeline = supervisor.get(f"/console/cases/{case.reference}/").content.decode().split('class="timeline"')[1]

    assert "(Chan Siu-fong (Mrs))" in timeline and "(Chan Siu Fong)" not in timeline


def test_the_refund_queue_and_the_approval_name_staff(make_card):
    maker, _, _ = make_staff("supervisor")
    services.staff_name_set(staff_id=maker.id, name="Maker Ma", actor="staff:admin")
    case = closures.closure_request(card=make_card("YKT", balance=45000), channel="phone", requester=maker.actor,
                                    refund_destination=BANK)
    for _ in range(2):
        case.refresh_from_db()
        (closures.closure_verify if case.state == "submitted" else closures.closure_settle)(
            reference=case.reference, workflow_id=case.next_action_id)
    first, checker = _named("refund_approver", "Checker Cheung")
    second, _ = _named("refund_approver", "Late Lam")

    queue = first.get("/console/refunds/").content.decode()
    requested = queue.split(f'data-reference="{case.reference}"')[1].split("data-requested>")[1].split("<br>")[0]
    seen = re.search(r'name="seen" value="([0-9a-f]+)"', second.get("/console/refunds/").content.decode())[1]
    first.post(f"/console/refunds/{case.reference}/approve", {"seen": re.search(
        r'name="seen" value="([0-9a-f]+)"', queue)[1]})
    late = second.post(f"/console/refunds/{case.reference}/approve", {"seen": seen}, follow=True).content.decode()
    page = first.get(f"/console/cases/{case.reference}/").content.decode()

    assert requested == "Maker Ma"
    assert "Checker Cheung already approved this refund" in late and checker.user.email not in late
    assert "Approved by Checker Cheung" in page and "Requested by: Maker Ma" in page
    assert maker.user.email not in page and checker.user.email not in page


def test_customers_read_our_staff_never_a_name_nor_an_address(make_card):
    from tests.integration.test_retention import _portal_session

    supervisor, boss = _named("supervisor", "Lee Ka Yan")
    warehouse, desk = _named("warehouse", "何志明")
    case = case_in_state(make_card("OCTO"), "awaiting_return")
    supervisor.post(f"/console/cases/{case.reference}/hold", {"reason": "checking the envelope"})
    supervisor.post(f"/console/cases/{case.reference}/resume", {})
    warehouse.post("/console/warehouse/", {"code": returns.return_label_issue(reference=case.reference).code})
    run_to_end(case.reference)
    customer = Client()
    _portal_session(customer, case.reference)

    shown = {
        "case page": customer.get(f"/en/case/{case.reference}/").content.decode(),
        "case page (zh-hant)": customer.get(f"/zh-hant/case/{case.reference}/").content.decode(),
        "PDF copy": "".join(page.extract_text() for page in PdfReader(io.BytesIO(
            customer.get(f"/en/case/{case.reference}/export.pdf").content)).pages),
    }

    assert "our staff" in shown["PDF copy"]
    for what, text in shown.items():
        for person in (boss, desk):
            assert person.name not in text and person.user.email not in text, (what, person.name)

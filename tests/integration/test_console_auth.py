"""Staff sign-in: argon2 password, then a TOTP code; lockout; idle timeout; the CLI enrolment."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import timedelta

import pytest
from django.test import Client

from closeout.common import clock
from closeout.console.access import SEEN_KEY
from closeout.console.models import StaffProfile
from tests.integration import test_console_support as support
from tests.integration.test_console_support import PASSWORD, make_staff, sign_in, totp_code

staff_client = support.staff_client
branch = support.branch

pytestmark = pytest.mark.django_db


def test_staff_password_is_stored_with_argon2():
    profile, _, _ = make_staff("agent")
    assert profile.user.password.startswith("argon2")


def test_staff_signs_in_with_password_and_the_current_totp_code():
    profile, device, _ = make_staff("agent")
    client = Client()

    sign_in(client, profile, device)

    page = client.get("/console/")
    assert page.status_code == 200
    assert "Find a case" in page.content.decode()


def test_password_alone_does_not_open_the_console():
    profile, _, _ = make_staff("agent")
    client = Client()
    client.post("/console/login/", {"email": profile.user.email, "password": PASSWORD})

    response = client.get("/console/cases/")

    assert response.status_code == 302
    assert response["Location"].startswith("/console/login/")


def test_a_wrong_code_is_refused_and_a_replayed_code_too():
    profile, device, _ = make_staff("agent")
    first = Client()
    sign_in(first, profile, device)
    used = totp_code(device)

    second = Client()
    second.post("/console/login/", {"email": profile.user.email, "password": PASSWORD})
    replay = second.post("/console/login/code/", {"code": used})
    assert replay.status_code == 200
    assert "That code is not valid" in replay.content.decode()
    assert second.get("/console/cases/").status_code == 302


def test_unknown_email_and_wrong_password_get_the_same_answer():
    profile, _, _ = make_staff("agent")
    unknown = Client().post("/console/login/", {"email": "nobody@staff.example.test", "password": PASSWORD})
    wrong = Client().post("/console/login/", {"email": profile.user.email, "password": "not-the-password-x"})

    def page(response, email):
        text = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode())
        return text.replace(email, "EMAIL")

    assert unknown.status_code == wrong.status_code == 200
    assert page(unknown, "nobody@staff.example.test") == page(wrong, profile.user.email)
    assert "Sign-in failed" in wrong.content.decode()


def test_five_failures_lock_the_account_for_fifteen_minutes(monkeypatch):
    profile, device, _ = make_staff("agent")
    for _ in range(5):
        Client().post("/console/login/", {"email": profile.user.email, "password": "wrong-password-123"})
    profile.refresh_from_db()
    assert profile.locked_until is not None

    # Even the right password and code do not get in while locked.
    locked = Client()
    locked.post("/console/login/", {"email": profile.user.email, "password": PASSWORD})
    assert locked.get("/console/login/code/").status_code == 302  # never reached the code step

    later = clock.now() + timedelta(minutes=16)
    monkeypatch.setattr(clock, "now", lambda: later)
    sign_in(Client(), profile, device)


def test_wrong_codes_count_towards_the_lockout():
    profile, device, _ = make_staff("agent")
    client = Client()
    client.post("/console/login/", {"email": profile.user.email, "password": PASSWORD})
    device.throttling_failure_count = 0
    for _ in range(5):
        device.refresh_from_db()
        device.throttle_reset()
        client.post("/console/login/code/", {"code": "000000" if totp_code(device) != "000000" else "111111"})
    profile.refresh_from_db()
    assert profile.locked_until is not None


def test_an_idle_session_is_signed_out():
    profile, device, _ = make_staff("supervisor")
    client = sign_in(Client(), profile, device)
    assert client.get("/console/sla/").status_code == 200

    session = client.session
    session[SEEN_KEY] = session[SEEN_KEY] - 16 * 60
    session.save()

    response = client.get("/console/sla/")
    assert response.status_code == 302 and response["Location"].startswith("/console/login/")
    assert client.get("/console/").status_code == 302


def test_admin_unlocks_a_locked_account(staff_client):
    admin, _ = staff_client("admin")
    profile, _, _ = make_staff("agent")
    StaffProfile.objects.filter(id=profile.id).update(locked_until=clock.now() + timedelta(minutes=15))

    page = admin.get("/console/staff/")
    assert profile.user.email in page.content.decode()
    admin.post(f"/console/staff/{profile.id}/unlock")

    profile.refresh_from_db()
    assert profile.locked_until is None


def test_admin_moves_a_clerk_whose_branch_closed_to_an_open_one(staff_client, branch):
    from closeout.appointments.models import Branch
    from closeout.audit.models import AuditEvent

    admin, _ = staff_client("admin")
    clerk, _, _ = make_staff("branch_clerk", branch_code="HK-OLD")
    Branch.objects.filter(code="HK-OLD").update(active=False)  # their branch has closed
    page = admin.get("/console/staff/").content.decode()
    row = page.split(f'data-staff="{clerk.id}"')[1].split("</tr>")[0]
    assert "no open branch" in row and '<option value="HK-CEN"' in row and "HK-OLD" not in row

    refused = admin.post(f"/console/staff/{clerk.id}/branch", {"branch": "HK-OLD"}, follow=True)
    assert "Pick an open branch" in refused.content.decode()
    clerk.refresh_from_db()
    assert clerk.branch_code == "HK-OLD"

    moved = admin.post(f"/console/staff/{clerk.id}/branch", {"branch": "HK-CEN"}, follow=True).content.decode()
    assert "now serves at branch HK-CEN" in moved
    clerk.refresh_from_db()
    assert clerk.branch_code == "HK-CEN"
    event = AuditEvent.objects.get(action="staff.branch_changed")
    assert (event.before, event.after, event.subject) == ("HK-OLD", "HK-CEN", f"staff:{clerk.id}")

    agent, _, _ = make_staff("agent")
    admin.post(f"/console/staff/{agent.id}/branch", {"branch": "HK-CEN"})
    agent.refresh_from_db()
    assert agent.branch_code == ""  # only a clerk works at one branch


@pytest.mark.sqlite_only
def test_cli_prints_a_totp_enrolment_uri_and_a_qr_code(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "closeout.cli", "staff", "--data-dir", str(tmp_path), "create", "--role",
         "refund_approver", "--email", "approver@staff.example.test"],
        capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "CLOSEOUT_DISPATCH": "0"},
    )
    assert result.returncode == 0, result.stderr
    uri = next(line for line in result.stdout.splitlines() if "otpauth://" in line)
    assert "otpauth://totp/closeout%3Aapprover%40staff.example.test?secret=" in uri
    assert "█" in result.stdout  # the QR code drawn in the terminal

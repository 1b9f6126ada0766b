"""Helpers shared by the console, appointment, return and role tests (no tests of its own)."""

from __future__ import annotations

import itertools
import time
from datetime import date, datetime, timedelta
from datetime import time as clock_time

import pytest
from django.test import Client
from django.utils import timezone
from django_otp.oath import TOTP

PASSWORD = "correct-horse-battery-staple"
_emails = itertools.count(1)


def totp_code(device, steps_ahead: int = 0) -> str:
    """The code an authenticator app would show now (or `steps_ahead` periods later)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def make_staff(role: str, email: str | None = None, branch_code: str = ""):
    from closeout.appointments.models import Branch
    from closeout.console.services import staff_create

    email = email or f"{role}-{next(_emails)}@staff.example.test"
    if branch_code:  # a clerk's branch exists
        Branch.objects.get_or_create(code=branch_code, defaults={"name": branch_code})
    return staff_create(email=email, role=role, password=PASSWORD, branch_code=branch_code)


def sign_in(client: Client, profile, device, steps_ahead: int = 0):
    response = client.post("/console/login/", {"email": profile.user.email, "password": PASSWORD})
    assert response.status_code == 302, response.content[:500]
    response = client.post("/console/login/code/", {"code": totp_code(device, steps_ahead)})
    assert response.status_code == 302 and response["Location"] == "/console/", response.content[:500]
    return client


@pytest.fixture
def staff_client(db):
    """staff_client("agent") → (client signed in with password + TOTP, profile)."""

    def make(role: str, branch_code: str = ""):
        profile, device, _ = make_staff(role, branch_code=branch_code)
        return sign_in(Client(), profile, device), profile

    return make


def next_working_day(calendar: str = "HK", after: date | None = None) -> date:
    from closeout.common.calendars import is_working_day

    day = (after or timezone.localtime().date()) + timedelta(days=1)
    while not is_working_day(day, calendar):
        day += timedelta(days=1)
    return day


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, clock_time(hour, minute), tzinfo=timezone.get_current_timezone())


@pytest.fixture
def branch(db):
    """A branch open 09:00-17:00 every day (holidays closed), 30-minute slots, two counters."""
    from closeout.appointments.models import Branch, Counter, OpeningHours

    made = Branch.objects.create(code="HK-CEN", name="Central", name_zh_hans="中环营业厅",
                                 name_zh_hant="中環客務中心", calendar="HK", slot_minutes=30)
    for weekday in range(7):
        OpeningHours.objects.create(branch=made, weekday=weekday, opens=clock_time(9), closes=clock_time(17))
    Counter.objects.create(branch=made, label="A")
    Counter.objects.create(branch=made, label="B")
    return made


def case_in_state(card, target: str, actor: str = "customer:web"):
    """Open a case for `card` and drive it with the real services to `target`
    (submitted, verified, awaiting_return, refund_pending)."""
    from closeout.closures import services

    case = services.closure_request(card=card, channel="web", requester=actor)
    if target == "submitted":
        return case
    case.refresh_from_db()
    services.closure_verify(reference=case.reference, workflow_id=case.next_action_id)
    case.refresh_from_db()
    if target == "verified":
        return case
    services.closure_settle(reference=case.reference, workflow_id=case.next_action_id)
    case.refresh_from_db()
    assert case.state == target, f"{case.state} != {target}"
    return case

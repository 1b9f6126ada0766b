"""Branch appointments: slots from opening hours and counters, book / cancel / reschedule,
reminders the day before, and no double booking under concurrent requests."""

from __future__ import annotations

import re
import threading
from datetime import datetime, time, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from closeout.appointments import rules, selectors
from closeout.appointments import services as appointments
from closeout.appointments.models import Appointment
from closeout.audit.models import AuditEvent
from closeout.closures.models import ClosureCase
from closeout.common import clock
from tests.integration import test_console_support as support
from tests.integration.test_console_support import local, next_working_day

branch = support.branch
staff_client = support.staff_client


def test_slots_cover_opening_hours_and_end_by_closing_time():
    hours = [rules.Hours(0, time(9), time(11)), rules.Hours(0, time(14), time(15, 10))]
    monday = next_working_day("HK")
    while monday.weekday() != 0:
        monday += timedelta(days=1)
    starts = rules.slot_starts(monday, hours=hours, slot_minutes=30, working_day=True)
    assert starts == [time(9), time(9, 30), time(10), time(10, 30), time(14), time(14, 30)]
    assert rules.slot_starts(monday, hours=hours, slot_minutes=30, working_day=False) == []
    assert rules.slot_starts(monday + timedelta(days=1), hours=hours, slot_minutes=30, working_day=True) == []


@pytest.mark.django_db
def test_booking_fills_one_counter_per_customer_until_the_slot_is_full(branch, make_card):
    day = next_working_day()
    slot = local(day, 10)
    first = appointments.appointment_book(card=make_card(), branch=branch, starts_at=slot, actor="staff:a")
    second = appointments.appointment_book(card=make_card(), branch=branch, starts_at=slot, actor="staff:a")

    assert {first.counter.label, second.counter.label} == {"A", "B"}
    with pytest.raises(appointments.SlotFull):
        appointments.appointment_book(card=make_card(), branch=branch, starts_at=slot, actor="staff:a")
    listed = {s["starts_at"]: s for s in selectors.branch_slots(branch=branch, day=day)}
    assert (listed[slot]["capacity"], listed[slot]["booked"], listed[slot]["free"]) == (2, 2, 0)
    assert AuditEvent.objects.filter(action="appointment.booked").count() == 2


@pytest.mark.django_db
def test_slots_outside_hours_in_the_past_or_off_the_grid_are_refused(branch, make_card):
    card = make_card()
    day = next_working_day()
    for when, why in ((local(day, 8, 30), "closed"), (local(day, 17), "closed"), (local(day, 10, 10), "misaligned"),
                      # Yesterday: three days before the next working day is today after a Friday.
                      (local(timezone.localdate(clock.now()) - timedelta(days=1), 10), "past")):
        with pytest.raises(appointments.SlotUnavailable) as caught:
            appointments.appointment_book(card=card, branch=branch, starts_at=when, actor="staff:a")
        assert caught.value.code == why


@pytest.mark.django_db
def test_a_card_has_one_booking_and_cancel_frees_the_slot(branch, make_card):
    card = make_card()
    day = next_working_day()
    booked = appointments.appointment_book(card=card, branch=branch, starts_at=local(day, 10), actor="staff:a")
    with pytest.raises(appointments.CardAlreadyBooked):
        appointments.appointment_book(card=card, branch=branch, starts_at=local(day, 11), actor="staff:a")

    appointments.appointment_cancel(appointment_id=booked.id, actor="staff:a", reason="customer called")
    with pytest.raises(appointments.AppointmentNotBooked):
        appointments.appointment_cancel(appointment_id=booked.id, actor="staff:a")
    again = appointments.appointment_book(card=card, branch=branch, starts_at=local(day, 10), actor="staff:a")
    assert again.status == Appointment.Status.BOOKED


@pytest.mark.django_db
def test_reschedule_moves_to_a_free_slot_only(branch, make_card):
    day = next_working_day()
    mine = appointments.appointment_book(card=make_card(), branch=branch, starts_at=local(day, 10), actor="staff:a")
    for _ in range(2):
        appointments.appointment_book(card=make_card(), branch=branch, starts_at=local(day, 11), actor="staff:a")

    with pytest.raises(appointments.SlotFull):
        appointments.appointment_reschedule(appointment_id=mine.id, starts_at=local(day, 11), actor="staff:a")
    moved = appointments.appointment_reschedule(appointment_id=mine.id, starts_at=local(day, 14, 30), actor="staff:a")
    assert timezone_hour(moved.starts_at) == (14, 30)
    assert Appointment.objects.filter(status="BOOKED", starts_at=local(day, 10)).count() == 0


def timezone_hour(moment):
    from django.utils import timezone

    value = timezone.localtime(moment)
    return value.hour, value.minute


@pytest.mark.django_db
def test_reminders_go_out_once_the_day_before(branch, make_card, monkeypatch):
    from closeout.common import clock

    day = next_working_day()
    tomorrow_booking = appointments.appointment_book(card=make_card(), branch=branch, starts_at=local(day, 10),
                                                     actor="staff:a")
    week_later = next_working_day(after=day + timedelta(days=5))
    later = appointments.appointment_book(card=make_card(), branch=branch, starts_at=local(week_later, 10),
                                          actor="staff:a")
    eve = local(day - timedelta(days=1), 18)
    monkeypatch.setattr(clock, "now", lambda: eve)

    assert appointments.appointment_reminders_send(now=eve) == 1
    assert appointments.appointment_reminders_send(now=eve) == 0
    tomorrow_booking.refresh_from_db()
    later.refresh_from_db()
    assert tomorrow_booking.reminder_sent_at == eve and later.reminder_sent_at is None


@pytest.mark.django_db
def test_staff_book_and_cancel_from_the_console(staff_client, branch, make_card):
    client, _ = staff_client("agent")
    card = make_card()
    day = next_working_day()
    board = client.get("/console/appointments/", {"branch": "HK-CEN", "day": day.isoformat()}).content.decode()
    assert f'data-slot="{day.isoformat()}T10:00"' in board

    client.post("/console/appointments/book", {"branch": "HK-CEN", "card_number": card.number,
                                               "starts_at": f"{day.isoformat()}T10:00"})
    booked = Appointment.objects.get(card=card)
    hant = client.get("/console/appointments/", {"branch": "HK-CEN", "day": day.isoformat()},
                      HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()
    assert 'data-status="BOOKED">已預約<' in hant and ">BOOKED<" not in hant
    assert "中環客務中心" in hant  # the branch by its local name
    full = client.post("/console/appointments/book", {"branch": "HK-CEN", "card_number": card.number,
                                                      "starts_at": f"{day.isoformat()}T10:30"}, follow=True)
    assert "already has an appointment" in full.content.decode()
    client.post(f"/console/appointments/{booked.id}/cancel")
    booked.refresh_from_db()
    assert booked.status == "CANCELLED"


def test_a_booking_that_fails_keeps_what_the_clerk_typed(staff_client, branch, make_card):
    client, _ = staff_client("branch_clerk", branch_code="HK-CEN")
    card = make_card()
    day = next_working_day()
    board = client.get("/console/appointments/").content.decode()
    slot_input = re.search(r'<input[^>]*id="id_starts_at"[^>]*>', board).group(0)
    assert 'type="datetime-local"' in slot_input  # a date and time picker, not a free text field
    late = client.post("/console/appointments/book", {"branch": "HK-CEN", "card_number": card.number,
                                                      "starts_at": f"{day.isoformat()}T20:00", "reference": ""})
    page = late.content.decode()
    assert late.status_code == 200 and "The branch is closed at that time." in page
    assert f'value="{card.number}"' in page and f'value="{day.isoformat()}T20:00"' in page
    assert not Appointment.objects.filter(card=card).exists()


def test_a_day_typed_far_off_shows_todays_board_instead_of_failing(staff_client, branch, make_card):
    client, _ = staff_client("branch_clerk", branch_code="HK-CEN")
    card = make_card()
    today = timezone.localtime(clock.now()).date().isoformat()

    for day in ("0001-01-01", "9999-12-31"):
        board = client.get("/console/appointments/", {"branch": "HK-CEN", "day": day})
        assert board.status_code == 200 and f'value="{today}"' in board.content.decode()
    early = client.post("/console/appointments/book", {"branch": "HK-CEN", "card_number": card.number,
                                                       "starts_at": "0001-01-01T10:00", "reference": ""})

    page = early.content.decode()
    assert early.status_code == 200 and "That slot is in the past." in page
    assert 'value="0001-01-01T10:00"' in page and f'value="{today}"' in page
    assert not Appointment.objects.filter(card=card).exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_bookings_never_double_book_a_counter(branch, make_card):
    """Eight customers race for one slot with two counters: exactly two get it."""
    day = next_working_day()
    slot = local(day, 15)
    cards = [make_card() for _ in range(8)]
    barrier = threading.Barrier(len(cards))
    outcomes: list[str] = []
    lock = threading.Lock()

    def book(card):
        try:
            barrier.wait(timeout=30)
            appointments.appointment_book(card=card, branch=branch, starts_at=slot, actor="customer:web")
            result = "booked"
        except appointments.SlotFull:
            result = "full"
        except Exception as exc:  # noqa: BLE001 - reported below
            result = f"error: {exc!r}"
        finally:
            connection.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=book, args=(card,)) for card in cards]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(outcomes) == ["booked"] * 2 + ["full"] * 6
    booked = Appointment.objects.filter(starts_at=slot, status="BOOKED")
    assert sorted(booked.values_list("counter__label", flat=True)) == ["A", "B"]


@pytest.mark.django_db(transaction=True)
def test_one_card_racing_for_two_slots_gets_one(branch, make_card):
    day = next_working_day()
    card = make_card()
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def book(hour):
        try:
            barrier.wait(timeout=30)
            appointments.appointment_book(card=card, branch=branch, starts_at=local(day, hour), actor="customer:web")
            outcomes.append("booked")
        except appointments.CardAlreadyBooked:
            outcomes.append("already")
        finally:
            connection.close()

    threads = [threading.Thread(target=book, args=(hour,)) for hour in (10, 11, 12, 13)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["already"] * 3 + ["booked"]
    assert Appointment.objects.filter(card=card, status="BOOKED").count() == 1


@pytest.mark.django_db
def test_a_booking_refused_in_the_console_is_explained_in_the_staff_members_language(staff_client, branch, make_card):
    client, _ = staff_client("agent")
    card = make_card()
    day = next_working_day()
    client.post("/console/appointments/book", {"branch": "HK-CEN", "card_number": card.number,
                                               "starts_at": f"{day.isoformat()}T10:00"})

    again = client.post("/console/appointments/book", {"branch": "HK-CEN", "card_number": card.number,
                                                       "starts_at": f"{day.isoformat()}T10:30"},
                        follow=True, HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()

    assert "This card already has an appointment." not in again
    assert "此卡已有預約" in again


@pytest.mark.django_db
def test_the_customer_gets_a_confirmation_when_booked_and_again_when_moved(branch, make_card):
    from closeout.notifications.models import Notice

    card = make_card()
    day = next_working_day()
    booked = appointments.appointment_book(card=card, branch=branch, starts_at=local(day, 10), actor="staff:a",
                                           language="zh-hant")
    appointments.appointment_reschedule(appointment_id=booked.id, starts_at=local(day, 11), actor="staff:a")

    sent = Notice.objects.filter(template="appointment_booked").order_by("id")
    assert sorted(n.channel for n in sent) == ["email", "email", "sms", "sms"]
    assert {n.language for n in sent} == {"zh-hant"}
    assert [datetime.fromisoformat(n.context["starts_at"]) for n in sent if n.channel == "email"] == [
        local(day, 10), local(day, 11)]


@pytest.mark.django_db
def test_the_confirmation_names_the_branch_and_its_address_in_the_customers_language(branch, make_card):
    from closeout.notifications.models import Notice

    branch.address, branch.address_zh_hant = "G/F, 1 Sample Street, Central", "中環樣本街1號地下"
    branch.save()
    appointments.appointment_book(card=make_card(), branch=branch, starts_at=local(next_working_day(), 10),
                                  actor="staff:a", language="zh-hant")
    appointments.appointment_book(card=make_card(), branch=branch, starts_at=local(next_working_day(), 11),
                                  actor="staff:a", language="zh-hans")

    contexts = {n.language: n.context for n in Notice.objects.filter(template="appointment_booked", channel="email")}
    assert (contexts["zh-hant"]["branch"], contexts["zh-hant"]["address"]) == ("中環客務中心", "中環樣本街1號地下")
    # No simplified address kept: the English one, never an empty line.
    assert (contexts["zh-hans"]["branch"], contexts["zh-hans"]["address"]) == ("中环营业厅", "G/F, 1 Sample Street, Central")


@pytest.mark.django_db
def test_closing_the_card_another_way_frees_the_counter_it_had_booked(branch, make_card):
    from closeout.closures import services as closures
    from tests.integration.test_console_support import case_in_state

    card = make_card()
    booked = appointments.appointment_book(card=card, branch=branch, starts_at=local(next_working_day(), 10),
                                           actor="customer:web")
    case_in_state(card, "verified")  # requested on the web, then verified by the worker

    booked.refresh_from_db()
    assert booked.status == "CANCELLED" and booked.cancel_reason.endswith("requested via web")
    other = make_card()
    at_counter = appointments.appointment_book(card=other, branch=branch, starts_at=local(next_working_day(), 11),
                                               actor="staff:a")
    case = closures.closure_request(card=other, channel="branch", requester="staff:clerk")
    closures.closure_verify(reference=case.reference, workflow_id=ClosureCase.objects.get(id=case.id).next_action_id)
    at_counter.refresh_from_db()
    assert at_counter.status == "BOOKED"  # the visit is the closure


def _to_the_return_label(case) -> ClosureCase:
    """Run the case's workflow actions inline until it waits for its card, label step included."""
    from closeout.closures import workflow

    for _ in range(6):
        case = ClosureCase.objects.get(id=case.id)
        if not case.next_action:
            return case
        workflow.ACTIONS[case.next_action](case.reference, case.next_action_id)
    raise AssertionError(case.state)


@pytest.mark.django_db
def test_a_case_opened_at_the_counter_orders_no_postal_label_but_a_web_case_does(make_card):
    from closeout.closures import services as closures
    from closeout.integrations.models import SimShipment
    from closeout.returns.models import ReturnLabel

    at_counter = _to_the_return_label(closures.closure_request(card=make_card(), channel="branch",
                                                                requester="staff:clerk"))
    assert at_counter.state == "awaiting_return"
    assert not ReturnLabel.objects.filter(case=at_counter).exists()
    assert not SimShipment.objects.exists()  # the carrier was never asked (nor paid)
    assert at_counter.events.filter(note="card to be handed in at a branch: no carrier label").exists()

    posted = _to_the_return_label(closures.closure_request(card=make_card(), channel="web",
                                                            requester="customer:web"))
    assert posted.state == "awaiting_return"
    assert ReturnLabel.objects.get(case=posted).tracking_ref
    assert SimShipment.objects.count() == 1


@pytest.mark.django_db
def test_two_weeks_of_slots_are_read_in_as_many_queries_as_one_day(branch, make_card):
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from closeout.appointments.models import Branch

    first = next_working_day()
    second = next_working_day(after=first)
    appointments.appointment_book(card=make_card(), branch=branch, starts_at=local(first, 10), actor="staff:a")
    for _ in range(2):
        appointments.appointment_book(card=make_card(), branch=branch, starts_at=local(second, 9, 30), actor="staff:a")
    cancelled = appointments.appointment_book(card=make_card(), branch=branch, starts_at=local(second, 11),
                                              actor="staff:a")
    appointments.appointment_cancel(appointment_id=cancelled.id, actor="staff:a", reason="")
    today = timezone.localdate()

    def read(days: int) -> tuple[int, dict]:
        with CaptureQueriesContext(connection) as queries:
            slots = selectors.branch_slots_by_day(branch=Branch.objects.get(id=branch.id), first_day=today, days=days)
        return len(queries), slots

    one, _ = read(1)
    fourteen, slots = read(14)
    assert fourteen == one <= 4
    assert list(slots) == [today + timedelta(days=n) for n in range(14)]
    on_first = {s["starts_at"]: s for s in slots[first]}
    on_second = {s["starts_at"]: s for s in slots[second]}
    assert (on_first[local(first, 10)]["booked"], on_first[local(first, 10)]["free"]) == (1, 1)
    assert (on_second[local(second, 9, 30)]["booked"], on_second[local(second, 9, 30)]["free"]) == (2, 0)
    assert (on_second[local(second, 11)]["booked"], on_second[local(second, 11)]["free"]) == (0, 2)
    assert on_second[local(second, 10)]["booked"] == 0  # the first day's booking stays on its day
    for day, listed in slots.items():  # the same as the one-day reading the console board shows
        assert listed == selectors.branch_slots(branch=branch, day=day), day

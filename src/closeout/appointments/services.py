"""Branch appointments (book, cancel, reschedule, reminders) and the counter visit: original ID
checked, card taken and destroyed, the customer's confirmation, the receipt.

Bookings of one branch are serialised by a row lock on the branch; the partial unique
constraints on (counter, start) and (card) are the last word if anything slips past it."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from closeout.appointments import rules
from closeout.appointments.models import Appointment, Branch, CounterVisit
from closeout.audit.services import audit_record
from closeout.cards.models import Card
from closeout.closures import services as closures
from closeout.closures import states
from closeout.closures.models import ClosureCase
from closeout.common import calendars, clock
from closeout.notifications.services import appointment_confirmation_send, appointment_reminder_send
from closeout.returns import services as returns

BOOKING_ATTEMPTS = 3


class UnableToBook(Exception):
    """Base of the booking errors; `code` names the reason for the UI."""

    code = "unavailable"


class SlotUnavailable(UnableToBook):
    def __init__(self, why: str):
        super().__init__(f"slot not bookable: {why}")
        self.code = why


class SlotFull(UnableToBook):
    code = "full"


class CardAlreadyBooked(UnableToBook):
    code = "card_booked"


class AppointmentNotBooked(UnableToBook):
    code = "not_booked"


def branch_hours(branch: Branch) -> list[rules.Hours]:
    return [rules.Hours(h.weekday, h.opens, h.closes) for h in branch.hours.all()]


def _check_slot(branch: Branch, starts_at: datetime) -> datetime:
    local = timezone.localtime(starts_at)
    problem = rules.slot_problem(
        local, hours=branch_hours(branch), slot_minutes=branch.slot_minutes,
        working_day=calendars.is_working_day(local.date(), branch.calendar),
        now_local=timezone.localtime(clock.now()),
    )
    if problem:
        raise SlotUnavailable(problem)
    return local


def _free_counter(branch: Branch, starts_at: datetime, exclude: int | None = None):
    taken = set(Appointment.objects.filter(branch=branch, starts_at=starts_at, status=Appointment.Status.BOOKED)
                .exclude(id=exclude).values_list("counter_id", flat=True))
    return next((c for c in branch.counters.filter(active=True).order_by("label") if c.id not in taken), None)


def appointment_book(*, card: Card, branch: Branch, starts_at: datetime, actor: str,
                     case: ClosureCase | None = None, language: str = "en") -> Appointment:
    """Book a counter slot at a branch for a card.

    :raises SlotUnavailable: for a slot in the past, outside opening hours or not on the grid.
    :raises SlotFull: when every counter is taken in that slot.
    :raises CardAlreadyBooked: when the card already has a booked appointment.
    """
    _check_slot(branch, starts_at)
    for _ in range(BOOKING_ATTEMPTS):
        try:
            with transaction.atomic():
                Branch.objects.select_for_update().get(id=branch.id)
                if Appointment.objects.filter(card=card, status=Appointment.Status.BOOKED).exists():
                    raise CardAlreadyBooked("this card already has an appointment")
                counter = _free_counter(branch, starts_at)
                if counter is None:
                    raise SlotFull("every counter is booked in this slot")
                now = clock.now()
                appointment = Appointment.objects.create(
                    branch=branch, counter=counter, card=card, case=case, starts_at=starts_at,
                    ends_at=starts_at + timedelta(minutes=branch.slot_minutes), booked_by=actor, booked_at=now,
                    language=language,
                )
                audit_record(actor=actor, action="appointment.booked", subject=f"appointment:{appointment.id}",
                             data={"branch": branch.code, "starts_at": starts_at.isoformat(),
                                   "case": case.reference if case else ""})
                appointment_confirmation_send(appointment_id=appointment.id)
                return appointment
        except IntegrityError:
            # A concurrent booking won the counter or the card; look again with fresh data.
            continue
    raise SlotFull("every counter is booked in this slot")


def _lock_booked(appointment_id: int) -> Appointment:
    appointment = Appointment.objects.select_for_update().select_related("branch").filter(id=appointment_id).first()
    if appointment is None or appointment.status != Appointment.Status.BOOKED:
        raise AppointmentNotBooked("this appointment is not booked")
    return appointment


def appointment_cancel(*, appointment_id: int, actor: str, reason: str = "") -> Appointment:
    """Cancel a booked appointment; the slot is free again.

    :raises AppointmentNotBooked: when it is not (or no longer) booked.
    """
    with transaction.atomic():
        appointment = _lock_booked(appointment_id)
        appointment.status = Appointment.Status.CANCELLED
        appointment.cancelled_at = clock.now()
        appointment.cancel_reason = reason[:200]
        appointment.save(update_fields=["status", "cancelled_at", "cancel_reason"])
        audit_record(actor=actor, action="appointment.cancelled", subject=f"appointment:{appointment.id}",
                     reason=reason[:200])
    return appointment


def appointment_reschedule(*, appointment_id: int, starts_at: datetime, actor: str) -> Appointment:
    """Move a booked appointment to another slot of its branch.

    :raises AppointmentNotBooked, SlotUnavailable, SlotFull: as for booking.
    """
    for _ in range(BOOKING_ATTEMPTS):
        try:
            with transaction.atomic():
                appointment = _lock_booked(appointment_id)
                branch = Branch.objects.select_for_update().get(id=appointment.branch_id)
                _check_slot(branch, starts_at)
                counter = _free_counter(branch, starts_at, exclude=appointment.id)
                if counter is None:
                    raise SlotFull("every counter is booked in this slot")
                before = appointment.starts_at.isoformat()
                appointment.starts_at = starts_at
                appointment.ends_at = starts_at + timedelta(minutes=branch.slot_minutes)
                appointment.counter = counter
                appointment.reminder_sent_at = None
                appointment.save(update_fields=["starts_at", "ends_at", "counter", "reminder_sent_at"])
                audit_record(actor=actor, action="appointment.rescheduled",
                             subject=f"appointment:{appointment.id}", before=before[:40],
                             after=starts_at.isoformat()[:40])
                appointment_confirmation_send(appointment_id=appointment.id)
                return appointment
        except IntegrityError:
            continue
    raise SlotFull("every counter is booked in this slot")


def appointment_reminders_send(*, now: datetime | None = None) -> int:
    """Send a reminder for every appointment booked for tomorrow (local time) not yet reminded.

    Each appointment is claimed with a conditional update, so concurrent sweeps send once.
    Meant to be called by the periodic sweep.
    """
    now = now or clock.now()
    tomorrow = timezone.localtime(now).date() + timedelta(days=1)
    due = Appointment.objects.filter(status=Appointment.Status.BOOKED, reminder_sent_at__isnull=True,
                                     starts_at__date=tomorrow).values_list("id", flat=True)
    sent = 0
    for appointment_id in list(due):
        with transaction.atomic():
            claimed = Appointment.objects.filter(id=appointment_id, reminder_sent_at__isnull=True).update(
                reminder_sent_at=now)
            if not claimed:
                continue
            audit_record(actor="system", action="appointment.reminder", subject=f"appointment:{appointment_id}")
        appointment_reminder_send(appointment_id=appointment_id)
        sent += 1
    return sent


# --- at the counter ---------------------------------------------------------------------------


class UnableToServe(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def counter_id_check(*, reference: str, branch: Branch, clerk: str, id_type: str, id_number: str,
                     original_seen: bool, photo_matches: bool, appointment: Appointment | None = None) -> CounterVisit:
    """Record the clerk's check of the customer's original ID document against the case's card.

    :raises UnableToServe: unless the original was seen and its photo matches.
    :raises documents.InvalidDocument: for a malformed ID number.
    :raises closures.IdentityNotVerified: when the document is not the holder's.
    """
    case = ClosureCase.objects.select_related("card__holder").filter(reference=reference).first()
    if case is None:
        raise closures.CaseNotFound(reference)
    if case.state in states.TERMINAL:
        raise UnableToServe("reference", "this case is finished")
    if not original_seen or not photo_matches:
        raise UnableToServe("checks", "the original document must be seen and its photo must match")
    closures.identity_check(card_number=case.card.number, id_type=id_type, id_number=id_number)
    with transaction.atomic():
        visit = CounterVisit.objects.create(
            case=case, appointment=appointment, branch=branch, clerk=clerk, started_at=clock.now(),
            id_type=id_type, id_masked=case.card.holder.id_masked, id_original_seen=True,
            id_photo_matches=True, id_number_matches=True,
        )
        audit_record(actor=clerk, action="counter.id_checked", subject=case.reference,
                     data={"branch": branch.code, "id_type": id_type})
    return visit


def counter_card_take(*, visit_id: int, method: str, clerk: str) -> CounterVisit:
    """Take the physical card at the counter and record its destruction.

    :raises returns.UnableToDestroy: for an unknown method or a card destroyed before.
    """
    with transaction.atomic():
        visit = CounterVisit.objects.select_for_update().select_related("case__card", "branch").get(id=visit_id)
        if visit.card_taken:
            return visit
        batch = f"{visit.branch.code}-{timezone.localtime(clock.now()).date().isoformat()}"
        returns.card_destruction_record(card=visit.case.card, case=visit.case, method=method, batch=batch,
                                        place=f"branch:{visit.branch.code}", actor=clerk)
        visit.card_taken = True
        visit.save(update_fields=["card_taken"])
    return visit


def counter_customer_confirm(*, visit_id: int, clerk: str) -> CounterVisit:
    """The customer confirmed on screen: finish the visit and, when the case waits for the card,
    record it as received."""
    with transaction.atomic():
        visit = CounterVisit.objects.select_for_update(of=("self",)).select_related("case", "appointment", "branch").get(
            id=visit_id)
        if visit.customer_confirmed_at is None:
            visit.customer_confirmed_at = clock.now()
            visit.save(update_fields=["customer_confirmed_at"])
            audit_record(actor=clerk, action="counter.customer_confirmed", subject=visit.case.reference,
                         data={"branch": visit.branch.code, "card_taken": visit.card_taken})
        if visit.appointment and visit.appointment.status == Appointment.Status.BOOKED:
            Appointment.objects.filter(id=visit.appointment_id).update(status=Appointment.Status.SERVED)
        _receive_if_waiting(visit, clerk)
    return visit


def _receive_if_waiting(visit: CounterVisit, actor: str) -> bool:
    if not visit.card_taken or visit.card_received_recorded or visit.customer_confirmed_at is None:
        return False
    case = ClosureCase.objects.get(id=visit.case_id)
    if case.state != states.AWAITING_RETURN:
        return False
    closures.closure_card_received(reference=case.reference, actor=actor,
                                   note=f"card handed in at branch {visit.branch.code}")
    CounterVisit.objects.filter(id=visit.id).update(card_received_recorded=True)
    visit.card_received_recorded = True
    return True


def counter_intakes_complete() -> int:
    """Record as received the cards taken at a counter before their case reached
    `awaiting_return` (the case was opened at the counter). Meant for the periodic sweep."""
    done = 0
    pending = CounterVisit.objects.filter(card_taken=True, card_received_recorded=False,
                                          customer_confirmed_at__isnull=False,
                                          case__state=states.AWAITING_RETURN).values_list("id", flat=True)
    for visit_id in list(pending):
        with transaction.atomic():
            visit = CounterVisit.objects.select_for_update().select_related("branch").get(id=visit_id)
            done += _receive_if_waiting(visit, visit.clerk)
    return done

"""Reads of the staff console, shaped as plain data; personal data only ever masked."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils.translation import gettext_lazy as _

from closeout.cards.models import Card
from closeout.closures import services as closures
from closeout.closures import states
from closeout.closures.models import ClosureCase, Refund, RefundApproval
from closeout.common import calendars, clock
from closeout.console import rules
from closeout.console.models import CaseNote
from closeout.identity import documents, vault
from closeout.returns import selectors as return_selectors
from closeout.returns.models import ReturnException
from closeout.returns.services import LABEL
from closeout.returns.services import REFERENCE as COMPACT_REFERENCE

SEARCH_LIMIT = 50


def _row(case: ClosureCase) -> dict:
    holder = case.card.holder
    return {
        "reference": case.reference,
        "state": case.state,
        "channel": case.channel,
        "product": case.card.product.local_name(),
        "card_masked": documents.mask_card_number(case.card.number),
        "holder_name": holder.name,
        "phone_masked": holder.phone_masked,
        "created_at": case.created_at,
        "sla_due_date": case.sla_due_date,
        "finished": case.state in states.TERMINAL,  # nothing is due any more
    }


def case_search(*, query: str) -> dict:
    """Find cases by reference (as printed, or read out without its dashes), return label code,
    card number, phone number (local or with country code), email address or part of the
    holder's name; an unusable query finds nothing. Return the newest `SEARCH_LIMIT` as `rows`
    and how many match in all as `total`, so a page can ask for a narrower search when a short
    name matches more than it lists. `by_name` says the query was read as a name (the page records
    such a look-up); `too_short` that it was a name too short to search by."""
    query = " ".join((query or "").split())
    by_name = _is_name(query)
    if by_name and not _long_enough(query):
        return {"rows": [], "total": 0, "by_name": True, "too_short": True}
    found = _cases_matching(query, by_name=by_name)
    rows = [_row(case) for case in found[:SEARCH_LIMIT]]
    total = found.count() if len(rows) == SEARCH_LIMIT else len(rows)  # counted only when cut short
    return {"rows": rows, "total": total, "by_name": by_name, "too_short": False}


def _is_name(query: str) -> bool:
    compact = documents.without_separators(query).upper()
    return bool(query) and "@" not in query and any(ch.isalpha() for ch in query.replace("+", "")) and not (
        COMPACT_REFERENCE.match(compact) or LABEL.match(compact))


def _long_enough(name: str) -> bool:
    """Two Chinese characters or three letters at least: a shorter fragment would list holders
    rather than find one."""
    letters = [ch for ch in name if ch.isalpha()]
    return len(letters) >= (2 if documents.has_han(name) else 3)


def _cases_matching(query: str, *, by_name: bool) -> QuerySet[ClosureCase]:
    if not query:
        return ClosureCase.objects.none()
    cases = ClosureCase.objects.select_related("card__holder", "card__product").order_by("-created_at")
    compact = documents.without_separators(query).upper()
    if read_out := COMPACT_REFERENCE.match(compact):
        found = cases.filter(reference=f"CL-{read_out[1]}-{read_out[2]}")
    elif LABEL.match(compact):
        found = cases.filter(return_label__code=compact)
    elif by_name:
        # In either Chinese script: a clerk types 陳大文 for a holder registered as 陈大文.
        spelled = Q()
        for spelling in documents.name_spellings(query):
            spelled |= Q(card__holder__name__icontains=spelling)
        found = cases.filter(spelled)
    else:
        digits = documents.without_separators(query)
        try:
            number = documents.normalize_card_number(digits)
        except documents.InvalidDocument:
            number = None
        if number:
            found = cases.filter(card__number=number)
        elif "@" in query:
            try:
                email = documents.normalize_email(query)
            except documents.InvalidDocument:
                return cases.none()
            found = cases.filter(card__holder__email_hash=vault.lookup_hash("email", email))
        else:  # a local number (8 digits or fewer, no "+") in the operator's country, or with its code
            try:
                phone = documents.normalize_phone(query, local_country=settings.PHONE_COUNTRY_CODE)
            except documents.InvalidDocument:
                return cases.none()
            found = cases.filter(card__holder__phone_hash=vault.lookup_hash("phone", phone))
    return found


# What people did on a case without changing its state, from its audit trail: the timeline's kind
# (labelled in console.labels.TIMELINE_KINDS) for each audit action shown.
AUDIT_TIMELINE = {
    "counter.id_checked": "id_checked", "counter.customer_confirmed": "customer_confirmed",
    "closure.refund.cash_refused": "cash_refused", "closure.refund.cash_handed_over": "cash_handed_over",
    "return.exception": "return_exception", "return.exception_resolved": "exception_resolved",
}


def _audit_note(event) -> str:
    """The branch an audit event happened at, or the words staff gave for it."""
    branch = (event.data or {}).get("branch")
    if branch:
        from closeout.appointments.models import Branch

        found = Branch.objects.filter(code=branch).first()
        return found.local_name() if found else branch
    return event.reason if event.action == "return.exception_resolved" else ""


def case_timeline(case: ClosureCase) -> list[dict]:
    """State changes, staff notes and what staff did at the counter and the warehouse, oldest first."""
    from closeout.audit.models import AuditEvent

    items = [
        {"at": e.at, "actor": e.actor, "from_state": e.from_state, "to_state": e.to_state, "note": e.note,
         "kind": "event"}
        for e in case.events.order_by("at", "id")
    ]
    items += [
        {"at": n.at, "actor": n.author, "from_state": "", "to_state": "", "note": n.text, "kind": n.kind.lower()}
        for n in CaseNote.objects.filter(case=case)
    ]
    items += [
        {"at": e.at, "actor": e.actor, "from_state": "", "to_state": "", "note": _audit_note(e),
         "kind": AUDIT_TIMELINE[e.action]}
        for e in AuditEvent.objects.filter(subject=case.reference, action__in=AUDIT_TIMELINE)
    ]
    return sorted(items, key=lambda item: item["at"])


def case_actions(case: ClosureCase) -> dict:
    """Which console actions the case's state allows (the role is checked separately)."""
    allowed = states.allowed_targets(case.state, resume_to=case.resume_to or None)
    open_charges = case.state not in states.TERMINAL and case.card.charges.filter(settled_at__isnull=True).exists()
    return {
        "hold": states.ON_HOLD in allowed and case.state != states.ON_HOLD,
        "resume": case.state in (states.ON_HOLD, states.FAILED) and bool(case.resume_to),
        "reject": states.REJECTED in allowed,
        "waive": open_charges,
        "resend": case.state != states.DRAFT,
    }


NOTICE_KINDS = {
    "receipt": _("Receipt"), "status": _("Status update"), "fees_paid": _("Fees paid"),
    "withdrawn": _("Withdrawal"), "otp": _("One-time code"), "appointment_reminder": _("Appointment reminder"),
    "cash_ready": _("Cash ready to collect"), "card_handed_back": _("Handed back to the customer"),
    "appointment_booked": _("Appointment confirmation"), "esim_delete_request": _("Request to delete the eSIM"),
}
NOTICE_STATUSES = {"queued": _("Waiting to be sent"), "sent": _("Sent"), "failed": _("Failed")}


def case_notices(case: ClosureCase) -> list[dict]:
    """What the customer was sent about the case: kind, channel, masked address, delivery status."""
    from closeout.notifications.models import Notice

    return [
        {"kind": NOTICE_KINDS.get(n.template, n.template), "state": n.context.get("state", ""), "channel": n.channel,
         "to": n.to_masked, "status": n.status, "status_label": NOTICE_STATUSES.get(n.status, n.status),
         "attempts": n.attempts, "error": n.error, "at": n.sent_at or n.created_at}
        for n in Notice.objects.filter(case=case).order_by("created_at", "id")
    ]


def case_detail(*, reference: str) -> dict | None:
    case = (ClosureCase.objects.select_related("card__holder", "card__product").filter(reference=reference)
            .first())
    if case is None:
        return None
    card = case.card
    approval = RefundApproval.objects.filter(case=case).first()
    timeline = case_timeline(case)
    card_return = case_card_return(case)
    assisted = getattr(case, "assisted_check", None)
    destruction = card_return["destruction"]
    actors = [item["actor"] for item in timeline] + [case.requester] + [c.staff for c in card_return["checkins"]]
    actors += [v.clerk for v in card_return["counter_visits"]]
    actors += [approval.requested_by, approval.decided_by] if approval else []
    actors += [destruction.destroyed_by, destruction.witnessed_by] if destruction else []
    actors += [card_return["hand_back"].handed_back_by] if card_return["hand_back"] else []
    actors += [assisted.staff.actor] if assisted else []
    return {
        "case": case,
        "row": _row(case),
        "id_masked": card.holder.id_masked,
        "id_type": card.holder.id_type,
        "email_masked": card.holder.email_masked,
        "charges": list(card.charges.order_by("id")),
        "timeline": timeline,
        "notices": case_notices(case),
        "actions": case_actions(case),
        "assisted": assisted,
        "sla": case_sla(case, today=timezone_date(clock.now())),
        "approval": approval,
        "approval_version": closures.approval_version(case, approval) if approval else "",
        "cash_refund": closures.cash_awaiting_collection(case),
        "card_return": card_return,
        "staff_names": staff_names(actors),  # who did what, by name, on the whole page
    }


def case_card_return(case: ClosureCase) -> dict:
    """The case's card as the warehouse and the counters handled it: scans, the counter visits that
    took the card, its destruction record with the branch it was destroyed at (if not the
    warehouse), its hand-back record, and whether it is destroyed, handed back, waits for
    destruction or is kept for the customer."""
    from closeout.appointments.models import Branch

    detail = return_selectors.card_return(case=case)
    visits = list(case.counter_visits.select_related("branch").filter(card_taken=True).order_by("started_at"))
    destruction = detail["destruction"]
    kind, _, code = destruction.place.partition(":") if destruction else ("", "", "")
    return detail | {
        "counter_visits": visits,
        "at_counter": kind == "branch",  # the customer watched it, not a second member of staff
        "place_branch": Branch.objects.filter(code=code).first() if kind == "branch" else None,
    }


def case_sla(case: ClosureCase, *, today: date) -> dict:
    """The working-day SLA clock of one case, on its product's calendar."""
    calendar = case.card.product.calendar

    def working(day: date) -> bool:
        return calendars.is_working_day(day, calendar)

    created = timezone_date(case.created_at)
    age = rules.working_days_between(created, today, working)
    left = rules.working_days_between(today, case.sla_due_date, working) if case.sla_due_date else 0
    status = rules.ON_TRACK if case.state in states.TERMINAL else rules.sla_status(
        today=today, due_date=case.sla_due_date, working_days_left=left)
    return {"age_working_days": age, "working_days_left": left, "status": status,
            "finished": case.state in states.TERMINAL}


def sla_board(*, today: date | None = None) -> dict:
    """Open cases with their SLA clocks, the at-risk / breached / needs-attention queues and the
    chart data."""
    today = today or timezone_date(clock.now())  # the branches' day, not UTC's
    open_cases = (ClosureCase.objects.exclude(state__in=states.TERMINAL)
                  .select_related("card__holder", "card__product").order_by("sla_due_date", "id"))
    rows = []
    for case in open_cases:
        row = _row(case) | case_sla(case, today=today)
        row["attention_reason"] = case.attention_reason
        rows.append(row)
    per_state = Counter(ClosureCase.objects.values_list("state", flat=True))
    ages = Counter(rules.age_bucket(row["age_working_days"]) for row in rows)
    since = today - timedelta(days=13)
    refunds = Counter(
        timezone_date(r) for r in Refund.objects.filter(settled_at__date__gte=since, status="succeeded")
        .values_list("settled_at", flat=True)
    )
    waiting = queues_waiting(actions={"warehouse.exceptions", "refund.approve"})
    return {
        "rows": rows,
        # Work waiting on people, beside the clocks it holds up.
        "exceptions_open": waiting["warehouse.exceptions"],
        "approvals_waiting": waiting["refund.approve"],
        "breached": [r for r in rows if r["status"] == rules.BREACHED],
        "at_risk": [r for r in rows if r["status"] == rules.AT_RISK],
        "attention": [r for r in rows if r["state"] == states.FAILED],
        "per_state": [(state, per_state.get(state, 0)) for state in states.ALL],
        "ages": [(label, ages.get(label, 0)) for _, _, label in rules.AGE_BUCKETS],
        "refunds_per_day": [((since + timedelta(days=i)).isoformat()[5:], refunds.get(since + timedelta(days=i), 0))
                            for i in range(14)],
    }


def queues_waiting(*, actions: set[str]) -> dict[str, int]:
    """How many items wait in each queue named by the console action that works it (return
    exceptions, refunds to approve), for the actions asked about."""
    counts = {
        "warehouse.exceptions": lambda: ReturnException.objects.filter(resolved_at__isnull=True).count(),
        "refund.approve": lambda: RefundApproval.objects.filter(decision=RefundApproval.Decision.PENDING,
                                                                case__state=states.REFUND_PENDING).count(),
    }
    return {action: count() for action, count in counts.items() if action in actions}


def timezone_date(moment) -> date:
    from django.utils import timezone

    return timezone.localtime(moment).date()


def staff_list() -> list:
    from closeout.console.models import StaffProfile

    return list(StaffProfile.objects.select_related("user").order_by("role", "user__email"))


def staff_names(actors) -> dict[str, str]:
    """The names of the staff among `actors` (as audit events record them, `staff:<email>`), in one
    query: {actor: name} for those who have one. Anyone else is left out, for the caller to name
    as recorded."""
    from closeout.console.models import StaffProfile

    emails = {actor.partition(":")[2] for actor in actors if actor and actor.startswith("staff:")}
    if not emails:
        return {}
    found = StaffProfile.objects.filter(user__username__in=emails).exclude(name="")
    return {f"staff:{email}": name for email, name in found.values_list("user__username", "name")}


def card_open_case(card: Card) -> ClosureCase | None:
    return ClosureCase.objects.filter(card=card).exclude(state__in=states.TERMINAL).first()



def refund_approvals_waiting() -> list[dict]:
    """Refunds waiting for a second person, oldest first, with what the approver decides on: the
    holder and card, how the refund adds up, where it goes (masked), who asked and when, and the
    version of all that their decision answers."""
    waiting = (RefundApproval.objects.filter(decision=RefundApproval.Decision.PENDING,
                                             case__state=states.REFUND_PENDING)
               .select_related("case__card__holder", "case__card__product").order_by("requested_at", "id"))
    return [
        _row(a.case) | {
            "approval": a, "refund": a.case.quote.get("refund", 0), "currency": a.case.quote.get("currency", ""),
            "quote": a.case.quote, "destination": a.case.refund_destination,
            "version": closures.approval_version(a.case, a),
        }
        for a in waiting
    ]

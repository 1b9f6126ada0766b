"""Staff console pages. Each view checks the role through `staff_view`, parses the form, calls one
service or selector and renders plain data."""

from __future__ import annotations

import csv
import time
from datetime import date, datetime
from urllib.parse import quote, unquote

import django_otp
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.db.models import Q
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_http_methods, require_POST

from closeout.appointments import receipt
from closeout.appointments import selectors as appointment_selectors
from closeout.appointments import services as appointments
from closeout.appointments.models import Appointment, Branch, CounterVisit
from closeout.cards.models import Card
from closeout.closures import services as closures
from closeout.closures import states
from closeout.closures.models import ClosureCase, RefundApproval
from closeout.common import clock
from closeout.common.templatetags.closeout import money
from closeout.common.text import UnusableLabel, ascii_digits, fill, one_line_label
from closeout.console import forms, labels, roles, rules, selectors, services
from closeout.console.access import SEEN_KEY, staff_view
from closeout.console.models import NAME_MAX_LENGTH, StaffProfile
from closeout.console.templatetags.console_labels import actor_label
from closeout.identity import documents
from closeout.returns import selectors as return_selectors
from closeout.returns import services as returns
from closeout.returns.models import DESK_MAX_LENGTH, ReturnException

PENDING_KEY = "console_pending_staff"
ASSISTED_KEY = "console_assisted"
SIGN_IN_WINDOW = 5 * 60


def _language() -> str:
    return translation.get_language() or "en"


CUSTOMER_LANGUAGES = frozenset(code for code, _name in settings.LANGUAGES)


def _customer_language(case: ClosureCase) -> str:
    """The language of the case, which the customer chose: what the counter screen turned towards
    them and their receipt speak, whatever the clerk reads the console in."""
    return case.language if case.language in CUSTOMER_LANGUAGES else "en"


# --- sign in / out ----------------------------------------------------------------------------


def _next_url(request) -> str:
    target = request.GET.get("next") or request.POST.get("next") or ""
    if target.startswith("/console/") and url_has_allowed_host_and_scheme(target, {request.get_host()}):
        return target
    return reverse("console:home")


@require_http_methods(["GET", "POST"])
def sign_in(request):
    form = forms.SignInForm(request.POST or None)
    failed = False
    if request.method == "POST" and form.is_valid():
        try:
            profile = services.staff_sign_in_password(email=form.cleaned_data["email"],
                                                      password=form.cleaned_data["password"])
        except services.UnableToSignIn:
            failed = True
        else:
            request.session.cycle_key()
            request.session[PENDING_KEY] = {"id": profile.id, "at": time.time()}
            return redirect(f"{reverse('console:sign_in_code')}?next={_next_url(request)}")
    elif request.method == "POST":
        failed = True
    return render(request, "console/sign_in.html", {"form": form, "failed": failed, "next": _next_url(request)},
                  status=200)


@require_http_methods(["GET", "POST"])
def sign_in_code(request):
    pending = request.session.get(PENDING_KEY) or {}
    profile = StaffProfile.objects.select_related("user").filter(id=pending.get("id")).first()
    if profile is None or time.time() - pending.get("at", 0) > SIGN_IN_WINDOW:
        request.session.pop(PENDING_KEY, None)
        return redirect("console:sign_in")
    form = forms.CodeForm(request.POST or None)
    failed = False
    if request.method == "POST" and form.is_valid():
        try:
            device = services.staff_sign_in_code(profile=profile, code=form.cleaned_data["code"])
        except services.UnableToSignIn:
            failed = True
            profile.refresh_from_db()
            if profile.locked_until and profile.locked_until > clock.now():
                request.session.pop(PENDING_KEY, None)
                messages.error(request, _("Sign-in failed. The email, password or code is wrong, or the account "
                                          "is locked for a while after too many failures."))
                return redirect("console:sign_in")
        else:
            request.session.pop(PENDING_KEY, None)
            login(request, profile.user, backend="django.contrib.auth.backends.ModelBackend")
            django_otp.login(request, device)
            request.session[SEEN_KEY] = time.time()
            return redirect(_next_url(request))
    return render(request, "console/sign_in_code.html", {"form": form, "failed": failed, "next": _next_url(request)})


@require_POST
def sign_out(request):
    logout(request)
    return redirect("console:sign_in")


# --- home, search, case -----------------------------------------------------------------------


@staff_view(None)
def home(request):
    role = request.staff.role
    menu = [
        (action, url, label) for action, url, label in (
            ("case.search", "console:search", _("Find a case")),
            ("case.open", "console:open", _("Open a case for a customer")),
            ("appointment.manage", "console:appointments", _("Branch appointments")),
            ("counter.serve", "console:counter", _("Serve at the counter")),
            ("warehouse.checkin", "console:warehouse", _("Warehouse check-in")),
            ("warehouse.exceptions", "console:exceptions", _("Return exceptions")),
            ("refund.approve", "console:refunds", _("Refunds to approve")),
            ("sla.view", "console:sla", _("SLA dashboard")),
            ("staff.manage", "console:staff", _("Staff accounts")),
        ) if roles.can(role, action)
    ]
    # How many wait, beside the queues this person works: the morning's first look.
    waiting = selectors.queues_waiting(actions={action for action, _url, _label in menu})
    return render(request, "console/home.html", {"menu": [(action, url, label, waiting.get(action))
                                                           for action, url, label in menu],
                                                 "role_label": roles.ROLE_LABELS[role]})


@staff_view("case.search")
def search(request):
    # A POST: the query is often a phone or card number, which must not land in URLs (history,
    # proxies, access logs).
    form = forms.SearchForm(request.POST or None)
    results = None
    if form.is_valid() and form.cleaned_data["q"]:
        results = selectors.case_search(query=form.cleaned_data["q"])
        if results["by_name"] and not results["too_short"]:
            services.name_search_record(actor=request.staff.actor, total=results["total"],
                                        references=[row["reference"] for row in results["rows"]])
    return render(request, "console/search.html", {"form": form, "results": results})


def _detail_or_404(reference: str) -> dict:
    detail = selectors.case_detail(reference=reference)
    if detail is None:
        raise Http404
    return detail


# The case page's actions and the permission each needs (the section is left out when none shows).
CASE_ACTIONS = {"hold": "case_hold", "resume": "case_resume", "reject": "case_reject", "resend": "notice_resend"}


@staff_view("case.view")
def case_page(request, reference: str):
    detail = _detail_or_404(reference)
    role = request.staff.role
    allowed = {action.replace(".", "_"): roles.can(role, action) for action in roles.ACTIONS}
    offered = any(detail["actions"][action] and allowed[permission] for action, permission in CASE_ACTIONS.items())
    return render(request, "console/case.html", detail | {
        "actions_offered": offered,
        "can": allowed, "reason_form": forms.ReasonForm(), "note_form": forms.NoteForm(),
        "cash_form": forms.CashHandOverForm(initial={"id_type": detail["id_type"]}),
    })


def _case_redirect(reference: str):
    return redirect("console:case", reference=reference)


def _transition(request, reference: str, fn, ok: str, **kwargs):
    try:
        fn(reference=reference, actor=request.staff.actor, **kwargs)
    except closures.CaseNotFound:
        raise Http404
    except states.IllegalTransition:
        messages.error(request, _("This case cannot do that in its current state."))
    else:
        messages.success(request, ok)
    return _case_redirect(reference)


def _text(request, form, field: str, when_empty: str) -> str | None:
    """The form's text, stripped; or None after telling what is wrong with it: `when_empty` for
    a blank one, the form's own message (e.g. too long) otherwise."""
    if form.is_valid() and form.cleaned_data[field].strip():
        return form.cleaned_data[field].strip()
    blank = not (request.POST.get(field) or "").strip()
    messages.error(request, when_empty if blank else form.errors[field][0])
    return None


def _reason(request) -> str | None:
    return _text(request, forms.ReasonForm(request.POST), "reason", _("Give a reason."))


@require_POST
@staff_view("case.hold")
def case_hold(request, reference: str):
    reason = _reason(request)
    if reason is None:
        return _case_redirect(reference)
    return _transition(request, reference, closures.closure_hold, _("The case is on hold."), reason=reason)


@require_POST
@staff_view("case.resume")
def case_resume(request, reference: str):
    return _transition(request, reference, closures.closure_resume, _("The case was resumed."),
                       note=request.POST.get("reason", "")[:300])


@require_POST
@staff_view("case.reject")
def case_reject(request, reference: str):
    reason = _reason(request)
    if reason is None:
        return _case_redirect(reference)
    return _transition(request, reference, closures.closure_reject, _("The case was rejected."), reason=reason)


@require_POST
@staff_view("notice.resend")
def case_resend(request, reference: str):
    try:
        services.notice_resend(reference=reference, actor=request.staff.actor)
    except closures.CaseNotFound:
        raise Http404
    messages.success(request, _("The notice was sent again."))
    return _case_redirect(reference)


@require_POST
@staff_view("case.note")
def case_note(request, reference: str):
    text = _text(request, forms.NoteForm(request.POST), "text", _("The note is empty."))
    if text is None:
        return _case_redirect(reference)
    try:
        services.case_note_add(reference=reference, author=request.staff.actor, text=text)
    except closures.CaseNotFound:
        raise Http404
    except services.UnableToUpdateCase:
        messages.error(request, _("The note is empty."))
    return _case_redirect(reference)


@require_POST
@staff_view("charge.waive")
def charge_waive(request, charge_id: int):
    case = ClosureCase.objects.filter(card__charges__id=charge_id).order_by("-created_at").first()
    if case is None:
        raise Http404
    reason = _reason(request)
    if reason is None:
        return _case_redirect(case.reference)
    try:
        services.charge_waive(charge_id=charge_id, actor=request.staff.actor, reason=reason)
    except services.UnableToWaive:
        messages.error(request, _("This charge is not outstanding."))
    else:
        messages.success(request, _("The charge was waived."))
    return _case_redirect(case.reference)


@require_POST
@staff_view("refund.cash")
def case_cash_hand_over(request, reference: str):
    """The clerk checks the holder's ID document and hands over the cash refund from the till of
    their own branch (never one named in the request)."""
    branch = _own_branch(request)
    form = forms.CashHandOverForm(request.POST)
    if branch is None:
        messages.error(request, _("Cash is handed over by a clerk of an open branch; your account has none."))
    elif not form.is_valid():
        messages.error(request, _("Check the ID document, tick both boxes, then hand over the cash."))
    else:
        data = form.cleaned_data
        try:
            case = closures.refund_cash_hand_over(reference=reference, clerk=request.staff.actor,
                                                  branch_code=branch.code, id_type=data["id_type"],
                                                  id_number=data["id_number"])
        except closures.CaseNotFound:
            raise Http404 from None
        except (closures.IdentityNotVerified, documents.InvalidDocument):
            messages.error(request, _("The ID document does not match the card holder. Do not hand over the cash."))
        except closures.UnableToHandOver:
            messages.error(request, _("No cash refund of this case waits to be collected."))
        else:
            messages.success(request, _("Cash handed over: %(amount)s. The card is being closed.") % {
                "amount": money(case.quote["refund"], case.quote["currency"])})
    return _case_redirect(reference)


# --- assisted channels ------------------------------------------------------------------------


def _channel_refused(channel: str) -> str:
    return fill(_("This card's product does not take closure requests by %(channel)s. Offer the customer "
                  "another way to close it."), {"channel": labels.label(labels.CHANNEL_LABELS, channel)})


@require_http_methods(["GET", "POST"])
@staff_view("case.open")
def assisted_open(request):
    form = forms.AssistedIdentifyForm(request.POST or None)
    error = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if data["channel"] == "branch" and request.staff.role == roles.AGENT:
            error = _("Agents open cases for phone, email and chat customers.")
        else:
            try:
                card = services.assisted_identify(
                    card_number=data["card_number"], holder_name=data["holder_name"], contact=data["contact"],
                    id_type=data["id_type"], id_number=data["id_number"])
            except (closures.IdentityNotVerified, documents.InvalidDocument):
                error = _("The card and the ID document do not match. Do not tell the caller which one is wrong.")
            except services.UnableToOpenCase as exc:
                error = (_("The holder name does not match.") if exc.field == "holder_name"
                         else _("The phone or email does not match the one on file."))
            else:
                open_case = selectors.card_open_case(card)
                if open_case:
                    messages.info(request, _("This card already has an open case."))
                    return _case_redirect(open_case.reference)
                if not closures.channel_allowed(card.product, data["channel"]):
                    return render(request, "console/open.html", {
                        "form": form, "error": _channel_refused(data["channel"])})
                request.session[ASSISTED_KEY] = {
                    "card_id": card.id, "channel": data["channel"], "channel_ref": data["channel_ref"],
                    "checks": {"card_number": True, "name": True, "contact": True, "id_document": True},
                    "at": time.time(),
                }
                return redirect("console:open_quote")
    return render(request, "console/open.html", {"form": form, "error": error})


DESTINATION_ERRORS = {
    "refund_destination.bank_code": gettext_lazy("Enter the 3-digit bank code or an 8 or 11 character SWIFT code."),
    "refund_destination.account_number": gettext_lazy("Enter the account number: 6 to 34 letters or digits."),
}


@require_http_methods(["GET", "POST"])
@staff_view("case.open")
def assisted_quote(request):
    pending = request.session.get(ASSISTED_KEY) or {}
    card = Card.objects.select_related("product", "holder").filter(id=pending.get("card_id")).first()
    if card is None or time.time() - pending.get("at", 0) > 30 * 60:
        return redirect("console:open")
    form = forms.AssistedConsentForm(request.POST or None, initial={"consent_ref": pending["channel_ref"]})
    error = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        destination = {"type": data["destination"]}
        if data["destination"] == "bank":
            destination |= {"bank_code": data["bank_code"], "account_number": data["account_number"]}
        try:
            case = services.assisted_closure_open(
                staff=request.staff, card=card, channel=pending["channel"], channel_ref=data["consent_ref"],
                checks=pending["checks"], refund_destination=destination, reason=data["reason"],
                language=card.holder.language or _language())
        except closures.CaseAlreadyOpen as exc:
            request.session.pop(ASSISTED_KEY, None)
            return _case_redirect(exc.reference)
        except closures.InvalidDestination as exc:
            error = DESTINATION_ERRORS.get(exc.field, _("The refund destination is not valid."))
        except closures.ChannelNotAllowed as exc:
            error = _channel_refused(exc.channel)
        except (closures.CardNotClosable, services.UnableToOpenCase):
            error = _("This card cannot be closed.")
        else:
            request.session.pop(ASSISTED_KEY, None)
            messages.success(request, _("Case %(reference)s is open.") % {"reference": case.reference})
            return _case_redirect(case.reference)
    return render(request, "console/open_quote.html", {
        "form": form, "error": error, "card": card, "card_masked": documents.mask_card_number(card.number),
        "quote": closures.quote_for_card(card), "channel": pending["channel"],
    })


# --- appointments -----------------------------------------------------------------------------


def _branch(request) -> Branch | None:
    code = request.GET.get("branch") or request.POST.get("branch") or request.staff.branch_code
    found = Branch.objects.filter(code=code, active=True).first() if code else None
    return found or Branch.objects.filter(active=True).order_by("code").first()


# The days the board shows: a year typed far off (0001, 9999) would overflow the time zone
# arithmetic of its queries, so the board shows today instead.
BOARD_DAYS = (date(1900, 1, 1), date(9998, 12, 31))


def _board_day(day: date | None) -> date:
    if day is None or not BOARD_DAYS[0] <= day <= BOARD_DAYS[1]:
        return timezone.localtime(clock.now()).date()
    return day


def _day(request) -> date:
    try:
        return _board_day(date.fromisoformat(request.GET.get("day", "")))
    except ValueError:
        return _board_day(None)


BOOKING_ERRORS = {  # read in the staff member's language, not the one active at import
    "past": gettext_lazy("That slot is in the past."),
    "closed": gettext_lazy("The branch is closed at that time."),
    "misaligned": gettext_lazy("Pick one of the listed slots."),
    "full": gettext_lazy("Every counter is booked in that slot."),
    "card_booked": gettext_lazy("This card already has an appointment."),
    "not_booked": gettext_lazy("This appointment is no longer booked."),
}


def _booking_error(exc: appointments.UnableToBook) -> str:
    return str(BOOKING_ERRORS.get(exc.code, _("That slot cannot be booked.")))


@staff_view("appointment.manage")
def appointment_board(request):
    return _board_page(request, _branch(request), _day(request))


def _board_page(request, branch: Branch | None, day: date, book_form=None):
    context = {"branches": appointment_selectors.branches(), "branch": branch, "day": day,
               "book_form": book_form or forms.BookForm(), "reschedule_form": forms.RescheduleForm()}
    if branch:
        context["slots"] = appointment_selectors.branch_slots(branch=branch, day=day)
        context["appointments"] = appointment_selectors.branch_day(branch=branch, day=day)
    return render(request, "console/appointments.html", context)


def _board_redirect(branch: Branch | None, when: datetime | None = None):
    url = reverse("console:appointments")
    if branch:
        day = timezone.localtime(when).date() if when else ""
        url += f"?branch={branch.code}&day={day}"
    return redirect(url)


@require_POST
@staff_view("appointment.manage")
def appointment_book(request):
    branch = _branch(request)
    form = forms.BookForm(request.POST)
    # On an error the board is shown again with what was typed, on the day of the slot asked for.
    if branch is None or not form.is_valid():
        messages.error(request, _("Check the card number and the slot."))
        return _board_page(request, branch, _day(request), form)
    data = form.cleaned_data
    day = _board_day(timezone.localtime(data["starts_at"]).date())
    card = Card.objects.filter(number=data["card_number"]).first()
    case = ClosureCase.objects.filter(reference=data["reference"].strip().upper()).first() if data["reference"] else None
    if card is None or (case is not None and case.card_id != card.id):
        messages.error(request, _("Check the card number and the slot."))
        return _board_page(request, branch, day, form)
    try:
        appointments.appointment_book(card=card, branch=branch, starts_at=data["starts_at"],
                                      actor=request.staff.actor, case=case or selectors.card_open_case(card),
                                      language=card.holder.language)
    except appointments.UnableToBook as exc:
        messages.error(request, _booking_error(exc))
        return _board_page(request, branch, day, form)
    else:
        messages.success(request, _("The appointment is booked."))
    return _board_redirect(branch, data["starts_at"])


@require_POST
@staff_view("appointment.manage")
def appointment_cancel(request, appointment_id: int):
    appointment = Appointment.objects.select_related("branch").filter(id=appointment_id).first()
    if appointment is None:
        raise Http404
    try:
        appointments.appointment_cancel(appointment_id=appointment_id, actor=request.staff.actor,
                                        reason=request.POST.get("reason", "")[:200])
    except appointments.UnableToBook as exc:
        messages.error(request, _booking_error(exc))
    else:
        messages.success(request, _("The appointment was cancelled."))
    return _board_redirect(appointment.branch, appointment.starts_at)


@require_POST
@staff_view("appointment.manage")
def appointment_reschedule(request, appointment_id: int):
    appointment = Appointment.objects.select_related("branch").filter(id=appointment_id).first()
    if appointment is None:
        raise Http404
    form = forms.RescheduleForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Pick one of the listed slots."))
        return _board_redirect(appointment.branch, appointment.starts_at)
    try:
        appointments.appointment_reschedule(appointment_id=appointment_id, starts_at=form.cleaned_data["starts_at"],
                                            actor=request.staff.actor)
    except appointments.UnableToBook as exc:
        messages.error(request, _booking_error(exc))
        return _board_redirect(appointment.branch, appointment.starts_at)
    messages.success(request, _("The appointment was moved."))
    return _board_redirect(appointment.branch, form.cleaned_data["starts_at"])


# --- at the counter ---------------------------------------------------------------------------


def _visit_or_404(request, visit_id: int) -> CounterVisit:
    visit = CounterVisit.objects.select_related("case__card__product", "branch", "appointment").filter(
        id=visit_id, clerk=request.staff.actor).first()
    if visit is None:
        raise Http404
    return visit


def _own_branch(request) -> Branch | None:
    """The open branch of the signed-in clerk: the one whose counter they serve at and whose
    records (ID checks, cards destroyed, cash paid) they sign; never one named in the request."""
    code = request.staff.branch_code
    return Branch.objects.filter(code=code, active=True).first() if code else None


@require_http_methods(["GET", "POST"])
@staff_view("counter.serve")
def counter_start(request):
    branch = _own_branch(request)
    initial = {"reference": request.GET.get("reference", "")}
    form = forms.CounterStartForm(request.POST or None, initial=initial)
    error = None
    if branch is None and Branch.objects.filter(active=True).exists():
        error = _("Your account belongs to no open branch, so you cannot serve at a counter. "
                  "An administrator sets your branch.")
    elif branch is None:
        error = _("No branch is set up yet, so there is no counter to serve at. A supervisor adds branches.")
    elif request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        reference = data["reference"].strip().upper()
        # The customer's booking at this branch: made for the case, or for its card before the case
        # was opened (at the counter, say), so that serving them marks it served.
        appointment = (Appointment.objects.filter(status=Appointment.Status.BOOKED, branch=branch, visit__isnull=True)
                       .filter(Q(case__reference=reference) | Q(case__isnull=True, card__closures__reference=reference))
                       .order_by("starts_at").first())
        try:
            visit = appointments.counter_id_check(
                reference=reference, branch=branch, clerk=request.staff.actor, id_type=data["id_type"],
                id_number=data["id_number"], original_seen=data["original_seen"],
                photo_matches=data["photo_matches"], appointment=appointment)
        except closures.CaseNotFound:
            error = _("No case has this reference.")
        except (closures.IdentityNotVerified, documents.InvalidDocument):
            error = _("The ID document does not match the card holder. Do not take the card.")
        except appointments.UnableToServe:
            error = _("This case is finished.")
        else:
            return redirect("console:counter_visit", visit_id=visit.id)
    today = appointment_selectors.branch_day(branch=branch, day=timezone.localtime(clock.now()).date()) if branch else []
    return render(request, "console/counter_start.html", {"form": form, "error": error, "branch": branch,
                                                          "today": today})


@require_http_methods(["GET", "POST"])
@staff_view("counter.serve")
def counter_visit(request, visit_id: int):
    visit = _visit_or_404(request, visit_id)
    form = forms.TakeCardForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            appointments.counter_card_take(visit_id=visit.id, method=form.cleaned_data["method"],
                                           clerk=request.staff.actor)
        except returns.UnableToDestroy:
            messages.error(request, _("This card was already destroyed."))
        return redirect("console:counter_confirm", visit_id=visit.id)
    return render(request, "console/counter_visit.html", {
        "visit": visit, "form": form, "card_masked": documents.mask_card_number(visit.case.card.number)})


@require_http_methods(["GET", "POST"])
@staff_view("counter.serve")
def counter_confirm(request, visit_id: int):
    visit = _visit_or_404(request, visit_id)
    if request.method == "POST" and request.POST.get("confirm") == "yes":
        visit = appointments.counter_customer_confirm(visit_id=visit.id, clerk=request.staff.actor)
        with translation.override(_customer_language(visit.case)):  # thanks the customer, on their screen
            messages.success(request, _("Thank you. The closure is recorded."))
        return redirect("console:counter_confirm", visit_id=visit.id)
    visit.case.refresh_from_db()
    return render(request, "console/counter_confirm.html", {
        "visit": visit, "case": visit.case, "card_masked": documents.mask_card_number(visit.case.card.number),
        "destruction": getattr(visit.case.card, "destruction", None),
        "customer_language": _customer_language(visit.case)})


@staff_view("counter.serve")
def counter_receipt(request, visit_id: int):
    visit = _visit_or_404(request, visit_id)
    pdf = receipt.counter_receipt_pdf(visit=visit, language=_customer_language(visit.case))
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{visit.case.reference}-receipt.pdf"'
    return response


# --- warehouse --------------------------------------------------------------------------------


# What a scan came to, as the warehouse page shows it and console.js sounds it: a card received,
# one scanned before (nothing changed), one put in the exception queue, or a scan to do again.
SCAN_OK, SCAN_AGAIN, SCAN_EXCEPTION, SCAN_ERROR = "scan-ok", "scan-again", "scan-exception", "scan-error"


# The desk a browser scans at, named once on it: a cookie, not the session, so that it outlasts
# signing out and the next person at the desk finds it named. Signed, so that only the desk form
# names a desk; read back through the same check as a typed name.
DESK_COOKIE = "closeout_desk"
DESK_SALT = "closeout.console.desk"
DESK_KEPT_SECONDS = 400 * 24 * 3600  # the longest browsers keep a cookie


def _desk(request) -> str:
    """The name this browser's desk was given, or "" when it has none (or an unreadable one)."""
    raw = request.get_signed_cookie(DESK_COOKIE, default="", salt=DESK_SALT)
    try:
        return one_line_label(unquote(raw), limit=DESK_MAX_LENGTH) if raw else ""
    except UnusableLabel:
        return ""


@require_POST
@staff_view("warehouse.checkin")
def warehouse_desk(request):
    """Name the desk this browser scans at (an empty name: none), for every scan made from it."""
    form = forms.DeskForm(request.POST)
    response = redirect("console:warehouse")
    if not form.is_valid():
        messages.error(request, form.errors["desk"][0])
        return response
    desk = form.cleaned_data["desk"]
    if desk:
        # Quoted: a cookie holds ASCII only, and a desk may be named in Chinese.
        response.set_signed_cookie(DESK_COOKIE, quote(desk), salt=DESK_SALT, max_age=DESK_KEPT_SECONDS,
                                   path="/console/", secure=settings.SESSION_COOKIE_SECURE, httponly=True,
                                   samesite="Lax")
        messages.success(request, _("This browser now scans as desk %(desk)s.") % {"desk": desk})
    else:
        response.delete_cookie(DESK_COOKIE, path="/console/", samesite="Lax")
        messages.success(request, _("This browser scans without a desk name."))
    return response


@require_http_methods(["GET", "POST"])
@staff_view("warehouse.checkin")
def warehouse(request):
    form = forms.ScanForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            checkin = returns.return_check_in(code=form.cleaned_data["code"], actor=request.staff.actor,
                                              card_number=form.cleaned_data["card_number"], desk=_desk(request))
        except returns.ReferenceNeedsCard:
            # The typed reference stays; the cursor waits in the card number field.
            messages.error(request, _("With a case reference, also scan or type the card number."), extra_tags=SCAN_ERROR)
            del form.fields["code"].widget.attrs["autofocus"]
            form.fields["card_number"].widget.attrs["autofocus"] = True
            return _warehouse_page(request, form)
        except returns.MisreadCode:
            messages.error(request, _("This is no label code or card number we issue (a digit was misread or "
                                      "mistyped): scan it again or type it."), extra_tags=SCAN_ERROR)
        except returns.UnableToCheckIn:
            messages.error(request, _("Nothing was scanned."), extra_tags=SCAN_ERROR)
        else:
            if getattr(checkin, "again", False) and checkin.outcome == checkin.Outcome.EXCEPTION:
                said = _("Already in the exception queue since %(date)s. Nothing changed.") % {
                    "date": timezone.localtime(checkin.at).strftime("%Y-%m-%d %H:%M")}
                messages.info(request, f"{said} {_card_in_use(checkin)}".strip(), extra_tags=SCAN_AGAIN)
            elif getattr(checkin, "again", False):
                messages.info(request, _("Already received on %(date)s: case %(reference)s. Nothing changed.") % {
                    "date": timezone.localtime(checkin.at).strftime("%Y-%m-%d %H:%M"),
                    "reference": checkin.case.reference}, extra_tags=SCAN_AGAIN)
            elif checkin.outcome == checkin.Outcome.RECEIVED:
                messages.success(request, _("Received: case %(reference)s.") % {"reference": checkin.case.reference},
                                 extra_tags=SCAN_OK)
            else:
                messages.warning(request, _exception_message(checkin), extra_tags=SCAN_EXCEPTION)
        return redirect("console:warehouse")
    return _warehouse_page(request, form)


def _warehouse_page(request, form, *, refused_hand_back: tuple[str, forms.HandBackForm] | None = None):
    """The warehouse page; `refused_hand_back` is a hand-back form sent with errors and the key of
    its card (`_hand_back_key`), shown again as typed beside that card."""
    role = request.staff.role
    can_destroy, can_hand_back = roles.can(role, "warehouse.destroy"), roles.can(role, "warehouse.hand_back")
    desk = _desk(request)
    on_shelf = return_selectors.received_not_destroyed() if can_destroy or can_hand_back else []
    to_hand_back = [item for item in on_shelf if item.may_hand_back] if can_hand_back else []
    unexpected = return_selectors.exceptions_to_hand_back() if can_hand_back else []
    for item in to_hand_back:
        item.hand_back_form = _hand_back_form(_hand_back_key(checkin_id=item.id), refused_hand_back)
    for item in unexpected:
        item.hand_back_form = _hand_back_form(_hand_back_key(exception_id=item.id), refused_hand_back)
    return render(request, "console/warehouse.html", {
        "form": form, "recent": return_selectors.recent_checkins(),
        "desk": desk, "desk_form": forms.DeskForm(initial={"desk": desk}),
        "to_destroy": [item for item in on_shelf if not item.may_hand_back] if can_destroy else [],
        "to_hand_back": to_hand_back, "exceptions_to_hand_back": unexpected,
        "destroy_form": forms.DestroyForm(initial={"batch": f"WH-{timezone.localtime(clock.now()).date()}"}),
        "can_destroy": can_destroy, "can_hand_back": can_hand_back,
    })


def _hand_back_key(*, checkin_id: int | None = None, exception_id: int | None = None) -> str:
    """What tells one hand-back form on the warehouse page from the others, in its field ids too:
    a card received (its check-in's id) or a card from the exception queue (`x` and its id)."""
    return str(checkin_id) if exception_id is None else f"x{exception_id}"


def _hand_back_form(key: str, refused: tuple[str, forms.HandBackForm] | None) -> forms.HandBackForm:
    """The hand-back form of the card `key`: the one sent with errors for it, or an empty one. One
    form per card, each with its own field ids, so every label points at its own card's field."""
    if refused is not None and refused[0] == key:
        return refused[1]
    return forms.HandBackForm(auto_id=f"id_%s_{key}")


def _exception_message(checkin) -> str:
    """Why the scan went to the exception queue: for a case that does not wait for the card, the
    case and its state; and a card still in use (its closure withdrawn or refused, or never asked
    for) is to be kept for the customer, never destroyed with the others."""
    reasons = ReturnException.Reason
    reason, case = checkin.exception.reason, checkin.case
    if reason == reasons.NOT_EXPECTED and case is not None:
        said = _("Case %(reference)s (%(state)s) is not waiting for this card: it went to the exception queue.") % {
            "reference": case.reference, "state": labels.label(labels.STATE_LABELS, case.state)}
    else:
        said = {
            reasons.UNKNOWN: _("Unknown label or card: it went to the exception queue."),
            reasons.MISMATCH: _("The card does not match the label: it went to the exception queue."),
        }.get(reason, _("No case is waiting for this card: it went to the exception queue."))
    if reason == reasons.MISMATCH and case is not None:  # both cards, to find the envelope and its card again
        said += " " + _("Card inside: %(inside)s. The label is for case %(reference)s, card %(expected)s.") % {
            "inside": documents.mask_card_number(checkin.exception.card_number), "reference": case.reference,
            "expected": documents.mask_card_number(case.card.number)}
    return f"{said} {_card_in_use(checkin)}".strip()


def _card_in_use(checkin) -> str:
    """The warning for a scanned card that still works, or nothing."""
    in_use = checkin.card is not None and checkin.card.status == Card.Status.ACTIVE
    return str(labels.CARD_IN_USE) if in_use else ""


@require_POST
@staff_view("warehouse.destroy")
def warehouse_destroy(request):
    """Record a batch of received cards as destroyed, watched by a second member of staff who
    proves they are there with their own authenticator code."""
    form = forms.DestroyForm(request.POST)
    ids = [int(value) for value in request.POST.getlist("checkin") if ascii_digits(value)]
    if not form.is_valid():
        messages.error(request, _("Choose a method and a batch, and name the witness with their code."))
        return redirect("console:warehouse")
    data = form.cleaned_data
    try:
        witness = services.staff_witness_confirm(email=data["witness_email"], code=data["witness_code"],
                                                 actor=request.staff.actor)
    except services.UnableToWitness:
        messages.error(request, _("The witness must be another member of staff, with the current code from their "
                                  "authenticator app. Nothing was recorded."))
        return redirect("console:warehouse")
    try:
        records = returns.destruction_batch(checkin_ids=ids, method=data["method"], batch=data["batch"],
                                            actor=request.staff.actor, witness=witness.actor)
    except returns.CardToKeep as exc:
        messages.error(request, _("The card of case %(reference)s is to be kept for the customer, not destroyed. "
                                  "Nothing was recorded.") % {"reference": exc.reference or "—"})
    except returns.UnableToDestroy:
        messages.error(request, _("Select at least one received card that was not destroyed yet."))
    else:
        messages.success(request, ngettext("%(count)d card recorded as destroyed, witnessed by %(witness)s.",
                                           "%(count)d cards recorded as destroyed, witnessed by %(witness)s.",
                                           len(records))
                         % {"count": len(records), "witness": witness.shown_name})
    return redirect("console:warehouse")


@require_POST
@staff_view("warehouse.hand_back")
def warehouse_hand_back(request, checkin_id: int):
    """Record that a card kept for the customer went back to its holder, from this browser's desk."""
    def recorded(record) -> str:
        return _("Recorded: the card of case %(reference)s went back to the customer.") % {
            "reference": record.case.reference if record.case else "—"}

    return _hand_back(request, _hand_back_key(checkin_id=checkin_id), recorded,
                      lambda **given: returns.card_hand_back(checkin_id=checkin_id, **given))


@require_POST
@staff_view("warehouse.hand_back")
def warehouse_exception_hand_back(request, exception_id: int):
    """Record that the card of an exception, one of ours that no closure needs, went back to its
    holder, from this browser's desk; the exception is resolved with it."""
    def recorded(record) -> str:
        return _("Recorded: card %(card)s went back to the customer, and its exception is resolved.") % {
            "card": documents.mask_card_number(record.card.number)}

    return _hand_back(request, _hand_back_key(exception_id=exception_id), recorded,
                      lambda **given: returns.return_exception_hand_back(exception_id=exception_id, **given))


def _hand_back(request, key: str, recorded, record_it):
    """The hand-back form's answer: a form with errors comes back beside its card as typed; a
    refusal leaves everything as it was; `record_it(**fields)` records it."""
    form = forms.HandBackForm(request.POST, auto_id=f"id_%s_{key}")
    if not form.is_valid():
        messages.error(request, _("The hand-back was not recorded: correct the form beside the card."))
        return _warehouse_page(request, forms.ScanForm(), refused_hand_back=(key, form))
    data = form.cleaned_data
    try:
        record = record_it(method=data["method"], actor=request.staff.actor, tracking_ref=data["tracking_ref"],
                           note=data["note"], desk=_desk(request))
    except returns.UnableToHandBack as exc:
        messages.error(request, _hand_back_refusal(exc))
    else:
        messages.success(request, recorded(record))
    return redirect("console:warehouse")


def _hand_back_refusal(exc: returns.UnableToHandBack) -> str:
    """Why a card was not recorded as handed back, in the staff member's words."""
    if isinstance(exc, returns.CardAwaited):
        return _("Case %(reference)s is waiting for this card: resolve its exception by naming the case, so the "
                 "card is checked in. Nothing was recorded.") % {"reference": exc.reference}
    if isinstance(exc, returns.UnknownCardInHand):
        return _("This card is not one of ours: there is nobody to give it back to. Nothing was recorded.")
    if isinstance(exc, returns.ExceptionNotOpen):
        return _("This exception was already resolved. Nothing was recorded.")
    if isinstance(exc, returns.CardHandedBackAlready):
        earlier = exc.earlier
        return _("This card was already handed back on %(date)s by %(staff)s. Nothing changed.") % {
            "date": timezone.localtime(earlier.handed_back_at).strftime("%Y-%m-%d %H:%M"),
            "staff": actor_label(earlier.handed_back_by)}
    if isinstance(exc, returns.CardNotToHandBack) and exc.may_destroy:
        return _("The card of case %(reference)s may be destroyed: it is not handed back. Nothing was "
                 "recorded.") % {"reference": exc.reference or "—"}
    if isinstance(exc, returns.CardNotToHandBack):
        return _("The closure of case %(reference)s may still go on: keep its card on the shelf for now. Nothing "
                 "was recorded.") % {"reference": exc.reference or "—"}
    if isinstance(exc, returns.TrackingRefNeeded):
        return _("Enter the carrier's tracking reference of the envelope posted back.")
    return _("This card is no longer on the warehouse shelf (destroyed, or not received): it cannot be handed "
             "back. Nothing was recorded.")


@staff_view("warehouse.exceptions")
def exceptions(request):
    # One form per row, each with its own field ids, so every label points at its own row's field.
    items = [(item, forms.ResolveForm(auto_id=f"id_%s_{item.id}")) for item in return_selectors.open_exceptions()]
    # The cards of these exceptions are their holders': they are handed back from the warehouse page.
    to_hand_back = ({item.id for item in return_selectors.exceptions_to_hand_back()}
                    if roles.can(request.staff.role, "warehouse.hand_back") else set())
    return render(request, "console/exceptions.html", {"items": items, "card_in_use": labels.CARD_IN_USE,
                                                       "can_view_case": roles.can(request.staff.role, "case.view"),
                                                       "to_hand_back": to_hand_back})


@require_POST
@staff_view("warehouse.exceptions")
def exception_resolve(request, exception_id: int):
    form = forms.ResolveForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Describe what was done."))
        return redirect("console:exceptions")
    try:
        returns.return_exception_resolve(exception_id=exception_id, actor=request.staff.actor,
                                         resolution=form.cleaned_data["resolution"],
                                         reference=form.cleaned_data["reference"])
    except returns.NotTheCasesCard as exc:
        messages.error(request, _("The card in hand (%(card)s) is not the card of case %(reference)s: nothing was "
                                  "checked in. Name the case of the card in hand, or resolve without a case.")
                       % {"card": exc.in_hand_masked, "reference": exc.reference})
    except returns.UnableToResolve:
        messages.error(request, _("That could not be resolved: check the case reference."))
    else:
        messages.success(request, _("The exception is resolved."))
    return redirect("console:exceptions")


# --- refund approval (maker-checker) ---------------------------------------------------------


@staff_view("refund.approve")
def refunds(request):
    items = selectors.refund_approvals_waiting()
    return render(request, "console/refunds.html", {
        "items": items, "staff_names": selectors.staff_names(item["approval"].requested_by for item in items)})


def _decide(request, reference: str, decide, ok: str, **kwargs):
    """Record the approver's decision on the refund they read (the page's `seen` version), and say
    what came of it: theirs, another approver's made first, or why none was made."""
    if not ClosureCase.objects.filter(reference=reference).exists():
        raise Http404
    actor = request.staff.actor
    try:
        decide(reference=reference, approver=actor, seen=request.POST.get("seen", ""), **kwargs)
    except closures.OwnRefundRequest:
        messages.error(request, _("You requested this refund, so another approver must decide it."))
    except closures.ApprovalOutdated:
        messages.error(request, _("This refund changed since your page was shown (its amount, where it goes, or it "
                                  "was asked for again). Nothing was decided: read it again, then decide."))
    except closures.UnableToApprove:
        messages.error(request, _decided_before(reference, actor, mine_too=True)
                       or _("This refund is not waiting for a decision."))
    else:
        messages.success(request, _decided_before(reference, actor) or ok)
    return _decided_page(request, reference)


def _decided_page(request, reference: str):
    """Back to the page the approver decided on: the case, or the queue."""
    if request.POST.get("back") == "case":
        return _case_redirect(reference)
    return redirect("console:refunds")


def _decided_before(reference: str, actor: str, *, mine_too: bool = False) -> str:
    """Who decided the refund before this request, and when (this approver too with `mine_too`,
    e.g. a second click); empty when nobody else did."""
    approval = RefundApproval.objects.filter(case__reference=reference).exclude(decision="").first()
    if approval is None or (approval.decided_by == actor and not mine_too):
        return ""
    words = {"who": actor_label(approval.decided_by),
             "time": timezone.localtime(approval.decided_at).strftime("%Y-%m-%d %H:%M")}
    approved = approval.decision == RefundApproval.Decision.APPROVED
    if approval.decided_by == actor:
        return (_("You already approved this refund at %(time)s. Nothing else was done.") if approved
                else _("You already rejected this refund at %(time)s. Nothing else was done.")) % words
    return (_("%(who)s already approved this refund at %(time)s. Nothing else was done.") if approved
            else _("%(who)s already rejected this refund at %(time)s. Nothing else was done.")) % words


@require_POST
@staff_view("refund.approve")
def refund_approve(request, reference: str):
    return _decide(request, reference, closures.refund_approve,
                   _("The refund of case %(reference)s is approved and will be paid.") % {"reference": reference},
                   note=request.POST.get("note", "").strip()[:300])


@require_POST
@staff_view("refund.approve")
def refund_reject(request, reference: str):
    reason = _reason(request)
    if reason is None:
        return _decided_page(request, reference)
    return _decide(request, reference, closures.refund_reject,
                   _("The refund of case %(reference)s is rejected; the case is on hold.") % {"reference": reference},
                   reason=reason)


# --- SLA --------------------------------------------------------------------------------------




@staff_view("sla.view")
def sla(request):
    board = selectors.sla_board()
    charts = [
        rules.bar_chart_svg(title=_("Cases per state"),
                            bars=[(labels.label(labels.STATE_LABELS, s), n) for s, n in board["per_state"]]),
        rules.bar_chart_svg(title=_("Age of open cases (working days)"), bars=board["ages"]),
        rules.bar_chart_svg(title=_("Refunds per day (last 14 days)"), bars=board["refunds_per_day"]),
    ]
    role = request.staff.role
    return render(request, "console/sla.html", board | {
        "charts": [mark_safe(svg) for svg in charts],  # noqa: S308 - escaped by bar_chart_svg
        "can_see_exceptions": roles.can(role, "warehouse.exceptions"),
        "can_see_approvals": roles.can(role, "refund.approve")})


@staff_view("sla.view")
def sla_csv(request):
    """The open cases for a spreadsheet: the columns machines read first, unchanged (codes, ISO
    times), then the state in the reader's words. Times are the operator's local time with its
    offset (2026-12-03T02:30:05+08:00), so the day a case was opened is the branches' day. UTF-8
    with a byte order mark, without which Excel reads the Chinese labels in the PC's code page;
    the file is named by the local time of the export, so a day's exports do not overwrite."""
    board = selectors.sla_board()
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime(clock.now()).strftime("%Y-%m-%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="closeout-sla-{stamp}.csv"'
    response.write("\ufeff")  # the byte order mark by which a spreadsheet reads the Chinese text as UTF-8
    writer = csv.writer(response)
    writer.writerow(["reference", "product", "channel", "state", "created_at", "sla_due_date",
                     "age_working_days", "working_days_left", "sla_status", "state_label"])
    for row in board["rows"]:
        writer.writerow([row["reference"], row["product"], row["channel"], row["state"],
                         timezone.localtime(row["created_at"]).isoformat(timespec="seconds"),
                         row["sla_due_date"] or "", row["age_working_days"], row["working_days_left"], row["status"],
                         labels.label(labels.STATE_LABELS, row["state"])])
    return response


# --- staff ------------------------------------------------------------------------------------


@staff_view("staff.manage")
def staff(request):
    now = clock.now()
    branches = list(Branch.objects.filter(active=True).order_by("code"))
    open_codes = {b.code for b in branches}
    return render(request, "console/staff.html", {"people": selectors.staff_list(), "now": now,
                                                  "labels": roles.ROLE_LABELS, "branches": branches,
                                                  "open_codes": open_codes, "name_max_length": NAME_MAX_LENGTH})


@require_POST
@staff_view("staff.manage")
def staff_branch(request, staff_id: int):
    if not StaffProfile.objects.filter(id=staff_id).exists():
        raise Http404
    try:
        profile = services.staff_branch_set(staff_id=staff_id, branch_code=request.POST.get("branch", "").strip(),
                                            actor=request.staff.actor)
    except services.UnableToSetBranch:
        messages.error(request, _("Pick an open branch for a branch clerk."))
    else:
        messages.success(request, _("%(email)s now serves at branch %(branch)s.")
                         % {"email": profile.user.email, "branch": profile.branch_code})
    return redirect("console:staff")


@require_POST
@staff_view("staff.manage")
def staff_name(request, staff_id: int):
    """Set or change the name the console shows a member of staff by."""
    if not StaffProfile.objects.filter(id=staff_id).exists():
        raise Http404
    form = forms.StaffNameForm(request.POST)
    if not form.is_valid():
        messages.error(request, form.errors["name"][0])
        return redirect("console:staff")
    profile = services.staff_name_set(staff_id=staff_id, name=form.cleaned_data["name"], actor=request.staff.actor)
    messages.success(request, _("%(email)s is now shown as %(name)s.") % {"email": profile.user.email,
                                                                           "name": profile.name})
    return redirect("console:staff")


@require_POST
@staff_view("staff.manage")
def staff_unlock(request, staff_id: int):
    if not StaffProfile.objects.filter(id=staff_id).exists():
        raise Http404
    services.staff_unlock(staff_id=staff_id, actor=request.staff.actor)
    messages.success(request, _("The account is unlocked."))
    return redirect("console:staff")


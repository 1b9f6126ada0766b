"""Customer portal: sign in with a one-time code, check the account, see the quote, confirm,
follow the case. Views only translate HTTP: one service or selector call each."""

from __future__ import annotations

import math

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from closeout.appointments import services as appointments
from closeout.cards.models import Card
from closeout.closures import services as closures
from closeout.closures import states
from closeout.closures.models import ClosureCase
from closeout.common import clock
from closeout.identity import documents
from closeout.identity import selectors as identity
from closeout.identity import services as otp
from closeout.portal import return_label, selectors, services
from closeout.portal.forms import CheckForm, CodeForm, ConfirmForm, SignInForm
from closeout.returns import services as returns

SESSION_OTP = "portal_otp"
SESSION_CARD = "portal_card_id"
SESSION_RECEIPT = "portal_receipt"
SESSION_CASES = "portal_cases"


def pick_language(request):
    language = translation.get_language_from_request(request, check_path=False)
    return redirect(f"/{language}/")


def _client(request) -> str:
    return request.META.get("REMOTE_ADDR", "")


def _minutes_until(when) -> int:
    return max(1, math.ceil((when - clock.now()).total_seconds() / 60))


def _session_card(request) -> Card | None:
    card_id = request.session.get(SESSION_CARD)
    if not card_id:
        return None
    return Card.objects.select_related("product__policy", "holder").filter(id=card_id).first()


def signed_in(view):
    """Redirect to sign-in when the session has no verified card; pass the card on."""
    def wrapper(request, *args, **kwargs):
        card = _session_card(request)
        if card is None:
            return redirect("portal:home")
        return view(request, card, *args, **kwargs)

    wrapper.__name__ = view.__name__
    wrapper.__doc__ = view.__doc__
    return never_cache(wrapper)


@never_cache
@require_http_methods(["GET", "POST"])
def home(request):
    form = SignInForm(request.POST or None)
    error = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            challenge = otp.otp_request(
                card_number=data["card_number"], id_type=data["id_type"], id_number=data["id_number"],
                channel=data["channel"], client_address=_client(request), language=translation.get_language(),
            )
        except otp.CodeSendThrottled as exc:
            error = {"kind": "throttled", "minutes": _minutes_until(exc.until)}
        else:
            request.session.pop(SESSION_CARD, None)
            request.session[SESSION_OTP] = challenge.public_id
            request.session["portal_channel"] = data["channel"]
            return redirect("portal:code")
    return render(request, "portal/home.html", {"form": form, "error": error})


@never_cache
@require_http_methods(["GET", "POST"])
def code(request):
    public_id = request.session.get(SESSION_OTP)
    if not public_id:
        return redirect("portal:home")
    form = CodeForm(request.POST or None)
    error = None
    if request.method == "POST" and form.is_valid():
        try:
            verified = otp.otp_verify(public_id=public_id, code=form.cleaned_data["code"],
                                      client_address=_client(request))
        except otp.CodeWrong as exc:
            error = {"kind": "wrong", "left": exc.attempts_left}
        except otp.CodeExpired:
            error = {"kind": "expired"}
        except otp.CodeUsedUp:
            error = {"kind": "used_up"}
        except otp.VerifyLocked as exc:
            error = {"kind": "locked", "minutes": _minutes_until(exc.until)}
        else:
            request.session.cycle_key()  # a new session id once signed in (no fixation)
            request.session.pop(SESSION_OTP, None)
            request.session[SESSION_CARD] = verified.card.id
            return redirect("portal:account")
    return render(request, "portal/code.html", {
        "form": form, "error": error, "channel": request.session.get("portal_channel", "sms"),
        "sent_to": identity.code_sent_to(public_id=public_id),
    })


@require_POST
def code_resend(request):
    """A new code for the pending sign-in, sent where the last one went; back to the code page."""
    public_id = request.session.get(SESSION_OTP)
    if not public_id:
        return redirect("portal:home")
    try:
        challenge = otp.otp_resend(public_id=public_id, client_address=_client(request),
                                   language=translation.get_language())
    except otp.SignInNotPending:
        request.session.pop(SESSION_OTP, None)
        messages.info(request, _("Please enter your details again to get a new code."))
        return redirect("portal:home")
    except otp.ResendTooSoon as exc:
        seconds = max(1, math.ceil((exc.until - clock.now()).total_seconds()))
        messages.error(request, ngettext("We have just sent a code. You can ask for a new one in %(seconds)s second.",
                                         "We have just sent a code. You can ask for a new one in %(seconds)s seconds.",
                                         seconds) % {"seconds": seconds})
    except otp.CodeSendThrottled as exc:
        minutes = _minutes_until(exc.until)
        messages.error(request, ngettext("Too many codes were requested. Please try again in %(minutes)s minute.",
                                         "Too many codes were requested. Please try again in %(minutes)s minutes.",
                                         minutes) % {"minutes": minutes})
    else:
        request.session[SESSION_OTP] = challenge.public_id
        messages.success(request, _("We have sent you a new code. The code we sent before no longer works."))
    return redirect("portal:code")


@signed_in
def account(request, card):
    case = selectors.open_case(card)
    if case is not None:
        return redirect("portal:case", reference=case.reference)
    latest = selectors.latest_case(card) if card.status != Card.Status.ACTIVE else None
    return render(request, "portal/account.html", {"check": selectors.account_check(card), "latest": latest,
                                                   "appointment": selectors.card_appointment(card)})


@require_POST
@signed_in
def account_pay(request, card):
    try:
        amount = services.card_charges_pay(card=card, actor="customer:web", language=translation.get_language())
    except services.NothingToPay:
        pass
    except services.PaymentDeclined:
        messages.error(request, _("The payment was declined. Nothing was charged. Please try again or call us."))
    except services.PaymentUnavailable:
        messages.error(request, _("The payment service did not answer. Nothing was settled; please try again."))
    else:
        from closeout.common.templatetags.closeout import money

        messages.success(request, _("Payment of %(amount)s received. Thank you.") % {
            "amount": money(amount.minor, amount.currency)})
    return redirect("portal:account")


@signed_in
@require_http_methods(["GET", "POST"])
def quote(request, card):
    case = selectors.open_case(card)
    if case is not None:
        messages.info(request, _("This card already has a closure request: here is its status."))
        return redirect("portal:case", reference=case.reference)
    check = selectors.account_check(card)
    if not check["settled"] or not check["online"] or card.status != Card.Status.ACTIVE:
        return redirect("portal:account")
    form = ConfirmForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            case = services.portal_closure_request(card=card, refund_destination=form.refund_destination(),
                                                   language=translation.get_language())
        except closures.CaseAlreadyOpen as exc:
            messages.info(request, _("This card already has a closure request: here is its status."))
            return redirect("portal:case", reference=exc.reference)
        except (services.ChargesOpen, closures.CardNotClosable, closures.ChannelNotAllowed):
            return redirect("portal:account")
        except closures.InvalidDestination:
            form.add_error(None, _("Please check the refund destination."))
        else:
            request.session[SESSION_RECEIPT] = case.reference
            return redirect("portal:case", reference=case.reference)
    return render(request, "portal/quote.html", {"q": selectors.quote_view(card), "form": form})


BOOKING_ERRORS = {
    "past": gettext_lazy("That time has passed. Please pick another."),
    "closed": gettext_lazy("The branch is closed at that time. Please pick another."),
    "misaligned": gettext_lazy("Please pick one of the times listed."),
    "full": gettext_lazy("That time was just taken. Please pick another."),
    "card_booked": gettext_lazy("This card already has an appointment. Pick a time to move it, or cancel it."),
}


@signed_in
@require_http_methods(["GET", "POST"])
def branch_visit(request, card):
    """Book, move or cancel a visit to a branch counter to close the card there."""
    case = selectors.open_case(card)
    if case is not None:
        return redirect("portal:case", reference=case.reference)
    check = selectors.account_check(card)
    if not check["at_branch"] or card.status != Card.Status.ACTIVE:
        return redirect("portal:account")
    error = None
    if request.method == "POST":
        if request.POST.get("action") == "cancel":
            if services.portal_appointment_cancel(card=card):
                messages.success(request, _("Your appointment is cancelled."))
            return redirect("portal:account")
        try:
            services.portal_appointment_book(card=card, branch_code=request.POST.get("branch", ""),
                                             starts_at=request.POST.get("starts_at", ""),
                                             language=translation.get_language())
        except appointments.UnableToBook as exc:
            error = str(BOOKING_ERRORS.get(exc.code, BOOKING_ERRORS["full"]))
        else:
            messages.success(request, _("Your appointment is booked. We have sent you the details."))
            return redirect("portal:account")
    booking = selectors.branch_booking(card, branch_code=request.GET.get("branch") or request.POST.get("branch", ""),
                                       day=request.GET.get("day", ""))
    return render(request, "portal/branch.html", {"b": booking, "card": check["card"], "error": error})


def _own_case(card: Card, reference: str) -> ClosureCase:
    case = ClosureCase.objects.select_related("card__product", "card__holder").filter(
        reference=reference, card=card).first()
    if case is None:
        raise Http404
    return case


@signed_in
def case(request, card, reference: str):
    closure = _own_case(card, reference)
    receipt = request.session.pop(SESSION_RECEIPT, None) == reference
    # The aftercare export checks this list: the browser proved it owns the case.
    owned = set(request.session.get(SESSION_CASES, []))
    if reference not in owned:
        request.session[SESSION_CASES] = sorted(owned | {reference})
    holder = card.holder
    return render(request, "portal/case.html", {
        "v": selectors.case_view(closure), "receipt": receipt,
        "contacts": [c for c in (holder.email_masked, holder.phone_masked) if c],
    })


@require_POST
@signed_in
def case_withdraw(request, card, reference: str):
    _own_case(card, reference)
    try:
        services.portal_closure_withdraw(card=card, reference=reference, language=translation.get_language())
    except states.IllegalTransition:
        messages.error(request, _("This request can no longer be withdrawn: the refund has started."))
    else:
        messages.success(request, _("Your request was withdrawn. Your card works as before."))
    return redirect("portal:case", reference=reference)


@signed_in
def case_label(request, card, reference: str):
    closure = _own_case(card, reference)
    if not (closure.card.product.physical_return_required and closure.card.physical):
        raise Http404
    label = returns.return_label_issue(reference=closure.reference)
    pdf = return_label.return_label_pdf(reference=closure.reference, label_code=label.code,
                                        card_masked=documents.mask_card_number(card.number),
                                        language=translation.get_language(), tracking=label.tracking_ref)
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="return-label-{closure.reference}.pdf"'
    return response


@never_cache
@require_http_methods(["GET", "POST"])
def check(request):
    """Check before you close: the policy of a card number's product, without signing in."""
    form = CheckForm(request.POST or None)
    result, unknown = None, False
    if request.method == "POST" and form.is_valid():
        product = selectors.product_for_number(form.cleaned_data["card_number"])
        if product is None:
            unknown = True
        else:
            result = selectors.policy_view(product)
    return render(request, "portal/check.html", {"form": form, "result": result, "unknown": unknown})


@require_POST
def sign_out(request):
    request.session.flush()
    messages.info(request, _("You are signed out."))
    return redirect("portal:home")


def csrf_failure(request, reason=""):
    return render(request, "portal/csrf_failure.html", status=403)

"""Customer portal: sign in with a one-time code, check the account, see the quote, confirm,
follow the case. Views only translate HTTP: one service or selector call each."""

from __future__ import annotations

import json
import math
from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
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
from closeout.identity import documents, vault
from closeout.identity import services as otp
from closeout.portal import return_label, selectors, services
from closeout.portal.forms import CheckForm, CodeForm, ConfirmForm, SignInForm
from closeout.returns import services as returns

SESSION_OTP = "portal_otp"
SESSION_CARD = "portal_card_id"
SESSION_RECEIPT = "portal_receipt"
SESSION_CASES = "portal_cases"
SESSION_KEPT = "portal_kept"  # a refused form, kept for the page that shows it again
SESSION_SIGN_IN = "portal_sign_in"  # what was typed to sign in, until the code is entered
SESSION_QUOTE_DRAFT = "portal_quote_draft"  # the refund destination typed before stepping back


def pick_language(request):
    language = translation.get_language_from_request(request, check_path=False)
    return redirect(f"/{language}/")


def _client(request) -> str:
    return request.META.get("REMOTE_ADDR", "")


def _minutes_until(when) -> int:
    return max(1, math.ceil((when - clock.now()).total_seconds() / 60))


TYPED_FIELDS, TYPED_LENGTH = 20, 200  # far beyond any portal form: a bloated POST cannot bloat the session


def _typed(request) -> dict:
    """What the customer typed into the form just sent (each value cut to a length that still
    fails the field's own limit)."""
    fields = [(key, value) for key, value in request.POST.items() if key not in ("csrfmiddlewaretoken", "step")]
    return {key: value[:TYPED_LENGTH] for key, value in fields[:TYPED_FIELDS]}


def _seal(request, key: str, data: dict) -> None:
    """Keep typed data in the session; it may hold an ID or account number, so it is kept sealed."""
    request.session[key] = vault.seal(json.dumps(data), context=key)


def _unseal(request, key: str, *, pop: bool = False) -> dict | None:
    token = request.session.pop(key, None) if pop else request.session.get(key)
    if not token:
        return None
    try:
        return json.loads(vault.unseal(token, context=key))
    except ValueError:  # sealed under another master key: as if nothing was kept
        return None


def _refused(request, page: str, *, typed: dict | None = None, error: dict | None = None):
    """Redirect a refused form to its page, which shows it again with its errors.

    Post/Redirect/Get on the error path too: the page the customer reads is always the answer to a
    GET, so Back or reload never asks to send the form again.
    """
    request.session[SESSION_KEPT] = {"page": page, "error": error}
    if typed is not None:
        _seal(request, f"{SESSION_KEPT}:typed", typed)
    else:
        request.session.pop(f"{SESSION_KEPT}:typed", None)
    return redirect(f"portal:{page}")


def _kept(request, page: str) -> tuple[dict | None, dict | None]:
    """What `_refused` kept for this page, once: (what was typed, the error)."""
    kept = request.session.get(SESSION_KEPT)
    if not kept or kept.get("page") != page:
        return None, None
    del request.session[SESSION_KEPT]
    return _unseal(request, f"{SESSION_KEPT}:typed", pop=True), kept.get("error")


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


def _signed_in_before(request) -> dict | None:
    """The card details of the pending sign-in, for the code page's way back only, and without the
    ID number: on a shared device the next person opening the page must not find them filled in."""
    if not request.GET.get("back"):
        return None
    kept = _unseal(request, SESSION_SIGN_IN) or {}
    return {key: value for key, value in kept.items() if key != "id_number"}


@never_cache
@require_http_methods(["GET", "POST"])
def home(request):
    if request.method == "POST":
        form = SignInForm(request.POST)
        if not form.is_valid():
            return _refused(request, "home", typed=_typed(request))
        data = form.cleaned_data
        try:
            challenge = otp.otp_request(
                card_number=data["card_number"], id_type=data["id_type"], id_number=data["id_number"],
                channel=data["channel"], client_address=_client(request), language=translation.get_language(),
            )
        except otp.CodeSendThrottled as exc:
            return _refused(request, "home", typed=_typed(request),
                            error={"kind": "throttled", "minutes": _minutes_until(exc.until)})
        request.session.pop(SESSION_CARD, None)
        request.session[SESSION_OTP] = challenge.public_id
        request.session["portal_channel"] = data["channel"]
        # What the page may say about a SIM follows from the number's issuer prefix, which anyone
        # can read off the card, never from whether the details matched (no enumeration).
        product = selectors.product_for_number(data["card_number"])
        request.session["portal_sim"] = bool(product and product.kind != product.Kind.STORED_VALUE)
        _seal(request, SESSION_SIGN_IN, _typed(request))  # for the code page's way back
        return redirect("portal:code")
    typed, error = _kept(request, "home")
    form = SignInForm(typed) if typed is not None else SignInForm(initial=_signed_in_before(request))
    return render(request, "portal/home.html", {"form": form, "error": error})


@never_cache
@require_http_methods(["GET", "POST"])
def code(request):
    public_id = request.session.get(SESSION_OTP)
    if not public_id:
        return redirect("portal:home")
    if request.method == "POST":
        form = CodeForm(request.POST)
        if not form.is_valid():
            return _refused(request, "code", typed=_typed(request))
        try:
            verified = otp.otp_verify(public_id=public_id, code=form.cleaned_data["code"],
                                      client_address=_client(request))
        except otp.CodeWrong as exc:
            return _refused(request, "code", error={"kind": "wrong", "left": exc.attempts_left})
        except otp.CodeExpired:
            return _refused(request, "code", error={"kind": "expired"})
        except otp.CodeUsedUp:
            return _refused(request, "code", error={"kind": "used_up"})
        except otp.VerifyLocked as exc:
            return _refused(request, "code", error={"kind": "locked", "minutes": _minutes_until(exc.until)})
        request.session.cycle_key()  # a new session id once signed in (no fixation)
        request.session.pop(SESSION_OTP, None)
        request.session.pop(SESSION_SIGN_IN, None)
        request.session[SESSION_CARD] = verified.card.id
        return redirect("portal:account")
    typed, error = _kept(request, "code")
    form = CodeForm(typed) if typed is not None else CodeForm()
    if error:
        form.point_at("code", "code-error")
    return render(request, "portal/code.html", {
        "form": form, "error": error, "channel": request.session.get("portal_channel", "sms"),
        "sim": request.session.get("portal_sim", False),
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
    if request.method == "POST" and request.POST.get("step") == "back":
        # Back to the account check; what was typed here waits for the customer's return.
        _seal(request, SESSION_QUOTE_DRAFT, {k: v for k, v in _typed(request).items() if k != "consent"})
        return redirect("portal:account")
    if request.method == "POST":
        form = ConfirmForm(request.POST)
        if not form.is_valid():
            return _refused(request, "quote", typed=_typed(request))
        try:
            case = services.portal_closure_request(card=card, refund_destination=form.refund_destination(),
                                                   language=translation.get_language())
        except closures.CaseAlreadyOpen as exc:
            messages.info(request, _("This card already has a closure request: here is its status."))
            return redirect("portal:case", reference=exc.reference)
        except (services.ChargesOpen, closures.CardNotClosable, closures.ChannelNotAllowed):
            return redirect("portal:account")
        except closures.InvalidDestination:
            return _refused(request, "quote", typed=_typed(request), error={"kind": "destination"})
        request.session.pop(SESSION_QUOTE_DRAFT, None)
        request.session[SESSION_RECEIPT] = case.reference
        return redirect("portal:case", reference=case.reference)
    typed, error = _kept(request, "quote")
    form = ConfirmForm(typed) if typed is not None else ConfirmForm(initial=_unseal(request, SESSION_QUOTE_DRAFT))
    if error:
        form.add_error(None, _("Please check the refund destination."))
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
    if request.method == "POST":
        if request.POST.get("action") == "cancel":
            if services.portal_appointment_cancel(card=card):
                messages.success(request, _("Your appointment is cancelled."))
            return redirect("portal:account")
        branch_code = request.POST.get("branch", "")
        try:
            services.portal_appointment_book(card=card, branch_code=branch_code,
                                             starts_at=request.POST.get("starts_at", ""),
                                             language=translation.get_language())
        except appointments.UnableToBook as exc:
            # Back to the same branch and day, the refusal said there (Post/Redirect/Get).
            request.session[SESSION_KEPT] = {"page": "branch", "error": {"kind": exc.code}}
            day = request.POST.get("day", "")
            return redirect(f"{reverse('portal:branch')}?{urlencode({'branch': branch_code, 'day': day})}")
        messages.success(request, _("Your appointment is booked. We have sent you the details."))
        return redirect("portal:account")
    kept = _kept(request, "branch")[1]
    error = str(BOOKING_ERRORS.get(kept["kind"], BOOKING_ERRORS["full"])) if kept else None
    booking = selectors.branch_booking(card, branch_code=request.GET.get("branch", ""), day=request.GET.get("day", ""))
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
    if request.method == "POST":
        form = CheckForm(request.POST)
        if not form.is_valid():
            return _refused(request, "check", typed=_typed(request))
        product = selectors.product_for_number(form.cleaned_data["card_number"])
        # The answer is the product's policy, not the card's: its address names the product only.
        answer = {"product": product.code} if product is not None else {"unknown": "1"}
        return redirect(f"{reverse('portal:check')}?{urlencode(answer)}")
    typed = _kept(request, "check")[0]
    form = CheckForm(typed) if typed is not None else CheckForm()
    product = selectors.product_by_code(request.GET.get("product", "")) if typed is None else None
    result = selectors.policy_view(product) if product is not None else None
    unknown = typed is None and request.GET.get("unknown") == "1"
    return render(request, "portal/check.html", {"form": form, "result": result, "unknown": unknown})


@require_POST
def sign_out(request):
    request.session.flush()
    messages.info(request, _("You are signed out."))
    return redirect("portal:home")


def csrf_failure(request, reason=""):
    return render(request, "portal/csrf_failure.html", status=403)

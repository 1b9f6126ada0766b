"""Customer portal: identify the card, see the quote, confirm, follow the case."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import translation
from django.views.decorators.http import require_http_methods

from closeout.cards.models import Card
from closeout.closures import selectors, services
from closeout.closures.models import ClosureCase
from closeout.portal.forms import ConfirmForm, IdentifyForm

SESSION_CARD = "portal_card_id"
SESSION_CASES = "portal_cases"


def pick_language(request):
    language = translation.get_language_from_request(request, check_path=False)
    return redirect(f"/{language}/")


@require_http_methods(["GET", "POST"])
def home(request):
    form = IdentifyForm(request.POST or None)
    error = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            card = services.identity_check(card_number=data["card_number"], id_type=data["id_type"],
                                           id_number=data["id_number"])
        except services.IdentityNotVerified:
            error = "not_verified"
        else:
            request.session.cycle_key()
            request.session[SESSION_CARD] = card.id
            return redirect("portal:quote")
    return render(request, "portal/home.html", {"form": form, "error": error})


def _session_card(request) -> Card:
    card_id = request.session.get(SESSION_CARD)
    card = Card.objects.select_related("product__policy").filter(id=card_id).first() if card_id else None
    if card is None:
        raise Http404
    return card


@require_http_methods(["GET", "POST"])
def quote(request):
    try:
        card = _session_card(request)
    except Http404:
        return redirect("portal:home")
    open_case = ClosureCase.objects.filter(card=card).exclude(state__in=services.states.TERMINAL).first()
    if open_case:
        _remember(request, open_case.reference)
        return redirect("portal:case", reference=open_case.reference)
    form = ConfirmForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            case = services.closure_request(
                card=card, channel="web", requester="customer:web",
                refund_destination={"type": form.cleaned_data["destination"]},
                language=translation.get_language(),
            )
        except services.CaseAlreadyOpen as exc:
            _remember(request, exc.reference)
            return redirect("portal:case", reference=exc.reference)
        _remember(request, case.reference)
        return redirect("portal:case", reference=case.reference)
    return render(request, "portal/quote.html", {
        "card": card, "quote": services.quote_for_card(card), "form": form,
    })


def _remember(request, reference: str) -> None:
    cases = set(request.session.get(SESSION_CASES, []))
    cases.add(reference)
    request.session[SESSION_CASES] = sorted(cases)


def case(request, reference: str):
    if reference not in request.session.get(SESSION_CASES, []):
        raise Http404
    closure = ClosureCase.objects.select_related("card__product").filter(reference=reference).first()
    if closure is None:
        raise Http404
    return render(request, "portal/case.html", {"case": closure, "public": selectors.case_public(closure)})

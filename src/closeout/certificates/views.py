"""The public verification page, /verify/<id>: anyone holding a certificate can check it."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import render
from django.utils import translation
from django.views.decorators.http import require_safe

from closeout.catalog.models import Product
from closeout.certificates import pdf, selectors
from closeout.portal.labels import KIND_LABELS, fee_label


@require_safe
def verify_page(request, certificate_id: str):
    """`?lang=` keeps the language of the page the reader came from (the QR code's link has none:
    the browser's language then)."""
    if request.GET.get("lang") in dict(settings.LANGUAGES):
        translation.activate(request.GET["lang"])
        request.LANGUAGE_CODE = translation.get_language()
    certificate = selectors.certificate_find(certificate_id)
    if certificate is None:  # a made-up or mistyped certificate: say so, in the reader's language
        return render(request, "certificates/verify.html", {"unknown": True}, status=404)
    result = selectors.certificate_verification(certificate)
    facts = result["facts"] or {}
    destination = (facts.get("refund") or {}).get("destination") or {}
    return render(request, "certificates/verify.html", {
        "result": result,
        "facts": facts,
        "destination_type": destination.get("type", "original"),
        "destination_masked": destination.get("account_masked") or destination.get("wallet_masked") or "",
        "requested_at": pdf._local(facts.get("requested_at")),
        "closed_at": pdf._local(facts.get("closed_at")),
        "deactivated": pdf.deactivation_lines(facts, translation.get_language()),
        "kind_label": str(KIND_LABELS.get((facts.get("card") or {}).get("product_kind"), "")),
        "product_name": _product_name(facts.get("card") or {}),
        "fees": [{"label": fee_label(f["code"]), "amount": f["amount"]} for f in facts.get("fees") or []],
    })


def _product_name(card: dict) -> str:
    """The product's name in the reader's language while the product on file is the one signed
    (same English name); otherwise the signed name, as the facts say it."""
    product = Product.objects.filter(code=card.get("product", ""), name=card.get("product_name", "")).first()
    return product.local_name() if product else card.get("product_name", "")

"""The printable counter receipt (PDF, ReportLab) with the case reference, in the customer's
language (the case's, not the clerk's)."""

from __future__ import annotations

import io

from django.utils import timezone, translation
from django.utils.translation import gettext as _
from reportlab.lib.pagesizes import A5
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas

from closeout.appointments.models import CounterVisit
from closeout.certificates.pdf import draw_text
from closeout.common.templatetags.closeout import money, paren_close, paren_open
from closeout.console import labels
from closeout.console.selectors import staff_names
from closeout.identity import documents
from closeout.portal.labels import DESTINATION_LABELS


def counter_receipt_pdf(*, visit: CounterVisit, language: str | None = None) -> bytes:
    """Return the receipt of a counter visit as PDF bytes, in `language` (default: the case's)."""
    case = visit.case
    language = language or case.language or "en"
    card = case.card
    destruction = getattr(card, "destruction", None)
    with translation.override(language):
        script = "hant" if language == "zh-hant" else "hans"  # Chinese branch names on an English receipt too
        method = labels.label(labels.DESTRUCTION_METHODS, destruction.method) if destruction else ""
        rows = [
            (_("Closure receipt"), None),
            (_("Reference"), case.reference),
            (_("Branch"), visit.branch.local_name(language)),
            (_("Date"), timezone.localtime(visit.customer_confirmed_at or visit.started_at).strftime("%Y-%m-%d %H:%M")),
            (_("Card number"), documents.mask_card_number(card.number)),
            (_("ID document checked"), f"{labels.label(labels.ID_TYPE_LABELS, visit.id_type)} {visit.id_masked}"),
            (_("Card taken for destruction"), _("Yes") if visit.card_taken else _("No")),
            (_("Destruction"), f"{method} · {destruction.batch}" if destruction else "—"),
            (_("Refund"), money(case.quote.get("refund", 0), case.quote.get("currency", "HKD")) + paren_open()
             + labels.label(DESTINATION_LABELS, case.refund_destination.get("type", "original")) + paren_close()),
            (_("Expected by"), case.sla_due_date.isoformat() if case.sla_due_date else "—"),
            (_("Served by"), _served_by(visit.clerk)),
        ]
        buffer = io.BytesIO()
        pdf = canvas.Canvas(buffer, pagesize=A5)
        pdf.setTitle(f"{case.reference} receipt")
        width, height = A5
        y = height - 20 * mm
        for index, (label, value) in enumerate(rows):
            if value is None:
                draw_text(pdf, 15 * mm, y, f"{label} · closeout", 16, script=script)
                y -= 12 * mm
                continue
            draw_text(pdf, 15 * mm, y, str(label), 10, script=script)
            draw_text(pdf, 60 * mm, y, str(value), 11, script=script)
            y -= 8 * mm if index else 0
        draw_text(pdf, 15 * mm, 15 * mm, _("Keep this receipt. Follow your case with its reference."), 8, script=script)
        pdf.showPage()
        pdf.save()
    return buffer.getvalue()


def _served_by(clerk: str) -> str:
    """The clerk as the customer may read them: by the name the console shows (never their sign-in
    address, which is no one's business outside the operator), or "our staff" while they have none."""
    return staff_names([clerk]).get(clerk) or _("our staff")

"""The prepaid return label: an A4 page with the label to cut out (address, case reference, and
the return label code as QR code and Code 128 barcode) and the packing instructions, in the
customer's language."""

from __future__ import annotations

import io

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _
from reportlab.graphics import renderPDF
from reportlab.graphics.barcode import code128
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas

from closeout.certificates import fonts
from closeout.certificates.pdf import draw_text, text_width
from closeout.common.templatetags.closeout import colon

RETURN_ADDRESS = getattr(settings, "CLOSEOUT_RETURN_ADDRESS", (
    "closeout Card Returns", "Freepost RTRN-CLOS", "Unit 3, 8 Returns Road", "Kwun Tong, Hong Kong",
))


def _script(language: str) -> str:
    return "hant" if language == "zh-hant" else "hans"


def _wrap(text: str, size: float, width: float, script: str) -> list[str]:
    """Wrap Latin text by words and Chinese text (which may hold a Latin word or number) by characters."""
    lines, current = [], ""
    spaced = not any(fonts.is_cjk(ch) for ch in text)
    tokens = text.split(" ") if spaced else list(text)
    joiner = " " if spaced else ""
    for token in tokens:
        candidate = f"{current}{joiner}{token}" if current else token
        if text_width(candidate, size, script=script) <= width:
            current = candidate
        else:
            lines.append(current)
            current = token
    if current:
        lines.append(current)
    return lines


def return_label_pdf(*, reference: str, label_code: str, card_masked: str, language: str, tracking: str = "") -> bytes:
    """Render the label for one case: the QR code and barcode carry `label_code`, which the
    warehouse scans at check-in; the reference (and the carrier's tracking number, when the carrier
    issued one) is printed for people."""
    with translation.override(language):
        script = _script(language)
        buffer = io.BytesIO()
        pdf = canvas.Canvas(buffer, pagesize=A4, pageCompression=1)
        pdf.setTitle(f"{_('Prepaid return label')} {reference}")
        pdf.setAuthor("closeout")
        width, height = A4
        left, top = 20 * mm, height - 20 * mm

        def say(x: float, y: float, text: str, size: float, **kwargs) -> float:
            # Chinese and Latin runs each in a font that has their glyphs (the CJK font has no Latin).
            return draw_text(pdf, x, y, text, size, script=script, **kwargs)

        say(left, top, _("Prepaid return label"), 18)
        say(left, top - 7 * mm, _("Cut along the dashed line and stick the label on an envelope. No stamp needed."), 10)

        # The label itself: 150 x 95 mm inside a dashed cut line.
        box_w, box_h = 150 * mm, 95 * mm
        box_x, box_y = left, top - 15 * mm - box_h
        pdf.setDash(4, 3)
        pdf.rect(box_x, box_y, box_w, box_h)
        pdf.setDash()
        say(box_x + 6 * mm, box_y + box_h - 9 * mm, "FREEPOST · POSTAGE PAID", 11, bold=True)
        y = box_y + box_h - 18 * mm
        for line in RETURN_ADDRESS:
            say(box_x + 6 * mm, y, line, 12)
            y -= 6 * mm
        lines = [(_("Reference"), reference), (_("Card"), card_masked)]
        if tracking:
            lines.append((_("Tracking"), tracking))
        for offset, (label, value) in enumerate(lines):
            say(box_x + 6 * mm, y - (2 + 6 * offset) * mm, f"{label}{colon()}{value}", 10)

        qr = QrCodeWidget(label_code, barLevel="M")
        x0, y0, x1, y1 = qr.getBounds()
        size = 36 * mm
        drawing = Drawing(size, size, transform=[size / (x1 - x0), 0, 0, size / (y1 - y0), 0, 0])
        drawing.add(qr)
        renderPDF.draw(drawing, pdf, box_x + box_w - size - 6 * mm, box_y + box_h - size - 6 * mm)

        barcode = code128.Code128(label_code, barHeight=14 * mm, barWidth=0.35 * mm, humanReadable=True)
        barcode.drawOn(pdf, box_x + 6 * mm, box_y + 6 * mm)

        y = box_y - 14 * mm
        say(left, y, _("How to pack your card"), 14)
        steps = [
            _("Cut the card in half across the chip and the magnetic stripe, or keep it whole if you prefer: we destroy it either way."),
            _("Put the card (or both halves) in a small envelope; wrap it in paper so it does not slide out."),
            _("Do not send cash, other cards or documents in the envelope."),
            _("Stick this label on the envelope and post it in any post box within 30 days."),
            _("Keep this page: the reference lets you follow the case on the status page."),
        ]
        y -= 8 * mm
        for number, step in enumerate(steps, start=1):
            for index, line in enumerate(_wrap(step, 10.5, width - 2 * left - 8 * mm, script)):
                if index == 0:
                    say(left, y, f"{number}.", 10.5)
                say(left + 8 * mm, y, line, 10.5)
                y -= 5.5 * mm
            y -= 1.5 * mm
        pdf.showPage()
        pdf.save()
        return buffer.getvalue()

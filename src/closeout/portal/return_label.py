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
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen import canvas

from closeout.certificates import fonts

RETURN_ADDRESS = getattr(settings, "CLOSEOUT_RETURN_ADDRESS", (
    "closeout Card Returns", "Freepost RTRN-CLOS", "Unit 3, 8 Returns Road", "Kwun Tong, Hong Kong",
))


def _font(language: str) -> str:
    """The certificates' CJK font for Chinese (embedded when the machine has one), else Helvetica."""
    return fonts.font_for(language, other="Helvetica")


def _wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Wrap by words for Latin text and by characters for CJK text."""
    lines, current = [], ""
    tokens = text.split(" ") if font == "Helvetica" else list(text)
    joiner = " " if font == "Helvetica" else ""
    for token in tokens:
        candidate = f"{current}{joiner}{token}" if current else token
        if pdfmetrics.stringWidth(candidate, font, size) <= width:
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
        font = _font(language)
        buffer = io.BytesIO()
        pdf = canvas.Canvas(buffer, pagesize=A4, pageCompression=1)
        pdf.setTitle(f"{_('Prepaid return label')} {reference}")
        pdf.setAuthor("closeout")
        width, height = A4
        left, top = 20 * mm, height - 20 * mm

        pdf.setFont(font, 18)
        pdf.drawString(left, top, _("Prepaid return label"))
        pdf.setFont(font, 10)
        pdf.drawString(left, top - 7 * mm, _("Cut along the dashed line and stick the label on an envelope. No stamp needed."))

        # The label itself: 150 x 95 mm inside a dashed cut line.
        box_w, box_h = 150 * mm, 95 * mm
        box_x, box_y = left, top - 15 * mm - box_h
        pdf.setDash(4, 3)
        pdf.rect(box_x, box_y, box_w, box_h)
        pdf.setDash()
        pdf.setFont("Helvetica-Bold", 11)
        pdf.drawString(box_x + 6 * mm, box_y + box_h - 9 * mm, "FREEPOST · POSTAGE PAID")
        pdf.setFont(font, 12)
        y = box_y + box_h - 18 * mm
        for line in RETURN_ADDRESS:
            pdf.drawString(box_x + 6 * mm, y, line)
            y -= 6 * mm
        pdf.setFont(font, 10)
        lines = [(_("Reference"), reference), (_("Card"), card_masked)]
        if tracking:
            lines.append((_("Tracking"), tracking))
        for offset, (label, value) in enumerate(lines):
            # Values in Helvetica: the CJK CID fonts lack some Latin symbols (the mask bullets).
            line_y = y - (2 + 6 * offset) * mm
            pdf.setFont(font, 10)
            pdf.drawString(box_x + 6 * mm, line_y, f"{label}:")
            pdf.setFont("Helvetica", 10)
            pdf.drawString(box_x + 6 * mm + pdfmetrics.stringWidth(f"{label}: ", font, 10), line_y, value)

        qr = QrCodeWidget(label_code, barLevel="M")
        x0, y0, x1, y1 = qr.getBounds()
        size = 36 * mm
        drawing = Drawing(size, size, transform=[size / (x1 - x0), 0, 0, size / (y1 - y0), 0, 0])
        drawing.add(qr)
        renderPDF.draw(drawing, pdf, box_x + box_w - size - 6 * mm, box_y + box_h - size - 6 * mm)

        barcode = code128.Code128(label_code, barHeight=14 * mm, barWidth=0.35 * mm, humanReadable=True)
        barcode.drawOn(pdf, box_x + 6 * mm, box_y + 6 * mm)

        pdf.setFont(font, 14)
        y = box_y - 14 * mm
        pdf.drawString(left, y, _("How to pack your card"))
        pdf.setFont(font, 10.5)
        steps = [
            _("Cut the card in half across the chip and the magnetic stripe, or keep it whole if you prefer: we destroy it either way."),
            _("Put the card (or both halves) in a small envelope; wrap it in paper so it does not slide out."),
            _("Do not send cash, other cards or documents in the envelope."),
            _("Stick this label on the envelope and post it in any post box within 30 days."),
            _("Keep this page: the reference lets you follow the case on the status page."),
        ]
        y -= 8 * mm
        for number, step in enumerate(steps, start=1):
            for index, line in enumerate(_wrap(step, font, 10.5, width - 2 * left - 8 * mm)):
                if index == 0:
                    pdf.drawString(left, y, f"{number}.")
                pdf.drawString(left + 8 * mm, y, line)
                y -= 5.5 * mm
            y -= 1.5 * mm
        pdf.showPage()
        pdf.save()
        return buffer.getvalue()

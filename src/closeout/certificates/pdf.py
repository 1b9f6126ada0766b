"""The closure certificate as a PDF: Chinese and English, a QR code to the verification page, and
the signed facts embedded as an attachment so `closeout certificate verify FILE.pdf` works offline."""

from __future__ import annotations

import io
import json

import segno
from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from pypdf import PdfReader, PdfWriter
from reportlab.lib.colors import Color, HexColor
from reportlab.lib.pagesizes import A4
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

from closeout.certificates import fonts, signing
from closeout.common.money import Money

ATTACHMENT = "closeout-certificate.json"
INK = HexColor("#1d2733")
MUTED = HexColor("#5b6775")
ACCENT = HexColor("#0b6e4f")
RULE = HexColor("#dde1e6")

# (simplified Chinese, traditional Chinese, English), following the project glossary.
TITLE = ("注销证明", "註銷證明書", "Closure certificate")
LABELS = {
    "reference": ("申请编号", "申請編號", "Case reference"),
    "card": ("卡号", "卡號", "Card number"),
    "product": ("产品", "產品", "Product"),
    "requested_at": ("申请日期", "申請日期", "Requested"),
    "closed_at": ("注销日期", "註銷日期", "Closed"),
    "balance": ("余额", "餘額", "Balance"),
    "deposit": ("押金", "按金", "Deposit"),
    "plan_refund": ("剩余套餐退款", "剩餘套餐退款", "Unused plan refunded"),
    "fees": ("手续费", "手續費", "Fees"),
    "refund": ("退款", "退款", "Refunded"),
    "destination": ("退款方式", "退款方式", "Refunded to"),
    "deactivated": ("停用", "停用", "Deactivated"),
    "unbound": ("解除绑定的应用", "解除綁定的應用程式", "Linked apps unbound"),
}
DESTINATIONS = {
    "original": ("原支付方式退回", "原付款方式退回", "Original payment method"),
    "bank": ("银行账户", "銀行戶口", "Bank account"),
    "ewallet": ("电子钱包", "電子錢包", "E-wallet"),
    "cash": ("营业厅领取现金", "客務中心領取現金", "Cash at a branch"),  # as the portal says it
}
# What the closure took out of service, by (what, status) of the certificate's `deactivated` facts.
DEACTIVATIONS = {
    ("card", "blocked"): ("卡片已停用并列入黑名单", "卡片已停用並列入黑名單", "Card blocked and put on the hotlist"),
    ("number", "deactivated"): ("号码已停用", "號碼已停用", "Number taken out of service"),
    ("esim_profile", "cancelled"): ("eSIM 配置文件已取消（从未下载）", "eSIM 設定檔已取消（從未下載）",
                                    "eSIM profile cancelled (never downloaded)"),
    ("esim_profile", "deleted"): ("eSIM 配置文件已从设备删除", "eSIM 設定檔已從裝置刪除",
                                  "eSIM profile deleted from the device"),
    ("esim_profile", "waived"): ("eSIM 删除确认经工作人员豁免", "eSIM 刪除確認經職員豁免",
                                 "eSIM deletion waived by staff"),
}
# Fees by code, in the words of the portal's catalogues.
FEES = {
    "handling": ("手续费", "手續費", "Handling fee"),
    "dormancy": ("休眠卡费用", "休眠卡費用", "Dormancy fee"),
    "overdraft": ("透支金额", "負值", "Overdraft"),
    "unpaid_fee": ("未付费用", "未付費用", "Unpaid fee"),
    "plan_admin": ("套餐退款手续费", "計劃退款手續費", "Plan administration fee"),
}
LANGUAGES = ("zh-hans", "zh-hant", "en")
NONE = ("无", "無", "None")
SCAN = ("扫码验证", "掃碼驗證", "Scan to verify")
STATEMENT = (
    "此卡已注销。以下事实经 closeout 以 Ed25519 签名，可在验证页面或离线核对。",
    "此卡已註銷。以下事實經 closeout 以 Ed25519 簽署，可於驗證頁面或離線核對。",
    "This card account is closed. The facts below are signed with Ed25519 and can be checked online or offline.",
)


def draw_text(c: Canvas, x: float, y: float, text: str, size: float, *, bold: bool = False, color: Color = INK,
              script: str = "hans") -> float:
    """Draw mixed Chinese/Latin text on one line; return its width."""
    cjk = fonts.cjk_fonts()
    c.setFillColor(color)
    start = x
    for is_cjk, run in fonts.runs(text):
        font = (cjk.hant if script == "hant" else cjk.hans) if is_cjk else (
            fonts.LATIN_BOLD if bold else fonts.LATIN)
        c.setFont(font, size)
        c.drawString(x, y, run)
        x += stringWidth(run, font, size)
    return x - start


def text_width(text: str, size: float, *, bold: bool = False, script: str = "hans") -> float:
    cjk = fonts.cjk_fonts()
    total = 0.0
    for is_cjk, run in fonts.runs(text):
        font = (cjk.hant if script == "hant" else cjk.hans) if is_cjk else (
            fonts.LATIN_BOLD if bold else fonts.LATIN)
        total += stringWidth(run, font, size)
    return total


def draw_qr(c: Canvas, url: str, x: float, y: float, size: float) -> None:
    """Draw a QR code as vector squares with its lower-left corner at (x, y)."""
    matrix = segno.make(url, error="m").matrix
    border = 2
    count = len(matrix) + 2 * border
    module = size / count
    c.setFillColor(HexColor("#ffffff"))
    c.rect(x, y, size, size, stroke=0, fill=1)
    c.setFillColor(HexColor("#000000"))
    for row_index, row in enumerate(matrix):
        for col_index, dark in enumerate(row):
            if dark:
                c.rect(x + (col_index + border) * module, y + size - (row_index + border + 1) * module,
                       module + 0.05, module + 0.05, stroke=0, fill=1)


def _local(iso: str | None) -> str:
    if not iso:
        return "—"
    value = parse_datetime(iso)
    if value is None:
        return iso
    local = timezone.localtime(value, timezone.get_default_timezone())
    offset = local.strftime("%z")
    return local.strftime("%Y-%m-%d %H:%M") + f" (UTC{offset[:3]}:{offset[3:]})"


def _money(minor: int, currency: str) -> str:
    return Money(int(minor), currency).format()


def deactivation_names(item: dict) -> tuple[str, str, str]:
    """One `deactivated` fact in the three languages (its raw words for a kind this build does not know)."""
    raw = f"{item.get('what', '')} {item.get('status', '')}".strip()
    return DEACTIVATIONS.get((item.get("what"), item.get("status")), (raw, raw, raw))


def deactivation_lines(facts: dict, language: str) -> list[str]:
    """The `deactivated` facts in one of LANGUAGES (English for any other)."""
    index = LANGUAGES.index(language) if language in LANGUAGES else LANGUAGES.index("en")
    return [deactivation_names(item)[index] for item in facts.get("deactivated") or []]


def _product_names(card: dict) -> list[tuple[str, str]]:
    """The product's Chinese names, when the product on file is still the one signed (its English
    name unchanged): the signed facts keep only the English name."""
    from closeout.catalog.models import Product

    product = Product.objects.filter(code=card.get("product", ""), name=card.get("product_name", "")).first()
    if product is None or not (product.name_zh_hans or product.name_zh_hant):
        return []
    return [(f"{product.name_zh_hans} · {product.name_zh_hant}", "hans")]


def _value_lines(facts: dict) -> list[tuple[str, list[tuple[str, str]]]]:
    """Return (label key, [(text, script)]) rows in the order they are printed."""
    currency = facts["currency"]
    refund = facts["refund"]
    destination = refund.get("destination") or {"type": "original"}
    dest_names = DESTINATIONS.get(destination.get("type", "original"), DESTINATIONS["original"])
    masked = destination.get("account_masked") or destination.get("wallet_masked") or ""
    extra = " ".join(p for p in (destination.get("bank_code", ""), destination.get("provider", ""), masked) if p)
    card = facts["card"]
    rows = [
        ("reference", [(facts["reference"], "en")]),
        ("card", [(card["number_masked"], "en")]),
        ("product", [*_product_names(card), (f"{card['product_name']} ({card['product']})", "en")]),
        ("requested_at", [(_local(facts.get("requested_at")), "en")]),
        ("closed_at", [(_local(facts.get("closed_at")), "en")]),
        ("balance", [(_money(facts["balance"], currency), "en")]),
        ("deposit", [(_money(facts["deposit"], currency), "en")]),
    ]
    if facts.get("plan_refund"):
        rows.append(("plan_refund", [(_money(facts["plan_refund"], currency), "en")]))
    fees = facts.get("fees") or []
    rows.append(("fees", [(", ".join(f"{FEES.get(f['code'], (f['code'],) * 3)[2]} {_money(f['amount'], currency)}"
                                     for f in fees) or "—", "en")]))
    if fees:
        rows[-1][1].insert(0, ("、".join(" · ".join(FEES.get(f["code"], (f["code"],) * 3)[:2]) for f in fees), "hans"))
    rows.append(("refund", [(_money(refund["amount"], refund["currency"]), "en")]))
    rows.append(("destination", [(f"{dest_names[0]} · {dest_names[1]}", "hans"),
                                 (f"{dest_names[2]} {extra}".strip(), "en")]))
    for item in facts.get("deactivated") or []:
        names = deactivation_names(item)
        ref = f" ({item['ref']})" if item.get("ref") else ""
        rows.append(("deactivated", [(f"{names[0]} · {names[1]}", "hans"), (names[2] + ref, "en")]))
    unbound = facts.get("unbound") or []
    if unbound:
        rows.append(("unbound", [(", ".join(u["partner"] for u in unbound), "en")]))
    else:
        rows.append(("unbound", [(f"{NONE[0]} · {NONE[1]} · {NONE[2]}", "hans")]))
    return rows


def render_certificate(*, facts_text: str, signature: str, key_id: str) -> bytes:
    """Return the certificate PDF for signed facts, with the signed envelope attached."""
    facts = json.loads(facts_text)
    buffer = io.BytesIO()
    c = Canvas(buffer, pagesize=A4, invariant=1)
    width, height = A4
    title = f"{TITLE[0]} · {TITLE[1]} · {TITLE[2]} {facts['reference']}"
    c.setTitle(title)
    c.setAuthor("closeout")
    c.setSubject(f"{signing.FORMAT} {facts['certificate_id']}")
    left, right = 56, width - 56

    c.setFillColor(ACCENT)
    c.rect(0, height - 12, width, 12, stroke=0, fill=1)
    y = height - 70
    draw_text(c, left, y, TITLE[0], 26, color=ACCENT)
    x = left + text_width(TITLE[0], 26) + 14
    draw_text(c, x, y, TITLE[1], 26, color=ACCENT, script="hant")
    y -= 26
    draw_text(c, left, y, TITLE[2], 18, bold=True)
    y -= 22
    draw_text(c, left, y, STATEMENT[0], 9.5, color=MUTED)
    y -= 14
    draw_text(c, left, y, STATEMENT[1], 9.5, color=MUTED, script="hant")
    y -= 14
    draw_text(c, left, y, STATEMENT[2], 9.5, color=MUTED)
    y -= 16
    c.setStrokeColor(RULE)
    c.line(left, y, right, y)

    label_width = 205
    for key, values in _value_lines(facts):
        y -= 30
        hans, hant, english = LABELS[key]
        draw_text(c, left, y + 6, hans + (f" / {hant}" if hant != hans else ""), 10.5, script="hans")
        draw_text(c, left, y - 7, english, 8.5, color=MUTED)
        line_y = y + 6
        for text, script in values:
            draw_text(c, left + label_width, line_y, text, 11, bold=(key in ("reference", "refund")), script=script)
            line_y -= 13
        c.setStrokeColor(RULE)
        c.line(left, y - 13, right, y - 13)

    qr_size = 110
    qr_y = 96
    draw_qr(c, facts["verify_url"], right - qr_size, qr_y, qr_size)
    scan = f"{SCAN[0]} · {SCAN[1]} · {SCAN[2]}"
    draw_text(c, right - text_width(scan, 8), qr_y - 12, scan, 8, color=MUTED)

    fy = qr_y + qr_size - 10
    for label, value in (
        ("Certificate ID", facts["certificate_id"]),
        ("Verify", facts["verify_url"]),
        ("Issued", _local(facts.get("issued_at"))),
        ("Signing key", key_id),
        ("Signature (Ed25519)", signature[:44]),
        ("", signature[44:]),
    ):
        if label:
            draw_text(c, left, fy, label, 8, color=MUTED)
        draw_text(c, left + 100, fy, value, 8)
        fy -= 13
    draw_text(c, left, 48, f"closeout · {settings.PUBLIC_URL}", 7.5, color=MUTED)
    c.showPage()
    c.save()

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(buffer.getvalue())))
    envelope = signing.envelope(facts_text=facts_text, signature=signature, key_id=key_id)
    writer.add_attachment(ATTACHMENT, json.dumps(envelope, ensure_ascii=False).encode())
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


class NotACertificate(Exception):
    """The file is not a PDF or carries no closeout certificate data."""


def read_envelope(pdf_bytes: bytes) -> dict:
    """Return the signed envelope attached to a certificate PDF.

    :raises NotACertificate: when the file is not a PDF or has no certificate attached.
    """
    try:
        reader = PdfReader(io.BytesIO(pdf_bytes))
        attached = reader.attachments.get(ATTACHMENT)
    except Exception as exc:  # noqa: BLE001 - any parse failure means "not a certificate PDF"
        raise NotACertificate(f"not a readable PDF ({type(exc).__name__})")
    if not attached:
        raise NotACertificate("no closeout certificate data in this PDF")
    try:
        return json.loads(attached[0])
    except ValueError:
        raise NotACertificate("the certificate data is not valid JSON")


def page_text(pdf_bytes: bytes) -> str:
    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(pdf_bytes)).pages)


def verify_pdf(pdf_bytes: bytes, public_keys: dict[str, str]) -> signing.Verdict:
    """Check a certificate PDF offline: the attached signature, and that the printed page shows the
    same certificate (its id and case reference).

    :raises NotACertificate: when the file carries no certificate.
    """
    verdict = signing.verify_envelope(read_envelope(pdf_bytes), public_keys)
    if not verdict.valid:
        return verdict
    text = page_text(pdf_bytes)
    if verdict.facts.get("certificate_id", "") not in text or verdict.facts.get("reference", "") not in text:
        return signing.Verdict(False, "the printed page does not match the signed facts", verdict.key_id,
                               verdict.facts)
    return verdict

"""The customer's copy of everything held about their case, as a PDF in the language of the page
they downloaded it from: the same data as the JSON download, with labels, amounts in the case's
currency and local times instead of field names, minor units and UTC."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime

from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen.canvas import Canvas

from closeout.catalog.models import Product
from closeout.certificates.pdf import ACCENT, MUTED, draw_text, text_width
from closeout.common.templatetags.closeout import colon, money
from closeout.console import labels as console_labels
from closeout.console.templatetags.console_labels import actor_label
from closeout.portal import labels

SECTIONS = {
    "case": gettext_lazy("Closure request"),
    "timeline": gettext_lazy("Progress"),
    "card": gettext_lazy("Card"),
    "holder": gettext_lazy("Card holder"),
    "refund": gettext_lazy("Refund"),
    "linked_apps": gettext_lazy("Linked apps"),
    "authorization_attempts": gettext_lazy("Charges tried after closing"),
    "marketing_suppression": gettext_lazy("Marketing stopped"),
    "certificate": gettext_lazy("Closure certificate"),
    "ledger": gettext_lazy("Ledger"),
    "audit_events": gettext_lazy("Audit trail"),
}
FIELDS = {
    "reference": gettext_lazy("Reference"),
    "state": gettext_lazy("Status"),
    "status": gettext_lazy("Status"),
    "channel": gettext_lazy("Requested via"),
    "reason": gettext_lazy("Reason"),
    "language": gettext_lazy("Language"),
    "requested_at": gettext_lazy("Received"),
    "closed_at": gettext_lazy("Closed on"),
    "sla_due_date": gettext_lazy("Expected completion"),
    "refund_destination": gettext_lazy("Refund destination"),
    "destination_type": gettext_lazy("Refund destination"),
    "number": gettext_lazy("Card number"),
    "product": gettext_lazy("Product"),
    "product_kind": gettext_lazy("Card type"),
    "issued_at": gettext_lazy("Issued"),
    "physical": gettext_lazy("Physical card"),
    "name": gettext_lazy("Name"),
    "id_type": gettext_lazy("ID document"),
    "id_number": gettext_lazy("ID document number"),
    "email": pgettext_lazy("contact", "Email"),
    "phone": gettext_lazy("Phone"),
    "shredded_at": gettext_lazy("Personal data erased"),
    "note": gettext_lazy("Note"),
    "amount": gettext_lazy("Amount"),
    "provider_ref": gettext_lazy("Payment reference"),
    "created_at": gettext_lazy("Started"),
    "settled_at": gettext_lazy("Paid"),
    "partner": gettext_lazy("App"),
    "bound_at": gettext_lazy("Linked"),
    "unbound_at": gettext_lazy("Unbound"),
    "at": gettext_lazy("Time"),
    "source": gettext_lazy("Where"),
    "decision": gettext_lazy("Decision"),
    "kind": gettext_lazy("Contact"),
    "since": gettext_lazy("Since"),
    "id": gettext_lazy("Certificate number"),
    "verify_url": gettext_lazy("Verify it"),
    "seq": gettext_lazy("No."),
    "actor": gettext_lazy("By"),
    "action": gettext_lazy("Action"),
    "memo": gettext_lazy("Memo"),
}
CARD_STATUSES = {
    "active": gettext_lazy("Active"), "blocked": gettext_lazy("Blocked"), "closing": gettext_lazy("Closing"),
    "closed": gettext_lazy("Closed"),
}
REFUND_STATUSES = {
    "pending": gettext_lazy("Refund in progress"), "succeeded": gettext_lazy("Refunded"),
    "failed": gettext_lazy("Refund failed, being checked by our staff"),
}
DECISIONS = {"approved": gettext_lazy("Approved"), "declined": gettext_lazy("Declined")}
CONTACT_KINDS = {"email": pgettext_lazy("contact", "Email"), "phone": gettext_lazy("Phone")}
LANGUAGE_NAMES = dict(settings.LANGUAGES)
ATTEMPT_REASONS = {
    "ok": "—", "card_closing": gettext_lazy("the card is being closed"), "card_closed": gettext_lazy("the card is closed"),
    "card_blocked": gettext_lazy("the card is blocked"), "insufficient_balance": gettext_lazy("not enough value"),
    "currency_mismatch": gettext_lazy("another currency"),
}
SUPPRESSION_REASONS = {"closure_submitted": gettext_lazy("closure requested"),
                       "opt_out": gettext_lazy("you opted out")}
MEMOS = {"closure settlement": gettext_lazy("closure settlement"), "refund paid": gettext_lazy("refund paid"),
         "settlement reversed": gettext_lazy("settlement reversed")}
NOTES = {"personal data erased at the end of the retention period":
         gettext_lazy("Personal data erased at the end of the retention period.")}
# What each audit event recorded, in the reader's words (the audit trail keeps the code).
AUDIT_ACTIONS = {
    "closure.transition": gettext_lazy("status changed"),
    "closure.return_label": gettext_lazy("return label ready"),
    "closure.refund.cash_ready": gettext_lazy("cash refund ready to collect"),
    "closure.refund.cash_refused": gettext_lazy("cash not handed over"),
    "closure.refund.cash_handed_over": gettext_lazy("cash handed over"),
    "closure.note": gettext_lazy("note added by our staff"),
    "closure.consent": gettext_lazy("your consent recorded"),
    "card.status": gettext_lazy("card status changed"),
    "card.charges_paid": gettext_lazy("outstanding fees paid"),
    "card.charges_paid_twice": gettext_lazy("outstanding fees paid a second time"),
    "card.charges_payment_declined": gettext_lazy("payment of the outstanding fees declined"),
    "card.destroyed": gettext_lazy("card destroyed"),
    "charge.waived": gettext_lazy("fee waived"),
    "authorization.declined": gettext_lazy("charge declined"),
    "guard.charge_after_closure": gettext_lazy("charge after closing found"),
    "suppression.added": gettext_lazy("marketing stopped"),
    "certificate.issued": gettext_lazy("closure certificate issued"),
    "notice.resend": gettext_lazy("notice sent again"),
    "return_label.create": gettext_lazy("return label ordered from the carrier"),
    "return.exception": gettext_lazy("returned card set aside for a check"),
    "return.exception_resolved": gettext_lazy("check of the returned card finished"),
    "counter.id_checked": gettext_lazy("ID document checked at the counter"),
    "counter.customer_confirmed": gettext_lazy("you confirmed at the counter"),
    "holder.shredded": gettext_lazy("personal data erased"),
}
# The next step a `closure.<step>.scheduled` event planned.
SCHEDULED_STEPS = {
    "refund": gettext_lazy("refund"), "refund_status": gettext_lazy("refund status check"),
    "settle": gettext_lazy("fee settlement"),
}
AUDIT_REASONS = {
    "retention period over": gettext_lazy("the retention period is over"),
    "ID document does not match the holder": gettext_lazy("the ID document does not match the holder"),
}
CHARGE_KINDS = {"purchase": gettext_lazy("purchase"), "top_up": gettext_lazy("top-up")}


def _when(value: str | None) -> str:
    """An exported ISO time as the local date and minute; a date stays a date."""
    if not value:
        return "—"
    if len(value) == 10:
        return value
    moment = datetime.fromisoformat(value)
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M") if timezone.is_aware(moment) else value


def _plain(value) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _named(names: dict) -> Callable:
    return lambda value: str(names.get(value, _plain(value)))


def _destination(destination: dict) -> str:
    if not destination:
        return "—"
    shown = [str(labels.DESTINATION_LABELS.get(destination.get("type"), destination.get("type", "—")))]
    shown += [str(destination[key]) for key in ("provider", "bank_code", "account_masked", "wallet_masked")
              if destination.get(key)]
    return " ".join(shown)


def _product(name: str) -> str:
    """The product's name in the reader's language (the JSON keeps the English one)."""
    product = Product.objects.filter(name=name).first()
    return product.local_name() if product else name


VALUES: dict[str, Callable] = {
    "channel": _named(console_labels.CHANNEL_LABELS),
    "language": _named(LANGUAGE_NAMES),
    "product_kind": _named(labels.KIND_LABELS),
    "destination_type": _named(labels.DESTINATION_LABELS),
    "refund_destination": _destination,
    "id_type": _named(console_labels.ID_TYPE_LABELS),
    "decision": _named(DECISIONS),
    "kind": _named(CONTACT_KINDS),
    "note": _named(NOTES),
    "product": _product,
}


def _value(section: str, key: str, value, currency: str | None) -> str:
    if key in ("at", "since") or key.endswith(("_at", "_date")):
        return _when(value)
    if key == "amount" and currency and isinstance(value, int):
        return money(value, currency)
    if key == "reason" and section in ("authorization_attempts", "marketing_suppression"):
        names = ATTEMPT_REASONS if section == "authorization_attempts" else SUPPRESSION_REASONS
        return str(names.get(value, _plain(value)))
    if key in ("state", "status"):
        names = {"card": CARD_STATUSES, "refund": REFUND_STATUSES}.get(section, labels.STATE_LABELS)
        return str(names.get(value, _plain(value)))
    return VALUES[key](value) if key in VALUES else _plain(value)


def _pairs(section: str, item: dict, skip: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    currency = item.get("currency")
    for key, value in item.items():
        if key in skip or (key == "currency" and "amount" in item) or key == "product_code":
            continue
        yield str(FIELDS.get(key, key)), _value(section, key, value, currency)


def _quote(quote: dict) -> Iterator[tuple[str, str]]:
    currency = quote["currency"]
    yield _("Balance"), money(quote["balance"], currency)
    yield _("Deposit"), money(quote["deposit"], currency)
    if quote.get("plan_refund"):
        yield _("Remaining plan"), money(quote["plan_refund"], currency)
    for fee in quote.get("fees", []):
        yield labels.fee_label(fee["code"]), "−" + money(fee["amount"], currency)
    yield _("Refund"), money(quote["refund"], currency)
    if quote.get("uncovered"):
        yield _("Still to pay"), money(quote["uncovered"], currency)


# The ledger's accounts in the reader's words (the ledger keeps the codes): the card's own accounts,
# what is owed to the customer, and the operator's side of each posting.
ACCOUNTS = {
    "value": gettext_lazy("card balance"), "deposit": gettext_lazy("card deposit"),
    "payable": gettext_lazy("refund owed to you"), "income:fees": gettext_lazy("fees"),
    "income:plans": gettext_lazy("unused plan"), "income:forfeited_deposits": gettext_lazy("deposit kept"),
    "clearing:payments": gettext_lazy("paid out by the payment provider"),
    "clearing:top_ups": gettext_lazy("top-ups"), "cash": gettext_lazy("cash at the branch counter"),
}


def _account(code: str) -> str:
    kind, _sep, rest = code.partition(":")
    if kind == "card":
        key = rest.rpartition(":")[2]  # card:<id>:value
    elif kind in ("payable", "cash"):
        key = kind
    else:
        key = code
    return str(ACCOUNTS.get(key, code))


def _ledger_line(posting: dict) -> str:
    lines = "; ".join(f"{_account(line['account'])} {money(line['amount'], line['currency'])}"
                      for line in posting["lines"])
    memo = str(MEMOS.get(posting["memo"], posting["memo"] or posting["key"]))
    return f"{_when(posting['at'])} · {memo} · {lines}"


def _actor(actor: str) -> str:
    """Who did it, as the console says it for you (by the channel) and closeout itself; our staff
    without their names or addresses, a request through the API, or where a charge came from."""
    kind, _sep, rest = actor.partition(":")
    if kind == "customer" or actor == "system":
        return actor_label(actor)
    if kind == "staff":
        return _("our staff")
    if kind == "api":
        return _("a request through our API")
    if kind == "operator":
        return _("operator %(who)s") % {"who": rest}
    return rest or actor  # a card reader or shop: its name as the card system sent it


def _audit_action(action: str) -> str:
    if action in AUDIT_ACTIONS:
        return str(AUDIT_ACTIONS[action])
    if match := re.fullmatch(r"closure\.(\w+)\.scheduled", action):
        step = SCHEDULED_STEPS.get(match[1], match[1])
        return _("next step planned: %(step)s") % {"step": step}
    return action


def _audit_value(action: str, value: str) -> str:
    """A state or status an event moved between, in words; anything else (a certificate number)
    as recorded."""
    if not value:
        return "—"
    if action == "card.status":
        return str(CARD_STATUSES.get(value, value))
    if action == "card.destroyed":
        return console_labels.label(console_labels.DESTRUCTION_METHODS, value)
    if action.startswith("closure.") or action == "notice.resend":
        return labels.state_label(value)
    return value


def _audit_reason(action: str, reason: str) -> str:
    """Why, in words: codes and system notes are translated; what a person wrote stays as written."""
    if action == "authorization.declined":
        return str(ATTEMPT_REASONS.get(reason, reason))
    if action == "suppression.added":
        return str(SUPPRESSION_REASONS.get(reason, reason))
    if action == "return.exception":
        return console_labels.label(console_labels.EXCEPTION_REASONS, reason)
    if reason in AUDIT_REASONS:
        return str(AUDIT_REASONS[reason])
    if match := re.fullmatch(r"(\w+) approved by (.+)", reason):
        source = _("the card system") if match[2] == "card system" else match[2]
        return _("%(kind)s approved by %(source)s") % {"kind": CHARGE_KINDS.get(match[1], match[1]), "source": source}
    return console_labels.note_label(reason)


def _audit_line(event: dict) -> str:
    action = event["action"]
    change = (f"{_audit_value(action, event['before'])} → {_audit_value(action, event['after'])}"
              if event["before"] or event["after"] else "")
    parts = [f"#{event['seq']}" if event["seq"] else "", _when(event["at"]), _actor(event["actor"]),
             _audit_action(action), change, _audit_reason(action, event["reason"] or "")]
    return " · ".join(part for part in parts if part)


def _rows(section: str, value) -> Iterator[str]:
    """The lines of one section: 'label: value' for a record, one line per item of a list."""
    sep = colon()
    if value is None or value == []:
        yield "—"
    elif section == "case":
        for label, text in _pairs(section, value, skip=("quote",)):
            yield f"{label}{sep}{text}"
        for label, text in _quote(value["quote"]):
            yield f"{label}{sep}{text}"
    elif section == "ledger":
        yield from map(_ledger_line, value)
    elif section == "audit_events":
        yield from map(_audit_line, value)
    elif section == "timeline":
        for event in value:
            note = f" · {console_labels.note_label(event['note'])}" if event["note"] else ""
            yield f"{_when(event['at'])} · {labels.state_label(event['state'])}{note}"
    elif isinstance(value, list):
        for item in value:
            yield " · ".join(f"{label}{sep}{text}" for label, text in _pairs(section, item))
    else:
        for label, text in _pairs(section, value):
            yield f"{label}{sep}{text}"


def export_pdf(data: dict) -> bytes:
    """Render `case_export_data` as a PDF in the active language."""
    script = "hant" if translation.get_language() == "zh-hant" else "hans"
    buffer = io.BytesIO()
    c = Canvas(buffer, pagesize=A4, invariant=1)
    c.setTitle(f"closeout {data['case']['reference']}")
    width, height = A4
    left, bottom = 48, 48
    y = height - 60

    def line(text: str, size: float = 9, indent: float = 0, **kwargs) -> None:
        nonlocal y
        for piece in _wrap(text, size, width - 2 * left - indent, script):
            if y < bottom:
                c.showPage()
                y = height - 60
            draw_text(c, left + indent, y, piece, size, script=script, **kwargs)
            y -= size + 5

    line(_("Everything we hold about your closure request"), 16, color=ACCENT)
    line(_("%(reference)s · downloaded %(at)s · %(site)s") % {
        "reference": data["case"]["reference"], "at": _when(data["exported_at"]), "site": settings.PUBLIC_URL},
        9, color=MUTED)
    line(_("All times are Hong Kong time (UTC+8)."), 9, color=MUTED)
    y -= 8
    for section, title in SECTIONS.items():
        y -= 4
        line(str(title), 12, bold=True)
        for text in _rows(section, data[section]):
            line(text, indent=8)
    c.showPage()
    c.save()
    return buffer.getvalue()


def _wrap(text: str, size: float, room: float, script: str) -> list[str]:
    pieces, current = [], ""
    for ch in text:
        if current and text_width(current + ch, size, script=script) > room:
            pieces.append(current)
            current = "    "
        current += ch
    return [*pieces, current]

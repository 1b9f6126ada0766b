"""Staff words for the codes a case carries (state, channel, ID document type) and for the system
notes of its events, in the reader's language: lazy, so each request translates them, not the
import."""

from __future__ import annotations

import re
from datetime import datetime, tzinfo

from babel.dates import get_timezone_name
from django.utils import translation
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from closeout.common.money import parse_major
from closeout.common.templatetags.closeout import BABEL_LOCALES, money
from closeout.common.text import fill
from closeout.console.forms import ID_TYPES

STATE_LABELS = {
    "draft": _("Draft"), "submitted": _("Submitted"), "verified": _("Identity verified"),
    "settled": _("Fees settled"), "awaiting_return": _("Waiting for the card"), "returned": _("Card received"),
    "refund_pending": _("Refund in progress"), "refunded": _("Refunded"), "deactivating": _("Deactivating"),
    "unbinding": _("Unbinding apps"), "closed": _("Closed"), "rejected": _("Not approved"),
    "withdrawn": _("Withdrawn"), "on_hold": _("On hold"), "failed_needs_attention": _("Needs attention"),
}
CHANNEL_LABELS = {
    "web": _("Web portal"), "phone": _("Phone"), "email": pgettext_lazy("contact", "Email"), "chat": _("Online chat"),
    "branch": _("Branch counter"), "partner_api": _("Partner API"), "bulk": _("Bulk closure"),
}
ID_TYPE_LABELS = dict(ID_TYPES)
APPOINTMENT_STATUSES = {"BOOKED": pgettext_lazy("appointment", "Booked"),
                        "CANCELLED": pgettext_lazy("appointment", "Cancelled"),
                        "SERVED": pgettext_lazy("appointment", "Served")}
# How a card was destroyed, in the reader's words (the customer's too, on the counter screen and receipt).
DESTRUCTION_METHODS = {"CUT": _("Cut through chip"), "PUNCH": _("Chip punched"), "SHRED": _("Shredded"),
                       "INCINERATE": _("Incinerated")}
# How a card kept for the customer went back to them.
HAND_BACK_METHODS = {"POST": _("Posted back to the holder"), "COUNTER": _("Collected at a branch counter")}
SYSTEM = _("closeout (automatic)")


def customer_via(channel: str) -> str:
    return gettext("Customer (%(channel)s)") % {"channel": channel}


def api_key(prefix: str) -> str:
    """A request made with an API key, named by the key's prefix as `closeout apikey list` shows it."""
    return gettext("API key %(prefix)s") % {"prefix": prefix}


def label(labels: dict, code: str) -> str:
    """The label of a code, or the code itself for one this build does not know."""
    return str(labels.get(code, code))


# System notes of case events (English in the audit trail), in the staff member's language.
NOTE_LABELS = {
    "identity and card checked": _("identity and card checked"),
    "fees settled": _("fees settled"),
    "waiting for the card to be returned": _("waiting for the card to be returned"),
    "the card was not received in time": _("the card was not received in time"),
    "card received": _("card received"),
    "card checked in at the warehouse": _("card checked in at the warehouse"),
    "card matched from the exception queue": _("card matched from the exception queue"),
    "refund requested": _("refund requested"),
    "refund waits for approval": _("refund waits for approval"),
    "refund approved": _("refund approved"),
    "refund accepted, waiting for settlement": _("refund accepted, waiting for settlement"),
    "refunded": _("refunded"),
    "blocking the card": _("blocking the card"),
    "taking the number out of service": _("taking the number out of service"),
    "card blocked": _("card blocked"),
    "number taken out of service": _("number taken out of service"),
    "number deactivated; releasing the eSIM profile": _("number deactivated; releasing the eSIM profile"),
    "waiting for the eSIM profile to be deleted on the device": _("waiting for the eSIM profile to be deleted on the device"),
    "the eSIM profile was not deleted on the device in time": _("the eSIM profile was not deleted on the device in time"),
    "the device deleted the eSIM profile": _("the device deleted the eSIM profile"),
    "the device deleted the eSIM profile after the wait": _("the device deleted the eSIM profile after the wait"),
    "eSIM deletion notification received": _("eSIM deletion notification received"),
    "deletion notified while releasing; releasing again": _("deletion notified while releasing; releasing again"),
    "eSIM deletion waived by staff": _("eSIM deletion waived by staff"),
    "linked apps unbound": _("linked apps unbound"),
    "bulk closure": _("bulk closure"),
    "resumed": _("resumed"),
    "eSIM profile deleted on the device and released": _("eSIM profile deleted on the device and released"),
    "eSIM profile released (never downloaded)": _("eSIM profile released (never downloaded)"),
    "return label from the carrier": _("return label from the carrier"),
    "card handed in at a branch: no return label": _("card handed in at a branch: no return label"),
    "refund ready to collect in cash at a branch": _("refund ready to collect in cash at a branch"),
    "no carrier label: the customer prints the prepaid label": _("no carrier label: the customer prints the prepaid label"),
    "card collected at a branch counter": _("card collected at a branch counter"),
    "card to be handed in at a branch: no carrier label": _("card to be handed in at a branch: no carrier label"),
}
# System notes that carry what a person wrote or a name after a fixed part: the fixed part in the
# reader's words, the rest as written.
NOTE_PATTERNS = [
    (re.compile(r"fee waived: (?P<rest>.+)", re.S), _("fee waived: %(rest)s")),
    (re.compile(r"refund approved: (?P<rest>.+)", re.S), _("refund approved: %(rest)s")),
    (re.compile(r"refund rejected: (?P<rest>.+)", re.S), _("refund rejected: %(rest)s")),
    (re.compile(r"refund failed: (?P<rest>.+)", re.S), _("refund failed: %(rest)s")),
    (re.compile(r"eSIM deletion waived: (?P<rest>.+)", re.S), _("eSIM deletion waived: %(rest)s")),
    (re.compile(r"resumed: (?P<rest>.+)", re.S), _("resumed: %(rest)s")),
    (re.compile(r"card handed in at branch (?P<rest>\S+)"), _("card handed in at branch %(rest)s")),
    (re.compile(r"card posted back to the holder \(tracking (?P<rest>.+)\)"),
     _("card posted back to the holder (tracking %(rest)s)")),
    (re.compile(r"waiting for (?P<rest>.+) to acknowledge the unbind"), _("waiting for %(rest)s to acknowledge the unbind")),
    (re.compile(r"SM-DP\+ refused the release: (?P<rest>.+)", re.S), _("SM-DP+ refused the release: %(rest)s")),
    (re.compile(r"unbind: (?P<rest>.+)", re.S), _("unbind failed: %(rest)s")),
]
# Why a case waits for staff (its `attention_reason`), in the reader's words; an unbind that failed
# as its note reads, and the error a step ended with as it was written.
ATTENTION_LABELS = {
    "refund failed": _("refund failed"),
    "eSIM release refused": _("eSIM release refused"),
    "eSIM profile not deleted in time": _("eSIM profile not deleted in time"),
    "card not received in time": _("card not received in time"),
}
TIMELINE_KINDS = {"note": pgettext_lazy("timeline", "note"), "notice": pgettext_lazy("timeline", "notice sent again"),
                  "identity": pgettext_lazy("timeline", "identity checked"),
                  "id_checked": pgettext_lazy("timeline", "ID document checked at the counter"),
                  "customer_confirmed": pgettext_lazy("timeline", "customer confirmed at the counter"),
                  "cash_refused": pgettext_lazy("timeline", "cash not handed over: the ID document did not match"),
                  "cash_handed_over": pgettext_lazy("timeline", "cash handed over"),
                  "return_exception": pgettext_lazy("timeline", "returned card went to the exception queue"),
                  "exception_resolved": pgettext_lazy("timeline", "return exception resolved")}
CHARGE_SETTLED = {"paid": pgettext_lazy("charge", "paid"), "waived": pgettext_lazy("charge", "waived"),
                  "deducted": pgettext_lazy("charge", "deducted from the refund")}
# A returned card that still works: its closure was withdrawn or refused, or never asked for.
CARD_IN_USE = _("This card is in use: keep it for the customer, do not destroy it.")
EXCEPTION_REASONS = {"UNKNOWN": _("Unknown label or card"), "MISMATCH": _("Card does not match the label"),
                     "NOT_EXPECTED": _("No case is waiting for this card")}


def note_label(note: str) -> str:
    """A system note in the reader's words; a note written by a person (or one this build does
    not know) as it was written."""
    if note in NOTE_LABELS:
        return str(NOTE_LABELS[note])
    if match := re.fullmatch(r"requested via (\w+)", note):
        return fill(gettext("requested via %(channel)s"), {"channel": label(CHANNEL_LABELS, match[1])})
    if match := re.fullmatch(r"refunded (.+)", note):
        return gettext("refunded %(amount)s") % {"amount": _amount(match[1])}
    if match := re.fullmatch(r"waiting for payment of (.+)", note):
        return gettext("waiting for payment of %(amount)s") % {"amount": _amount(match[1])}
    if match := re.fullmatch(r"(.+); unbinding linked apps", note):
        return gettext("%(done)s; unbinding linked apps") % {"done": note_label(match[1])}
    for pattern, words in NOTE_PATTERNS:
        if match := pattern.fullmatch(note):
            return str(words) % {"rest": match["rest"]}
    return note


def attention_label(reason: str) -> str:
    """Why a case waits for staff, in the reader's words."""
    if reason in ATTENTION_LABELS:
        return str(ATTENTION_LABELS[reason])
    return note_label(reason)


def time_zone_note(zone: tzinfo, at: datetime) -> str:
    """Which clock the console's times read (the operator's zone, `settings.TIME_ZONE`), beside
    the UTC of the logs: "Times are Hong Kong Time (UTC+08:00); logs are in UTC." The offset is
    the one at `at`."""
    if getattr(zone, "key", "") in ("UTC", "Etc/UTC"):
        return gettext("Times are UTC, as in the logs.")
    offset = at.astimezone(zone).strftime("%z")
    name = get_timezone_name(zone, width="long",
                             locale=BABEL_LOCALES.get(translation.get_language() or "en", "en_HK"))
    return fill(gettext("Times are %(zone)s (%(offset)s); logs are in UTC."),
                {"zone": name, "offset": f"UTC{offset[:3]}:{offset[3:]}"})


def _amount(text: str) -> str:
    """An amount a note wrote as `Money.format()` ("HKD 1,234.50"), as the reader's language writes
    money ("HK$1,234.50", "¥470.00"); anything else as it was written."""
    match = re.fullmatch(r"(-?)([A-Z]{3}) ([\d,]+(?:\.\d+)?)", text)
    if not match:
        return text
    try:
        amount = parse_major(match[1] + match[3].replace(",", ""), match[2])
    except ValueError:
        return text
    return money(amount.minor, amount.currency)

"""Words the customer reads for codes that live in data: states, product kinds, fee codes, fee
conditions and refund destinations. All through gettext, in GLOSSARY.md terms."""

from __future__ import annotations

from decimal import Decimal

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from closeout.closures import states

STATE_LABELS = {
    states.DRAFT: gettext_lazy("Draft"),
    states.SUBMITTED: gettext_lazy("Submitted"),
    states.VERIFIED: gettext_lazy("Identity verified"),
    states.SETTLED: gettext_lazy("Fees settled"),
    states.AWAITING_RETURN: gettext_lazy("Waiting for your card"),
    states.RETURNED: gettext_lazy("Card received"),
    states.REFUND_PENDING: gettext_lazy("Refund in progress"),
    states.REFUNDED: gettext_lazy("Refunded"),
    states.DEACTIVATING: gettext_lazy("Deactivating"),
    states.UNBINDING: gettext_lazy("Unbinding apps"),
    states.CLOSED: gettext_lazy("Closed"),
    states.WITHDRAWN: gettext_lazy("Withdrawn"),
    states.REJECTED: gettext_lazy("Not approved"),
    states.ON_HOLD: gettext_lazy("On hold"),
    states.FAILED: gettext_lazy("Being checked by our staff"),
}

KIND_LABELS = {
    "stored_value": gettext_lazy("Stored-value card"),
    "travel_sim": gettext_lazy("Travel SIM"),
    "esim": gettext_lazy("eSIM"),
}

FEE_LABELS = {
    "handling": gettext_lazy("Handling fee"),
    "dormancy": gettext_lazy("Dormancy fee"),
    "overdraft": gettext_lazy("Overdraft"),
    "unpaid_fee": gettext_lazy("Unpaid fee"),
    "plan_admin": gettext_lazy("Plan administration fee"),
}

CHARGE_REASONS = {
    "overdraft": gettext_lazy("negative value after the last ride"),
    "unpaid_fee": gettext_lazy("annual fee unpaid"),
}

DESTINATION_LABELS = {
    "original": gettext_lazy("Original payment method"),
    "bank": gettext_lazy("Bank account"),
    "ewallet": gettext_lazy("E-wallet"),
    "cash": gettext_lazy("Cash at a branch"),
}


def state_label(state: str) -> str:
    return str(STATE_LABELS.get(state, state))


def fee_label(code: str) -> str:
    return str(FEE_LABELS.get(code, _("Fee")))


def charge_reason(code: str, fallback: str) -> str:
    return str(CHARGE_REASONS[code]) if code in CHARGE_REASONS else fallback


def condition_text(condition: str, n: int, money_text) -> str:
    """One fee condition in words; `money_text(minor)` formats an amount for the locale."""
    if condition == "within_days_of_issue":
        return ngettext("the card is returned within %(n)s day of issue",
                        "the card is returned within %(n)s days of issue", n) % {"n": n}
    if condition == "fewer_than_transactions":
        return ngettext("the card was used fewer than %(n)s time",
                        "the card was used fewer than %(n)s times", n) % {"n": n}
    if condition == "balance_above":
        return _("the balance is above %(amount)s") % {"amount": money_text(n)}
    if condition == "dormant_days_over":
        return ngettext("the card has not been used for more than %(n)s day",
                        "the card has not been used for more than %(n)s days", n) % {"n": n}
    return condition


def fee_reason(when: dict, money_text) -> str:
    """Why a fee applies, e.g. 'the card is returned within 90 days of issue'."""
    if not when:
        return _("a refund is paid")
    return _("; ").join(condition_text(c, n, money_text) for c, n in when.items())


def percent(bp: int) -> str:
    return f"{(Decimal(bp) / 100).normalize():f}%"


def fee_amount_text(rule: dict, money_text) -> str:
    """What a fee rule charges, e.g. 'HK$11.00' or '5% of the balance, at least ¥5.00'."""
    if rule["kind"] == "flat":
        return money_text(rule["amount"])
    base = _("of the balance") if rule.get("base") == "balance" else _("of the amount refunded")
    text = f"{percent(rule['bp'])} {base}"
    if "minimum" in rule:
        text += _(", at least %(amount)s") % {"amount": money_text(rule["minimum"])}
    if "maximum" in rule:
        text += _(", at most %(amount)s") % {"amount": money_text(rule["maximum"])}
    return text

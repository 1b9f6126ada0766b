"""Refund policy rules as data and the pure quote function.

A policy is a JSON-able dict::

    {
      "deposit_refundable": true,
      "fees": [{"code": "handling", "kind": "flat", "amount": 1100,
                "when": {"within_days_of_issue": 90}, "base": "total"}],
      "instant_refund_cap": 50000,        # the quote's `instant`: at or below it, told as paid at once
      "refund_approval_threshold": 50000, # above this a second person approves the refund
      "annual_refund_cap": null,
      "plan_pro_rata": {"allowed": true, "fee_bp": 1000, "minimum": 2000},
    }

Fee kinds: ``flat`` (``amount``) and ``percent`` (``bp`` basis points of ``base``, with optional
``minimum`` / ``maximum``). ``base`` says what the fee may be taken from: ``balance`` (never the
deposit, as on a Suica-like card) or ``total`` (balance, deposit and plan refund). Conditions in
``when`` must all hold: ``within_days_of_issue``, ``fewer_than_transactions``, ``balance_above``,
``dormant_days_over``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from closeout.common.money import Money

FEE_REASONS = {
    "within_days_of_issue": "returned within {n} days of issue",
    "fewer_than_transactions": "fewer than {n} transactions",
    "balance_above": "balance above {n}",
    "dormant_days_over": "card unused for more than {n} days",
}


class InvalidPolicy(ValueError):
    """Raised when a policy document does not follow the rules schema."""


@dataclass(frozen=True)
class Plan:
    """What is left of a SIM plan, priced in the product currency."""

    price: Money
    total_days: int
    remaining_days: int
    total_data_mb: int = 0
    remaining_data_mb: int = 0


@dataclass(frozen=True)
class Outstanding:
    code: str
    amount: Money
    reason: str


@dataclass(frozen=True)
class QuoteFacts:
    balance: Money
    deposit: Money
    issued_at: datetime
    transaction_count: int
    last_used_at: datetime | None = None
    outstanding: tuple[Outstanding, ...] = ()
    plan: Plan | None = None


@dataclass(frozen=True)
class Fee:
    code: str
    amount: Money
    reason: str
    charged: Money  # what the policy asked for before the cap; amount <= charged


@dataclass(frozen=True)
class Quote:
    currency: str
    balance: Money
    deposit: Money
    plan_refund: Money
    fees: tuple[Fee, ...]
    refund: Money
    uncovered: Money  # outstanding debts the refund could not cover: the customer must pay these
    instant: bool
    notes: tuple[str, ...] = field(default=())

    def as_json(self) -> dict:
        return {
            "currency": self.currency,
            "balance": self.balance.minor,
            "deposit": self.deposit.minor,
            "plan_refund": self.plan_refund.minor,
            "fees": [{"code": f.code, "amount": f.amount.minor, "reason": f.reason} for f in self.fees],
            "refund": self.refund.minor,
            "uncovered": self.uncovered.minor,
            "instant": self.instant,
        }


def validate_policy(policy: dict) -> dict:
    """Check a policy document and return it.

    :raises InvalidPolicy: naming the first bad field.
    """
    if not isinstance(policy.get("deposit_refundable", True), bool):
        raise InvalidPolicy("deposit_refundable must be true or false")
    for index, fee in enumerate(policy.get("fees", [])):
        where = f"fees[{index}]"
        if fee.get("kind") not in ("flat", "percent"):
            raise InvalidPolicy(f"{where}.kind must be flat or percent")
        for key in ("amount", "bp", "minimum", "maximum"):
            value = fee.get(key)
            if value is not None and (type(value) is not int or value < 0):
                raise InvalidPolicy(f"{where}.{key} must be a non-negative integer")
        if fee["kind"] == "flat" and "amount" not in fee:
            raise InvalidPolicy(f"{where}.amount is required for a flat fee")
        if fee["kind"] == "percent" and "bp" not in fee:
            raise InvalidPolicy(f"{where}.bp is required for a percent fee")
        if fee.get("base", "total") not in ("balance", "total"):
            raise InvalidPolicy(f"{where}.base must be balance or total")
        for condition, value in fee.get("when", {}).items():
            if condition not in FEE_REASONS:
                raise InvalidPolicy(f"{where}.when.{condition} is not a known condition")
            if type(value) is not int or value < 0:
                raise InvalidPolicy(f"{where}.when.{condition} must be a non-negative integer")
    return policy


def _conditions_hold(when: dict, facts: QuoteFacts, now: datetime) -> bool:
    for condition, n in when.items():
        if condition == "within_days_of_issue" and (now - facts.issued_at).days >= n:
            return False
        if condition == "fewer_than_transactions" and facts.transaction_count >= n:
            return False
        if condition == "balance_above" and facts.balance.minor <= n:
            return False
        if condition == "dormant_days_over":
            last = facts.last_used_at or facts.issued_at
            if (now - last).days <= n:
                return False
    return True


def _reason(when: dict, currency: str) -> str:
    if not when:
        return "charged on every refund"
    parts = []
    for condition, n in when.items():
        shown = Money(n, currency).format() if condition == "balance_above" else n
        parts.append(FEE_REASONS[condition].format(n=shown))
    return "; ".join(parts)


def plan_refund(policy: dict, plan: Plan | None) -> Money | None:
    """Return the pro-rata refund of the unused plan days, after the policy's fee, or None."""
    rule = policy.get("plan_pro_rata") or {}
    if plan is None or not rule.get("allowed") or plan.total_days <= 0:
        return None
    remaining = max(0, min(plan.remaining_days, plan.total_days))
    unused = Money(plan.price.minor * remaining // plan.total_days, plan.price.currency)
    fee = unused.percent_bp(rule.get("fee_bp", 0)).max(Money(rule.get("minimum", 0), unused.currency))
    return (unused - fee).max(Money.zero(unused.currency))


def quote(*, policy: dict, facts: QuoteFacts, now: datetime) -> Quote:
    """Compute what the holder gets back. Pure: same inputs, same quote.

    Outstanding debts are taken first, then policy fees, each capped at what is left, so that
    ``refund = balance + deposit + plan_refund - sum(fees)`` and no amount is ever negative.
    """
    currency = facts.balance.currency
    zero = Money.zero(currency)
    balance = facts.balance.max(zero)
    deposit = facts.deposit if policy.get("deposit_refundable", True) else zero
    deposit = deposit.max(zero)
    pro_rata = plan_refund(policy, facts.plan) or zero

    from_balance = balance  # what a balance-based fee may still take
    left = balance + deposit + pro_rata
    fees: list[Fee] = []
    uncovered = zero

    def take(code: str, asked: Money, reason: str, balance_only: bool) -> Money:
        nonlocal left, from_balance, uncovered
        asked = asked.max(zero)
        ceiling = from_balance if balance_only else left
        amount = asked.min(ceiling)
        left -= amount
        from_balance = (from_balance - amount).max(zero).min(left)
        fees.append(Fee(code=code, amount=amount, reason=reason, charged=asked))
        return asked - amount

    for debt in facts.outstanding:
        uncovered += take(debt.code, debt.amount, debt.reason, balance_only=False)

    for rule in policy.get("fees", []):
        when = rule.get("when", {})
        if not _conditions_hold(when, facts, now):
            continue
        if rule["kind"] == "flat":
            asked = Money(rule["amount"], currency)
        else:
            base = balance if rule.get("base", "total") == "balance" else balance + deposit + pro_rata
            asked = base.percent_bp(rule["bp"])
            if "minimum" in rule:
                asked = asked.max(Money(rule["minimum"], currency))
            if "maximum" in rule:
                asked = asked.min(Money(rule["maximum"], currency))
        take(rule["code"], asked, _reason(when, currency), balance_only=rule.get("base") == "balance")

    cap = policy.get("instant_refund_cap")
    return Quote(
        currency=currency,
        balance=balance,
        deposit=deposit,
        plan_refund=pro_rata,
        fees=tuple(fees),
        refund=left,
        uncovered=uncovered,
        instant=cap is None or left.minor <= cap,
    )

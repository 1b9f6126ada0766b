"""Postings: append-only, balanced, idempotent by key. Balances are derived from lines."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import Sum

from closeout.common import clock
from closeout.common.money import Money
from closeout.ledger.models import Account, Line, Posting
from closeout.ledger.rules import check_balanced

CLEARING = "clearing:payments"
FEE_INCOME = "income:fees"
CASH_IN = "clearing:top_ups"


def account_kind(code: str) -> str:
    if code.startswith("income:"):
        return Account.Kind.INCOME
    if code.startswith(("clearing:", "cash:")):
        return Account.Kind.ASSET
    return Account.Kind.LIABILITY


def card_value_account(card_id: int) -> str:
    return f"card:{card_id}:value"


def card_deposit_account(card_id: int) -> str:
    return f"card:{card_id}:deposit"


def refunds_payable_account(reference: str) -> str:
    return f"payable:{reference}"


def branch_cash_account(branch_code: str, currency: str) -> str:
    """The till of a branch in one currency: cash refunds are handed over from it."""
    return f"cash:{branch_code}:{currency}"


def _accounts(currencies: dict[str, str]) -> dict[str, int]:
    """Return the ids of the accounts named by `currencies` (code → currency), opening the missing
    ones in that currency."""
    ids = dict(Account.objects.filter(code__in=currencies).values_list("code", "id"))
    missing = currencies.keys() - ids.keys()
    if missing:
        Account.objects.bulk_create(
            [Account(code=code, kind=account_kind(code), currency=currencies[code]) for code in sorted(missing)],
            ignore_conflicts=True,  # another transaction may open the same account meanwhile
        )
        ids.update(Account.objects.filter(code__in=missing).values_list("code", "id"))
    return ids


def ledger_post(*, key: str, lines: list[tuple[str, Money]], memo: str = "", subject: str = "") -> Posting:
    """Write a balanced posting once; a second call with the same key returns the first posting.

    :raises Unbalanced: when the lines do not balance.
    """
    kept = check_balanced(lines)
    existing = Posting.objects.filter(key=key).first()
    if existing:
        return existing
    try:
        with transaction.atomic():
            posting = Posting.objects.create(key=key, at=clock.now(), memo=memo, subject=subject)
            accounts = _accounts({code: amount.currency for code, amount in kept})
            Line.objects.bulk_create(
                Line(posting=posting, account_id=accounts[code], amount_minor=amount.minor, currency=amount.currency)
                for code, amount in kept
            )
    except IntegrityError:
        return Posting.objects.get(key=key)
    return posting


def account_balances(codes: list[str], currency: str) -> list[Money]:
    """Return the credit balances of several liability accounts, in `codes` order, in one query."""
    totals = dict(Line.objects.filter(account__code__in=codes).order_by().values_list("account__code")
                  .annotate(total=Sum("amount_minor")).values_list("account__code", "total"))
    return [Money(-(totals.get(code) or 0), currency) for code in codes]


def account_balance(code: str, currency: str) -> Money:
    """Return the credit balance of a liability account (what the operator owes)."""
    return account_balances([code], currency)[0]

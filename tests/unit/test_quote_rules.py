"""The pure quote: refund = balance + deposit + plan refund - fees, nothing ever negative."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from closeout.catalog import rules
from closeout.catalog.presets import PRODUCTS
from closeout.common.money import Money

NOW = datetime(2026, 11, 25, tzinfo=UTC)
PRESETS = {p["code"]: p["policy"]["rules"] for p in PRODUCTS}

amounts = st.integers(min_value=0, max_value=10**9)
fee_rule = st.one_of(
    st.fixed_dictionaries({"code": st.just("flat"), "kind": st.just("flat"), "amount": amounts},
                          optional={"base": st.sampled_from(["balance", "total"])}),
    st.fixed_dictionaries(
        {"code": st.just("pct"), "kind": st.just("percent"), "bp": st.integers(0, 20000)},
        optional={"minimum": amounts, "maximum": amounts, "base": st.sampled_from(["balance", "total"])},
    ),
)
policies = st.fixed_dictionaries(
    {"deposit_refundable": st.booleans(), "fees": st.lists(fee_rule, max_size=4)},
    optional={"plan_pro_rata": st.fixed_dictionaries(
        {"allowed": st.booleans(), "fee_bp": st.integers(0, 10000), "minimum": amounts})},
)


@st.composite
def facts(draw):
    currency = draw(st.sampled_from(["HKD", "JPY", "KWD"]))
    plan = None
    if draw(st.booleans()):
        total = draw(st.integers(1, 365))
        plan = rules.Plan(price=Money(draw(amounts), currency), total_days=total,
                          remaining_days=draw(st.integers(-5, total + 5)))
    outstanding = tuple(
        rules.Outstanding(code="debt", amount=Money(a, currency), reason="x")
        for a in draw(st.lists(amounts, max_size=3))
    )
    return rules.QuoteFacts(
        balance=Money(draw(st.integers(-10**6, 10**9)), currency),
        deposit=Money(draw(amounts), currency),
        issued_at=NOW - timedelta(days=draw(st.integers(0, 5000))),
        transaction_count=draw(st.integers(0, 10**5)),
        outstanding=outstanding,
        plan=plan,
    )


@given(policy=policies, f=facts())
def test_every_quote_balances_with_integer_non_negative_amounts(policy, f):
    q = rules.quote(policy=rules.validate_policy(policy), facts=f, now=NOW)

    fees = sum(fee.amount.minor for fee in q.fees)
    assert q.refund.minor == q.balance.minor + q.deposit.minor + q.plan_refund.minor - fees
    for money in (q.refund, q.balance, q.deposit, q.plan_refund, q.uncovered, *(fee.amount for fee in q.fees)):
        assert type(money.minor) is int and money.minor >= 0
        assert money.currency == f.balance.currency
    assert all(fee.amount.minor <= fee.charged.minor for fee in q.fees)


@given(policy=policies, f=facts())
def test_uncovered_is_what_debts_ask_beyond_what_the_card_holds(policy, f):
    q = rules.quote(policy=policy, facts=f, now=NOW)
    asked = sum(d.amount.minor for d in f.outstanding)
    debt_fees = sum(fee.amount.minor for fee in q.fees[: len(f.outstanding)])
    assert q.uncovered.minor == asked - debt_fees
    if q.uncovered.minor:
        assert q.refund.minor == 0


def _facts(balance, *, currency="HKD", deposit=5000, days=30, **kw):
    return rules.QuoteFacts(balance=Money(balance, currency), deposit=Money(deposit, currency),
                            issued_at=NOW - timedelta(days=days), transaction_count=kw.pop("tx", 10), **kw)


def test_octopus_like_charges_eleven_dollars_only_within_ninety_days_of_issue():
    early = rules.quote(policy=PRESETS["OCTO"], facts=_facts(12000, days=30), now=NOW)
    late = rules.quote(policy=PRESETS["OCTO"], facts=_facts(12000, days=120), now=NOW)

    assert [(f.code, f.amount.minor) for f in early.fees] == [("handling", 1100)]
    assert "90 days" in early.fees[0].reason
    assert early.refund == Money(12000 + 5000 - 1100, "HKD")
    assert late.fees == () and late.refund == Money(17000, "HKD")


def test_suica_like_fee_comes_from_the_balance_never_the_deposit():
    small = rules.quote(policy=PRESETS["SUICA"], facts=_facts(100, currency="JPY", deposit=500), now=NOW)
    big = rules.quote(policy=PRESETS["SUICA"], facts=_facts(1000, currency="JPY", deposit=500), now=NOW)

    assert small.fees[0].amount == Money(100, "JPY") and small.refund == Money(500, "JPY")
    assert big.refund == Money(1000 - 220 + 500, "JPY")


def test_travel_sim_refunds_unused_days_less_ten_percent():
    plan = rules.Plan(price=Money(30000, "HKD"), total_days=30, remaining_days=10)
    q = rules.quote(policy=PRESETS["TSIM"], facts=_facts(0, deposit=0, plan=plan), now=NOW)

    assert q.plan_refund == Money(10000 - 1000, "HKD")
    assert q.refund == Money(9000, "HKD")


def test_debts_beyond_the_card_value_must_be_paid():
    debt = rules.Outstanding(code="overdraft", amount=Money(9000, "HKD"), reason="negative value")
    q = rules.quote(policy=PRESETS["OCTO"], facts=_facts(1000, days=400, outstanding=(debt,)), now=NOW)

    assert q.refund == Money(0, "HKD")
    assert q.uncovered == Money(9000 - 6000, "HKD")


@pytest.mark.parametrize("bad, field", [
    ({"fees": [{"kind": "weird"}]}, "fees[0].kind"),
    ({"fees": [{"kind": "flat", "amount": -1}]}, "fees[0].amount"),
    ({"fees": [{"kind": "flat", "amount": 1.5}]}, "fees[0].amount"),
    ({"fees": [{"kind": "flat", "amount": 1, "when": {"moon_phase": 3}}]}, "fees[0].when.moon_phase"),
])
def test_a_bad_policy_is_refused_naming_the_field(bad, field):
    with pytest.raises(rules.InvalidPolicy, match=field.replace("[", r"\[").replace("]", r"\]")):
        rules.validate_policy(bad)


def test_every_preset_is_a_valid_policy():
    for policy in PRESETS.values():
        rules.validate_policy(policy)

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from closeout.common.money import CurrencyMismatch, Money, parse_major
from closeout.ledger.rules import Unbalanced, check_balanced

currencies = st.sampled_from(["HKD", "CNY", "JPY", "KWD"])


@given(st.lists(st.tuples(st.text(min_size=1, max_size=5), st.integers(-10**12, 10**12)), max_size=8), currencies)
def test_a_posting_balances_exactly_when_its_lines_sum_to_zero(lines, currency):
    money_lines = [(account, Money(amount, currency)) for account, amount in lines]
    if sum(amount for _, amount in lines) == 0:
        kept = check_balanced(money_lines)
        assert sum(m.minor for _, m in kept) == 0
        assert all(m.minor for _, m in kept)
    else:
        with pytest.raises(Unbalanced):
            check_balanced(money_lines)


@given(st.integers(-10**12, 10**12), st.integers(-10**12, 10**12))
def test_balancing_one_currency_does_not_excuse_another(a, b):
    lines = [("x", Money(a, "HKD")), ("y", Money(-a, "HKD")), ("z", Money(b, "JPY"))]
    if b:
        with pytest.raises(Unbalanced):
            check_balanced(lines)


def test_money_refuses_floats_and_mixed_currencies():
    with pytest.raises(TypeError):
        Money(1.5, "HKD")
    with pytest.raises(CurrencyMismatch):
        Money(1, "HKD") + Money(1, "JPY")
    with pytest.raises(ValueError):
        Money(1, "XXX")


@given(st.integers(0, 10**15), currencies)
def test_parse_major_round_trips_format(minor, currency):
    text = Money(minor, currency).format().split(" ")[1].replace(",", "")
    assert parse_major(text, currency) == Money(minor, currency)


@pytest.mark.parametrize("text, currency", [("1.234", "HKD"), ("1.5", "JPY"), ("abc", "HKD"), ("1.2345", "KWD")])
def test_parse_major_names_the_problem(text, currency):
    with pytest.raises(ValueError):
        parse_major(text, currency)


@given(st.integers(0, 10**12), st.integers(0, 10000))
def test_percent_is_integer_and_rounds_half_up(minor, bp):
    result = Money(minor, "HKD").percent_bp(bp)
    assert type(result.minor) is int
    assert abs(result.minor * 10000 - minor * bp) <= 5000

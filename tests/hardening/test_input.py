"""Adversarial input: Unicode names, control characters, huge and deeply nested values, negative
and overflowing amounts, currencies with 0 and 3 decimals. Each gives a clear error (a 4xx
problem naming the field, or a ValueError saying what is wrong), never a 500 and never a
silent misreading."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from closeout.api.keys import apikey_create
from closeout.closures.models import CaseEvent, ClosureCase
from closeout.common.money import EXPONENTS, Money, parse_major
from tests.fixtures import HKID

pytestmark = pytest.mark.django_db

UNICODE_NAMES = [
    "陈大文",  # CJK
    "陳大文",  # traditional
    "Zoe\u0308 Ange\u0301lique",  # combining diaeresis and acute
    "محمد بن سلمان",  # RTL
    "\u202eevil\u202c name",  # right-to-left override
    "יִשְׂרָאֵל",  # Hebrew with points
    "👩‍👩‍👧 family",  # emoji with zero-width joiners
    "𠜎𠜱𠝹",  # astral-plane CJK
    "A" * 200,  # the longest accepted
]


@pytest.fixture
def key():
    return apikey_create(name="input-partner", scope="operator")[1]


@pytest.fixture
def post(client, key):
    def call(path, body, *, idem="k-1", raw=None):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {key}", "HTTP_IDEMPOTENCY_KEY": idem}
        data = raw if raw is not None else json.dumps(body)
        return client.post(path, data=data, content_type="application/json", **headers)

    return call


def closure_body(card, **over):
    body = {"card_number": card.number, "holder_name": "陈大文", "id_document": {"type": "hkid", "number": HKID},
            "refund_destination": {"type": "original"}, "reason": "moving abroad"}
    body.update(over)
    return body


def assert_problem(response, status, field=None):
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    if field:
        assert field in [e["field"] for e in problem.get("errors", [])], problem
    return problem


# --- names and free text -------------------------------------------------------------------


@pytest.mark.parametrize("name", UNICODE_NAMES)
def test_unicode_holder_names_are_accepted(post, make_card, name):
    response = post("/api/v1/closures", closure_body(make_card("YKT", holder_name=name), holder_name=name))
    assert response.status_code == 201, response.content


@pytest.mark.parametrize("field,value", [
    ("holder_name", "A" * 201),
    ("holder_name", "x" * 100_000),
    ("holder_name", ""),
    ("reason", "r" * 201),
    ("card_number", "4" * 33),
    ("holder_name", 12345),
    ("holder_name", None),
    ("holder_name", ["陈大文"]),
    ("reason", {"$gt": ""}),
])
def test_oversized_or_mistyped_fields_are_422_naming_the_field(post, make_card, field, value):
    problem = assert_problem(post("/api/v1/closures", closure_body(make_card("YKT"), **{field: value})), 422, field)
    assert "x" * 50 not in json.dumps(problem), "the submitted value is echoed back"


# Digits of other scripts and marks that `str.isdigit` accepts: superscript two, circled one,
# Arabic-Indic and Devanagari digits. (Full-width digits are read as ASCII ones: see below.)
FOREIGN_DIGITS = ["\u00b2", "\u2460", "\u0668", "\u096e"]


@pytest.mark.parametrize("digit", FOREIGN_DIGITS)
def test_card_numbers_with_other_scripts_digits_are_422(post, make_card, digit):
    card = make_card("YKT")
    number = card.number[:-1] + digit
    problem = assert_problem(post("/api/v1/closures", closure_body(card, card_number=number)), 422, "card_number")
    assert number not in json.dumps(problem)
    assert not ClosureCase.objects.exists()


@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E)))
def test_full_width_text_reads_back_as_the_ascii_typed(text):
    from closeout.identity.documents import half_width

    wide = "".join(chr(ord(c) + 0xFEE0) for c in text)
    assert half_width(wide) == text and half_width(text) == text


def test_full_width_card_and_id_numbers_are_read_as_ascii(post, make_card):
    card = make_card("YKT")
    wide = "".join(chr(ord(c) + 0xFEE0) for c in card.number)
    body = closure_body(card, card_number=wide, id_document={"type": "hkid", "number": "Ａ１２３４５６（３）"})  # HKID
    response = post("/api/v1/closures", body)
    assert response.status_code == 201, response.content
    assert ClosureCase.objects.get().card_id == card.id


@pytest.mark.parametrize("field", ["holder_name", "reason"])
@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b[31m", "\ud800"])
def test_control_characters_in_free_text_are_refused(post, make_card, field, char):
    card = make_card("YKT")
    body = json.dumps(closure_body(card, **{field: f"moving{char}abroad"}), ensure_ascii=True)
    response = post("/api/v1/closures", None, raw=body)
    assert_problem(response, 422, field)
    assert not ClosureCase.objects.exists()


def test_control_characters_in_a_warehouse_note_are_refused(post, make_card):
    card = make_card("OCTO")
    reference = post("/api/v1/closures", closure_body(card)).json()["reference"]
    response = post(f"/api/v1/closures/{reference}/card-received", None,
                    raw=json.dumps({"note": "ok\u0000"}, ensure_ascii=True))
    assert_problem(response, 422, "note")
    assert not CaseEvent.objects.filter(note__contains="ok").exists()


@pytest.mark.parametrize("reference", ["CL-2026-\x00", "%00", "CL-2026-000001'--", "../../etc/passwd",
                                       "CL-" + "9" * 5000, "\u202eCL"])
def test_strange_references_are_404(client, key, reference):
    from urllib.parse import quote

    response = client.get("/api/v1/closures/" + quote(reference, safe=""), HTTP_AUTHORIZATION=f"Bearer {key}")
    assert_problem(response, 404)


# --- structure -----------------------------------------------------------------------------


@pytest.mark.parametrize("raw,status", [
    ('{"card_number": ' + "[" * 50_000 + "]" * 50_000 + "}", 400),  # nesting deeper than any parser's stack
    ('{"card_number": "1", "card_number": "2"}', 422),  # duplicate keys: the last wins, then validation
    ('{"holder_name": "\\ud800"}', 422),  # lone surrogate
    ("null", 422),
    ('"just a string"', 422),
    ("[1, 2, 3]", 422),
    ("{}", 422),
    ('{"card_number": 1e400}', 422),
    ('{"card_number": NaN}', 422),
])
def test_malformed_json_is_a_problem_not_a_crash(post, raw, status):
    assert_problem(post("/api/v1/closures", None, raw=raw), status)


# --- amounts and currencies ----------------------------------------------------------------


def authorize(post, card, amount, currency):
    return post("/api/v1/authorizations", None, raw=json.dumps(
        {"card_number": card.number, "amount": amount, "currency": currency}))


@pytest.mark.parametrize("amount", [-1, -(2**63), 2**63, 10**13, 10**400, 1.5, "12.30", True, None, "1e3"])
def test_negative_overflowing_and_non_integer_amounts_are_422(post, make_card, amount):
    card = make_card("YKT", balance=50000)
    if amount == 10**400:
        raw = f'{{"card_number": "{card.number}", "amount": {"9" * 5000}, "currency": "CNY"}}'
        response = post("/api/v1/authorizations", None, raw=raw)
        assert response.status_code in (400, 422) and response["Content-Type"] == "application/problem+json"
        return
    assert_problem(authorize(post, card, amount, "CNY"), 422, "amount")


@pytest.mark.parametrize("currency", ["XXX", "HK$", "ＨＫＤ", "hk", "HKDD", "", "¥¥¥", "\x00HK"])
def test_unknown_or_malformed_currencies_are_422(post, make_card, currency):
    assert_problem(authorize(post, make_card("YKT"), 100, currency), 422, "currency")


@pytest.mark.parametrize("product,currency,amount", [("SUICA", "JPY", 1500), ("YKT", "KWD", 1500)])
def test_currencies_with_zero_and_three_decimals_are_understood(post, make_card, product, currency, amount):
    """JPY has no minor unit, KWD has three: an amount in the card's own currency is judged on the
    balance, another currency is a clear decline, never a conversion."""
    card = make_card(product, balance=2000)
    answer = authorize(post, card, amount, currency).json()
    if currency == card.product.currency:
        assert answer == {"decision": "approved", "reason": "ok"}
    else:
        assert answer == {"decision": "declined", "reason": "currency_mismatch"}


# --- common/money.py -----------------------------------------------------------------------


@pytest.mark.parametrize("text,currency,minor", [
    ("12.30", "HKD", 1230), ("0.05", "HKD", 5), ("-0.05", "HKD", -5), ("1500", "JPY", 1500),
    ("1.234", "KWD", 1234), ("1.2", "KWD", 1200), ("  7 ", "USD", 700),
    ("99999999999999999999", "HKD", 9999999999999999999900),
])
def test_parse_major_reads_exactly(text, currency, minor):
    assert parse_major(text, currency) == Money(minor, currency)


@pytest.mark.parametrize("text,currency,message", [
    ("12.345", "HKD", "HKD has 2 decimal places"),
    ("12.5", "JPY", "JPY has 0 decimal places"),
    ("1.2345", "KWD", "KWD has 3 decimal places"),
    ("", "HKD", "amount must be digits"),
    ("1e3", "HKD", "amount must be digits"),
    ("1,000", "HKD", "amount must be digits"),
    ("--5", "HKD", "amount must be digits"),
    ("NaN", "HKD", "amount must be digits"),
    ("12.30", "XYZ", "unsupported currency"),
])
def test_parse_major_names_what_is_wrong(text, currency, message):
    with pytest.raises(ValueError, match=message):
        parse_major(text, currency)


@pytest.mark.parametrize("text", ["１２.３０", "١٢", "²", "1２"])
def test_parse_major_refuses_non_ascii_digits(text):
    with pytest.raises(ValueError, match="amount must be digits"):
        parse_major(text, "HKD")


@pytest.mark.parametrize("bad", [1.5, 1.0, "100", None, True])
def test_money_refuses_anything_but_int_minor_units(bad):
    with pytest.raises(TypeError):
        Money(bad, "HKD")


@given(minor=st.integers(min_value=-(10**15), max_value=10**15), currency=st.sampled_from(sorted(EXPONENTS)))
@settings(max_examples=300, deadline=None)
def test_format_and_parse_round_trip_in_every_currency(minor, currency):
    text = Money(minor, currency).format()
    assert text.startswith(("-" if minor < 0 else "") + currency + " ")
    number = text.split(" ", 1)[1].replace(",", "")
    assert parse_major(("-" if minor < 0 else "") + number, currency) == Money(minor, currency)


@pytest.mark.django_db(transaction=True)
def test_bulk_close_reports_every_bad_csv_row(make_card, tmp_path):
    import csv as csvlib

    from closeout.closures import bulk

    good = make_card("YKT", balance=500)
    huge = "9" * 200_000
    text = ("\ufeffcard_number,note\n"
            f'"{good.number}",ok\n'
            "=cmd|' /C calc'!A0,formula\n"
            f"{huge},huge\n"
            "\n"
            ",missing\n"
            "8103 0000 0000 0002,bad check digit\n"
            f"{good.number[:-1]}\u00b2,superscript digit\n")
    path = tmp_path / "adversarial.csv"
    path.write_text(text, encoding="utf-8")

    summary = bulk.bulk_intake(path=path, reason="dormant", requester="operator:test")

    assert (summary.created, summary.rejected) == (1, 5)
    with (tmp_path / "adversarial.rejects.csv").open(newline="") as handle:
        rows = list(csvlib.DictReader(handle))
    assert [row["line"] for row in rows] == ["3", "4", "6", "7", "8"]
    assert all(row["field"] in ("card_number", "row") and row["message"] for row in rows)
    assert not any(row["card_number"].startswith("=") for row in rows)  # no formula reaches a spreadsheet


@pytest.mark.parametrize("method,path,status", [
    ("delete", "/api/v1/closures", 405), ("put", "/api/v1/authorizations", 405),
    ("get", "/api/v1/nothing-here", 404), ("get", "/api/v2/closures", 404),
])
def test_unknown_api_addresses_and_methods_answer_with_a_problem(client, key, method, path, status):
    response = getattr(client, method)(path, HTTP_AUTHORIZATION=f"Bearer {key}")
    assert_problem(response, status)
    if status == 405:
        assert response["Allow"]

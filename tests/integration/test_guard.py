"""The charge guard: closing and closed cards decline every authorization and top-up and record
it; the nightly job finds charges that slipped through the card system and alerts staff."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from closeout import cli
from closeout.aftercare.guard import feed_record, guard_check
from closeout.aftercare.models import GuardAlert
from closeout.api.keys import apikey_create
from closeout.audit.models import AuditEvent
from closeout.cards.models import AuthorizationAttempt, Card
from closeout.cards.selectors import authorization_attempts_for_case
from closeout.cards.services import authorization_decide
from closeout.closures import services
from closeout.common import clock
from closeout.common.money import Money
from tests.aftercare_support import close_card

pytestmark = pytest.mark.django_db


@pytest.fixture
def closing_and_closed(make_card):
    closing = services.closure_request(card=make_card("YKT", balance=5000), channel="web", requester="customer:web")
    closed = close_card(make_card("YKT", balance=5000))
    return closing, closed


def test_every_attempt_on_a_closing_or_closed_card_is_declined_and_recorded(client, closing_and_closed):
    _, token = apikey_create(name="acquirer")
    for case in closing_and_closed:
        for source, amount in (("gate-17", 300), ("top_up:kiosk-3", 10000), ("api", 1)):
            response = client.post("/api/v1/authorizations", {"card_number": case.card.number, "amount": amount,
                                                              "currency": "CNY", "source": source},
                                   content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")
            assert response.json() == {"decision": "declined", "reason": f"card_{case.card.status}"}
        attempts = authorization_attempts_for_case(case)
        assert [(a["source"], a["amount"], a["currency"], a["decision"]) for a in attempts] == [
            ("api", 1, "CNY", "declined"), ("top_up:kiosk-3", 10000, "CNY", "declined"),
            ("gate-17", 300, "CNY", "declined")]
        assert all(a["at"] >= case.created_at for a in attempts)
        assert AuditEvent.objects.filter(subject=f"card:{case.card_id}", action="authorization.declined").count() == 3


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amount=st.integers(min_value=0, max_value=10**9), source=st.sampled_from(["gate", "pos", "top_up", "api"]),
       which=st.sampled_from([0, 1]))
def test_no_amount_or_source_gets_past_a_closing_or_closed_card(closing_and_closed, amount, source, which):
    case = closing_and_closed[which]
    before = AuthorizationAttempt.objects.filter(card_id=case.card_id).count()
    attempt = authorization_decide(card_number=case.card.number, amount=Money(amount, "CNY"), source=source)
    assert attempt.decision == "declined"
    assert AuthorizationAttempt.objects.filter(card_id=case.card_id).count() == before + 1
    assert (attempt.amount_minor, attempt.source) == (amount, source) and attempt.at is not None


def _expected(status, product_currency, balance, amount, currency):
    if status is None:
        return "unknown_card"
    if status != Card.Status.ACTIVE:
        return f"card_{status}"
    if currency != product_currency:
        return "currency_mismatch"
    if amount > 0 and amount > balance:
        return "insufficient_balance"
    return "ok"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(status=st.sampled_from([None, *Card.Status.values]), balance=st.integers(0, 10**6),
       offset=st.one_of(st.integers(-2, 2), st.integers(-10**6, 10**6)), currency=st.sampled_from(["CNY", "HKD"]),
       product=st.sampled_from(["YKT", "OCTO"]))
def test_each_attempt_is_decided_by_the_rules_and_recorded(make_card, status, balance, offset, currency, product):
    amount = max(0, balance + offset)  # often right at the balance, where a rule could slip by one
    card = make_card(product, balance=balance)
    if status is not None:
        Card.objects.filter(id=card.id).update(status=status)
    number = card.number if status is not None else card.number[:-4] + "0000"
    before = AuthorizationAttempt.objects.count()

    attempt = authorization_decide(card_number=number, amount=Money(amount, currency), source="gate-9")

    reason = _expected(status, card.product.currency, balance, amount, currency)
    assert (attempt.decision, attempt.reason) == ("approved" if reason == "ok" else "declined", reason)
    assert AuthorizationAttempt.objects.count() == before + 1
    row = AuthorizationAttempt.objects.get(pk=attempt.pk)
    assert (row.card_id, row.amount_minor, row.currency, row.source, row.decision, row.reason) == (
        card.id if status is not None else None, amount, currency, "gate-9", attempt.decision, reason)
    evidence = AuditEvent.objects.filter(subject=f"card:{card.id}", action="authorization.declined")
    assert evidence.exists() == (status not in (None, Card.Status.ACTIVE))


def test_attempts_before_the_closure_are_not_shown_on_the_case(make_card):
    card = make_card("YKT", balance=5000)
    authorization_decide(card_number=card.number, amount=Money(100, "CNY"), source="pos")
    case = services.closure_request(card=card, channel="web", requester="customer:web")
    authorization_decide(card_number=card.number, amount=Money(200, "CNY"), source="pos")
    assert [a["amount"] for a in authorization_attempts_for_case(case)] == [200]


def _ago(**kwargs):
    return clock.now() - timedelta(**kwargs)


def test_the_nightly_job_alerts_staff_to_charges_that_slipped_through(make_card, settings, mailoutbox, capsys):
    settings.STAFF_ALERT_EMAILS = ["ops@operator.test"]
    closed = close_card(make_card("YKT", balance=5000))
    closing = services.closure_request(card=make_card("YKT", balance=5000), channel="web", requester="customer:web")
    withdrawn_card = make_card("YKT", balance=5000)
    withdrawn = services.closure_request(card=withdrawn_card, channel="web", requester="customer:web")
    services.closure_withdraw(reference=withdrawn.reference, actor="customer:web")
    active = make_card("YKT", balance=5000)
    later = clock.now() + timedelta(minutes=5)

    slipped_closed = feed_record(external_ref="tx-1", card_number=closed.card.number, at=later,
                                 amount=Money(450, "CNY"), source="gate-offline-12")
    slipped_closing = feed_record(external_ref="tx-2", card_number=closing.card.number, at=later,
                                  amount=Money(50000, "CNY"), kind="top_up", source="kiosk-3")
    feed_record(external_ref="tx-3", card_number=closed.card.number, at=_ago(days=1), amount=Money(300, "CNY"))
    feed_record(external_ref="tx-4", card_number=closed.card.number, at=later, amount=Money(300, "CNY"),
                status="declined")
    feed_record(external_ref="tx-5", card_number=active.number, at=later, amount=Money(300, "CNY"))
    feed_record(external_ref="tx-6", card_number=withdrawn_card.number, at=later, amount=Money(300, "CNY"))

    alerts = guard_check(since=_ago(days=2), now=later + timedelta(hours=1))

    assert sorted((a.case_reference, a.amount_minor) for a in alerts) == sorted(
        [(closed.reference, 450), (closing.reference, 50000)])
    assert {a.transaction_id for a in alerts} == {slipped_closed.id, slipped_closing.id}
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.to == ["ops@operator.test"]
    assert closed.reference in mail.body and "CNY 4.50" in mail.body and "CNY 500.00" in mail.body
    assert closed.card.number not in mail.body and "•••• " + closed.card.number[-4:] in mail.body
    assert all(a.notified_at for a in GuardAlert.objects.all())
    assert AuditEvent.objects.filter(action="guard.charge_after_closure").count() == 2

    # A second night raises nothing new and sends nothing.
    assert guard_check(since=_ago(days=2), now=later + timedelta(hours=2)) == []
    assert len(mailoutbox) == 1


def test_the_guard_command_exits_non_zero_when_it_finds_a_charge(make_card, capsys):
    closed = close_card(make_card("YKT", balance=5000))
    assert cli.main(["guard", "check"]) == 0
    assert "0 new charge(s)" in capsys.readouterr().out
    feed_record(external_ref="tx-9", card_number=closed.card.number, at=clock.now(), amount=Money(700, "CNY"))
    assert cli.main(["guard", "check"]) == 1
    out = capsys.readouterr().out
    assert f"ALERT {closed.reference}" in out and "CNY 7.00" in out and closed.card.number not in out


def test_a_tester_scripts_a_slipped_charge_through_the_simulator(client, make_card):
    closed = close_card(make_card("YKT", balance=5000))
    created = client.post("/sim/cards/transactions", {"card_number": closed.card.number, "amount": 880,
                                                      "currency": "cny", "source": "gate-offline-2"},
                          content_type="application/json")
    assert created.status_code == 201
    listed = client.get("/sim/cards/transactions").json()
    assert [(t["card_number"], t["amount"], t["currency"]) for t in listed] == [(closed.card.number, 880, "CNY")]
    assert [a.case_reference for a in guard_check()] == [closed.reference]
    bad = client.post("/sim/cards/transactions", {"card_number": "1", "amount": "lots"}, content_type="application/json")
    assert bad.status_code == 422 and bad["Content-Type"] == "application/problem+json"

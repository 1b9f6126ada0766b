"""Reconciliation finds every seeded inconsistency between the ledger, the payment provider, the
card system, partner bindings and certificates, and nothing on consistent cases."""

from __future__ import annotations

import csv

import pytest

from closeout import cli
from closeout.aftercare.reconcile import CHECKS, Mismatch, reconcile_check, reconcile_run
from closeout.cards.models import Binding, Card
from closeout.certificates.models import Certificate
from closeout.closures.models import Refund
from closeout.common.money import Money
from closeout.integrations.models import SimCardBlock, SimFault, SimNumberDeactivation, SimRefund
from closeout.integrations.smdp import simulator as smdp
from closeout.ledger import services as ledger
from tests.aftercare_support import close_card

pytestmark = pytest.mark.django_db


@pytest.fixture
def close_many(make_card):
    def make(count):
        cases = [close_card(make_card("YKT", balance=4500 + i * 100, bindings=["maps-app"])) for i in range(count - 1)]
        cases.append(close_card(make_card("OCTO", balance=12000, days_old=30)))  # returned physical card, HKD
        return cases

    return make


@pytest.fixture
def closed_cases(close_many):
    return close_many(10)


@pytest.fixture
def few_closed_cases(close_many):
    return close_many(3)


def test_consistent_closed_cases_reconcile_cleanly(few_closed_cases, capsys):
    assert reconcile_run() == []
    assert cli.main(["reconcile"]) == 0
    assert "0 mismatch(es)" in capsys.readouterr().out


def test_every_seeded_inconsistency_is_found(closed_cases, tmp_path, capsys):
    c = closed_cases
    ref = [case.reference for case in c]
    # 0: the provider never paid (its record is gone)
    SimRefund.objects.filter(idempotency_key=f"{ref[0]}:refund").delete()
    # 1: the provider paid another amount
    SimRefund.objects.filter(idempotency_key=f"{ref[1]}:refund").update(amount_minor=1)
    # 2: the provider reports the refund failed after all
    SimRefund.objects.filter(idempotency_key=f"{ref[2]}:refund").update(status="failed")
    # 3: the card system never blocked the card
    SimCardBlock.objects.filter(card_number=c[3].card.number).delete()
    # 4: a partner app is still bound
    Binding.objects.filter(card_id=c[4].card_id).update(unbound_at=None)
    # 5: money left on the card's value account (a late top-up booked after closing)
    ledger.ledger_post(key="late-top-up", lines=[(ledger.CASH_IN, Money(700, "CNY")),
                                                 (ledger.card_value_account(c[5].card_id), Money(-700, "CNY"))])
    # 6: the card was reactivated in closeout
    Card.objects.filter(id=c[6].card_id).update(status="active")
    # 7: our refund record disagrees with the quote
    Refund.objects.filter(case=c[7]).update(amount_minor=99)
    # 8: the certificate was altered
    certificate = Certificate.objects.get(case=c[8])
    Certificate.objects.filter(id=certificate.id).update(facts=certificate.facts.replace("YKT", "OCTO"))
    # 9: a second refund at the provider for the same case
    SimRefund.objects.create(idempotency_key=f"{ref[9]}:refund:again", provider_ref="re_dup",
                             amount_minor=16900, currency="HKD", status="succeeded")

    found = reconcile_run()

    assert {(m.reference, m.check) for m in found} == {
        (ref[0], "payment_provider"), (ref[1], "payment_provider"), (ref[2], "payment_provider"),
        (ref[3], "card_system"), (ref[4], "partner_bindings"), (ref[5], "ledger"), (ref[6], "card_system"),
        (ref[7], "ledger"), (ref[7], "payment_provider"), (ref[8], "certificate"), (ref[9], "payment_provider"),
    }
    by_case = {m.reference: m for m in found}
    assert by_case[ref[1]].expected == f"{c[1].quote['refund']} CNY" and by_case[ref[1]].actual == "1 CNY"
    assert by_case[ref[4]].actual == "still bound: maps-app"
    assert by_case[ref[6]].actual == "active"

    out_file = tmp_path / "mismatches.csv"
    assert cli.main(["reconcile", "--out", str(out_file)]) == 1
    printed = capsys.readouterr().out
    assert f"{len(found)} mismatch(es)" in printed and ref[3] in printed
    with out_file.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["reference"], r["check"]) for r in rows} == {(m.reference, m.check) for m in found}


def test_one_more_system_adds_one_check(few_closed_cases):
    """A new external system (e.g. a loyalty scheme) plugs in as one more check function."""
    seen = []

    def check_loyalty_points(case):
        seen.append(case.reference)
        return [Mismatch(case.reference, "loyalty", "points at 0", "120")] if case == few_closed_cases[0] else []

    reconcile_check(check_loyalty_points)
    try:
        found = reconcile_run()
    finally:
        CHECKS.remove(check_loyalty_points)
    assert [(m.reference, m.check) for m in found] == [(few_closed_cases[0].reference, "loyalty")]
    assert sorted(seen) == sorted(case.reference for case in few_closed_cases)


@pytest.fixture
def closed_sims(make_card):
    travel = close_card(make_card("TSIM", balance=0, plan_days_left=10))
    esim_card = make_card("ESIM", balance=0, plan_days_left=5, physical=False)
    smdp.profile_seed(iccid=esim_card.number, state="RELEASED")  # never downloaded: cancelled at once
    return travel, close_card(esim_card)


def test_closed_sims_and_esims_reconcile_cleanly(closed_sims, capsys):
    assert [case.state for case in closed_sims] == ["closed", "closed"]
    assert reconcile_run() == []
    assert cli.main(["reconcile"]) == 0
    assert "0 mismatch(es)" in capsys.readouterr().out


def test_a_sim_still_in_service_and_an_esim_profile_left_on_are_found(closed_sims):
    travel, esim = closed_sims
    SimNumberDeactivation.objects.filter(iccid=travel.card.number).delete()
    smdp.SimEsimProfile.objects.filter(iccid=esim.card.number).update(state="ENABLED")

    found = {(m.reference, m.check): m for m in reconcile_run()}

    assert set(found) == {(travel.reference, "card_system"), (esim.reference, "esim_profile")}
    assert found[(travel.reference, "card_system")].expected == "deactivated at the card system"
    assert found[(esim.reference, "esim_profile")].actual == "ENABLED"


def test_a_card_system_that_does_not_answer_is_a_mismatch_naming_no_card(few_closed_cases):
    SimFault.objects.create(system="card_system", operation="card_info", mode="error_5xx", remaining=1)

    found = reconcile_run(references=[few_closed_cases[0].reference])

    assert [(m.check, m.actual) for m in found] == [("card_system", "no answer")]
    assert few_closed_cases[0].card.number not in str(found[0])


def test_the_payment_provider_is_asked_for_its_own_records(few_closed_cases):
    case = next(c for c in few_closed_cases if c.quote["refund"] > 0)
    SimFault.objects.create(system="payments", operation="refunds_of", mode="error_5xx", remaining=1)
    assert [(m.check, m.actual) for m in reconcile_run(references=[case.reference])] == [
        ("payment_provider", "no answer")]
    SimRefund.objects.filter(idempotency_key=f"{case.reference}:refund").update(amount_minor=1)  # what it holds
    assert [m.check for m in reconcile_run(references=[case.reference])] == ["payment_provider"]


def test_bulk_closed_cases_get_certificates_and_reconcile_cleanly(make_card, tmp_path):
    from closeout.certificates.selectors import certificate_verification
    from closeout.closures import bulk
    from closeout.closures.models import ClosureCase
    from tests.integration.test_bulk_close import run_batches_inline, write_csv

    cards = [make_card("YKT", balance=1000 * i, days_old=2000) for i in range(1, 5)]
    bulk.bulk_intake(path=write_csv(tmp_path / "dormant.csv", [c.number for c in cards]), reason="dormant",
                     requester="operator:test", batch_size=3)
    run_batches_inline()

    closed = list(ClosureCase.objects.filter(state="closed", channel="bulk"))
    assert len(closed) == 4
    assert all(certificate_verification(case.certificate)["valid"] for case in closed)
    assert reconcile_run() == []


def test_an_esim_closed_by_staff_without_the_devices_deletion_is_not_a_mismatch(make_card):
    from datetime import timedelta

    from closeout.closures import services
    from closeout.common import clock
    from tests.aftercare_support import run_to_end

    card = make_card("ESIM", balance=0, plan_days_left=5, physical=False)
    smdp.profile_seed(iccid=card.number, state="ENABLED")  # on the phone, never deleted
    case = run_to_end(services.closure_request(card=card, channel="web", requester="customer:web").reference)
    type(case).objects.filter(id=case.id).update(deadline_at=clock.now() - timedelta(minutes=1))
    services.esim_deletion_timeout(reference=case.reference)
    services.esim_deletion_override(reference=case.reference, actor="staff:lee", reason="phone lost abroad")
    case = run_to_end(case.reference)

    assert case.state == "closed" and smdp.SimEsimProfile.objects.get(iccid=card.number).state == "ENABLED"
    assert reconcile_run() == []


def test_a_card_system_answering_nonsense_is_a_mismatch_not_a_crash(few_closed_cases, monkeypatch):
    from closeout.integrations.card_system.simulator import SimulatedCardSystem

    def malformed(self, *, card_number):
        raise KeyError("balance")

    monkeypatch.setattr(SimulatedCardSystem, "card_info", malformed)

    found = reconcile_run()

    assert {(m.check, m.actual) for m in found} == {("card_system", "unreadable answer")}
    assert len(found) == len(few_closed_cases)

"""The demo data a new user meets after `make demo`: the same cards at every load, running SIM
plans whatever the date, and branches a counter clerk can serve at."""

from __future__ import annotations

from datetime import timedelta

import pytest

from closeout.appointments import selectors as appointment_selectors
from closeout.appointments.models import Branch
from closeout.cards.models import Card, Holder
from closeout.common import clock
from closeout.demo import demo_cards, demo_data_load

pytestmark = pytest.mark.django_db


def test_loading_twice_adds_nothing_the_second_time():
    assert demo_data_load() == 60
    listed = demo_cards()
    assert demo_data_load() == 0
    assert Card.objects.count() == Holder.objects.count() == 60 and demo_cards() == listed
    assert len({card["contact"]["email"] for card in listed}) == 60


def test_the_list_tells_a_tester_which_cards_must_be_posted_back():
    """`physical` alone does not say it: transit cards like Yikatong and physical SIMs are cards in
    hand that need no return, and a tester waiting for awaiting_return on one would wait forever."""
    from closeout.closures import services, states
    from tests.aftercare_support import run_to_end

    demo_data_load()
    listed = demo_cards()
    returned = [card for card in listed if card["return_required"]]
    kept = [card for card in listed if card["physical"] and not card["return_required"]]
    assert returned and kept and all(card["physical"] for card in returned)
    assert not any(card["return_required"] for card in listed if card["product_kind"] == "esim")
    owing_nothing = [[card for card in cards if not card["outstanding_fees"]] for cards in (returned, kept)]
    for cards, waits in zip(owing_nothing, (True, False), strict=True):
        card = Card.objects.get(number=cards[0]["number"])
        case = run_to_end(services.closure_request(card=card, channel="web", requester="customer:web").reference)
        seen = set(case.events.values_list("to_state", flat=True))
        assert case.state == states.CLOSED and (states.AWAITING_RETURN in seen) is waits, card.product.code


def test_every_travel_sim_plan_is_running_on_the_day_of_the_load():
    demo_data_load()
    now = clock.now()
    sims = Card.objects.exclude(plan_ends_at=None)
    assert sims.count() == 20
    assert all(card.plan_starts_at < now < card.plan_ends_at for card in sims)


def test_only_transit_cards_owe_a_negative_value_after_a_ride():
    demo_data_load()
    kinds = {charge.card.product.kind for card in Card.objects.all() for charge in card.charges.all()
             if charge.code == "overdraft"}
    assert kinds == {"stored_value"}


def test_the_branches_have_counters_and_free_slots_on_their_next_working_day():
    demo_data_load()
    assert set(Branch.objects.values_list("code", flat=True)) == {"HK-CEN", "HK-MKK", "SZ-FT"}
    for branch in Branch.objects.all():
        assert branch.name_zh_hans and branch.name_zh_hant and branch.counters.count() >= 2
        days = [clock.now().date() + timedelta(days=n) for n in range(1, 8)]
        assert any(appointment_selectors.branch_slots(branch=branch, day=day) for day in days), branch.code


def test_a_demo_on_another_port_moves_the_demo_partners_to_its_own_simulator(settings):
    from closeout.integrations.models import Partner
    from closeout.integrations.partners.services import partner_update

    settings.PUBLIC_URL = "http://127.0.0.1:8000"
    demo_data_load()
    partner_update(code="city-pay", actor="staff:admin", endpoint_url="https://partner.example.test/unbind")
    settings.PUBLIC_URL = "http://127.0.0.1:8124"
    demo_data_load()
    endpoints = dict(Partner.objects.values_list("code", "endpoint_url"))
    assert endpoints["maps-app"] == "http://127.0.0.1:8124/sim/partners/maps-app/webhook"
    assert endpoints["city-pay"] == "https://partner.example.test/unbind"  # pointed elsewhere on purpose

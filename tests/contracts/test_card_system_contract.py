"""The card management system contract, held by the simulator in-process and by the REST
adapter talking to the simulator's HTTP surface."""

from __future__ import annotations

import pytest

from closeout.common.money import Money
from closeout.integrations.card_system.adapter import HttpCardSystem
from closeout.integrations.card_system.simulator import SimulatedCardSystem
from closeout.integrations.errors import PermanentError, TransientError
from closeout.integrations.models import SimCardBlock, SimFault, SimNumberDeactivation

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["simulator", "http"])
def cms(request):
    if request.param == "simulator":
        return SimulatedCardSystem()
    transport = request.getfixturevalue("wsgi_transport")
    return HttpCardSystem(base_url="http://testserver/sim/cards/api", transport=transport)


def test_blocking_twice_with_one_key_blocks_once(cms, make_card):
    card = make_card("YKT")

    first = cms.block(card_number=card.number, idempotency_key="CL-1:deactivate")
    again = cms.block(card_number=card.number, idempotency_key="CL-1:deactivate")

    assert first == again and first["status"] == "blocked"
    assert SimCardBlock.objects.get(card_number=card.number).request_count == 2


def test_a_sim_number_is_deactivated_once_per_key(cms, make_card):
    card = make_card("TSIM", plan_days_left=10)

    first = cms.deactivate_number(iccid=card.number, idempotency_key="CL-2:deactivate_number")
    again = cms.deactivate_number(iccid=card.number, idempotency_key="CL-2:deactivate_number")

    assert first == again and first["status"] == "deactivated"
    assert SimNumberDeactivation.objects.filter(iccid=card.number).count() == 1


def test_balance_and_transaction_count_are_read_from_the_card_system(cms, make_card):
    card = make_card("YKT", balance=4321, transactions=17)

    info = cms.card_info(card_number=card.number)

    assert (info.balance, info.transaction_count, info.status) == (Money(4321, "CNY"), 17, "active")


def test_a_blocked_card_reads_as_blocked(cms, make_card):
    card = make_card("YKT")
    cms.block(card_number=card.number, idempotency_key="CL-3:deactivate")

    assert cms.card_info(card_number=card.number).status == "blocked"


def test_an_unknown_card_is_a_permanent_error(cms):
    with pytest.raises(PermanentError):
        cms.card_info(card_number="8103000000000000")


def test_a_5xx_is_transient_and_blocks_nothing(cms, make_card):
    card = make_card("YKT")
    SimFault.objects.create(system="card_system", operation="block", mode="error_5xx")

    with pytest.raises(TransientError):
        cms.block(card_number=card.number, idempotency_key="CL-4:deactivate")

    assert not SimCardBlock.objects.exists()


def test_a_refusal_is_permanent_names_itself_and_blocks_nothing(cms, make_card):
    # "decline" scripts the card system saying no; it was taken from the list and ignored.
    card = make_card("YKT")
    SimFault.objects.create(system="card_system", operation="block", mode="decline")

    with pytest.raises(PermanentError, match="refused to block the card") as refused:
        cms.block(card_number=card.number, idempotency_key="CL-5:deactivate")

    assert not isinstance(refused.value, TransientError)
    assert not SimCardBlock.objects.exists()
    assert cms.block(card_number=card.number, idempotency_key="CL-5:deactivate")["status"] == "blocked"


def test_a_refused_block_batch_reports_each_card_as_failed(cms, make_card):
    card = make_card("YKT")
    # The REST protocol has no batch call: its adapter blocks card by card, so script any operation.
    SimFault.objects.create(system="card_system", operation="*", mode="decline")

    results = cms.block_batch(batch_key="b2:bulk_block", items=[{"card_number": card.number,
                                                                  "idempotency_key": "CL-6:deactivate"}])

    assert results["CL-6:deactivate"]["status"] == "failed"
    assert "refused" in results["CL-6:deactivate"]["error"]


def test_the_block_endpoint_demands_an_idempotency_key(client):
    response = client.post("/sim/cards/api/cards/8103000000000000/block")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"


def test_a_block_batch_blocks_each_card_once_per_key(cms, make_card):
    cards = [make_card("YKT") for _ in range(2)]
    items = [{"card_number": c.number, "idempotency_key": f"CL-B{i}:deactivate"} for i, c in enumerate(cards)]

    first = cms.block_batch(batch_key="b1:bulk_block", items=items)
    again = cms.block_batch(batch_key="b1:bulk_block", items=items)

    assert set(first) == set(again) == {i["idempotency_key"] for i in items}
    assert {r["status"] for r in (*first.values(), *again.values())} == {"blocked"}
    assert sorted(SimCardBlock.objects.values_list("card_number", "request_count")) == sorted(
        (c.number, 2) for c in cards)


def test_the_rest_adapter_reports_a_refused_card_of_a_batch_as_failed_and_blocks_the_others():
    import httpx

    def answer(request):
        if "/cards/8103000000000000/" in request.url.path:
            return httpx.Response(404, json={"title": "no such card"})
        return httpx.Response(200, json={"status": "blocked", "block_ref": "blk-1"})

    cms = HttpCardSystem(base_url="http://testserver/api", transport=httpx.MockTransport(answer))

    results = cms.block_batch(batch_key="b2:bulk_block", items=[
        {"card_number": "8103000000000000", "idempotency_key": "CL-U:deactivate"},
        {"card_number": "8103000000000018", "idempotency_key": "CL-K:deactivate"}])

    assert results["CL-U:deactivate"]["status"] == "failed"
    assert results["CL-K:deactivate"] == {"status": "blocked", "block_ref": "blk-1"}

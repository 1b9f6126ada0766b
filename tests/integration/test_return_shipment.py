"""A card to post back gets the carrier's prepaid return label as the case starts waiting for it:
the tracking number is printed on the customer's label and shown to staff; a carrier that is
down never holds the case up (closeout's own label works without it)."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader

from closeout.closures import states, workflow
from closeout.closures.models import CaseEvent, ClosureCase
from closeout.integrations.models import SimFault, SimShipment
from closeout.returns.models import ReturnLabel
from tests.integration.test_console_support import case_in_state, staff_client  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db


def _run_label_action(case) -> ClosureCase:
    case = ClosureCase.objects.get(id=case.id)
    assert (case.state, case.next_action) == (states.AWAITING_RETURN, "return_label")
    workflow.ACTIONS["return_label"](case.reference, case.next_action_id)  # the workflow's steps, inline
    return ClosureCase.objects.get(id=case.id)


def test_the_carrier_label_is_obtained_once_and_its_tracking_reaches_the_label_and_the_console(
        make_card, staff_client):  # noqa: F811
    case = case_in_state(make_card("OCTO"), "awaiting_return")
    waiting_id = ClosureCase.objects.get(id=case.id).next_action_id
    case = _run_label_action(case)

    shipment = SimShipment.objects.get()
    tracking = ReturnLabel.objects.get(case=case).tracking_ref
    assert case.state == states.AWAITING_RETURN and case.next_action == ""
    assert tracking == f"SIMPOST {shipment.tracking_number}" and shipment.request_count == 1
    assert workflow.ACTIONS["return_label"](case.reference, waiting_id) == "skipped"  # a replay asks nobody
    assert SimShipment.objects.get().request_count == 1

    client, _ = staff_client("agent")
    page = client.get(f"/console/cases/{case.reference}/").content.decode()
    assert tracking in page and "return label from the carrier" in page


def test_the_customer_prints_the_tracking_number_on_the_label(make_card):
    from closeout.portal.return_label import return_label_pdf

    case = _run_label_action(case_in_state(make_card("OCTO"), "awaiting_return"))
    label = ReturnLabel.objects.get(case=case)
    pdf = return_label_pdf(reference=case.reference, label_code=label.code, card_masked="•••• 0001",
                           language="en", tracking=label.tracking_ref)
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert label.tracking_ref in text and case.reference in text


def test_a_carrier_that_is_down_leaves_the_case_waiting_for_the_card_with_its_own_label(make_card):
    SimFault.objects.create(system="shipping", operation="create_label", mode="error_5xx", remaining=10)
    case = _run_label_action(case_in_state(make_card("OCTO"), "awaiting_return"))

    assert case.state == states.AWAITING_RETURN and case.next_action == ""
    label = ReturnLabel.objects.get(case=case)
    assert label.code.startswith("RL") and label.tracking_ref == ""
    event = CaseEvent.objects.filter(case=case).order_by("-id").first()
    assert event.note == "no carrier label: the customer prints the prepaid label" and event.data["error"]


def test_a_case_put_on_hold_before_its_label_gets_it_when_resumed(make_card):
    from closeout.closures import services

    case = case_in_state(make_card("OCTO"), "awaiting_return")
    services.closure_hold(reference=case.reference, actor="staff:agent", reason="customer asked to wait")
    services.closure_resume(reference=case.reference, actor="staff:agent")
    case = _run_label_action(case)
    assert ReturnLabel.objects.get(case=case).tracking_ref.startswith("SIMPOST ")

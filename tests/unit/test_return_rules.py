"""A received card is destroyed only once its closure can no longer give it back to the customer."""

from __future__ import annotations

import pytest

from closeout.closures import states
from closeout.returns.rules import card_may_be_destroyed


@pytest.mark.parametrize("state,resume_to", [
    (states.REFUND_PENDING, ""), (states.REFUNDED, ""), (states.DEACTIVATING, ""), (states.UNBINDING, ""),
    (states.CLOSED, ""), (states.ON_HOLD, states.REFUND_PENDING), (states.FAILED, states.DEACTIVATING),
])
def test_a_card_whose_refund_has_started_may_be_destroyed(state, resume_to):
    assert card_may_be_destroyed(case_state=state, resume_to=resume_to, card_in_use=False)


@pytest.mark.parametrize("state,resume_to", [
    (states.WITHDRAWN, ""), (states.REJECTED, ""),  # the card goes back to the customer
    (states.AWAITING_RETURN, ""), (states.RETURNED, ""),  # the customer may still withdraw
    (states.ON_HOLD, states.AWAITING_RETURN), (states.FAILED, states.RETURNED),
    (states.ON_HOLD, ""),  # where it goes back to is unknown
])
def test_a_card_whose_closure_was_or_may_still_be_stopped_is_kept(state, resume_to):
    assert not card_may_be_destroyed(case_state=state, resume_to=resume_to, card_in_use=False)


def test_a_card_in_use_or_of_no_case_is_kept():
    assert not card_may_be_destroyed(case_state=states.CLOSED, card_in_use=True)
    assert not card_may_be_destroyed(case_state=None, card_in_use=False)

"""A received card is destroyed only once its closure can no longer give it back to the customer,
and handed back only once no closure needs it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from closeout.closures import states
from closeout.returns.rules import (
    card_may_be_destroyed,
    card_may_be_handed_back,
    unexpected_card_may_be_handed_back,
)


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


@pytest.mark.parametrize("state", [states.WITHDRAWN, states.REJECTED, None])
def test_a_card_whose_closure_stopped_or_of_no_case_may_be_handed_back(state):
    assert card_may_be_handed_back(case_state=state, card_in_use=False)


def test_a_card_in_use_may_be_handed_back():
    assert card_may_be_handed_back(case_state=states.CLOSED, card_in_use=True)


@pytest.mark.parametrize("state", [states.AWAITING_RETURN, states.RETURNED, states.ON_HOLD, states.FAILED,
                                   states.REFUND_PENDING, states.CLOSED])
def test_a_card_its_closure_may_still_need_stays_on_the_shelf(state):
    assert not card_may_be_handed_back(case_state=state, card_in_use=False)


@given(state=st.sampled_from([None, *states.ALL]), resume_to=st.sampled_from(["", *states.ALL]),
       card_in_use=st.booleans())
def test_no_card_is_both_destroyed_and_handed_back(state, resume_to, card_in_use):
    destroy = card_may_be_destroyed(case_state=state, resume_to=resume_to, card_in_use=card_in_use)
    assert not (destroy and card_may_be_handed_back(case_state=state, card_in_use=card_in_use))


@pytest.mark.parametrize("state,card_in_use", [(states.WITHDRAWN, True), (states.REJECTED, True), (None, True),
                                               (None, False)])
def test_an_unexpected_card_no_closure_needs_may_be_handed_back(state, card_in_use):
    assert unexpected_card_may_be_handed_back(case_state=state, card_in_use=card_in_use)


@given(state=st.sampled_from([s for s in states.ALL if s not in states.TERMINAL]), card_in_use=st.booleans())
def test_an_unexpected_card_whose_closure_goes_on_is_never_handed_back(state, card_in_use):
    assert not unexpected_card_may_be_handed_back(case_state=state, card_in_use=card_in_use)


def test_an_unexpected_card_of_a_closed_case_is_not_handed_back():
    assert not unexpected_card_may_be_handed_back(case_state=states.CLOSED, card_in_use=False)


@given(state=st.sampled_from([None, *states.ALL]), card_in_use=st.booleans())
def test_an_unexpected_card_is_handed_back_only_where_a_received_one_would_be(state, card_in_use):
    if unexpected_card_may_be_handed_back(case_state=state, card_in_use=card_in_use):
        assert card_may_be_handed_back(case_state=state, card_in_use=card_in_use)

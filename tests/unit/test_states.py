"""No path through the state machine skips `settled` or refunds twice."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from closeout.closures import states


@st.composite
def walks(draw):
    state, resume_to, path = states.DRAFT, None, [states.DRAFT]
    for _ in range(draw(st.integers(0, 40))):
        targets = states.allowed_targets(state, resume_to=resume_to)
        if not targets:
            break
        target = draw(st.sampled_from(targets))
        if target in (states.ON_HOLD, states.FAILED):
            if state not in (states.ON_HOLD, states.FAILED):
                resume_to = state
        else:
            resume_to = None
        state = target
        path.append(state)
    return path


@given(walks())
def test_no_path_reaches_a_refund_without_settling_first(path):
    if states.REFUND_PENDING in path:
        assert states.SETTLED in path[: path.index(states.REFUND_PENDING)]


@given(walks())
def test_no_path_refunds_twice_or_leaves_a_terminal_state(path):
    refunds = [b for a, b in zip(path, path[1:], strict=False) if (a, b) == (states.REFUND_PENDING, states.REFUNDED)]
    assert len(refunds) <= 1
    assert path.count(states.REFUNDED) <= 1
    for terminal in states.TERMINAL:
        if terminal in path:
            assert path.index(terminal) == len(path) - 1


@given(walks())
def test_withdrawal_only_before_money_moved(path):
    if states.WITHDRAWN in path:
        assert states.REFUNDED not in path


def test_the_stored_value_path_is_allowed_step_by_step():
    path = [states.DRAFT, states.SUBMITTED, states.VERIFIED, states.SETTLED, states.AWAITING_RETURN,
            states.RETURNED, states.REFUND_PENDING, states.REFUNDED, states.DEACTIVATING, states.CLOSED]
    for current, target in zip(path, path[1:], strict=False):
        states.check_transition(current, target)


@pytest.mark.parametrize("current, target", [
    (states.VERIFIED, states.REFUND_PENDING),
    (states.SUBMITTED, states.REFUNDED),
    (states.REFUNDED, states.WITHDRAWN),
    (states.CLOSED, states.SUBMITTED),
    (states.ON_HOLD, states.REFUND_PENDING),
])
def test_illegal_transitions_raise(current, target):
    with pytest.raises(states.IllegalTransition):
        states.check_transition(current, target, resume_to=states.VERIFIED)

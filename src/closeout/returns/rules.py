"""Pure decisions of the warehouse: no ORM, clock or I/O."""

from __future__ import annotations

from closeout.closures import states


def card_may_be_destroyed(*, case_state: str | None, resume_to: str = "", card_in_use: bool) -> bool:
    """Return whether a received card may go into a destruction batch.

    Only once its closure can no longer give the card back: a card still in use, one no case
    waits for, and one whose case was withdrawn or rejected, or still may be (the refund has not
    started), is kept for the customer. A destroyed card cannot be brought back.
    """
    if case_state is None or card_in_use or case_state in (states.WITHDRAWN, states.REJECTED):
        return False
    if case_state in (states.ON_HOLD, states.FAILED) and not resume_to:  # where it returns to is unknown
        return False
    can_still_stop = states.allowed_targets(case_state, resume_to=resume_to or None)
    return states.WITHDRAWN not in can_still_stop and states.REJECTED not in can_still_stop


def card_may_be_handed_back(*, case_state: str | None, card_in_use: bool) -> bool:
    """Return whether a received card may go back to its holder.

    Only once no closure needs it: a card still in use, one no case waits for, and one whose case
    was withdrawn or rejected. A card kept only while its closure may still stop (before the
    refund starts, or on hold) stays on the shelf: the closure may yet go on and destroy it. Never
    true of a card that may be destroyed (`card_may_be_destroyed`).
    """
    return case_state is None or card_in_use or case_state in (states.WITHDRAWN, states.REJECTED)


def unexpected_card_may_be_handed_back(*, case_state: str | None, card_in_use: bool) -> bool:
    """Return whether a card the warehouse did not expect (in the exception queue) may go back to
    its holder.

    `case_state` is the state of the card's own case: its open one, else its latest, else none. A
    closure still going on for the card needs it (one waiting for it is matched from the queue, and
    one not waiting yet may soon be), whatever the card's status says: the holder asked to close it.
    Otherwise as for a received card (`card_may_be_handed_back`).
    """
    if case_state is not None and case_state not in states.TERMINAL:
        return False
    return card_may_be_handed_back(case_state=case_state, card_in_use=card_in_use)

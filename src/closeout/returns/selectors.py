"""Reads of the warehouse queues."""

from __future__ import annotations

from closeout.cards.models import Card
from closeout.closures import states
from closeout.closures.models import ClosureCase
from closeout.identity import documents
from closeout.returns import rules
from closeout.returns.models import CheckIn, Destruction, HandBack, ReturnException


def received_not_destroyed() -> list[CheckIn]:
    """Received cards still on the shelf (neither destroyed nor handed back), oldest first, each
    with `may_destroy`: false for a card to keep for the customer (see `rules.card_may_be_destroyed`),
    and `may_hand_back`: true once no closure needs it any more (`rules.card_may_be_handed_back`)."""
    items = list(CheckIn.objects.select_related("case", "card").filter(
        outcome=CheckIn.Outcome.RECEIVED, card__destruction__isnull=True, hand_back__isnull=True)
        .order_by("at", "id"))
    for item in items:
        item.may_destroy = may_destroy(item)
        item.may_hand_back = may_hand_back(item)
    return items


def may_destroy(checkin: CheckIn) -> bool:
    """Whether the card of a received check-in may go into a destruction batch now."""
    case = checkin.case
    return rules.card_may_be_destroyed(case_state=case.state if case else None,
                                       resume_to=case.resume_to if case else "",
                                       card_in_use=checkin.card is None or checkin.card.status == Card.Status.ACTIVE)


def may_hand_back(checkin: CheckIn) -> bool:
    """Whether the card of a received check-in may go back to its holder now."""
    case = checkin.case
    return checkin.card is not None and rules.card_may_be_handed_back(
        case_state=case.state if case else None, card_in_use=checkin.card.status == Card.Status.ACTIVE)


def card_own_case(card: Card) -> ClosureCase | None:
    """The case a card belongs to now: its open one, else its latest, else none (never asked to close)."""
    return cards_own_cases([card]).get(card.id)


def cards_own_cases(cards) -> dict[int, ClosureCase]:
    """`card_own_case` of each card, by card id, in one query (a card never asked to close has none)."""
    own: dict[int, ClosureCase] = {}
    for case in ClosureCase.objects.filter(card__in=cards).order_by("card_id", "created_at", "id"):
        earlier = own.get(case.card_id)
        if earlier is None or earlier.state in states.TERMINAL:  # a card has one open case at most
            own[case.card_id] = case
    return own


def exception_card(item: ReturnException) -> Card | None:
    """The card in hand of an exception when its number names one of ours (none: nobody to give it to)."""
    return Card.objects.filter(number=item.card_number).first() if item.card_number else None


def may_hand_back_unexpected(card: Card, case: ClosureCase | None) -> bool:
    """Whether a card from the exception queue, whose own case is `case`, may go back to its holder now."""
    return rules.unexpected_card_may_be_handed_back(case_state=case.state if case else None,
                                                    card_in_use=card.status == Card.Status.ACTIVE)


def exceptions_to_hand_back() -> list[ReturnException]:
    """Open exceptions whose card in hand is one of ours, not destroyed, and may go back to its
    holder (`rules.unexpected_card_may_be_handed_back`), oldest first, each with `hand_back_card`
    and `hand_back_case` (the card's own case, or none). A card a closure waits for is matched to
    its case instead, and an unknown card has nobody to go back to: neither is listed. Three
    queries, however long the queue."""
    items = list(ReturnException.objects.select_related("checkin").filter(
        resolved_at__isnull=True).exclude(card_number="").order_by("checkin__at", "id"))
    cards = {card.number: card for card in Card.objects.filter(
        number__in={item.card_number for item in items}, destruction__isnull=True)}
    cases = cards_own_cases(cards.values())
    listed = []
    for item in items:
        card = cards.get(item.card_number)
        case = cases.get(card.id) if card is not None else None
        if card is not None and may_hand_back_unexpected(card, case):
            item.hand_back_card, item.hand_back_case = card, case
            listed.append(item)
    return listed


def open_exceptions() -> list[ReturnException]:
    """Open exceptions, oldest first. One whose envelope held another card than its label's gets
    `inside_masked`, that card's last digits, `inside_case`, the case waiting for it if any (the
    one to name when the exception is resolved), and `label_masked`, the last digits of the card
    the label (or the reference typed off it) was for."""
    items = list(ReturnException.objects.select_related("checkin__card", "case__card").filter(
        resolved_at__isnull=True).order_by("checkin__at"))
    for item in items:
        item.inside_masked = item.inside_case = item.label_masked = None
        if item.reason == ReturnException.Reason.MISMATCH and item.card_number:
            item.inside_masked = documents.mask_card_number(item.card_number)
            if item.case is not None and item.scanned_code.startswith(("RL", "CL")):
                item.label_masked = documents.mask_card_number(item.case.card.number)
            item.inside_case = (ClosureCase.objects.filter(card__number=item.card_number, state=states.AWAITING_RETURN)
                                .values_list("reference", flat=True).first())
    return items


def recent_checkins(limit: int = 20) -> list[CheckIn]:
    return list(CheckIn.objects.select_related("case").order_by("-at", "-id")[:limit])


def case_hand_back(case: ClosureCase) -> HandBack | None:
    """The latest record of the case's card going back to its holder, if any."""
    return HandBack.objects.filter(case=case).order_by("-handed_back_at", "-id").first()


def card_return(*, case: ClosureCase) -> dict:
    """What the warehouse did with a case's card: the scans naming the case (the card received, or
    put in the exception queue), its destruction record, its hand-back record (the card received
    for this case that went back to the holder), and `status`: `destroyed`, `handed_back`,
    `to_destroy` (received, may go into a batch), `kept` (received, to keep for the customer) or
    empty (not received)."""
    checkins = list(CheckIn.objects.select_related("card", "case", "exception").filter(case=case)
                    .order_by("at", "id"))
    received = [c for c in checkins if c.outcome == CheckIn.Outcome.RECEIVED]
    destruction = Destruction.objects.filter(card_id=case.card_id).first()
    hand_back = case_hand_back(case)
    if destruction is not None:
        status = "destroyed"
    elif hand_back is not None:
        status = "handed_back"
    elif received:
        status = "to_destroy" if may_destroy(received[-1]) else "kept"
    else:
        status = ""
    return {"checkins": checkins, "destruction": destruction, "hand_back": hand_back, "status": status}

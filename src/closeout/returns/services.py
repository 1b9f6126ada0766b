"""Warehouse: return labels, check-in of returned cards, the exception queue, destruction records
and hand-backs of the cards kept for the customer. The case moves through
`closures.services.closure_card_received`."""

from __future__ import annotations

import re

from django.db import IntegrityError, transaction

from closeout.audit.services import audit_record
from closeout.cards.models import Card
from closeout.closures import services as closures
from closeout.closures import states
from closeout.closures.models import CaseEvent, ClosureCase
from closeout.common import clock
from closeout.common.text import UnusableLabel, one_line_label
from closeout.identity import documents
from closeout.returns import rules
from closeout.returns import selectors as return_selectors
from closeout.returns.models import (
    DESK_MAX_LENGTH,
    HAND_BACK_NOTE_MAX_LENGTH,
    TRACKING_REF_MAX_LENGTH,
    CheckIn,
    Destruction,
    HandBack,
    ReturnException,
    ReturnLabel,
)

LABEL = re.compile(r"^RL([0-9]{10,16})([0-9])$")  # year, the reference's sequence (6 digits or more), check
# A case reference read off the envelope, without its dashes (`without_separators` drops them).
REFERENCE = re.compile(r"^CL([0-9]{4})([0-9]{6,12})$")


class UnableToCheckIn(Exception):
    pass


class MisreadCode(UnableToCheckIn):
    """The scan is no code closeout prints: a label or card number whose check digit is wrong, or
    something else. The card is in the scanner's hand, so it is scanned again, not queued."""


class ReferenceNeedsCard(UnableToCheckIn):
    """A case reference has no check digit (a typo finds another case): the card must be scanned too."""


class UnableToDestroy(Exception):
    pass


class CardToKeep(UnableToDestroy):
    """A selected card is to be kept for the customer (its closure was withdrawn or rejected, or
    still may be): nothing in the batch is recorded."""

    def __init__(self, reference: str):
        super().__init__(f"the card of {reference or 'a check-in without a case'} is to be kept for the customer")
        self.reference = reference


class CardHandedBack(CardToKeep):
    """A selected card went back to its holder since the list was shown: nothing in the batch is
    recorded."""


class UnableToResolve(Exception):
    pass


class NotTheCasesCard(UnableToResolve):
    """The card in hand is known and is not the card of the case named: checking it in for that
    case would refund a closure whose card never came back."""

    def __init__(self, *, in_hand: str, reference: str):
        super().__init__(f"the card in hand is not the card of {reference}")
        self.in_hand_masked, self.reference = documents.mask_card_number(in_hand), reference


def label_code_for(reference: str) -> str:
    """Return the label code of a case reference: RL + year + sequence + a Luhn check digit."""
    year, seq = reference.split("-")[1:]
    body = f"RL{year}{seq}"
    return body + documents.luhn_check_digit(body[2:])


def return_label_issue(*, reference: str) -> ReturnLabel:
    """Create the case's return label once; issuing again returns the same label."""
    case = ClosureCase.objects.filter(reference=reference).first()
    if case is None:
        raise closures.CaseNotFound(reference)
    label, _ = ReturnLabel.objects.get_or_create(
        case=case, defaults={"code": label_code_for(reference), "created_at": clock.now()})
    return label


def _mask(code: str) -> str:
    return code if code.startswith(("RL", "CL")) else documents.mask_card_number(code)


def _received_already(case: ClosureCase) -> bool:
    return CaseEvent.objects.filter(case=case, key="card_received").exists()


def return_check_in(*, code: str, actor: str, card_number: str = "", desk: str = "") -> CheckIn:
    """Check in a scanned return label code (its QR code or barcode), a case reference typed from
    the envelope, or a card number, at the desk named `desk` (empty: none named).

    A card the warehouse expected moves its case to `returned` (and on to the refund); a repeat
    scan of a card already received, or already waiting in the exception queue, changes nothing
    (the earlier check-in is returned with `again` set); anything else lands in the exception queue.
    The check-in records the card in hand: the one whose number was scanned off the card inside
    (`card_number`) when given, which may not be the card the label was made for.

    :raises UnableToCheckIn: for an empty scan.
    :raises MisreadCode: for a label code or card number (of the scan or of the card inside) whose
        check digit is wrong, or a scan that is neither (nothing is recorded: the card is scanned
        again).
    :raises ReferenceNeedsCard: for a typed case reference without the card number.
    :raises UnableToCheckIn: for a desk name that cannot be shown (see `common.text.one_line_label`).
    """
    try:
        desk = one_line_label(desk, limit=DESK_MAX_LENGTH, blank_ok=True)
    except UnusableLabel as exc:
        raise UnableToCheckIn(f"the desk name cannot be recorded ({exc.problem})") from None
    code = documents.without_separators(code).upper()
    inner = documents.without_separators(card_number)
    if not code:
        raise UnableToCheckIn("nothing was scanned")
    if inner:
        try:
            inner = documents.normalize_card_number(inner)
        except documents.InvalidDocument:
            raise MisreadCode("the card number of the card inside is not one we issue") from None
    case = card = None
    reason = None
    label_match, reference_match = LABEL.match(code), REFERENCE.match(code)
    if reference_match:
        if not inner:
            raise ReferenceNeedsCard("a case reference checks a card in only with the card's number")
        year, seq = reference_match.groups()
        case = ClosureCase.objects.select_related("card").filter(reference=f"CL-{year}-{seq}").first()
        if case is None:
            reason = ReturnException.Reason.UNKNOWN
        else:
            card = case.card
    elif label_match:
        if documents.luhn_check_digit(code[2:-1]) != code[-1]:
            raise MisreadCode("the label code's check digit is wrong")
        label = ReturnLabel.objects.select_related("case__card").filter(code=code).first()
        if label is None:
            reason = ReturnException.Reason.UNKNOWN
        else:
            case, card = label.case, label.case.card
    else:
        try:
            number = documents.normalize_card_number(code)
        except documents.InvalidDocument:
            raise MisreadCode("neither a label code nor a card number") from None
        card = Card.objects.filter(number=number).first()
        if card is None:
            reason = ReturnException.Reason.UNKNOWN
        else:
            case = (ClosureCase.objects.filter(card=card).exclude(state__in=states.TERMINAL).first()
                    or ClosureCase.objects.filter(card=card).order_by("-created_at").first())
    if card is not None and inner and inner != card.number:  # the card in the envelope is another one
        reason = ReturnException.Reason.MISMATCH
    if case is None and reason is None:
        reason = ReturnException.Reason.NOT_EXPECTED
    # What the warehouse now holds, traced and in the end kept or destroyed: the card inside when
    # its number was scanned (unknown to us: none), else the card the scan stands for.
    in_hand = (card if card is not None and inner == card.number else Card.objects.filter(number=inner).first()
               ) if inner else card
    # Two scans of one envelope at once (a second Enter, two desks) wait for each other here, so
    # the second finds the first's check-in instead of recording the card again. A scan with
    # nothing to lock (an unknown label or card) is kept from being queued twice by a constraint.
    with transaction.atomic():
        if case is not None:
            case = ClosureCase.objects.select_for_update(of=("self",)).select_related("card").get(id=case.id)
        elif in_hand is not None:
            Card.objects.select_for_update().filter(id=in_hand.id).first()
        earlier = _earlier_check_in(case=case, card=card, code=code, inner=inner, reason=reason)
        if earlier is None and reason is None and case.state != states.AWAITING_RETURN:
            reason = ReturnException.Reason.NOT_EXPECTED
            earlier = _earlier_check_in(case=case, card=card, code=code, inner=inner, reason=reason)
        if earlier is not None:
            earlier.again = True  # the scanner is told it was scanned before, not that it is new
            return earlier
        outcome = CheckIn.Outcome.EXCEPTION if reason else CheckIn.Outcome.RECEIVED
        if reason:
            try:
                with transaction.atomic():
                    checkin = CheckIn.objects.create(at=clock.now(), staff=actor, desk=desk,
                                                     scanned_masked=_mask(code), case=case, card=in_hand,
                                                     outcome=outcome)
                    ReturnException.objects.create(checkin=checkin, reason=reason, scanned_code=code[:40],
                                                   card_number=(inner or (card.number if card else ""))[:20],
                                                   case=case)
            except IntegrityError:
                # A scan nothing could lock (an unknown label or card) queued at another desk a moment
                # ago: the one-open-exception-per-scan constraint kept it out; answer with that one.
                earlier = _earlier_check_in(case=case, card=card, code=code, inner=inner, reason=reason)
                if earlier is None:
                    raise
                earlier.again = True
                return earlier
            audit_record(actor=actor, action="return.exception", subject=case.reference if case else "unknown",
                         reason=reason, data={"desk": desk} if desk else None)
        else:
            checkin = CheckIn.objects.create(at=clock.now(), staff=actor, desk=desk, scanned_masked=_mask(code),
                                             case=case, card=in_hand, outcome=outcome)
            closures.closure_card_received(reference=case.reference, actor=actor, note="card checked in at the warehouse")
    return checkin


def return_reported(*, reference: str, actor: str, note: str = "") -> ClosureCase:
    """The operator's own warehouse system reports the card of `reference` received (the API's
    card-received): the case moves on as for a scan at a desk, and the card is checked in with
    it, so that it is traced, listed for destruction or kept like any card the warehouse holds.
    A repeated report changes nothing.

    :raises IllegalTransition: when the case is not waiting for its card.
    """
    with transaction.atomic():
        waiting = ClosureCase.objects.select_for_update(of=("self",)).filter(
            reference=reference, state=states.AWAITING_RETURN).exists()
        case = closures.closure_card_received(reference=reference, actor=actor, note=note)
        if waiting:
            CheckIn.objects.create(at=clock.now(), staff=actor, scanned_masked=_mask(case.card.number), case=case,
                                   card=case.card, outcome=CheckIn.Outcome.RECEIVED)
    return case


def _earlier_check_in(*, case: ClosureCase | None, card: Card | None, code: str, inner: str,
                      reason: str | None) -> CheckIn | None:
    """The check-in of this card made before: the one that received it for its case, or the one
    that put this same scan in the exception queue where it still waits."""
    if reason is None:
        return CheckIn.objects.filter(case=case, outcome=CheckIn.Outcome.RECEIVED).first()
    queued = ReturnException.objects.select_related("checkin__case").filter(
        resolved_at__isnull=True, reason=reason, scanned_code=code[:40],
        card_number=(inner or (card.number if card else ""))[:20]).first()
    return queued.checkin if queued is not None else None


def return_exception_resolve(*, exception_id: int, actor: str, resolution: str, reference: str = "") -> ReturnException:
    """Close an exception with what was done; naming a case waiting for the card checks it in.

    :raises NotTheCasesCard: when the card in hand is known and is another card than the case's.
    :raises UnableToResolve: for a resolved or unknown exception, no resolution text, or a named
        case that is not waiting for a card.
    """
    resolution = (resolution or "").strip()
    if not resolution:
        raise UnableToResolve("describe what was done")
    with transaction.atomic():
        item = ReturnException.objects.select_for_update().filter(id=exception_id).first()
        if item is None or item.resolved_at is not None:
            raise UnableToResolve("this exception is not open")
        if reference:
            case = ClosureCase.objects.filter(reference=reference.strip().upper()).first()
            if case is None or case.state != states.AWAITING_RETURN:
                raise UnableToResolve("that case is not waiting for a card")
            # The card in hand, where the scan read it (off the card, or the label stood for it). A
            # torn label with no card number read is matched by what staff find in the envelope.
            # (`card_number` is the card inside where it was read, else the label's; check-ins made
            # before they recorded the card inside hold the label's card.)
            in_hand = item.card_number or (item.checkin.card.number if item.checkin.card_id else "")
            if in_hand and in_hand != case.card.number:
                raise NotTheCasesCard(in_hand=in_hand, reference=case.reference)
            closures.closure_card_received(reference=case.reference, actor=actor,
                                           note="card matched from the exception queue")
            CheckIn.objects.create(at=clock.now(), staff=actor, desk=item.checkin.desk,
                                   scanned_masked=item.checkin.scanned_masked, case=case, card=case.card,
                                   outcome=CheckIn.Outcome.RECEIVED)
            item.case = case
        _exception_resolved(item, actor=actor, resolution=resolution)
    return item


def _exception_resolved(item: ReturnException, *, actor: str, resolution: str) -> None:
    """Close a locked open exception with what was done, and audit it."""
    item.resolved_at = clock.now()
    item.resolved_by = actor
    item.resolution = resolution[:300]
    item.save()
    audit_record(actor=actor, action="return.exception_resolved", subject=item.case.reference if item.case else
                 "unknown", reason=resolution[:300])


def card_destruction_record(*, card: Card, method: str, batch: str, place: str, actor: str,
                            case: ClosureCase | None = None, witness: str = "") -> Destruction:
    """Record that a physical card was destroyed (once per card), and by whom it was witnessed.

    :raises UnableToDestroy: for an unknown method, an empty batch or a card already destroyed.
    """
    if method not in Destruction.Method.values:
        raise UnableToDestroy("unknown destruction method")
    batch = (batch or "").strip()
    if not batch:
        raise UnableToDestroy("a batch is required")
    with transaction.atomic():
        if Destruction.objects.filter(card=card).exists():
            raise UnableToDestroy("this card was already destroyed")
        record = Destruction.objects.create(card=card, case=case, method=method, batch=batch[:40],
                                            place=place[:60], destroyed_by=actor, witnessed_by=witness,
                                            destroyed_at=clock.now())
        audit_record(actor=actor, action="card.destroyed", subject=f"card:{card.id}", after=method,
                     reason=batch[:40], data={"case": case.reference if case else "", "place": place[:60],
                                              "witness": witness})
    return record


def destruction_batch(*, checkin_ids: list[int], method: str, batch: str, actor: str,
                      witness: str) -> list[Destruction]:
    """Destroy the cards of received check-ins in one batch, watched by a second member of staff.

    :raises CardToKeep: when one of the cards is to be kept for the customer (none are recorded).
    :raises UnableToDestroy: without a witness other than `actor`, or when one of the cards cannot
        be recorded (none are then recorded).
    """
    if not witness or witness == actor:
        raise UnableToDestroy("a second member of staff witnesses the destruction")
    with transaction.atomic():
        records = []
        # The cases are locked: a withdrawal committed while the batch is recorded is seen here.
        checkins = list(CheckIn.objects.select_related("card", "case").filter(
            id__in=checkin_ids, outcome=CheckIn.Outcome.RECEIVED).order_by("id"))
        locked = ClosureCase.objects.select_for_update().filter(id__in=[c.case_id for c in checkins if c.case_id])
        cases = {case.id: case for case in locked.order_by("id")}
        for checkin in checkins:
            checkin.case = cases.get(checkin.case_id)
            if checkin.card is not None:
                checkin.card.refresh_from_db(fields=["status"])
            reference = checkin.case.reference if checkin.case else ""
            if HandBack.objects.filter(checkin=checkin).exists():
                raise CardHandedBack(reference)
            if not return_selectors.may_destroy(checkin):
                raise CardToKeep(reference)
            records.append(card_destruction_record(card=checkin.card, case=checkin.case, method=method, batch=batch,
                                                   place="warehouse", actor=actor, witness=witness))
        if not records:
            raise UnableToDestroy("select at least one received card")
    return records


class UnableToHandBack(Exception):
    """The card cannot be recorded as handed back (the message says why): nothing is recorded."""


class CardNotToHandBack(UnableToHandBack):
    """The card's closure still needs it: it may be destroyed (`may_destroy`), or its closure may
    still go on (on hold, or the refund not started), so it stays on the shelf."""

    def __init__(self, reference: str, *, may_destroy: bool):
        why = "may be destroyed" if may_destroy else "may still be needed by its closure"
        super().__init__(f"the card of {reference or 'a check-in without a case'} {why}: it is not handed back")
        self.reference, self.may_destroy = reference, may_destroy


class CardHandedBackAlready(UnableToHandBack):
    """The card received was handed back before: `earlier` is that record."""

    def __init__(self, earlier: HandBack):
        super().__init__(f"this card was already handed back on {earlier.handed_back_at:%Y-%m-%d}")
        self.earlier = earlier


class TrackingRefNeeded(UnableToHandBack):
    """A card posted back needs the carrier's tracking reference (one collected at a counter has none)."""


class CardAwaited(CardNotToHandBack):
    """A closure waits for the card in the exception queue: it is matched to its case (resolving
    the exception with the case named), not handed back."""

    def __init__(self, reference: str):
        UnableToHandBack.__init__(self, f"case {reference} is waiting for this card: match it to its case")
        self.reference, self.may_destroy = reference, False


class UnknownCardInHand(UnableToHandBack):
    """The card of an exception is not one of ours, or its number was not read: there is nobody
    to hand it back to."""


class ExceptionNotOpen(UnableToHandBack):
    """The exception is unknown or was resolved meanwhile, not by handing its card back."""


# The case's timeline says how the card went back: the customer's copy and the API show it.
HAND_BACK_NOTES = {HandBack.Method.POST: "card posted back to the holder (tracking {tracking_ref})",
                   HandBack.Method.COUNTER: "card collected at a branch counter"}


def _hand_back_note(record: HandBack) -> str:
    return HAND_BACK_NOTES[record.method].format(tracking_ref=record.tracking_ref)


def _typed(text: str, *, limit: int, what: str) -> str:
    """Text a member of staff typed, on one line, or "" when blank.

    :raises UnableToHandBack: when it is too long or holds control characters.
    """
    try:
        return one_line_label(text, limit=limit, blank_ok=True)
    except UnusableLabel as exc:
        raise UnableToHandBack(f"the {what} cannot be recorded ({exc.problem})") from None


def card_hand_back(*, checkin_id: int, method: str, actor: str, tracking_ref: str = "", note: str = "",
                   desk: str = "") -> HandBack:
    """Record that the card of a received check-in, kept for the customer, went back to its holder:
    posted back with the carrier's tracking reference, or collected at a branch counter. The card
    leaves the warehouse's list; the audit trail and the case's timeline record it, and the holder
    is told by email and SMS once it commits (`notifications.services.notice_card_handed_back`).

    :raises CardHandedBackAlready: when this card received was handed back before.
    :raises CardNotToHandBack: when the card may be destroyed, or its closure may still need it.
    :raises TrackingRefNeeded: for a card posted back without a tracking reference.
    :raises UnableToHandBack: for an unknown way, a tracking reference for a card collected at a
        counter, unusable text, an unknown check-in or one that received no card, or a card
        destroyed already.
    """
    details = _hand_back_details(method=method, tracking_ref=tracking_ref, note=note, desk=desk)
    with transaction.atomic():
        checkin = _checkin_to_hand_back(checkin_id)
        record = _hand_back_create(checkin=checkin, card=checkin.card, case=checkin.case, actor=actor, **details)
        _hand_back_recorded(record, actor=actor)
    return record


def _hand_back_details(*, method: str, tracking_ref: str, note: str, desk: str) -> dict[str, str]:
    """How the card went back, as typed, checked before anything is locked.

    :raises TrackingRefNeeded: for a card posted back without a tracking reference.
    :raises UnableToHandBack: for an unknown way, a tracking reference for a card collected at a
        counter, or unusable text.
    """
    if method not in HandBack.Method.values:
        raise UnableToHandBack("unknown way of handing the card back")
    tracking_ref = _typed(tracking_ref, limit=TRACKING_REF_MAX_LENGTH, what="tracking reference")
    if method == HandBack.Method.POST and not tracking_ref:
        raise TrackingRefNeeded("a card posted back needs the carrier's tracking reference")
    if method == HandBack.Method.COUNTER and tracking_ref:
        raise UnableToHandBack("a card collected at a counter has no tracking reference")
    return {"method": method, "tracking_ref": tracking_ref,
            "note": _typed(note, limit=HAND_BACK_NOTE_MAX_LENGTH, what="note"),
            "desk": _typed(desk, limit=DESK_MAX_LENGTH, what="desk name")}


def _hand_back_create(*, checkin: CheckIn, card: Card, case: ClosureCase | None, actor: str, method: str,
                      tracking_ref: str, note: str, desk: str) -> HandBack:
    """The hand-back record of the card of `checkin` (the physical card on the shelf).

    :raises CardHandedBackAlready: when another desk recorded it a moment ago.
    """
    try:
        with transaction.atomic():
            return HandBack.objects.create(checkin=checkin, card=card, case=case, method=method,
                                           tracking_ref=tracking_ref, note=note, handed_back_by=actor, desk=desk,
                                           handed_back_at=clock.now())
    except IntegrityError:
        raise CardHandedBackAlready(HandBack.objects.get(checkin=checkin)) from None


def _checkin_to_hand_back(checkin_id: int) -> CheckIn:
    """The received check-in, its case and card locked (a withdrawal, a destruction batch or another
    desk's hand-back committed meanwhile is seen here), checked to be one to hand back.

    :raises UnableToHandBack: see `card_hand_back`.
    """
    checkin = CheckIn.objects.filter(id=checkin_id, outcome=CheckIn.Outcome.RECEIVED, card__isnull=False).first()
    if checkin is None:
        raise UnableToHandBack("no card was received with this check-in")
    if checkin.case_id:
        checkin.case = ClosureCase.objects.select_for_update(of=("self",)).get(id=checkin.case_id)
    checkin.card = Card.objects.select_for_update().get(id=checkin.card_id)
    earlier = HandBack.objects.filter(checkin=checkin).first()
    if earlier is not None:
        raise CardHandedBackAlready(earlier)
    if Destruction.objects.filter(card=checkin.card).exists():
        raise UnableToHandBack("this card was destroyed")
    if not return_selectors.may_hand_back(checkin):
        reference = checkin.case.reference if checkin.case else ""
        raise CardNotToHandBack(reference, may_destroy=return_selectors.may_destroy(checkin))
    return checkin


def _hand_back_recorded(record: HandBack, *, actor: str) -> None:
    """The audit event of a hand-back, for a case the event on its timeline, and the holder's
    notice (sent once the hand-back commits). The note staff typed stays on the record only: the
    audit trail cannot be shredded with the holder's data, and the customer is told how and when,
    not what the warehouse wrote down."""
    from closeout.notifications.services import notice_card_handed_back

    case = record.case
    audit_record(actor=actor, action="card.handed_back", subject=f"card:{record.card_id}", after=record.method,
                 reason=record.tracking_ref, data={"case": case.reference if case else "", "checkin": record.checkin_id,
                                                   "desk": record.desk})
    if case is not None:
        CaseEvent.objects.create(case=case, key=f"hand_back:{record.checkin_id}", at=record.handed_back_at,
                                 actor=actor, from_state=case.state, to_state=case.state,
                                 note=_hand_back_note(record),
                                 data={"method": record.method})
    notice_card_handed_back(hand_back=record)


def return_exception_hand_back(*, exception_id: int, method: str, actor: str, tracking_ref: str = "",
                               note: str = "", desk: str = "") -> HandBack:
    """Record that the card of an open exception went back to its holder, and resolve the exception
    with it, all in one transaction: a card the warehouse did not expect (its closure withdrawn
    before it arrived, or none asked for) is the holder's, and would otherwise wait in the queue
    until someone typed what became of it. The hand-back is recorded and audited as for a card
    received (`card_hand_back`), against the card's own case, and the holder is told as for it; the
    exception's resolution says how the card went back.

    :raises CardAwaited: when a closure waits for the card (it is matched to its case instead).
    :raises CardHandedBackAlready: when the exception's card was handed back before.
    :raises CardNotToHandBack: when a closure is still going on for the card, or it may be destroyed.
    :raises ExceptionNotOpen: for an unknown exception or one resolved otherwise.
    :raises TrackingRefNeeded: for a card posted back without a tracking reference.
    :raises UnknownCardInHand: when the card in hand is not one of ours (or was not read).
    :raises UnableToHandBack: for an unknown way, a tracking reference for a card collected at a
        counter, unusable text, or a card destroyed already.
    """
    details = _hand_back_details(method=method, tracking_ref=tracking_ref, note=note, desk=desk)
    with transaction.atomic():
        item, card, case = _exception_to_hand_back(exception_id)
        record = _hand_back_create(checkin=item.checkin, card=card, case=case, actor=actor, **details)
        _hand_back_recorded(record, actor=actor)
        _exception_resolved(item, actor=actor, resolution="handed back: " + _hand_back_note(record))
    return record


def _exception_to_hand_back(exception_id: int) -> tuple[ReturnException, Card, ClosureCase | None]:
    """The open exception and its card, both locked, and the card's own case, checked to be one to
    hand back. The card's lock keeps a new closure of it from starting meanwhile; a closure of it
    stopped meanwhile (withdrawn, rejected) only makes this refuse.

    :raises UnableToHandBack: see `return_exception_hand_back`.
    """
    item = ReturnException.objects.select_for_update().filter(id=exception_id).first()
    if item is None:
        raise ExceptionNotOpen("there is no such exception")
    if item.resolved_at is not None:
        earlier = HandBack.objects.filter(checkin_id=item.checkin_id).first()
        if earlier is not None:
            raise CardHandedBackAlready(earlier)
        raise ExceptionNotOpen("this exception was resolved already")
    card = return_selectors.exception_card(item)
    if card is None:
        raise UnknownCardInHand("the card in hand is not one of ours: there is nobody to hand it back to")
    card = Card.objects.select_for_update().get(id=card.id)
    if Destruction.objects.filter(card=card).exists():
        raise UnableToHandBack("this card was destroyed")
    case = return_selectors.card_own_case(card)
    if case is not None and case.state == states.AWAITING_RETURN:
        raise CardAwaited(case.reference)
    if not return_selectors.may_hand_back_unexpected(card, case):
        may_destroy = rules.card_may_be_destroyed(case_state=case.state if case else None,
                                                  resume_to=case.resume_to if case else "",
                                                  card_in_use=card.status == Card.Status.ACTIVE)
        raise CardNotToHandBack(case.reference if case else "", may_destroy=may_destroy)
    return item, card, case

"""Every write to a closure case. Each service owns its transaction; each transition writes the
new state, a timeline event, an audit event and the case's next action in that transaction, and
the action is handed to the workflow engine only after commit."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from datetime import date, datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from closeout.audit.services import audit_record
from closeout.cards.models import Card, CardCharge
from closeout.catalog import rules
from closeout.closures import dispatch, states
from closeout.closures.models import CaseEvent, ClosureCase, ReferenceCounter, Refund, RefundApproval
from closeout.common import calendars, clock
from closeout.common.fastinsert import increment, insert_one
from closeout.common.money import Money
from closeout.identity import documents, vault
from closeout.integrations.card_system.hotlist import hotlist_add
from closeout.integrations.models import EsimDeletionProof, UnbindDelivery
from closeout.integrations.smdp import port as smdp
from closeout.ledger import services as ledger
from closeout.suppression.services import suppression_add_for_holder

log = logging.getLogger(__name__)

AUTO = object()
RETURN_DEADLINE = timedelta(days=30)


def sla_due(product, start: datetime) -> date:
    """The day a closure is due: the product's working days on from the local date of `start`.

    Counted from the operator's calendar day, not the UTC one: a case opened at 07:00 in Hong Kong
    is still the previous day in UTC and would otherwise come due a day early.
    """
    return calendars.add_working_days(timezone.localdate(start), product.sla_working_days, product.calendar)


def return_deadline(start, calendar: str):
    """When a card to post back must have arrived: 30 days on, moved to the next working day when
    that day is a weekend or public holiday (nobody receives post then)."""
    deadline = start + RETURN_DEADLINE
    while not calendars.is_working_day(timezone.localdate(deadline), calendar):
        deadline += timedelta(days=1)
    return deadline
REFUND_POLL = timedelta(seconds=5)
REFUND_POLL_CAP = timedelta(hours=1)
DESTINATION_TYPES = ("original", "bank", "ewallet", "cash")
ATTENTION_ESIM = "eSIM profile not deleted in time"
UNBIND_ROUNDS = 12  # unbind attempts per partner before staff look at it (again after each resume)
UNBIND_BACKOFF_CAP = timedelta(hours=1)


def esim_deletion_wait() -> timedelta:
    return timedelta(seconds=getattr(settings, "ESIM_DELETION_WAIT_SECONDS", 7 * 86400))


def unbind_backoff(attempts: int) -> timedelta:
    """Wait before the next unbind round: base·2^(n-1), at most an hour."""
    base = getattr(settings, "UNBIND_RETRY_BASE_SECONDS", 30)
    return min(timedelta(seconds=base * 2 ** max(0, attempts - 1)), UNBIND_BACKOFF_CAP)


class UnableToCloseCard(Exception):
    """Base of the errors a closure request can raise."""


class IdentityNotVerified(UnableToCloseCard):
    """The card number and ID document do not belong together (or the card is unknown: same error)."""


class CaseAlreadyOpen(UnableToCloseCard):
    def __init__(self, reference: str):
        super().__init__(f"closure {reference} is already open for this card")
        self.reference = reference


class CardNotClosable(UnableToCloseCard):
    """The card is not active (already closed or blocked)."""


class ChannelNotAllowed(UnableToCloseCard):
    """The card's product does not take closure requests through this channel."""

    def __init__(self, channel: str):
        super().__init__(f"this product does not take closure requests through {channel}")
        self.channel = channel


def channel_allowed(product, channel: str) -> bool:
    """Whether `product` takes closure requests through `channel`. A product that names no channels
    takes them all; a bulk closure is the operator's own decision and always allowed."""
    return channel == ClosureCase.Channel.BULK or not product.allowed_channels or channel in product.allowed_channels


class InvalidDestination(UnableToCloseCard):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class CaseNotFound(Exception):
    pass


class UnableToHandOver(Exception):
    pass


class UnableToApprove(Exception):
    """The refund cannot be approved or rejected by this person or in this state."""


class OwnRefundRequest(UnableToApprove):
    """The approver asked for this refund: they opened the case or put the refund back in the queue."""


class ApprovalOutdated(UnableToApprove):
    """The refund is not the one the approver read: its amount or destination changed, or it was
    asked for again (after a rejection) since their page was shown."""


class UnableToOverride(Exception):
    """Staff may waive the eSIM deletion only after the wait timed out, and only with a reason."""


# --- reads used by the services --------------------------------------------------------------


def card_balances(card: Card) -> tuple[Money, Money]:
    value, deposit = ledger.account_balances(
        [ledger.card_value_account(card.id), ledger.card_deposit_account(card.id)], card.product.currency
    )
    return value, deposit


def card_plan(card: Card, now) -> rules.Plan | None:
    if not card.plan_ends_at or not card.plan_starts_at:
        return None
    total = max(1, (card.plan_ends_at - card.plan_starts_at).days)
    remaining = max(0, min(total, (card.plan_ends_at - now).days))
    return rules.Plan(
        price=Money(card.plan_price_minor, card.product.currency), total_days=total, remaining_days=remaining,
        total_data_mb=card.plan_data_mb, remaining_data_mb=max(0, card.plan_data_mb - card.plan_data_used_mb),
    )


def quote_for_card(card: Card, now=None, balances: tuple[Money, Money] | None = None) -> rules.Quote:
    """Compute the card's quote from the ledger (or the `card_balances` already read), its open
    charges and its plan."""
    now = now or clock.now()
    balance, deposit = balances or card_balances(card)
    outstanding = tuple(
        rules.Outstanding(code=c.code, amount=c.amount, reason=c.reason)
        for c in card.charges.filter(settled_at__isnull=True).order_by("id")
    )
    facts = rules.QuoteFacts(
        balance=balance, deposit=deposit, issued_at=card.issued_at, transaction_count=card.transaction_count,
        last_used_at=card.last_used_at, outstanding=outstanding, plan=card_plan(card, now),
    )
    return rules.quote(policy=card.product.policy.rules, facts=facts, now=now)


def identity_check(*, card_number: str, id_type: str, id_number: str) -> Card:
    """Return the card when the ID document is the holder's.

    An unknown card and a wrong ID raise the same error after the same work, so the answer
    cannot be used to find out which card numbers exist.

    :raises documents.InvalidDocument: for malformed input (names the field).
    :raises IdentityNotVerified: for an unknown card or a non-matching ID.
    """
    number = documents.normalize_card_number(card_number)
    id_number = documents.normalize_id_number(id_type, id_number)
    wanted = vault.lookup_hash("id", f"{id_type}:{id_number}")
    card = Card.objects.select_related("holder", "product__policy").filter(number=number).first()
    stored = card.holder.id_hash if card else "0" * 64
    if not hmac.compare_digest(stored, wanted) or card is None:
        raise IdentityNotVerified("card and ID document do not match")
    return card


def references_take(now, count: int = 1) -> list[str]:
    """Take the year's next `count` case references (the counter stays locked until commit)."""
    (last,) = increment(ReferenceCounter, now.year, "last", count)
    return [f"CL-{now.year}-{n:06d}" for n in range(last - count + 1, last + 1)]


def _locked_again(card: Card) -> Card:
    """Re-read the card under a lock, keeping the product and holder the caller already loaded."""
    locked = Card.objects.select_for_update().get(id=card.id)
    for name in ("product", "holder"):
        field = Card._meta.get_field(name)
        if field.is_cached(card):
            field.set_cached_value(locked, field.get_cached_value(card))
    return locked


def _lock(reference: str) -> ClosureCase:
    try:
        # Lock the case row only: without `of`, PostgreSQL would also lock the joined card and
        # product rows, and every case of one product would queue behind each other.
        return (ClosureCase.objects.select_for_update(of=("self",)).select_related("card__product")
                .get(reference=reference))
    except ClosureCase.DoesNotExist:
        raise CaseNotFound(reference)


def _workflow_id(case: ClosureCase, action: str) -> str:
    runs = dict(case.action_runs)
    runs[action] = runs.get(action, 0) + 1
    case.action_runs = runs
    return f"{case.reference}:{action}" if runs[action] == 1 else f"{case.reference}:{action}:{runs[action]}"


# States the holder is told of as the case reaches them (besides the receipt, sent as the case is
# verified, and the portal's own notice of a withdrawal). Cases of a bulk closure are told nothing:
# dormant cards' contacts are years old, and the operator announces such a closure itself.
TOLD_STATES = (states.REFUNDED, states.CLOSED, states.REJECTED)


def _transition(case: ClosureCase, target: str, *, actor: str, key: str, note: str = "", data=None,
                action=AUTO, due_in: timedelta | None = None) -> CaseEvent | None:
    """Move a locked case to `target`. A replayed key returns None and changes nothing.

    :raises states.IllegalTransition: when the state machine does not allow it.
    """
    # A case not written yet has no events: its first transition writes it (one INSERT, no UPDATE).
    if case.pk is not None and CaseEvent.objects.filter(case=case, key=key).exists():
        return None
    states.check_transition(case.state, target, resume_to=case.resume_to or None)
    now = clock.now()
    before = case.state
    if target in (states.ON_HOLD, states.FAILED):
        if before not in (states.ON_HOLD, states.FAILED):
            case.resume_to = before
    else:
        case.resume_to = ""
        case.attention_reason = ""
    case.state = target
    case.updated_at = now
    if target == states.CLOSED:
        case.closed_at = now
    if action is AUTO:
        action = states.ACTION_FOR_STATE.get(target, "")
    if action:
        case.next_action = action
        case.next_action_id = _workflow_id(case, action)
        case.next_action_due_at = now + (due_in or timedelta(0))
    else:
        case.next_action = case.next_action_id = ""
        case.next_action_due_at = None
    if case.pk is None:
        insert_one(case)
    else:
        case.save()
    event = CaseEvent(case=case, key=key, at=now, actor=actor, from_state=before, to_state=target, note=note,
                      data=data or {})
    insert_one(event)
    audit_record(actor=actor, action="closure.transition", subject=case.reference, before=before, after=target,
                 reason=note, data=data or {})
    transaction.on_commit(partial(_log_transition, case.reference, before, target, actor, case.next_action))
    if target in TOLD_STATES and case.channel != ClosureCase.Channel.BULK:
        from closeout.notifications.services import notice_case_state

        notice_case_state(case=case, key=f"{case.reference}:{target}")
    if action and not due_in:
        dispatch.wake_pump_on_commit()
    return event


def _log_transition(reference: str, before: str, target: str, actor: str, action: str) -> None:
    log.info("%s -> %s", before or "new", target,
             extra={"case": reference, "event": "transition", "from_state": before, "to_state": target,
                    "actor": actor, "next_action": action})


def _park(case: ClosureCase, *, key: str, note: str, attention: str, actor: str = "system", data=None) -> None:
    """Move a locked case to `failed_needs_attention`, with what staff should look at."""
    case.attention_reason = attention[:200]
    _transition(case, states.FAILED, actor=actor, key=key, note=note, data=data, action="")


def _card_status(card: Card, status: str, *, actor: str, reference: str) -> None:
    if card.status != status:
        audit_record(actor=actor, action="card.status", subject=f"card:{card.id}", before=card.status,
                     after=status, reason=reference)
        Card.objects.filter(id=card.id).update(status=status)
        card.status = status


# A Hong Kong clearing code ("004") or a SWIFT/BIC: 4 letters bank, 2 letters country, 2 location, 3 branch.
BANK_CODE = re.compile(r"[0-9]{3}|[A-Z]{6}[A-Z0-9]{2}(?:[A-Z0-9]{3})?")


def _destination(destination: dict, card: Card) -> tuple[dict, str]:
    """Return the shown (masked) destination and the sealed secret part."""
    kind = (destination or {}).get("type", "original")
    if kind not in DESTINATION_TYPES:
        raise InvalidDestination("refund_destination.type", "Refund destination must be original, bank, ewallet or cash.")
    if kind == "bank":
        account = documents.without_separators(str(destination.get("account_number", ""))).upper()
        if not re.fullmatch(r"[A-Z0-9]{6,34}", account):
            raise InvalidDestination("refund_destination.account_number", "Bank account number must be 6-34 letters or digits.")
        bank = documents.without_separators(str(destination.get("bank_code", ""))).upper()
        if not BANK_CODE.fullmatch(bank):
            raise InvalidDestination("refund_destination.bank_code",
                                     "Bank code must be the 3-digit clearing code or an 8 or 11 character SWIFT code.")
        sealed = vault.encrypt(card.holder.data_key, account, context="bank")
        return {"type": kind, "bank_code": bank, "account_masked": documents.mask_account(account)}, sealed
    if kind == "ewallet":
        wallet = documents.half_width(str(destination.get("wallet_id", ""))).strip()
        if not (3 <= len(wallet) <= 64):
            raise InvalidDestination("refund_destination.wallet_id", "E-wallet ID must be 3-64 characters.")
        provider = str(destination.get("provider", ""))[:20]
        sealed = vault.encrypt(card.holder.data_key, wallet, context="wallet")
        return {"type": kind, "provider": provider, "wallet_masked": documents.mask_account(wallet)}, sealed
    if kind == "original":
        return original_destination(card.original_payment_ref), ""
    return {"type": kind}, ""


def original_destination(payment_ref: str) -> dict:
    """A refund to the original payment, naming it when it is on record (a provider like Stripe
    refunds a named payment only)."""
    return {"type": "original", "payment_ref": payment_ref} if payment_ref else {"type": "original"}


# --- services ---------------------------------------------------------------------------------


def closure_request(*, card: Card, channel: str, requester: str, reason: str = "", refund_destination=None,
                    language: str = "en", channel_ref: str = "") -> ClosureCase:
    """Open a closure case for an identified card and submit it.

    :raises CaseAlreadyOpen: when the card already has an open case.
    :raises CardNotClosable: when the card is not active.
    :raises ChannelNotAllowed: when the card's product does not take requests through `channel`.
    :raises InvalidDestination: for a malformed refund destination.
    """
    if not channel_allowed(card.product, channel):
        raise ChannelNotAllowed(channel)
    destination, sealed = _destination(refund_destination or {}, card)
    now = clock.now()
    try:
        with transaction.atomic():
            card = _locked_again(card)
            if card.status != Card.Status.ACTIVE:  # a card with an open case is closing
                open_case = ClosureCase.objects.filter(card=card).exclude(state__in=states.TERMINAL).first()
                if open_case:
                    raise CaseAlreadyOpen(open_case.reference)
                raise CardNotClosable(f"card is {card.status}")
            quote = quote_for_card(card, now)
            product = card.product
            case = ClosureCase(
                reference=references_take(now)[0], card=card, channel=channel, channel_ref=channel_ref,
                requester=requester, reason=reason[:200], language=language, refund_destination=destination,
                refund_destination_sealed=sealed, quote=quote.as_json(), state=states.DRAFT,
                sla_due_date=sla_due(product, now),
                created_at=now, updated_at=now,
            )
            _card_status(card, Card.Status.CLOSING, actor=requester, reference=case.reference)
            # From this moment on, no marketing reaches the holder (service notices still do).
            suppression_add_for_holder(holder=card.holder, case_reference=case.reference)
            _transition(case, states.SUBMITTED, actor=requester, key="submit", note=f"requested via {channel}",
                        data={"channel": channel})
    except IntegrityError:
        # Another request for the same card won the race on the one-open-case constraint.
        open_case = ClosureCase.objects.filter(card_id=card.id).exclude(state__in=states.TERMINAL).first()
        if open_case:
            raise CaseAlreadyOpen(open_case.reference)
        raise
    return case


def closure_verify(*, reference: str, workflow_id: str) -> str:
    """Record that the card system knows the card and the identity was matched at request, and
    send the holder the receipt (once: the portal may have sent it already; bulk cases get
    none)."""
    with transaction.atomic():
        case = _lock(reference)
        if _transition(case, states.VERIFIED, actor="system", key=f"{workflow_id}:verified",
                       note="identity and card checked") and case.channel != ClosureCase.Channel.BULK:
            from closeout.notifications.services import notice_receipt

            notice_receipt(case=case)
            if case.channel != ClosureCase.Channel.BRANCH:
                _branch_visits_cancel(case)
        return case.state


def _branch_visits_cancel(case: ClosureCase) -> None:
    """A closure requested another way frees the counter the customer had booked for it (here, in
    the worker, rather than on the request's path)."""
    from closeout.appointments.models import Appointment
    from closeout.appointments.services import appointment_cancel

    for appointment_id in Appointment.objects.filter(card_id=case.card_id, status=Appointment.Status.BOOKED
                                                     ).values_list("id", flat=True):
        appointment_cancel(appointment_id=appointment_id, actor="system",
                           reason=f"closure {case.reference} requested via {case.channel}")


def closure_settle(*, reference: str, workflow_id: str) -> str:
    """Settle the account: deduct fees in the ledger and move what is owed to refunds payable.

    With debts the refund cannot cover the case waits in `verified` for a payment or a waiver.
    """
    with transaction.atomic():
        case = _lock(reference)
        if case.next_action_id != workflow_id:
            return case.state
        card = Card.objects.select_related("product__policy").get(id=case.card_id)
        balances = card_balances(card)
        quote = quote_for_card(card, balances=balances)
        case.quote = quote.as_json()
        if quote.uncovered.minor > 0:
            case.next_action = case.next_action_id = ""
            case.next_action_due_at = None
            case.save()
            CaseEvent.objects.get_or_create(
                case=case, key=f"{workflow_id}:waiting_payment",
                defaults=dict(at=clock.now(), actor="system", from_state=case.state, to_state=case.state,
                              note=f"waiting for payment of {quote.uncovered.format()}"),
            )
            return case.state
        _post_settlement(case, card, quote, balances)
        CardCharge.objects.filter(card=card, settled_at__isnull=True).update(
            settled_at=clock.now(), settled_how="deducted", settled_note=reference)
        _transition(case, states.SETTLED, actor="system", key=f"{workflow_id}:settled", note="fees settled",
                    action="")
        if card.product.physical_return_required and card.physical:
            case.deadline_at = return_deadline(clock.now(), card.product.calendar)
            _transition(case, states.AWAITING_RETURN, actor="system", key=f"{workflow_id}:awaiting_return",
                        note="waiting for the card to be returned")
        else:
            _enter_refund_pending(case, actor="system", key=f"{workflow_id}:refund_pending")
        return case.state


def return_label_order(*, reference: str, workflow_id: str) -> dict | None:
    """Return what the carrier is asked for, or None when the case no longer waits for a label;
    `handed_in` when the card was already taken at a branch counter, `at_branch` when it is about
    to be (the case was opened at a counter, or the customer booked a visit to hand it in): no
    carrier label to pay for either way."""
    from closeout.appointments.models import Appointment, CounterVisit

    case = ClosureCase.objects.get(reference=reference)
    if case.next_action_id != workflow_id or case.state != states.AWAITING_RETURN:
        return None
    at_branch = case.channel == ClosureCase.Channel.BRANCH or Appointment.objects.filter(
        card_id=case.card_id, status=Appointment.Status.BOOKED).exists()
    return {"reference": reference, "handed_in": CounterVisit.objects.filter(case=case, card_taken=True).exists(),
            "at_branch": at_branch}


def return_label_record(*, reference: str, workflow_id: str, label: dict | None, error: str = "",
                        handed_in: bool = False, at_branch: bool = False) -> str:
    """Keep the carrier's label (its tracking number on the warehouse label) and wait for the card.

    Without a carrier label (the carrier refused or stayed down) the case waits all the same: the
    customer prints closeout's own prepaid label from the status page, and the warehouse scans it.
    A card already handed in at a counter needs none (the sweep records it as received); one about
    to be handed in at a branch gets none either (should the customer post it after all, the status
    page still prints the prepaid label).
    """
    from closeout.returns.services import return_label_issue

    with transaction.atomic():
        case = _lock(reference)
        if case.next_action_id != workflow_id:
            return case.state
        if handed_in:
            note = "card handed in at a branch: no return label"
        elif at_branch:
            note = "card to be handed in at a branch: no carrier label"
        elif label:
            warehouse_label = return_label_issue(reference=reference)
            warehouse_label.tracking_ref = f"{label['carrier']} {label['tracking_number']}"[:80]
            warehouse_label.save(update_fields=["tracking_ref"])
            note = "return label from the carrier"
        else:
            return_label_issue(reference=reference)
            note = "no carrier label: the customer prints the prepaid label"
        _wait_without_action(case, key=f"{workflow_id}:labelled", note=note, audit_action="closure.return_label",
                             data={"label": label or {}, "error": error[:200]})
        return case.state


def _post_settlement(case: ClosureCase, card: Card, quote: rules.Quote, balances: tuple[Money, Money]) -> None:
    currency = quote.currency
    balance, deposit_held = balances
    fees = Money(sum(f.amount.minor for f in quote.fees), currency)
    forfeited = deposit_held - quote.deposit
    lines = [
        (ledger.card_value_account(card.id), balance),
        (ledger.card_deposit_account(card.id), deposit_held),
        ("income:plans", quote.plan_refund),
        (ledger.FEE_INCOME, -fees),
        ("income:forfeited_deposits", -forfeited),
        (ledger.refunds_payable_account(case.reference), -quote.refund),
    ]
    # The quote took only what was there; what is left of the balance beyond it stays with the card.
    ledger.ledger_post(key=f"{case.reference}:settle", lines=lines, memo="closure settlement",
                       subject=case.reference)


def refund_key(reference: str, attempt: int = 1) -> str:
    """The idempotency key of a case's refund: `<reference>:refund`, and `<reference>:refund:<n>`
    for the n-th request after the provider declined the ones before (`closure_resume`)."""
    return f"{reference}:refund" if attempt == 1 else f"{reference}:refund:{attempt}"


def refund_key_parts(key: str) -> tuple[str, int] | None:
    """(reference, attempt) of a refund idempotency key, or None for a key that is no refund's."""
    head, _, last = key.rpartition(":")
    if last == "refund":
        return head, 1
    reference, _, word = head.rpartition(":")
    if word == "refund" and last.isascii() and last.isdigit() and int(last) > 1:
        return reference, int(last)
    return None


def current_refund_key(case: ClosureCase) -> str:
    """The key the case's refund is asked (or polled) under now."""
    refund = Refund.objects.filter(case=case).only("idempotency_key").first()
    return refund.idempotency_key if refund else refund_key(case.reference)


def refund_order(*, reference: str, workflow_id: str) -> dict | None:
    """Return what the refund step must send, or None when the case no longer waits for it."""
    case = ClosureCase.objects.select_related("card").get(reference=reference)
    if case.next_action_id != workflow_id or case.state != states.REFUND_PENDING:
        return None
    if approval_required(case) and not RefundApproval.objects.filter(
            case=case, decision=RefundApproval.Decision.APPROVED).exists():
        return None  # never pay a refund that needs a second person before it has one
    return {
        "idempotency_key": current_refund_key(case),
        "amount": case.quote["refund"],
        "currency": case.quote["currency"],
        "destination": case.refund_destination,
        "cash": _paid_in_cash(case),  # handed over at a branch counter, not sent by the provider
    }


def _paid_in_cash(case: ClosureCase) -> bool:
    return case.refund_destination.get("type") == "cash"


def refund_record(*, reference: str, workflow_id: str, result: dict) -> str:
    """Record the provider's answer once: the Refund row is unique per case. `{"status":
    "cash_ready"}` is the workflow's own answer for a refund in cash, which then waits for the
    customer at a branch counter; a provider's answer is recorded as such whatever the destination
    (a cash refund sent to the provider by an earlier version was paid by it)."""
    with transaction.atomic():
        case = _lock(reference)
        if case.state != states.REFUND_PENDING or _answers_an_earlier_request(case, result):
            return case.state
        if result["status"] == CASH_READY_STATUS:
            if not _paid_in_cash(case):
                raise ValueError(f"{reference}: only a refund in cash waits at the counter")
            _await_cash_collection(case, workflow_id)
            return case.state
        refund, _ = Refund.objects.get_or_create(
            case=case,
            defaults=dict(
                idempotency_key=result.get("idempotency_key") or refund_key(reference), amount_minor=case.quote["refund"],
                currency=case.quote["currency"], destination_type=case.refund_destination.get("type", "original"),
                provider_ref=result.get("provider_ref", ""), status=result["status"], created_at=clock.now(),
            ),
        )
        refund.status = result["status"]
        refund.provider_ref = result.get("provider_ref", "") or refund.provider_ref
        refund.failure_reason = result.get("failure_reason", "")
        if result["status"] == "pending":
            refund.save()
            _wait_for_settlement(case, workflow_id)
            return case.state
        if result["status"] == "failed":
            refund.save()
            _park(case, key=f"{workflow_id}:failed", note=f"refund failed: {refund.failure_reason}"[:300],
                  attention="refund failed")
            return states.FAILED
        _refund_paid(case, refund, paid_from=ledger.CLEARING, actor="system", key=workflow_id)
        return case.state


def _answers_an_earlier_request(case: ClosureCase, result: dict) -> bool:
    """Whether `result` (naming its idempotency key, as the workflow and the webhooks do) answers a
    refund request the provider declined before the case asked again: the provider's late word on
    that one must not park the request now under way."""
    key = result.get("idempotency_key")
    return bool(key) and key != current_refund_key(case)


def _refund_ask_again(case: ClosureCase, *, actor: str) -> None:
    """Before a resumed refund: when the provider declined the last request, ask under a new key.

    The provider answers a key it has seen with its first answer, so the declined request's key
    would only be declined again. A request the provider itself says failed moved no money; one
    that failed without its word (no answer, no provider reference) may still be paid by it, and
    keeps its key.
    """
    refund = Refund.objects.select_for_update().filter(case=case).first()
    if refund is None or refund.status != Refund.Status.FAILED or not refund.provider_ref:
        return
    declined = refund.idempotency_key
    _, attempt = refund_key_parts(declined) or (case.reference, 1)
    refund.idempotency_key = refund_key(case.reference, attempt + 1)
    audit_record(actor=actor, action="closure.refund.retried", subject=case.reference, before=refund.status,
                 after=Refund.Status.PENDING, reason=refund.failure_reason,
                 data={"declined": declined, "provider_ref": refund.provider_ref,
                       "idempotency_key": refund.idempotency_key})
    refund.status = Refund.Status.PENDING
    refund.provider_ref = refund.failure_reason = ""
    refund.created_at = clock.now()
    refund.save()


def _refund_paid(case: ClosureCase, refund: Refund, *, paid_from: str, actor: str, key: str) -> None:
    """Settle a refund that went out of `paid_from` (the provider's clearing account, a branch
    till) and move the case on to deactivation."""
    refund.status = Refund.Status.SUCCEEDED
    refund.settled_at = clock.now()
    refund.save()
    money = Money(refund.amount_minor, refund.currency)
    ledger.ledger_post(
        key=f"{case.reference}:refund",
        lines=[(ledger.refunds_payable_account(case.reference), money), (paid_from, -money)],
        memo="refund paid", subject=case.reference,
    )
    _transition(case, states.REFUNDED, actor=actor, key=f"{key}:refunded",
                note=f"refunded {money.format()}", data={"provider_ref": refund.provider_ref}, action="")
    action = _deactivation_action(case)
    _transition(case, states.DEACTIVATING, actor="system", key=f"{key}:deactivating",
                note="blocking the card" if action == "deactivate" else "taking the number out of service",
                action=action)


def _await_cash_collection(case: ClosureCase, workflow_id: str) -> None:
    """Keep the refund for the customer to collect in cash: no next action until a clerk hands it
    over (`refund_cash_hand_over`); the customer is told once."""
    if not _wait_without_action(case, key=f"{workflow_id}:cash_ready", note=CASH_READY,
                                audit_action="closure.refund.cash_ready"):
        return
    Refund.objects.get_or_create(case=case, defaults=dict(
        idempotency_key=f"{case.reference}:refund", amount_minor=case.quote["refund"],
        currency=case.quote["currency"], destination_type="cash", status=Refund.Status.PENDING,
        created_at=clock.now()))
    from closeout.notifications.services import notice_cash_ready

    notice_cash_ready(case=case)


CASH_READY = "refund ready to collect in cash at a branch"
CASH_READY_STATUS = "cash_ready"


def cash_awaiting_collection(case: ClosureCase) -> Refund | None:
    """The case's cash refund while it waits at the counter, or None."""
    if case.state != states.REFUND_PENDING or not _paid_in_cash(case):
        return None
    return Refund.objects.filter(case=case, status=Refund.Status.PENDING, destination_type="cash",
                                 provider_ref="").first()  # not one the provider holds


def refund_cash_hand_over(*, reference: str, clerk: str, branch_code: str, id_type: str, id_number: str) -> ClosureCase:
    """Record that a clerk handed the cash refund to the holder, after checking the ID document
    against the one on file; the case then goes on to deactivation.

    :raises CaseNotFound: for an unknown reference.
    :raises documents.InvalidDocument: for a malformed ID number.
    :raises IdentityNotVerified: when the ID document is not the holder's.
    :raises UnableToHandOver: when no cash refund of this case waits for collection.
    """
    found = ClosureCase.objects.select_related("card").filter(reference=reference).first()
    if found is None:
        raise CaseNotFound(reference)
    try:
        identity_check(card_number=found.card.number, id_type=id_type, id_number=id_number)
    except IdentityNotVerified:
        audit_record(actor=clerk, action="closure.refund.cash_refused", subject=reference,
                     reason="ID document does not match the holder", data={"branch": branch_code})
        raise
    with transaction.atomic():
        case = ClosureCase.objects.select_for_update(of=("self",)).select_related(
            "card__holder", "card__product").get(id=found.id)
        refund = cash_awaiting_collection(case)
        if refund is None:
            raise UnableToHandOver(f"no cash refund waits for collection (case is {case.state})")
        refund.provider_ref = f"cash:{branch_code}"[:80]
        _refund_paid(case, refund, paid_from=ledger.branch_cash_account(branch_code, refund.currency), actor=clerk,
                     key=f"cash:{refund.id}")
        audit_record(actor=clerk, action="closure.refund.cash_handed_over", subject=reference,
                     data={"branch": branch_code, "amount": refund.amount_minor, "currency": refund.currency})
        return case


def _deactivation_action(case: ClosureCase) -> str:
    """Stored-value cards are blocked; a SIM's (or eSIM's) number is taken out of service."""
    return "deactivate" if case.card.product.kind == "stored_value" else "deactivate_number"


def _schedule(case: ClosureCase, action: str, *, key: str, note: str, due_in: timedelta | None = None,
              data=None) -> bool:
    """Give a case its next action without a state change; a replayed key does nothing."""
    if CaseEvent.objects.filter(case=case, key=key).exists():
        return False
    now = clock.now()
    case.next_action = action
    case.next_action_id = _workflow_id(case, action)
    case.next_action_due_at = now + (due_in or timedelta(0))
    case.save()
    CaseEvent.objects.create(case=case, key=key, at=now, actor="system", from_state=case.state,
                             to_state=case.state, note=note[:300], data=data or {})
    if not due_in:
        dispatch.wake_pump_on_commit()
    return True


def _wait_without_action(case: ClosureCase, *, key: str, note: str, audit_action: str, data=None) -> bool:
    """Leave a locked case in its state with no next action (it waits for a person: the customer
    at a counter, the card in the post); False for a replayed key, which does nothing."""
    if CaseEvent.objects.filter(case=case, key=key).exists():
        return False
    now = clock.now()
    case.next_action = case.next_action_id = ""
    case.next_action_due_at = None
    case.updated_at = now
    case.save()
    CaseEvent.objects.create(case=case, key=key, at=now, actor="system", from_state=case.state,
                             to_state=case.state, note=note, data=data or {})
    audit_record(actor="system", action=audit_action, subject=case.reference, before=case.state,
                 after=case.state, reason=note, data=data or {})
    return True


def _wait_for_settlement(case: ClosureCase, workflow_id: str) -> None:
    """Keep the case in refund_pending and poll the provider until the refund settles (its webhook
    may come first): soon at first, then ever less often, an hour apart at most.

    The wait is told (timeline and audit) once, when the provider first answers `pending`; a poll
    that finds it still pending only sets the next one, so a refund held for days neither fills
    the timeline nor makes the case look freshly moved (`closeout_case_oldest_unchanged_seconds`).
    """
    if case.next_action != "refund_status":
        _schedule_action(case, "refund_status", key=f"{workflow_id}:pending", actor="system",
                         note="refund accepted, waiting for settlement", due_in=REFUND_POLL)
    elif case.next_action_id == workflow_id:  # not a poll's answer recorded again
        now = clock.now()
        case.next_action_id = _workflow_id(case, "refund_status")
        case.next_action_due_at = now + min(max(REFUND_POLL, now - case.updated_at), REFUND_POLL_CAP)
        case.save(update_fields=["next_action_id", "next_action_due_at", "action_runs"])


def _schedule_action(case: ClosureCase, action: str, *, key: str, actor: str, note: str,
                     due_in: timedelta | None = None) -> None:
    """Give a locked case a new next action without changing its state (replayed key: no-op)."""
    if CaseEvent.objects.filter(case=case, key=key).exists():
        return
    now = clock.now()
    case.next_action = action
    case.next_action_id = _workflow_id(case, action)
    case.next_action_due_at = now + (due_in or timedelta(0))
    case.updated_at = now
    case.save()
    CaseEvent.objects.create(case=case, key=key, at=now, actor=actor, from_state=case.state,
                             to_state=case.state, note=note)
    audit_record(actor=actor, action=f"closure.{action}.scheduled", subject=case.reference, before=case.state,
                 after=case.state, reason=note)
    if not due_in:
        dispatch.wake_pump_on_commit()


# --- maker-checker refund approval -------------------------------------------------------------


def approval_required(case: ClosureCase) -> bool:
    """A refund above the product's threshold or to a destination other than the original method."""
    return bool(approval_reason(case))


def approval_reason(case: ClosureCase) -> str:
    threshold = case.card.product.policy.rules.get("refund_approval_threshold")
    if case.refund_destination.get("type", "original") != "original":
        return "other_destination"
    if threshold is not None and case.quote.get("refund", 0) > threshold:
        return "above_threshold"
    return ""


def _enter_refund_pending(case: ClosureCase, *, actor: str, key: str, note: str = "refund requested") -> None:
    """Move to refund_pending; the refund action starts now or after a second person approves."""
    reason = approval_reason(case)
    if not reason:
        _transition(case, states.REFUND_PENDING, actor=actor, key=key, note=note)
        return
    approval = RefundApproval.objects.filter(case=case).first()
    if approval is not None and approval.decision == RefundApproval.Decision.APPROVED:
        _transition(case, states.REFUND_PENDING, actor=actor, key=key, note=note)
        return
    _transition(case, states.REFUND_PENDING, actor=actor, key=key, note="refund waits for approval", action="",
                data={"approval": reason})
    # Staff who resume a rejected refund ask for it again: a second person must decide it anew.
    RefundApproval.objects.update_or_create(
        case=case, defaults=dict(requested_by=case.requester if actor == "system" else actor,
                                 requested_at=clock.now(), reason=reason,
                                 decision="", decided_by="", decided_at=None, note=""),
    )


def approval_version(case: ClosureCase, approval: RefundApproval) -> str:
    """Return a short digest of what an approver decides on: the amount, the destination (its
    sealed account too) and the request being answered. A page carries it with the decision so
    one made on what the approver read before a change is refused, not applied to the new refund."""
    seen = [case.quote.get("refund"), case.quote.get("currency"), case.refund_destination,
            case.refund_destination_sealed, approval.requested_by, approval.requested_at.isoformat()]
    return hashlib.sha256(json.dumps(seen, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _locked_approval(reference: str, approver: str, seen: str | None) -> tuple[ClosureCase, RefundApproval]:
    case = _lock(reference)
    approval = RefundApproval.objects.select_for_update().filter(case=case).first()
    if approval is None:
        raise UnableToApprove("this refund does not need approval")
    if approver in (approval.requested_by, case.requester):
        raise OwnRefundRequest("the person who requested a refund cannot approve or reject it")
    if seen is not None and seen != approval_version(case, approval):
        raise ApprovalOutdated("the refund changed since the approver read it")
    return case, approval


def refund_approve(*, reference: str, approver: str, note: str = "", seen: str | None = None) -> ClosureCase:
    """Approve a waiting refund and start it. Approving twice is harmless. `seen` is the
    `approval_version` the approver read; None skips that check.

    :raises OwnRefundRequest: for the person who asked for the refund.
    :raises ApprovalOutdated: when the refund changed since `seen`.
    :raises UnableToApprove: for a rejected refund or a case not waiting.
    """
    with transaction.atomic():
        case, approval = _locked_approval(reference, approver, seen)
        if approval.decision == RefundApproval.Decision.APPROVED:
            return case
        if approval.decision or case.state != states.REFUND_PENDING:
            raise UnableToApprove(f"the refund is not waiting for approval (case is {case.state})")
        approval.decision, approval.decided_by, approval.decided_at = "approved", approver, clock.now()
        approval.note = note[:300]
        approval.save()
        _schedule_action(case, "refund", key=f"approve:{approval.requested_at.isoformat()}", actor=approver,
                         note=f"refund approved: {note}"[:300] if note else "refund approved")
        return case


def refund_reject(*, reference: str, approver: str, reason: str, seen: str | None = None) -> ClosureCase:
    """Reject a waiting refund: the case goes on hold for staff to fix the destination or reject it.

    :raises OwnRefundRequest: for the person who asked for the refund.
    :raises ApprovalOutdated: when the refund changed since `seen` (its `approval_version`).
    :raises UnableToApprove: for a refund not waiting for a decision.
    """
    with transaction.atomic():
        case, approval = _locked_approval(reference, approver, seen)
        if approval.decision or case.state != states.REFUND_PENDING:
            raise UnableToApprove(f"the refund is not waiting for approval (case is {case.state})")
        approval.decision, approval.decided_by, approval.decided_at = "rejected", approver, clock.now()
        approval.note = reason[:300]
        approval.save()
        _transition(case, states.ON_HOLD, actor=approver, key=f"refund_rejected:{approval.decided_at.isoformat()}",
                    note=f"refund rejected: {reason}"[:300], action="")
        return case


def closure_deactivated(*, reference: str, workflow_id: str, result: dict) -> str:
    """Record that the card system blocked the card (took a SIM's number out of service); go on to
    unbinding or close (an eSIM first has its profile released)."""
    with transaction.atomic():
        case = _lock(reference)
        if case.state != states.DEACTIVATING:
            return case.state
        card = Card.objects.select_related("product").get(id=case.card_id)
        _card_status(card, Card.Status.BLOCKED, actor="system", reference=reference)
        if card.product.kind == "esim":
            _schedule(case, "release_profile", key=f"{workflow_id}:release_profile",
                      note="number deactivated; releasing the eSIM profile", data=result)
            return case.state
        blocked = card.product.kind == "stored_value"
        _after_deactivation(case, card, key=workflow_id, data=result,
                            note="card blocked" if blocked else "number taken out of service")
        if blocked:
            hotlist_add(card=card)  # last: the version counter stays locked until the commit
        return case.state


def _after_deactivation(case: ClosureCase, card: Card, *, key: str, note: str, data: dict) -> None:
    if card.bindings.filter(unbound_at__isnull=True).exists():
        _transition(case, states.UNBINDING, actor="system", key=f"{key}:unbinding",
                    note=f"{note}; unbinding linked apps", data=data)
    else:
        _close(case, card, key=f"{key}:closed", note=note, data=data)


# --- eSIM: release at the SM-DP+, wait for the device's deletion ---------------------------------


def esim_release_order(*, reference: str, workflow_id: str) -> dict | None:
    """Return what the release step must send, or None when the case no longer waits for it."""
    case = ClosureCase.objects.select_related("card").get(reference=reference)
    if case.next_action_id != workflow_id or case.state != states.DEACTIVATING:
        return None
    return {"iccid": case.card.number, "function_call_id": workflow_id}


def esim_release_record(*, reference: str, workflow_id: str, result: dict) -> str:
    """Record the SM-DP+'s answer to CancelOrder (final status Unavailable).

    Executed: the profile is off every device (never downloaded, or deleted) and can never be
    downloaded again: the closure goes on. Refused because the profile is on a device: the case
    waits, with a deadline, for the device's signed deletion notification. Any other refusal
    goes to staff.
    """
    with transaction.atomic():
        case = _lock(reference)
        if case.state != states.DEACTIVATING or case.next_action_id != workflow_id:
            return case.state
        card = Card.objects.get(id=case.card_id)
        proof = EsimDeletionProof.objects.filter(iccid=card.number).order_by("-received_at", "-id").first()
        data = {"smdp": result, "deletion_proof": proof.id if proof else None}
        if result["status"] == smdp.SUCCESS:
            case.deadline_at = None
            note = ("eSIM profile deleted on the device and released" if proof
                    else "eSIM profile released (never downloaded)")
            _after_deactivation(case, card, key=workflow_id, note=note, data=data)
            return case.state
        if result.get("reason_code") == smdp.REASON_INSTALLED:
            if proof is not None and _schedule(case, "release_profile", key=f"esim_retry:{proof.id}", data=data,
                                               note="deletion notified while releasing; releasing again"):
                return case.state
            case.next_action = case.next_action_id = ""
            case.next_action_due_at = None
            case.deadline_at = clock.now() + esim_deletion_wait()
            case.save()
            CaseEvent.objects.get_or_create(
                case=case, key=f"{workflow_id}:waiting_deletion",
                defaults=dict(at=clock.now(), actor="system", from_state=case.state, to_state=case.state,
                              note="waiting for the eSIM profile to be deleted on the device", data=data),
            )
            if case.channel != ClosureCase.Channel.BULK:  # dormant cards' contacts are years old
                from closeout.notifications.services import notice_esim_delete_request

                notice_esim_delete_request(case=case)
            return case.state
        _park(case, key=f"{workflow_id}:failed",
              note=f"SM-DP+ refused the release: {result.get('message') or result.get('reason_code')}"[:300],
              attention="eSIM release refused", data=data)
        return states.FAILED


def esim_deletion_recorded(*, iccid: str) -> None:
    """A verified deletion notification arrived (inside the caller's transaction): wake the case."""
    case = ClosureCase.objects.filter(card__number=iccid).exclude(state__in=states.TERMINAL).first()
    if case is None:
        return
    case = _lock(case.reference)
    proof = EsimDeletionProof.objects.filter(iccid=iccid).order_by("-id").first()
    key = f"esim_deleted:{proof.eid}:{proof.seq_number}"
    data = {"deletion_proof": proof.id}
    if case.state == states.DEACTIVATING and not case.next_action and case.deadline_at:
        case.deadline_at = None
        _schedule(case, "release_profile", key=key, note="the device deleted the eSIM profile", data=data)
    elif (case.state == states.FAILED and case.resume_to == states.DEACTIVATING
          and case.attention_reason == ATTENTION_ESIM):
        _transition(case, states.DEACTIVATING, actor="system", key=key,
                    note="the device deleted the eSIM profile after the wait", data=data, action="release_profile")
    elif not CaseEvent.objects.filter(case=case, key=key).exists():
        CaseEvent.objects.create(case=case, key=key, at=clock.now(), actor="system", from_state=case.state,
                                 to_state=case.state, note="eSIM deletion notification received", data=data)


def esim_deletion_timeout(*, reference: str) -> str:
    """The device did not delete the profile in time: the case goes to staff."""
    with transaction.atomic():
        case = _lock(reference)
        if (case.state != states.DEACTIVATING or case.next_action or not case.deadline_at
                or case.deadline_at > clock.now()):
            return case.state
        case.deadline_at = None
        _park(case, key=f"esim_timeout:{case.updated_at.isoformat()}",
              note="the eSIM profile was not deleted on the device in time", attention=ATTENTION_ESIM)
        return states.FAILED


def esim_deletion_override(*, reference: str, actor: str, reason: str) -> ClosureCase:
    """Staff close an eSIM case without the device's deletion proof, after the wait timed out.

    :raises UnableToOverride: without a reason, or before the wait timed out.
    """
    reason = (reason or "").strip()
    if len(reason) < 5:
        raise UnableToOverride("give the reason for closing without the deletion proof")
    with transaction.atomic():
        case = _lock(reference)
        if not (case.state == states.FAILED and case.resume_to == states.DEACTIVATING
                and case.attention_reason == ATTENTION_ESIM):
            raise UnableToOverride("only a case whose eSIM deletion wait timed out can be overridden")
        card = Card.objects.get(id=case.card_id)
        data = {"override": True, "reason": reason[:200]}
        key = f"esim_override:{case.updated_at.isoformat()}"
        _transition(case, states.DEACTIVATING, actor=actor, key=key,
                    note=f"eSIM deletion waived: {reason}"[:300], data=data, action="")
        _after_deactivation(case, card, key=key, note="eSIM deletion waived by staff", data=data)
        return case


# --- unbinding partner apps -----------------------------------------------------------------------


def unbind_order(*, reference: str, workflow_id: str) -> list[str] | None:
    """Return the partners still to be told, or None when the case no longer waits for them."""
    case = ClosureCase.objects.select_related("card").get(reference=reference)
    if case.next_action_id != workflow_id or case.state != states.UNBINDING:
        return None
    return list(case.card.bindings.filter(unbound_at__isnull=True).order_by("partner")
                .values_list("partner", flat=True))


def unbind_record(*, reference: str, workflow_id: str, results: dict) -> str:
    """Record each partner's answer; close when all acknowledged, else retry later or go to staff.

    `results` maps partner → {acknowledged, status_code, error[, unregistered]}.
    """
    with transaction.atomic():
        case = _lock(reference)
        if case.state != states.UNBINDING or case.next_action_id != workflow_id:
            return case.state
        card = Card.objects.get(id=case.card_id)
        now = clock.now()
        for partner, result in results.items():
            delivery, _ = UnbindDelivery.objects.select_for_update().get_or_create(
                case=case, partner=partner, defaults={"message_id": f"{reference}:unbind:{partner}"})
            if delivery.status == UnbindDelivery.Status.ACKNOWLEDGED:
                continue
            delivery.attempts += 1
            delivery.last_status_code = result.get("status_code") or None
            delivery.last_error = str(result.get("error", ""))[:200]
            delivery.last_attempt_at = now
            if result.get("acknowledged"):
                delivery.status = UnbindDelivery.Status.ACKNOWLEDGED
                delivery.acknowledged_at = now
                card.bindings.filter(partner=partner, unbound_at__isnull=True).update(unbound_at=now)
            delivery.save()
        pending = list(card.bindings.filter(unbound_at__isnull=True).order_by("partner")
                       .values_list("partner", flat=True))
        if not pending:
            _close(case, card, key=f"{workflow_id}:closed", note="linked apps unbound", data=results)
            return case.state
        deliveries = UnbindDelivery.objects.filter(case=case, partner__in=pending)
        attempts = min((d.attempts for d in deliveries), default=1)
        unregistered = [p for p in pending if (results.get(p) or {}).get("unregistered")]
        refused = [p for p in pending if (results.get(p) or {}).get("refused")]
        if unregistered or refused or attempts % UNBIND_ROUNDS == 0:
            deliveries.update(status=UnbindDelivery.Status.FAILED)
            if unregistered:
                why = f"partner not registered: {', '.join(unregistered)}"
            elif refused:
                why = f"not sent to {', '.join(refused)}: {results[refused[0]].get('error', '')}"
            else:
                why = f"no acknowledgement from {', '.join(pending)}"
            _park(case, key=f"{workflow_id}:failed", note=f"unbind: {why}", attention=f"unbind: {why}", data=results)
            return states.FAILED
        _schedule(case, "unbind", key=f"{workflow_id}:retry", due_in=unbind_backoff(attempts), data=results,
                  note=f"waiting for {', '.join(pending)} to acknowledge the unbind")
        return case.state


def closure_unbound(*, reference: str, workflow_id: str, results: dict) -> str:
    with transaction.atomic():
        case = _lock(reference)
        if case.state != states.UNBINDING:
            return case.state
        card = Card.objects.get(id=case.card_id)
        card.bindings.filter(unbound_at__isnull=True, partner__in=list(results)).update(unbound_at=clock.now())
        _close(case, card, key=f"{workflow_id}:closed", note="linked apps unbound", data=results)
        return case.state


def _close(case: ClosureCase, card: Card, *, key: str, note: str, data: dict) -> None:
    from closeout.certificates.services import certificate_issue

    _transition(case, states.CLOSED, actor="system", key=key, note=note, data=data)
    _card_status(card, Card.Status.CLOSED, actor="system", reference=case.reference)
    certificate_issue(case=case)  # in the closing transaction: a closed case always has its certificate


def closure_card_received(*, reference: str, actor: str, note: str = "") -> ClosureCase:
    """Warehouse check-in: the returned card arrived; the refund follows."""
    with transaction.atomic():
        case = _lock(reference)
        if case.state in (states.RETURNED, states.REFUND_PENDING) and CaseEvent.objects.filter(
                case=case, key="card_received").exists():
            return case
        _transition(case, states.RETURNED, actor=actor, key="card_received", note=note or "card received",
                    action="")
        case.deadline_at = None
        # The customer was promised the refund within the working days after the card arrives.
        arrived = sla_due(case.card.product, clock.now())
        case.sla_due_date = max(case.sla_due_date, arrived) if case.sla_due_date else arrived
        _enter_refund_pending(case, actor="system", key="card_received:refund")
        return case


def closure_withdraw(*, reference: str, actor: str, reason: str = "") -> ClosureCase:
    """The customer cancels before any refund: the card becomes usable again."""
    with transaction.atomic():
        case = _lock(reference)
        _transition(case, states.WITHDRAWN, actor=actor, key=f"withdraw:{case.updated_at.isoformat()}",
                    note=reason or "withdrawn by the customer", action="")
        _reopen_card(case, actor)
        return case


def closure_reject(*, reference: str, actor: str, reason: str) -> ClosureCase:
    with transaction.atomic():
        case = _lock(reference)
        _transition(case, states.REJECTED, actor=actor, key=f"reject:{case.updated_at.isoformat()}",
                    note=reason, action="")
        _reopen_card(case, actor)
        return case


def _reopen_card(case: ClosureCase, actor: str) -> None:
    settle = ledger.Posting.objects.filter(key=f"{case.reference}:settle").prefetch_related("lines__account").first()
    if settle is not None:
        ledger.ledger_post(
            key=f"{case.reference}:settle:reversal",
            lines=[(line.account.code, Money(-line.amount_minor, line.currency)) for line in settle.lines.all()],
            memo="settlement reversed", subject=case.reference,
        )
    card = Card.objects.get(id=case.card_id)
    _card_status(card, Card.Status.ACTIVE, actor=actor, reference=case.reference)


def closure_hold(*, reference: str, actor: str, reason: str) -> ClosureCase:
    with transaction.atomic():
        case = _lock(reference)
        _transition(case, states.ON_HOLD, actor=actor, key=f"hold:{case.updated_at.isoformat()}", note=reason,
                    action="")
        return case


def closure_resume(*, reference: str, actor: str, note: str = "") -> ClosureCase:
    """Take a case off hold (or out of needs-attention) and rerun the action of the state it left."""
    with transaction.atomic():
        case = _lock(reference)
        if case.state not in (states.ON_HOLD, states.FAILED) or not case.resume_to:
            raise states.IllegalTransition(case.state, case.resume_to or "?")
        key = f"resume:{case.updated_at.isoformat()}"
        note = f"resumed: {note}"[:300] if note else "resumed"
        if case.resume_to == states.REFUND_PENDING:
            _refund_ask_again(case, actor=actor)
            _enter_refund_pending(case, actor=actor, key=key, note=note)
        elif case.resume_to == states.DEACTIVATING:
            _transition(case, states.DEACTIVATING, actor=actor, key=key, note=note,
                        action=_deactivation_step_left(case))
        else:
            _transition(case, case.resume_to, actor=actor, key=key, note=note)
        return case


def _deactivation_step_left(case: ClosureCase) -> str:
    """The deactivation action a resumed case still needs: the card system's (blocking a card,
    taking a SIM's number out of service) until it has answered, then an eSIM's profile release.

    The state alone does not say which: `deactivating` spans all three for an eSIM.
    """
    card = Card.objects.select_related("product").get(id=case.card_id)
    if card.product.kind == "esim" and card.status == Card.Status.BLOCKED:
        return "release_profile"  # the number is out of service already (`closure_deactivated`)
    return _deactivation_action(case)


def closure_settle_again(*, reference: str, actor: str, note: str) -> ClosureCase:
    """Check the account again for a case that waits in `verified` for a payment or a waiver.

    Does nothing for a case that is not waiting (settling twice is never possible).
    """
    with transaction.atomic():
        case = _lock(reference)
        if case.state == states.VERIFIED and not case.next_action:
            _schedule_action(case, "settle", key=f"settle_again:{case.updated_at.isoformat()}", actor=actor,
                             note=note)
        return case


def closure_action_failed(*, reference: str, workflow_id: str, error: str) -> str:
    """A step exhausted its retries: park the case where staff will see it."""
    with transaction.atomic():
        case = _lock(reference)
        if case.next_action_id != workflow_id or case.state in states.TERMINAL:
            return case.state
        _park(case, key=f"{workflow_id}:failed", note=error[:300], attention=error)
        return states.FAILED


def closure_deadline_passed(*, reference: str) -> str:
    with transaction.atomic():
        case = _lock(reference)
        if not case.deadline_at or case.deadline_at > clock.now() or case.state != states.AWAITING_RETURN:
            return case.state
        case.deadline_at = None
        _park(case, key=f"deadline:{case.updated_at.isoformat()}", note="the card was not received in time",
              attention="card not received in time")
        return states.FAILED

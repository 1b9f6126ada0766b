"""Writes the portal needs beyond the closure services: paying outstanding fees."""

from __future__ import annotations

import logging
from typing import NoReturn

from django.db import transaction

from closeout.audit.models import AuditEvent
from closeout.audit.services import audit_record
from closeout.cards.models import Card, CardCharge
from closeout.common import clock
from closeout.common.money import Money
from closeout.identity import documents
from closeout.integrations import registry
from closeout.integrations.errors import PermanentError, TransientError

log = logging.getLogger(__name__)
PAY_ATTEMPTS = 3
DECLINED = "card.charges_payment_declined"
PORTAL = "customer:web"  # the actor of what a customer does in the portal


class UnableToPayCharges(Exception):
    """Base of the errors of `card_charges_pay`."""


class NothingToPay(UnableToPayCharges):
    pass


class PaymentDeclined(UnableToPayCharges):
    pass


class PaymentUnavailable(UnableToPayCharges):
    """The provider did not answer; nothing was settled. Trying again is safe (same key)."""


def card_charges_pay(*, card: Card, actor: str, language: str = "en") -> Money:
    """Pay every open charge of the card through the payment provider and mark them paid.

    The idempotency key names the card, the charges paid and the declines recorded before, so a
    double click or a reload pays once, while a customer whose card was declined can try again
    (with another card or after topping up): a key the provider declined only ever replays the
    decline. The provider is called outside any transaction.

    :raises NothingToPay: when the card has no open charge.
    :raises PaymentDeclined: when the provider declined the payment.
    :raises PaymentUnavailable: when the provider did not answer after retries.
    """
    charges = list(CardCharge.objects.filter(card=card, settled_at__isnull=True).order_by("id"))
    if not charges:
        raise NothingToPay("no open charges")
    currency = charges[0].currency
    amount = Money(sum(c.amount_minor for c in charges), currency)
    ids = [c.id for c in charges]
    charges_key = f"charges:{card.id}:{'-'.join(map(str, ids))}"
    # Keys the provider declined, each once however often its decline was replayed (a double click
    # on a declined key must not move two retries in flight onto two different keys).
    declined = len({event.data.get("key") for event in AuditEvent.objects.filter(
        subject=f"card:{card.id}", action=DECLINED, data__charges=charges_key).only("data")})
    key = f"{charges_key}:{declined + 1}" if declined else charges_key
    result = None
    for attempt in range(PAY_ATTEMPTS):
        try:
            result = registry.port("payments").pay(idempotency_key=key, amount=amount,
                                                   description=f"outstanding fees {documents.mask_card_number(card.number)}")
            break
        except TransientError:
            log.info("payment attempt %s for charges of card %s did not answer", attempt + 1, card.id)
        except PermanentError:
            _declined(card, actor, charges_key, key, amount, "payment refused")
    if result is None:
        raise PaymentUnavailable("payment provider unavailable")
    if result.status != "succeeded":
        _declined(card, actor, charges_key, key, amount, result.failure_reason or "declined")
    from closeout.notifications.services import notice_send_holder

    with transaction.atomic():
        paid = CardCharge.objects.filter(id__in=ids, settled_at__isnull=True).update(
            settled_at=clock.now(), settled_how="paid", settled_note=result.provider_ref)
        if not paid:  # settled meanwhile by a payment under another key: this one was taken twice
            log.warning("card %s: payment %s found its charges already paid; it needs a refund", card.id,
                        result.provider_ref)
            audit_record(actor=actor, action="card.charges_paid_twice", subject=f"card:{card.id}",
                         reason=result.provider_ref, data={"amount": amount.minor, "currency": currency, "key": key})
        else:
            audit_record(actor=actor, action="card.charges_paid", subject=f"card:{card.id}",
                         reason=result.provider_ref, data={"amount": amount.minor, "currency": currency, "charges": ids})
            notice_send_holder(
                holder=card.holder, template="fees_paid", language=language, card=card, key=f"notice:{key}",
                context={"amount": amount.minor, "currency": currency, "payment_ref": result.provider_ref,
                         "card_masked": documents.mask_card_number(card.number)},
            )
    return amount


def _declined(card: Card, actor: str, charges_key: str, key: str, amount: Money, reason: str) -> NoReturn:
    """Record the decline of `key` once (the next attempt pays under a new key) and raise it."""
    if not AuditEvent.objects.filter(subject=f"card:{card.id}", action=DECLINED, data__key=key).exists():
        audit_record(actor=actor, action=DECLINED, subject=f"card:{card.id}", reason=reason,
                     data={"charges": charges_key, "key": key, "amount": amount.minor, "currency": amount.currency})
    raise PaymentDeclined(reason)


def portal_closure_request(*, card: Card, refund_destination: dict, language: str):
    """Submit the closure from the portal and send the receipt by email and SMS.

    :raises closures.UnableToCloseCard: as `closure_request` does (already open, not closable,
        bad destination).
    :raises ChargesOpen: when outstanding fees were not paid first.
    """
    from closeout.closures import services as closures
    from closeout.notifications.services import notice_receipt

    if CardCharge.objects.filter(card=card, settled_at__isnull=True).exists():
        raise ChargesOpen("pay the outstanding fees first")
    case = closures.closure_request(card=card, channel="web", requester="customer:web",
                                    refund_destination=refund_destination, language=language)
    # The case's verify step sends the receipt of every channel; the portal's customer is waiting
    # for it, so it goes now (the step then finds it recorded: one receipt).
    notice_receipt(case=case)
    return case


def portal_closure_withdraw(*, card: Card, reference: str, language: str):
    """Withdraw the card's case and tell the customer.

    :raises closures.CaseNotFound: when the case is not this card's.
    :raises states.IllegalTransition: when it is too late to withdraw.
    """
    from closeout.closures import services as closures
    from closeout.closures.models import ClosureCase
    from closeout.notifications.services import notice_send_holder

    if not ClosureCase.objects.filter(reference=reference, card=card).exists():
        raise closures.CaseNotFound(reference)
    case = closures.closure_withdraw(reference=reference, actor="customer:web", reason="withdrawn in the portal")
    notice_send_holder(
        holder=card.holder, template="withdrawn", language=language, case=case, key=f"{reference}:withdrawn",
        context={"reference": reference, "card_masked": documents.mask_card_number(card.number)},
    )
    return case


class ChargesOpen(Exception):
    """Outstanding fees must be paid before the closure is submitted."""


def portal_appointment_book(*, card: Card, branch_code: str, starts_at: str, language: str):
    """Book the card a visit to a branch counter, or move its booked visit there.

    :raises appointments.UnableToBook: for an unknown branch or a slot that cannot be booked (its
        `code` names why).
    """
    from datetime import datetime

    from closeout.appointments import services as appointments
    from closeout.appointments.models import Appointment, Branch

    branch = Branch.objects.filter(code=branch_code, active=True).first()
    try:
        when = datetime.fromisoformat(starts_at)
    except ValueError:
        when = None
    if branch is None or when is None or when.tzinfo is None:
        raise appointments.SlotUnavailable("misaligned")
    with transaction.atomic():
        current = Appointment.objects.filter(card=card, status=Appointment.Status.BOOKED).first()
        if current is not None and current.branch_id == branch.id:
            return appointments.appointment_reschedule(appointment_id=current.id, starts_at=when, actor=PORTAL)
        if current is not None:  # another branch: the new booking replaces it, or neither changes
            appointments.appointment_cancel(appointment_id=current.id, actor=PORTAL, reason="moved to another branch")
        return appointments.appointment_book(card=card, branch=branch, starts_at=when, actor=PORTAL,
                                             language=language)


def portal_appointment_cancel(*, card: Card) -> bool:
    """Cancel the card's booked visit; False when there was none."""
    from closeout.appointments import services as appointments
    from closeout.appointments.models import Appointment

    current = Appointment.objects.filter(card=card, status=Appointment.Status.BOOKED).first()
    if current is None:
        return False
    try:
        appointments.appointment_cancel(appointment_id=current.id, actor=PORTAL, reason="cancelled by the customer")
    except appointments.AppointmentNotBooked:
        return False
    return True

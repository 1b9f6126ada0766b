"""Reads for the portal pages, shaped as plain data with the customer's words (translated)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.utils import timezone

from closeout.cards.models import Card
from closeout.catalog.models import Product
from closeout.closures import selectors as closure_selectors
from closeout.closures import services as closures
from closeout.closures import states
from closeout.closures.models import ClosureCase, RefundApproval
from closeout.common import clock
from closeout.common.templatetags.closeout import money
from closeout.identity import documents
from closeout.portal import labels
from closeout.returns import selectors as return_selectors
from closeout.returns.models import ReturnLabel


def _money_text(currency: str):
    return lambda minor: money(minor, currency)


def local_today() -> date:
    return timezone.localdate(clock.now())


def open_case(card: Card) -> ClosureCase | None:
    return ClosureCase.objects.filter(card=card).exclude(state__in=states.TERMINAL).first()


def latest_case(card: Card) -> ClosureCase | None:
    return ClosureCase.objects.filter(card=card).order_by("-created_at", "-id").first()


def card_summary(card: Card) -> dict:
    product = card.product
    return {
        "kind": product.kind,
        "kind_label": str(labels.KIND_LABELS.get(product.kind, product.kind)),
        "masked": documents.mask_card_number(card.number),
        "status": card.status,
        "return_required": product.physical_return_required and card.physical,
    }


def account_check(card: Card) -> dict:
    """What the customer owes before closure can be requested."""
    charges = [
        {"label": labels.fee_label(c.code), "reason": labels.charge_reason(c.code, c.reason),
         "amount": c.amount_minor, "currency": c.currency}
        for c in card.charges.filter(settled_at__isnull=True).order_by("id")
    ]
    currency = card.product.currency
    return {
        "card": card_summary(card),
        "charges": charges,
        "total": sum(c["amount"] for c in charges),
        "currency": currency,
        "settled": not charges,
        "online": closures.channel_allowed(card.product, "web"),
        "at_branch": closures.channel_allowed(card.product, "branch"),
    }


def quote_view(card: Card) -> dict:
    """The quote in the customer's words: each fee with the reason it applies."""
    now = clock.now()
    quote = closures.quote_for_card(card, now)
    policy = card.product.policy.rules
    text = _money_text(quote.currency)
    rules_by_code = {rule["code"]: rule for rule in policy.get("fees", [])}
    charge_codes = set(card.charges.filter(settled_at__isnull=True).values_list("code", flat=True))
    fees = []
    for fee in quote.fees:
        if fee.code in charge_codes or fee.code not in rules_by_code:
            reason = labels.charge_reason(fee.code, fee.reason)
        else:
            reason = labels.fee_reason(rules_by_code[fee.code].get("when", {}), text)
        fees.append({"code": fee.code, "label": labels.fee_label(fee.code), "reason": reason,
                     "amount": fee.amount.minor, "capped": fee.amount != fee.charged})
    plan = closures.card_plan(card, now)
    plan_view = None
    if plan is not None:
        unused = plan.price.minor * max(0, min(plan.remaining_days, plan.total_days)) // max(1, plan.total_days)
        rule = policy.get("plan_pro_rata") or {}
        plan_view = {
            "remaining_days": plan.remaining_days, "total_days": plan.total_days,
            "remaining_data_mb": plan.remaining_data_mb, "total_data_mb": plan.total_data_mb,
            "remaining_data_gb": f"{plan.remaining_data_mb / 1024:.1f}",
            "unused_value": unused, "fee": unused - quote.plan_refund.minor, "refund": quote.plan_refund.minor,
            "allowed": bool(rule.get("allowed")), "fee_percent": labels.percent(rule.get("fee_bp", 0)),
        }
    product = card.product
    return {
        "card": card_summary(card),
        "currency": quote.currency,
        "balance": quote.balance.minor,
        "deposit": quote.deposit.minor,
        "deposit_refundable": policy.get("deposit_refundable", True),
        "plan": plan_view,
        "fees": fees,
        "refund": quote.refund.minor,
        "uncovered": quote.uncovered.minor,
        "working_days": product.sla_working_days,
        "expected_date": closures.sla_due(product, now),
    }


# Steps that are a wait rather than an event: reaching one does not mean it is done.
WAITING = frozenset({states.AWAITING_RETURN, states.REFUND_PENDING, states.DEACTIVATING, states.UNBINDING})


@dataclass(frozen=True)
class Step:
    state: str
    label: str
    status: str  # done | current | upcoming | stopped
    at: object | None = None
    expected: date | None = None
    note: str = ""
    post_by: date | None = None  # the card to post back: the deadline, shown on its step until it arrives


def _path(case: ClosureCase) -> list[str]:
    card = case.card
    path = [states.SUBMITTED, states.VERIFIED, states.SETTLED]
    if card.product.physical_return_required and card.physical:
        path += [states.AWAITING_RETURN, states.RETURNED]
    path += [states.REFUND_PENDING, states.REFUNDED, states.DEACTIVATING]
    if card.bindings.exists():
        path.append(states.UNBINDING)
    path.append(states.CLOSED)
    return path


def case_view(case: ClosureCase) -> dict:
    """The status page: a parcel-tracking timeline, what the customer must do, what they may do."""
    path = _path(case)
    reached: dict[str, object] = {}
    for event in case.events.order_by("at", "id"):
        if event.to_state and event.to_state not in reached:
            reached[event.to_state] = event.at
    position_state = case.resume_to if case.state in (states.ON_HOLD, states.FAILED) else case.state
    position = path.index(position_state) if position_state in path else -1
    if case.state in (states.WITHDRAWN, states.REJECTED):
        position = max((path.index(s) for s in reached if s in path), default=0)
    created = timezone.localdate(case.created_at)
    return_by = timezone.localdate(case.deadline_at or closures.return_deadline(case.created_at,
                                                                               case.card.product.calendar))
    expected = {states.SUBMITTED: created, states.VERIFIED: created, states.SETTLED: created}
    returning = states.AWAITING_RETURN in path
    # The refund follows the card: until it arrives no later date can be promised (the page says
    # the refund comes within the working days after we receive it; the due date moves then).
    later = None if returning and states.RETURNED not in reached else case.sla_due_date
    steps = []
    stopped = case.state in (states.WITHDRAWN, states.REJECTED)
    for index, state in enumerate(path):
        if stopped and (index > position or (index == position and state in WAITING)):
            break  # a step that was only being waited for when the case stopped was never done
        if index < position or (index == position and state in reached and (stopped or state == states.CLOSED)):
            status = "done"
        elif index == position:
            status = "current"
        else:
            status = "upcoming"
        post_by = (return_by if state == states.AWAITING_RETURN and states.RETURNED not in reached and not stopped
                   else None)
        steps.append(Step(state=state, label=labels.state_label(state), status=status, at=reached.get(state),
                          post_by=post_by,
                          expected=None if status == "done" else expected.get(state, later)))
    if stopped:
        steps.append(Step(state=case.state, label=labels.state_label(case.state), status="stopped",
                          at=reached.get(case.state)))
    card = case.card
    todo = []
    waiting_payment = case.state == states.VERIFIED and card.charges.filter(settled_at__isnull=True).exists()
    if waiting_payment:
        todo.append("pay")
    if returning and position_state in (states.SUBMITTED, states.VERIFIED, states.SETTLED, states.AWAITING_RETURN):
        todo.append("post_card")  # from the start: the label is ready at once, and the refund waits for it
    # An eSIM's profile stays on the phone until the customer deletes it there; the case waits for
    # the phone's notice (after the wait ran out, staff look at it, and deleting still finishes it).
    esim_waiting = card.product.kind == "esim" and (
        (case.state == states.DEACTIVATING and not case.next_action and case.deadline_at is not None)
        or (case.state == states.FAILED and case.resume_to == states.DEACTIVATING
            and case.attention_reason == closures.ATTENTION_ESIM))
    if esim_waiting:
        todo.append("delete_esim")
    cash = closures.cash_awaiting_collection(case)
    if cash is not None:
        todo.append("collect_cash")
    approval = RefundApproval.objects.filter(case=case, decision=RefundApproval.Decision.PENDING).first() \
        if case.state == states.REFUND_PENDING else None
    approval_waiting = approval.reason if approval else ""  # above_threshold | other_destination
    return {
        "cash": {"amount": cash.amount_minor, "currency": cash.currency} if cash else None,
        "reference": case.reference,
        "state": case.state,
        "approval_waiting": approval_waiting,
        "state_label": labels.state_label(case.state),
        "attention": case.state in (states.ON_HOLD, states.FAILED),
        "card": card_summary(card),
        "quote": case.quote,
        "destination": case.refund_destination,
        "destination_label": str(labels.DESTINATION_LABELS.get(case.refund_destination.get("type", "original"), "")),
        "sla_due_date": case.sla_due_date,
        "return_by": return_by,
        "delete_esim_by": timezone.localdate(case.deadline_at) if esim_waiting and case.deadline_at else None,
        "steps": steps,
        "todo": todo,
        "can_withdraw": states.WITHDRAWN in states.allowed_targets(case.state, resume_to=case.resume_to or None),
        "label_available": "post_card" in todo,
        "tracking": ReturnLabel.objects.filter(case=case).values_list("tracking_ref", flat=True).first() or "",
        "card_back": card_back(case),
        "refund_after_return": returning and states.RETURNED not in reached,
        "working_days": card.product.sla_working_days,
        "certificate": closure_selectors.case_certificate(case),
        "closed": case.state == states.CLOSED,
        "stopped": stopped,  # withdrawn or rejected: nothing is refunded
        "created_at": case.created_at,
    }


def card_back(case: ClosureCase) -> dict | None:
    """How the card the customer sent in went back to them (posted, with its tracking reference,
    or collected at a branch counter), once the warehouse recorded it; None before."""
    record = return_selectors.case_hand_back(case)
    if record is None:
        return None
    return {"method": record.method, "at": record.handed_back_at, "tracking": record.tracking_ref}


def product_for_number(number: str) -> Product | None:
    """The product a card number belongs to, by its issuer prefix (does not look the card up)."""
    candidates = [p for p in Product.objects.select_related("policy") if number.startswith(p.number_prefix)]
    return max(candidates, key=lambda p: len(p.number_prefix), default=None)


def product_by_code(code: str) -> Product | None:
    return Product.objects.select_related("policy").filter(code=code).first() if code else None


def policy_view(product: Product) -> dict:
    """The refund policy of a product in words, for the calculator: no card, no balance."""
    policy = product.policy.rules
    text = _money_text(product.currency)
    fees = [
        {"label": labels.fee_label(rule["code"]), "amount": labels.fee_amount_text(rule, text),
         "reason": labels.fee_reason(rule.get("when", {}), text), "balance_only": rule.get("base") == "balance"}
        for rule in policy.get("fees", [])
    ]
    plan = policy.get("plan_pro_rata") or {}
    return {
        "kind": product.kind,
        "kind_label": str(labels.KIND_LABELS.get(product.kind, product.kind)),
        "currency": product.currency,
        "deposit": product.deposit_minor,
        "deposit_refundable": policy.get("deposit_refundable", True),
        "fees": fees,
        "plan_pro_rata": bool(plan.get("allowed")),
        "plan_fee_percent": labels.percent(plan.get("fee_bp", 0)) if plan else "",
        "return_required": product.physical_return_required,
        "working_days": product.sla_working_days,
        "sim": product.kind != Product.Kind.STORED_VALUE,
        "instant_cap": policy.get("instant_refund_cap"),
    }


# How far ahead a customer may book a visit to a branch counter online.
BOOKING_DAYS = 14


def card_appointment(card: Card) -> dict | None:
    """The card's booked branch appointment still to come, if any, in the reader's words."""
    from closeout.appointments.models import Appointment

    booked = (Appointment.objects.select_related("branch")
              .filter(card=card, status=Appointment.Status.BOOKED, starts_at__gt=clock.now()).first())
    if booked is None:
        return None
    return {"branch": booked.branch.local_name(), "address": booked.branch.local_address(), "starts_at": booked.starts_at,
            "code": booked.branch.code}


def branch_booking(card: Card, *, branch_code: str = "", day: str = "") -> dict:
    """The branches, the days of the next two weeks with a free counter at the chosen branch, and
    the free slots of the chosen day (the first such day unless one is asked for)."""
    from closeout.appointments import selectors as appointments

    current = card_appointment(card)
    branches = appointments.branches()
    branch = (next((b for b in branches if b.code == branch_code), None)
              or next((b for b in branches if current and b.code == current["code"]), None)
              or (branches[0] if branches else None))
    days = []
    if branch is not None:
        by_day = appointments.branch_slots_by_day(branch=branch, first_day=local_today(), days=BOOKING_DAYS)
        for listed_day, slots in by_day.items():
            free = [s for s in slots if s["free"]]
            if free:
                days.append({"day": listed_day, "slots": free})
    chosen = next((d for d in days if d["day"].isoformat() == day), days[0] if days else None)
    return {
        "current": current,
        "branches": [{"code": b.code, "name": b.local_name(), "address": b.local_address()} for b in branches],
        "branch": branch and {"code": branch.code, "name": branch.local_name(), "address": branch.local_address()},
        "days": days,
        "chosen": chosen,
    }

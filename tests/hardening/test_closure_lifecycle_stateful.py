"""Stateful property test of the closure services (Hypothesis RuleBasedStateMachine).

The machine plays the customer, the staff, the worker, the payment provider and its webhooks,
and the clock, in any order: submit, withdraw, reject, hold, resume, approve, card received, run
the case's due action (verify, settle, refund with a provider answer of success, pending, decline,
timeout or 5xx, settlement poll, deactivate, unbind), retries exhausted, a worker crash after the
provider call, a replay of any step already run (a DBOS step runs at least once), refund webhooks
(signed, through the real webhook receiver) duplicated and delivered out of order, time passing and the return deadline firing, and charges
on every card. After every step the invariants must hold:

- at most one refund paid per case and per card; never before a required approval; the paid amount
  is the quoted refund; a declined refund never reaches the ledger;
- the ledger balances, posting by posting and in total;
- the audit chain verifies;
- card status follows its case, and a closing, blocked or closed card is always declined;
- each service refuses exactly the transitions the pure state machine forbids.

Run longer and with fresh randomness with CLOSEOUT_STATEFUL_RANDOM=1 CLOSEOUT_STATEFUL_EXAMPLES=500
CLOSEOUT_STATEFUL_STEPS=50 (what `make fuzz` does with fewer examples).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.db import transaction
from django.db.models import Sum
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from closeout.audit.services import audit_verify
from closeout.cards import services as cards
from closeout.cards.models import Card
from closeout.closures import services, states
from closeout.closures.models import CaseEvent, ClosureCase, Refund, RefundApproval
from closeout.common import clock
from closeout.common.money import Money
from closeout.integrations import registry
from closeout.integrations.card_system.simulator import SimulatedCardSystem
from closeout.integrations.errors import PermanentError, TransientError
from closeout.integrations.models import SimFault, SimRefund
from closeout.integrations.payments.simulator import SimulatedPaymentProvider, sign_webhook
from closeout.integrations.payments.webhooks import payment_webhook_receive
from closeout.ledger.models import Line, Posting
from tests.fixtures import HKID, card_number

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("CLOSEOUT_STATEFUL_EXAMPLES", "15"))  # per profile
STEPS = int(os.environ.get("CLOSEOUT_STATEFUL_STEPS", "30"))
# The normal suite replays the same derandomized runs (stable in CI); `make fuzz` explores anew.
RANDOM = os.environ.get("CLOSEOUT_STATEFUL_RANDOM") == "1"

EXPECTED = (states.IllegalTransition, services.UnableToCloseCard, services.UnableToApprove)
STAFF = ("staff:alice", "staff:bob")
DESTINATIONS = ("original", "original", "original", "cash", "bank")  # not original: maker-checker
PAID_STATES = (states.REFUNDED, states.DEACTIVATING, states.UNBINDING, states.CLOSED)
# How an action's external call goes, per profile: fine, or a scripted fault ("gave_up": the
# step exhausted its retries).
PROFILES = {
    "happy": (None,),
    "provider_faults": ("pending", "decline", "timeout", "error_5xx", None),
    "chaos": (None, None, "pending", "decline", "timeout", "error_5xx", "gave_up"),
}
# What the runs of all profiles together must reach, to show the test goes deep.
MUST_REACH = (states.CLOSED, states.UNBINDING, states.AWAITING_RETURN, states.RETURNED, states.WITHDRAWN,
              states.REJECTED, states.ON_HOLD, states.FAILED, "refund paid", "refund declined", "refund pending",
              "approved", "webhook applied", "webhook duplicate", "step replayed")


class FakeClock:
    """Every read moves on by a millisecond (as a real clock would between two transactions)."""

    def __init__(self) -> None:
        self.at = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)

    def now(self) -> datetime:
        self.at += timedelta(milliseconds=1)
        return self.at

    def advance(self, delta: timedelta) -> None:
        self.at += delta


class ClosureLifecycle(RuleBasedStateMachine):
    cases = Bundle("cases")
    modes: tuple = (None,)
    reached: Counter = Counter()

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self._patch = mock.patch.object(clock, "now", self.clock.now)
        self._patch.start()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()  # each example runs in a savepoint rolled back in teardown
        self.provider = SimulatedPaymentProvider()
        self.card_system = SimulatedCardSystem()
        self.steps_run: list[tuple] = []  # (service, kwargs) already run: a crash may replay any
        self.webhooks: list[bytes] = []  # signed-on-delivery refund events sent and not yet consumed
        self.event_ids = itertools.count(1)
        self.cards: list[Card] = self._issue_cards()

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)
        self._patch.stop()

    # --- set-up ---------------------------------------------------------------------------

    def _issue_cards(self) -> list[Card]:
        from closeout.demo import products_load

        products = products_load()
        now = self.clock.now()

        def issue(code, balance, *, charges=(), bindings=(), plan=False):
            product = products[code]
            holder = cards.holder_create(name="陈大文", id_type="hkid", id_number=HKID,
                                         email="holder@example.test", phone="+85291234567")
            extra = {}
            if plan:
                extra = dict(plan_price_minor=30000, plan_starts_at=now - timedelta(days=10),
                             plan_ends_at=now + timedelta(days=20), plan_data_mb=10240)
            card = cards.card_issue(
                number=card_number(product.number_prefix, 16 if product.kind == "stored_value" else 19),
                product=product, holder=holder, issued_at=now - timedelta(days=400),
                balance=Money(balance, product.currency), last_used_at=now - timedelta(days=3), **extra)
            for code_, amount in charges:
                cards.card_charge_add(card=card, code=code_, reason=code_, amount=Money(amount, product.currency))
            for partner in bindings:
                cards.binding_add(card=card, partner=partner, external_ref=f"{partner}-{card.id}")
            return card

        return [
            issue("YKT", 12000, bindings=["city-pay"]),  # refund without approval, no return, unbinding
            issue("OCTO", 150000),  # physical return, refund above the approval threshold
            issue("YKT", 500, charges=[("unpaid_fee", 30000)]),  # debts the refund cannot cover
            issue("ESIM", 0, bindings=["maps-app", "transit-wallet"], plan=True),  # pro-rata plan, unbinding
        ]

    # --- customer and staff ---------------------------------------------------------------

    @initialize(target=cases, card_index=st.integers(0, 3), destination=st.sampled_from(DESTINATIONS))
    def first_request(self, card_index, destination):
        return self.submit(card_index, destination, "customer:web")

    @rule(target=cases, card_index=st.integers(0, 3), destination=st.sampled_from(DESTINATIONS),
          requester=st.sampled_from(["customer:web", *STAFF]))
    def submit(self, card_index, destination, requester):
        card = self.cards[card_index]
        card.refresh_from_db()
        open_case = ClosureCase.objects.filter(card=card).exclude(state__in=states.TERMINAL).first()
        refund_destination = {"type": destination}
        if destination == "bank":
            refund_destination.update(account_number="HK12-3456-7890-12", bank_code="004")
        try:
            case = services.closure_request(card=card, channel="web", requester=requester,
                                            refund_destination=refund_destination)
        except services.CaseAlreadyOpen as exc:
            assert open_case is not None and exc.reference == open_case.reference
            return open_case.reference
        except services.CardNotClosable:
            assert open_case is None and card.status != Card.Status.ACTIVE
            return ClosureCase.objects.filter(card=card).order_by("-id").values_list("reference", flat=True).first() \
                or "CL-0000-000000"
        assert open_case is None, "a second open case was created for the same card"
        assert case.state == states.SUBMITTED
        return case.reference

    def _expect(self, reference: str, target: str, call) -> None:
        """Run a staff/customer service and check it refuses exactly what the state machine forbids."""
        case = ClosureCase.objects.filter(reference=reference).first()
        if case is None:
            with pytest.raises(services.CaseNotFound):
                call()
            return
        allowed = target in states.allowed_targets(case.state, resume_to=case.resume_to or None)
        try:
            call()
        except states.IllegalTransition:
            assert not allowed, f"{target} refused from {case.state} though the state machine allows it"
            return
        assert allowed, f"{target} accepted from {case.state}"

    @rule(reference=cases, what=st.sampled_from(["withdraw", "reject", "hold", "resume", "resume"]))
    def interrupt(self, reference, what):
        """The customer withdraws, or staff reject, hold or resume the case."""
        if what == "withdraw":
            self._expect(reference, states.WITHDRAWN,
                         lambda: services.closure_withdraw(reference=reference, actor="customer:web"))
        elif what == "reject":
            self._expect(reference, states.REJECTED, lambda: services.closure_reject(
                reference=reference, actor="staff:alice", reason="fraud check"))
        elif what == "hold":
            self._expect(reference, states.ON_HOLD, lambda: services.closure_hold(
                reference=reference, actor="staff:bob", reason="customer called"))
        else:
            try:
                services.closure_resume(reference=reference, actor="staff:bob")
            except (states.IllegalTransition, services.CaseNotFound):
                case = ClosureCase.objects.filter(reference=reference).first()
                assert case is None or case.state not in (states.ON_HOLD, states.FAILED) or not case.resume_to

    @rule(data=st.data())
    def card_received(self, data):
        """Warehouse check-in, mostly of a card that is awaited, sometimes of any case."""
        awaited = list(ClosureCase.objects.filter(state=states.AWAITING_RETURN).values_list("reference", flat=True))
        reference = data.draw(st.sampled_from(awaited) if awaited and data.draw(st.booleans())
                              else st.sampled_from([c.reference for c in ClosureCase.objects.all()] or ["CL-0"]))
        try:
            services.closure_card_received(reference=reference, actor="staff:warehouse")
        except (states.IllegalTransition, services.CaseNotFound):
            return

    @precondition(lambda self: RefundApproval.objects.exists())
    @rule(data=st.data(), approver=st.sampled_from(STAFF), approve=st.sampled_from([True, True, False]))
    def decide_refund(self, data, approver, approve):
        """Maker-checker: a second person approves (or rejects) a refund that asked for approval."""
        reference = data.draw(st.sampled_from(
            list(RefundApproval.objects.order_by("id").values_list("case__reference", flat=True))))
        approval = RefundApproval.objects.filter(case__reference=reference).first()
        try:
            if approve:
                services.refund_approve(reference=reference, approver=approver)
            else:
                services.refund_reject(reference=reference, approver=approver, reason="check the destination")
        except (services.UnableToApprove, services.CaseNotFound):
            return
        assert approval is not None, "a refund without an approval request was decided"
        assert approver != approval.requested_by, "the requester decided on their own refund"
        self.reached["approved" if approve else "refund rejected by checker"] += 1

    # --- the worker -----------------------------------------------------------------------

    def _step(self, service, **kwargs):
        self.steps_run.append((service, kwargs))
        return service(**kwargs)

    @rule(data=st.data(), passes=st.integers(1, 8))
    def worker_runs_what_is_due(self, data, passes):
        """Worker passes: each runs every open case's action once (the provider answers at random)."""
        for _ in range(passes):
            due = list(ClosureCase.objects.exclude(next_action="").order_by("id").values_list("reference", flat=True))
            if not due:
                return
            for reference in due:
                self._run_action(reference, data.draw(st.sampled_from(self.modes)), crash_after_call=False)
            self.clock.advance(timedelta(seconds=1))

    @rule(reference=cases, data=st.data(), crash_after_call=st.booleans())
    def run_due_action(self, reference, data, crash_after_call):
        """One case's action runs (or the worker dies after the external call, before recording)."""
        self._run_action(reference, data.draw(st.sampled_from(self.modes)), crash_after_call=crash_after_call)

    def _run_action(self, reference, mode, *, crash_after_call):
        """What the DBOS workflow `<reference>:<action>` does, step by step, run synchronously."""
        case = ClosureCase.objects.filter(reference=reference).select_related("card").first()
        if case is None or not case.next_action:
            return
        action, wid = case.next_action, case.next_action_id
        if mode == "gave_up":
            self._step(services.closure_action_failed, reference=reference, workflow_id=wid,
                       error=f"{action} failed: gave up after retries")
        elif action == "verify":
            self._step(services.closure_verify, reference=reference, workflow_id=wid)
        elif action == "settle":
            self._step(services.closure_settle, reference=reference, workflow_id=wid)
        elif action == "return_label":
            order = services.return_label_order(reference=reference, workflow_id=wid)
            if order is None:
                return
            label = None if mode else {"carrier": "SIMPOST", "label_number": "L1", "tracking_number": f"T{case.id}"}
            self._step(services.return_label_record, reference=reference, workflow_id=wid, label=label,
                       error="" if label else "carrier down")
        elif action == "refund":
            order = services.refund_order(reference=reference, workflow_id=wid)
            if order is None:
                return
            if order["amount"] == 0:
                result = {"status": "succeeded", "provider_ref": ""}
            elif order["cash"]:
                result = {"status": services.CASH_READY_STATUS, "provider_ref": ""}  # waits at a counter
            else:
                if mode and mode != "gave_up":
                    SimFault.objects.create(system="payments", operation="refund", mode=mode, remaining=1)
                try:
                    result = self.provider.refund(idempotency_key=order["idempotency_key"],
                                                  amount=Money(order["amount"], order["currency"]),
                                                  destination=order["destination"]).as_json()
                except TransientError:
                    return  # the step retries later with the same key
                if crash_after_call:
                    return  # the worker died after the provider answered; the action runs again
            self.reached[{"failed": "refund declined", "pending": "refund pending",
                          services.CASH_READY_STATUS: "cash waiting"}.get(result["status"], "refund paid")] += 1
            self._step(services.refund_record, reference=reference, workflow_id=wid, result=result)
        elif action == "refund_status":
            try:
                result = self.provider.refund_status(idempotency_key=f"{reference}:refund").as_json()
            except PermanentError:
                return
            self._step(services.refund_record, reference=reference, workflow_id=wid, result=result)
        elif action == "deactivate":
            blocked = self.card_system.block(card_number=case.card.number, idempotency_key=f"{reference}:deactivate")
            if crash_after_call:
                return
            self._step(services.closure_deactivated, reference=reference, workflow_id=wid, result=blocked)
        elif action == "deactivate_number":
            result = registry.port("card_system").deactivate_number(
                iccid=case.card.number, idempotency_key=f"{reference}:deactivate_number")
            if crash_after_call:
                return
            self._step(services.closure_deactivated, reference=reference, workflow_id=wid, result=result)
        elif action == "release_profile":
            order = services.esim_release_order(reference=reference, workflow_id=wid)
            if order is None:
                return
            result = registry.port("smdp").cancel_order(
                iccid=order["iccid"], final_profile_status="Unavailable", function_call_id=order["function_call_id"])
            if crash_after_call:
                return
            self._step(services.esim_release_record, reference=reference, workflow_id=wid, result=result.as_json())
        elif action == "unbind":
            partners = services.unbind_order(reference=reference, workflow_id=wid)
            if partners is None:
                return
            # Partners acknowledge (their own delivery and retries are tested in tests/contracts).
            results = {partner: {"acknowledged": True, "status_code": 200, "error": ""} for partner in partners}
            self._step(services.unbind_record, reference=reference, workflow_id=wid, results=results)
        else:
            raise AssertionError(f"unknown action {action}")

    @precondition(lambda self: Refund.objects.filter(destination_type="cash", status="pending").exists())
    @rule(data=st.data(), right_id=st.sampled_from([True, True, False]))
    def hand_over_cash(self, data, right_id):
        """A branch clerk hands a waiting cash refund over, after checking the ID document."""
        reference = data.draw(st.sampled_from(list(Refund.objects.filter(
            destination_type="cash", status="pending").order_by("id").values_list("case__reference", flat=True))))
        try:
            services.refund_cash_hand_over(reference=reference, clerk="staff:clerk", branch_code="HK-CEN",
                                           id_type="hkid", id_number=HKID if right_id else "B1234560")
        except services.UnableToHandOver:
            return  # the case moved on (withdrawn, on hold) since the cash was made ready
        except services.IdentityNotVerified:
            assert not right_id
            return
        assert right_id, "cash was handed over to someone with another ID document"
        self.reached["cash handed over"] += 1

    @precondition(lambda self: self.steps_run)
    @rule(data=st.data())
    def crash_and_replay_a_step(self, data):
        """A step runs again after a crash (or a stale workflow finishes late) with its first arguments."""
        service, kwargs = data.draw(st.sampled_from(self.steps_run))
        try:
            service(**kwargs)
        except EXPECTED:
            pass
        self.reached["step replayed"] += 1

    # --- the payment provider's webhooks, the clock ---------------------------------------

    @precondition(lambda self: SimRefund.objects.exists())
    @rule(data=st.data(), deliver_now=st.booleans())
    def provider_sends_webhook(self, data, deliver_now):
        """The provider announces the refund's current status (a signed event); it arrives now or
        later, out of order, or more than once."""
        key = data.draw(st.sampled_from(list(SimRefund.objects.order_by("id").values_list("idempotency_key", flat=True))))
        self.provider.refund_status(idempotency_key=key)  # a pending refund may have settled meanwhile
        row = SimRefund.objects.get(idempotency_key=key)
        event = {
            "id": f"evt_machine_{next(self.event_ids)}", "object": "event", "type": "refund.updated",
            "created": int(time.time()),
            "data": {"object": {
                "id": row.provider_ref, "object": "refund", "amount": row.amount_minor,
                "currency": row.currency.lower(), "status": row.status, "failure_reason": row.failure_reason or None,
                "metadata": {"idempotency_key": row.idempotency_key},
            }},
        }
        self.webhooks.append(json.dumps(event).encode())
        if deliver_now:
            self._deliver(len(self.webhooks) - 1, keep=data.draw(st.booleans()))

    @precondition(lambda self: self.webhooks)
    @rule(data=st.data(), keep=st.booleans())
    def deliver_webhook(self, data, keep):
        """Deliver any sent webhook (out of order); keep it to deliver it again (a duplicate)."""
        self._deliver(data.draw(st.integers(0, len(self.webhooks) - 1)), keep=keep)

    def _deliver(self, index: int, *, keep: bool) -> None:
        body = self.webhooks[index] if keep else self.webhooks.pop(index)
        outcome = payment_webhook_receive(body=body, headers=sign_webhook(body))
        assert outcome in ("applied", "duplicate", "ignored"), outcome
        self.reached[f"webhook {outcome}"] += 1

    @rule(delta=st.sampled_from([timedelta(seconds=3), timedelta(minutes=5), timedelta(days=31)]))
    def time_passes(self, delta):
        self.clock.advance(delta)
        for reference in ClosureCase.objects.filter(state=states.AWAITING_RETURN).values_list("reference", flat=True):
            services.closure_deadline_passed(reference=reference)

    @rule(card_index=st.integers(0, 3), amount=st.integers(0, 500))
    def charge(self, card_index, amount):
        card = self.cards[card_index]
        card.refresh_from_db()
        attempt = cards.authorization_decide(card_number=card.number, amount=Money(amount, card.product.currency))
        if card.status != Card.Status.ACTIVE:
            assert attempt.decision == "declined", f"a {card.status} card was charged"

    # --- invariants -----------------------------------------------------------------------

    @invariant()
    def note_states(self):
        for state in CaseEvent.objects.values_list("to_state", flat=True).distinct():
            self.reached[state] += 1

    @invariant()
    def audit_chain_verifies(self):
        assert audit_verify() is None

    @invariant()
    def ledger_balances(self):
        per_posting = defaultdict(int)
        for posting_id, currency, amount in Line.objects.values_list("posting_id", "currency", "amount_minor"):
            per_posting[(posting_id, currency)] += amount
        assert all(total == 0 for total in per_posting.values()), "an unbalanced posting"

    @invariant()
    def refunds_paid_once_and_right(self):
        if not self.cards:
            return
        paid_per_card = defaultdict(int)
        for case in ClosureCase.objects.select_related("card__product__policy"):
            key = f"{case.reference}:refund"
            provider = SimRefund.objects.filter(idempotency_key=key).first()
            posted = Posting.objects.filter(key=key).count()
            assert posted <= 1
            refund = Refund.objects.filter(case=case).first()
            if provider is not None and provider.status == "succeeded":
                paid_per_card[case.card_id] += 1
                assert provider.amount_minor == case.quote["refund"], "paid another amount than quoted"
            if provider is not None and provider.status == "failed":
                assert posted == 0, "a declined refund reached the ledger"
            if case.refund_destination.get("type") == "cash":
                assert provider is None, "a cash refund was sent to the payment provider"
            if provider is not None and services.approval_required(case):
                assert RefundApproval.objects.filter(case=case, decision="approved").exists(), \
                    "a refund needing approval was sent to the provider without one"
            if case.state in PAID_STATES:
                assert refund is not None and refund.status == "succeeded" and posted == 1
                assert refund.amount_minor == case.quote["refund"]
                assert case.quote["refund"] == 0 or (provider is not None and provider.status == "succeeded") or (
                    refund.destination_type == "cash" and refund.provider_ref.startswith("cash:"))
                payable = Line.objects.filter(account__code=f"payable:{case.reference}").aggregate(
                    s=Sum("amount_minor"))["s"] or 0
                assert payable == 0, "refund payable left after paying"
        assert all(n <= 1 for n in paid_per_card.values()), "a card was refunded twice"

    @invariant()
    def card_status_follows_its_case(self):
        for card in self.cards:
            card.refresh_from_db()
            last = ClosureCase.objects.filter(card=card).order_by("-id").first()
            if last is None or last.state in (states.WITHDRAWN, states.REJECTED):
                expected = {Card.Status.ACTIVE}
            elif last.state == states.CLOSED:
                expected = {Card.Status.CLOSED}
            elif last.state == states.UNBINDING or (last.state in (states.ON_HOLD, states.FAILED)
                                                    and last.resume_to == states.UNBINDING):
                expected = {Card.Status.BLOCKED}
            else:
                expected = {Card.Status.CLOSING, Card.Status.BLOCKED}
            assert card.status in expected, f"card {card.status} while its case is {last and last.state}"
            assert ClosureCase.objects.filter(card=card).exclude(state__in=states.TERMINAL).count() <= 1


def test_closure_lifecycle_keeps_its_invariants():
    reached = Counter()
    for profile, modes in PROFILES.items():
        machine = type(f"ClosureLifecycle_{profile}", (ClosureLifecycle,), {"modes": modes, "reached": Counter()})
        run_state_machine_as_test(machine, settings=settings(
            max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, database=None,
            derandomize=not RANDOM,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
        ))
        print(f"\nstateful {profile}: {EXAMPLES} runs x {STEPS} steps reached {dict(machine.reached)}")
        reached.update(machine.reached)
    missing = [what for what in MUST_REACH if not reached[what]]
    assert not missing, f"the runs never reached {missing}: the test is too shallow"

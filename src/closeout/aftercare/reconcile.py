"""Reconciliation: for every closed case, the ledger, the payment provider, the card system, the
SM-DP+ (for eSIMs), the partner bindings and the certificate must all tell the same story.

Each check is a function `(ClosureCase) -> list[Mismatch]` in `CHECKS`; a new external system
adds one with `@reconcile_check`. The card system and the SM-DP+ are asked through their ports,
so a reconcile reads what the real systems report when they are configured.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import TextIO

from django.db.models import Sum

from closeout.cards.models import Binding, Card
from closeout.closures import states
from closeout.closures.models import ClosureCase, Refund
from closeout.integrations import registry
from closeout.integrations.errors import PermanentError, TransientError
from closeout.ledger import services as ledger
from closeout.ledger.models import Line, Posting

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Mismatch:
    reference: str
    check: str
    expected: str
    actual: str

    def __str__(self) -> str:
        return f"{self.reference}  {self.check}: expected {self.expected}, found {self.actual}"


Check = Callable[[ClosureCase], list[Mismatch]]
CHECKS: list[Check] = []


def reconcile_check(fn: Check) -> Check:
    """Add a check to the list `reconcile_run` runs by default."""
    CHECKS.append(fn)
    return fn


def _balance(code: str) -> int:
    return -(Line.objects.filter(account__code=code).aggregate(s=Sum("amount_minor"))["s"] or 0)


def _handed_over(refund: Refund | None) -> bool:
    """Paid in cash at a counter (a cash refund an earlier version sent to the provider was not)."""
    return refund is not None and refund.provider_ref.startswith("cash:")


def _till(refund: Refund) -> tuple[str, str]:
    return refund.provider_ref.removeprefix("cash:"), refund.currency


@reconcile_check
def check_ledger(case: ClosureCase) -> list[Mismatch]:
    """Settled once, refund paid from refunds payable, nothing left on the card's accounts."""
    out = []
    ref = case.reference
    if not Posting.objects.filter(key=f"{ref}:settle").exists():
        out.append(Mismatch(ref, "ledger", "a settlement posting", "none"))
    refund = Refund.objects.filter(case=case).first()
    if refund is None or refund.status != Refund.Status.SUCCEEDED:
        out.append(Mismatch(ref, "ledger", "a succeeded refund record", refund.status if refund else "none"))
    elif refund.amount_minor != case.quote.get("refund"):
        out.append(Mismatch(ref, "ledger", f"refund {case.quote.get('refund')} as quoted", str(refund.amount_minor)))
    # By the posting's id, not a join on its key: the planner may otherwise walk every line of the
    # clearing account, which holds one per refund ever paid (a full reconcile grew as n²).
    posting_id = Posting.objects.filter(key=f"{ref}:refund").values_list("id", flat=True).first()
    paid_from = ledger.branch_cash_account(*_till(refund)) if _handed_over(refund) else ledger.CLEARING
    paid = -(Line.objects.filter(posting_id=posting_id, account__code=paid_from)
             .aggregate(s=Sum("amount_minor"))["s"] or 0) if posting_id else 0
    if refund is not None and paid != refund.amount_minor:
        out.append(Mismatch(ref, "ledger", f"refund posting of {refund.amount_minor}", str(paid)))
    for code in (ledger.refunds_payable_account(ref), ledger.card_value_account(case.card_id),
                 ledger.card_deposit_account(case.card_id)):
        left = _balance(code)
        if left:
            out.append(Mismatch(ref, "ledger", f"{code} at 0", str(left)))
    return out


@reconcile_check
def check_payment_provider(case: ClosureCase) -> list[Mismatch]:
    """Exactly one refund at the provider, succeeded, for the amount and currency recorded, read
    from the provider's own records (a refund handed over in cash is the till's, not the provider's).
    Requests the provider declined before a resumed case asked again moved no money and do not count."""
    ref = case.reference
    refund = Refund.objects.filter(case=case).first()
    amount = refund.amount_minor if refund else case.quote.get("refund", 0)
    currency = refund.currency if refund else case.quote.get("currency", "")
    if amount == 0 or _handed_over(refund):
        return []  # nothing was owed, or a clerk paid it from a till: the provider was never asked
    rows: list = []
    seen = _asked("payments", lambda provider: rows.extend(
        provider.refunds_of(reference=ref, destination=case.refund_destination)) or "answered")
    if seen != "answered":
        return [Mismatch(ref, "payment_provider", "the provider's refund records", seen)]
    current = refund.idempotency_key if refund is not None else ""
    rows = [row for row in rows if row.status != "failed" or row.idempotency_key == current]
    if len(rows) != 1:
        return [Mismatch(ref, "payment_provider", "1 refund at the provider", f"{len(rows)} refunds")]
    row = rows[0]
    out = []
    if (row.amount.minor, row.amount.currency) != (amount, currency):
        out.append(Mismatch(ref, "payment_provider", f"{amount} {currency}", f"{row.amount.minor} {row.amount.currency}"))
    if row.status != "succeeded":
        out.append(Mismatch(ref, "payment_provider", "succeeded", row.status))
    if refund is not None and refund.provider_ref and row.provider_ref != refund.provider_ref:
        out.append(Mismatch(ref, "payment_provider", f"provider ref {refund.provider_ref}", row.provider_ref))
    return out


# What the card system reports for a card once its case has closed: a stored-value card is
# blocked; a SIM's (or eSIM's) number is taken out of service instead.
CARD_SYSTEM_CLOSED = {"stored_value": "blocked", "travel_sim": "deactivated", "esim": "deactivated"}
# An eSIM profile ends either cancelled by the operator (UNAVAILABLE) or deleted on the device.
PROFILE_ENDED = ("UNAVAILABLE", "DELETED")


# The ports of one run, made once each: a real adapter holds an HTTP client and its connections.
_ports: dict[str, object] = {}


def _asked(system: str, call) -> str:
    """The external system's answer, or what stood in its way (never the card number): a system
    that is down or answers nonsense is a mismatch to look at, not the end of the run."""
    try:
        if system not in _ports:
            _ports[system] = registry.port(system)
        return call(_ports[system])
    except PermanentError:
        return "unknown to it"
    except TransientError:
        return "no answer"
    except Exception:  # noqa: BLE001 - e.g. a malformed body from a real adapter
        log.warning("reconcile: unreadable answer from %s", system, exc_info=True)
        return "unreadable answer"


@reconcile_check
def check_card_system(case: ClosureCase) -> list[Mismatch]:
    """The card system has the card blocked (a SIM's number out of service) and closeout has it closed."""
    card = case.card
    expected = CARD_SYSTEM_CLOSED[card.product.kind]
    out = []
    seen = _asked("card_system", lambda cms: cms.card_info(card_number=card.number).status)
    if seen != expected:
        out.append(Mismatch(case.reference, "card_system", f"{expected} at the card system", seen))
    if card.status != Card.Status.CLOSED:
        out.append(Mismatch(case.reference, "card_system", "card closed in closeout", card.status))
    return out


@reconcile_check
def check_esim_profile(case: ClosureCase) -> list[Mismatch]:
    """An eSIM's profile is cancelled or deleted at the SM-DP+, unless staff closed the case
    without the device's deletion after the wait ran out (the certificate says "waived")."""
    card = case.card
    if card.product.kind != "esim" or case.events.filter(data__override=True).exists():
        return []
    seen = _asked("smdp", lambda smdp: smdp.profile_status(iccid=card.number))
    if seen not in PROFILE_ENDED:
        return [Mismatch(case.reference, "esim_profile", " or ".join(PROFILE_ENDED) + " at the SM-DP+", seen)]
    return []


@reconcile_check
def check_partner_bindings(case: ClosureCase) -> list[Mismatch]:
    """No partner app is still bound to the card."""
    bound = sorted(Binding.objects.filter(card_id=case.card_id, unbound_at__isnull=True)
                   .values_list("partner", flat=True))
    if bound:
        return [Mismatch(case.reference, "partner_bindings", "no app bound", "still bound: " + ", ".join(bound))]
    return []


@reconcile_check
def check_certificate(case: ClosureCase) -> list[Mismatch]:
    """A closure certificate exists and its signature verifies."""
    from closeout.certificates.selectors import certificate_verification

    certificate = getattr(case, "certificate", None)
    if certificate is None:
        return [Mismatch(case.reference, "certificate", "a signed certificate", "none")]
    result = certificate_verification(certificate)
    if not result["valid"]:
        return [Mismatch(case.reference, "certificate", "a valid signature", result["reason"])]
    return []


def reconcile_run(*, checks: Iterable[Check] | None = None, references: Iterable[str] | None = None
                  ) -> list[Mismatch]:
    """Run every check on every closed case (or the given ones) and return all mismatches."""
    cases = ClosureCase.objects.filter(state=states.CLOSED).select_related("card__product").order_by("id")
    if references is not None:
        cases = cases.filter(reference__in=list(references))
    chosen = list(checks if checks is not None else CHECKS)
    _ports.clear()  # each run reads the configuration afresh
    out: list[Mismatch] = []
    for case in cases.iterator(chunk_size=500):
        for check in chosen:
            out.extend(check(case))
    return out


def mismatches_write_csv(mismatches: Iterable[Mismatch], stream: TextIO) -> int:
    writer = csv.DictWriter(stream, fieldnames=["reference", "check", "expected", "actual"])
    writer.writeheader()
    count = 0
    for mismatch in mismatches:
        writer.writerow(asdict(mismatch))
        count += 1
    return count

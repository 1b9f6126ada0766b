"""The charge guard's nightly job: compare the card system's transaction feed with closing and
closed cards and alert staff to any charge that slipped through.

Online authorizations are declined by `cards.services.authorization_decide`; this job catches what
never asked us (offline readers with an old hotlist, a race with the closure request)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction

from closeout.aftercare.models import CardFeedTransaction, GuardAlert
from closeout.audit.services import audit_record
from closeout.closures import states
from closeout.closures.models import ClosureCase
from closeout.common import clock
from closeout.common.money import Money
from closeout.identity.documents import mask_card_number

log = logging.getLogger(__name__)

LOOKBACK = timedelta(days=2)
# A case that was withdrawn or rejected gave the card back to the holder.
RELEASED = (states.WITHDRAWN, states.REJECTED)


def feed_record(*, external_ref: str, card_number: str, at: datetime, amount: Money, kind: str = "purchase",
                status: str = "approved", source: str = "") -> CardFeedTransaction:
    """Record one card-system transaction in the simulated feed (idempotent by external_ref)."""
    row, _ = CardFeedTransaction.objects.get_or_create(
        external_ref=external_ref,
        defaults=dict(card_number=card_number, at=at, amount_minor=amount.minor, currency=amount.currency,
                      kind=kind, status=status, source=source[:40]),
    )
    return row


def _closing_case(card_number: str, at: datetime) -> ClosureCase | None:
    """Return the case that had asked for this card's closure before `at`, if any."""
    return (ClosureCase.objects.filter(card__number=card_number, created_at__lte=at)
            .exclude(state__in=RELEASED).order_by("created_at").first())


def guard_check(*, since: datetime | None = None, now: datetime | None = None) -> list[GuardAlert]:
    """Alert on approved feed transactions made after their card's closure was requested.

    Returns the new alerts; an alert is raised once per feed transaction, so reruns are harmless.
    """
    now = now or clock.now()
    since = since if since is not None else now - LOOKBACK
    candidates = (CardFeedTransaction.objects.filter(at__gte=since, status="approved", alert__isnull=True)
                  .order_by("at", "id"))
    new_alerts = []
    for txn in candidates.iterator():
        case = _closing_case(txn.card_number, txn.at)
        if case is None:
            continue
        try:
            with transaction.atomic():
                alert = GuardAlert.objects.create(
                    transaction=txn, case_reference=case.reference, card_masked=mask_card_number(txn.card_number),
                    amount_minor=txn.amount_minor, currency=txn.currency, charged_at=txn.at, detected_at=now,
                )
                audit_record(actor="system:guard", action="guard.charge_after_closure", subject=case.reference,
                             reason=f"{txn.kind} approved by {txn.source or 'card system'}",
                             data={"amount": txn.amount_minor, "currency": txn.currency,
                                   "external_ref": txn.external_ref, "at": txn.at.isoformat()})
        except IntegrityError:
            continue  # another run raised it first
        new_alerts.append(alert)
    if new_alerts:
        _notify_staff(new_alerts)
    return new_alerts


def _notify_staff(alerts: list[GuardAlert]) -> None:
    """Email staff (after the alerts are committed); the console lists the same alerts."""
    lines = [
        f"{a.case_reference}  {a.card_masked}  {Money(a.amount_minor, a.currency).format()}  "
        f"{a.charged_at.isoformat(timespec='seconds')}"
        for a in alerts
    ]
    log.warning("guard: %d charge(s) slipped past closing or closed cards", len(alerts))
    if not settings.STAFF_ALERT_EMAILS:
        return
    try:
        send_mail(
            subject=f"[closeout] {len(alerts)} charge(s) on closing or closed cards",
            message="These charges were approved after the card's closure was requested:\n\n" + "\n".join(lines)
            + "\n\nRefund or reverse each one and record the resolution in the console.",
            from_email=settings.DEFAULT_FROM_EMAIL, recipient_list=settings.STAFF_ALERT_EMAILS,
        )
    except OSError as exc:
        log.error("guard: staff alert email failed: %s", type(exc).__name__)
        return
    GuardAlert.objects.filter(id__in=[a.id for a in alerts]).update(notified_at=clock.now())


def guard_alerts_open() -> list[dict]:
    """Unresolved alerts, newest first, for the console."""
    return [
        {"id": a.id, "reference": a.case_reference, "card": a.card_masked, "amount": a.amount_minor,
         "currency": a.currency, "charged_at": a.charged_at.isoformat(), "notified": a.notified_at is not None}
        for a in GuardAlert.objects.filter(resolved_at__isnull=True).order_by("-charged_at")
    ]

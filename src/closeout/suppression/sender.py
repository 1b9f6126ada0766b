"""The email send path for holders. Every marketing message checks the suppression list right
before it goes out; service notices about a case skip that check on purpose (the customer must
still hear about their refund). Mail goes through Django's configured backend (SMTP in production)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import IntegrityError, transaction

from closeout.cards.models import Holder
from closeout.cards.services import holder_contact
from closeout.common import clock
from closeout.identity.vault import KeyDestroyed
from closeout.suppression.models import MarketingDelivery
from closeout.suppression.selectors import holder_suppressed

log = logging.getLogger(__name__)

MARKETING = "marketing"
SERVICE = "service"


@dataclass(frozen=True)
class Campaign:
    code: str
    subject: dict[str, str]  # by language code; "en" is the fallback
    body: dict[str, str]

    def text(self, language: str) -> tuple[str, str]:
        return (self.subject.get(language) or self.subject["en"], self.body.get(language) or self.body["en"])


@dataclass
class SendReport:
    campaign: str
    outcomes: Counter = field(default_factory=Counter)

    @property
    def sent(self) -> int:
        return self.outcomes["sent"]

    @property
    def suppressed(self) -> int:
        return self.outcomes["suppressed"]


class MessageSuppressed(Exception):
    """A marketing message to a suppressed holder was refused."""


def _email_of(holder: Holder) -> str:
    try:
        return holder_contact(holder).get("email", "")
    except KeyDestroyed:
        return ""


def email_send(*, holder: Holder, subject: str, body: str, purpose: str, connection=None) -> bool:
    """Send one email to a holder; return False when the holder has no readable email address.

    :raises MessageSuppressed: for a marketing message to a holder on the suppression list.
    """
    if purpose not in (MARKETING, SERVICE):
        raise ValueError(f"unknown purpose {purpose!r}")
    if purpose == MARKETING and holder_suppressed(holder):
        raise MessageSuppressed(f"holder {holder.id}")
    address = _email_of(holder)
    if not address:
        return False
    headers = {"X-Closeout-Purpose": purpose}
    if purpose == MARKETING:
        headers["List-Unsubscribe"] = f"<{settings.PUBLIC_URL}/>"
    EmailMessage(subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=[address],
                 headers=headers, connection=connection).send()
    return True


def marketing_send(*, campaign: Campaign, holders: Iterable[Holder]) -> SendReport:
    """Send a campaign: each holder is checked against the suppression list just before their
    message, and each holder gets the campaign at most once (a rerun skips those done)."""
    report = SendReport(campaign.code)
    done = set(MarketingDelivery.objects.filter(campaign=campaign.code).values_list("holder_id", flat=True))
    with get_connection() as connection:
        for holder in holders:
            if holder.id in done:
                report.outcomes["already_done"] += 1
                continue
            subject, body = campaign.text(holder.language)
            try:
                outcome = "sent" if email_send(holder=holder, subject=subject, body=body, purpose=MARKETING,
                                                connection=connection) else "no_contact"
            except MessageSuppressed:
                outcome = "suppressed"
            except OSError as exc:
                log.warning("marketing %s to holder %s failed: %s", campaign.code, holder.id, type(exc).__name__)
                outcome = "failed"
            report.outcomes[outcome] += 1
            if outcome != "failed":
                try:
                    with transaction.atomic():
                        MarketingDelivery.objects.create(campaign=campaign.code, holder_id=holder.id,
                                                         outcome=outcome, at=clock.now())
                except IntegrityError:
                    pass
    return report

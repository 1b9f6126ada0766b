"""Send notices to customers by email (SMTP) or SMS (the SMS gateway port).

The service API is three functions (and the notices the cases send, built on them):

- ``notice_send(channel=, to=, template=, language=, ...)``: one notice to one address.
- ``notice_send_holder(holder=, template=, ...)``: to the holder's contacts on file.
- ``notice_retry(notice=)``: deliver a failed or still-queued notice again.

A notice row is written first (status ``queued``; the address only masked and hashed), then
delivered after the surrounding transaction commits (at once when there is none), so no email
or SMS leaves for a rolled-back change and no external call runs inside a transaction. A ``key``
makes the notice idempotent: a workflow step that runs twice sends once. In a worker, the
delivery is handed to the worker's notifier thread (``Notifier``), so that a slow mail relay holds
up no workflow step; what a stopped or killed worker had not sent yet, the sweep sends
(``notices_retry_due``).
"""

from __future__ import annotations

import logging
import queue
import threading
from datetime import timedelta
from email.header import Header

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.message import make_msgid
from django.db import transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.utils import translation

from closeout.closures import states
from closeout.common import clock
from closeout.common.fastinsert import insert_one
from closeout.common.languages import language_tag
from closeout.identity import documents, vault
from closeout.integrations.errors import AdapterError
from closeout.integrations.sms import gateway
from closeout.notifications.models import UNDELIVERED, Notice

log = logging.getLogger(__name__)

TEMPLATES = ("otp", "receipt", "fees_paid", "withdrawn", "status", "appointment_booked", "appointment_reminder",
             "cash_ready", "esim_delete_request", "card_handed_back")
LANGUAGES = ("zh-hans", "zh-hant", "en")


class UnableToSendNotice(Exception):
    """Base of the errors of the notice services."""


class UnknownTemplate(UnableToSendNotice):
    pass


class InvalidAddress(UnableToSendNotice):
    pass


class CannotResend(UnableToSendNotice):
    """The notice carried a secret (a one-time code) or its address is gone: it cannot be re-sent."""


def _normalize(channel: str, to: str) -> tuple[str, str, str]:
    """Return (address, masked, hash) with the hash equal to the holder's lookup hash."""
    try:
        if channel == Notice.Channel.EMAIL:
            address = documents.normalize_email(to)
            return address, documents.mask_email(address), vault.lookup_hash("email", address)
        if channel == Notice.Channel.SMS:
            address = documents.normalize_phone(to)
            return address, documents.mask_phone(address), vault.lookup_hash("phone", address)
    except documents.InvalidDocument as exc:
        raise InvalidAddress(exc.message)
    raise InvalidAddress(f"unknown channel {channel!r}")


def notice_send(*, channel: str, to: str, template: str, language: str, context: dict | None = None,
                secrets: dict | None = None, case=None, card=None, key: str | None = None) -> Notice:
    """Record a notice and deliver it once the current transaction commits.

    `context` is stored with the notice (JSON values only); `secrets` (e.g. a one-time code)
    are used for this delivery and never stored. With `key`, a second call returns the first
    notice and sends nothing.

    :raises UnknownTemplate: for a template closeout does not have.
    :raises InvalidAddress: for a malformed email address or phone number.
    """
    if template not in TEMPLATES:
        raise UnknownTemplate(template)
    address, masked, hashed = _normalize(channel, to)
    language = language if language in LANGUAGES else "en"
    notice = Notice(key=key or None, case=case, card=card, channel=channel, template=template, language=language,
                    to_masked=masked, to_hash=hashed, context=dict(context or {}), has_secrets=bool(secrets),
                    created_at=clock.now())
    if insert_one(notice, unless_taken="key") is None:  # sent before under this key: a step ran again
        return Notice.objects.get(key=key)
    transaction.on_commit(lambda: _deliver_now_or_hand_over(notice, address, secrets or {}))
    return notice


def notice_send_holder(*, holder, template: str, language: str | None = None, context: dict | None = None,
                       secrets: dict | None = None, channels: tuple[str, ...] = ("email", "sms"), case=None,
                       card=None, key: str | None = None) -> list[Notice]:
    """Send to each of `channels` the holder has on file (none after crypto-shredding).

    :raises UnknownTemplate: for a template closeout does not have.
    """
    from closeout.cards.services import holder_contact

    if not holder.data_key:
        return []
    contact = holder_contact(holder)
    targets = {"email": contact.get("email"), "sms": contact.get("phone")}
    sent = []
    for channel in channels:
        if targets.get(channel):
            sent.append(notice_send(
                channel=channel, to=targets[channel], template=template, language=language or holder.language,
                context=context, secrets=secrets, case=case, card=card,
                key=f"{key}:{channel}" if key else None,
            ))
    return sent


def notice_retry(*, notice: Notice) -> Notice:
    """Deliver a queued or failed notice again, to the holder address it was first sent to.

    :raises CannotResend: when it carried a secret, or the holder's address changed or was shredded.
    """
    if notice.status == Notice.Status.SENT:
        return notice
    _deliver(notice, _address_on_file(notice), {})
    notice.refresh_from_db()
    return notice


def _address_on_file(notice: Notice) -> str:
    """The holder's address the notice was first sent to.

    :raises CannotResend: when it carried a secret, or the holder's address changed or was shredded.
    """
    from closeout.cards.services import holder_contact

    holder = notice.card.holder if notice.card_id else notice.case.card.holder if notice.case_id else None
    if notice.has_secrets or holder is None or not holder.data_key:
        raise CannotResend("notice cannot be re-sent")
    contact = holder_contact(holder)
    address = contact.get("email" if notice.channel == Notice.Channel.EMAIL else "phone", "")
    if not address or _normalize(notice.channel, address)[2] != notice.to_hash:
        raise CannotResend("the address on file changed")
    return address


# A notice a crash left queued, or a relay outage left failed, is sent again by the sweep: the n-th
# time NOTICE_RETRY_AFTER x n after it was written, up to NOTICE_ATTEMPTS attempts in all.
NOTICE_ATTEMPTS = 3
NOTICE_RETRY_AFTER = timedelta(minutes=5)


def notices_retry_due(*, now=None, limit: int = 100) -> int:
    """Deliver again the notices whose retry is due (none that carried a secret), through this
    process's notifier threads when it runs them; return how many were handed over. A notice whose
    holder's address changed or was shredded is given up."""
    now = now or clock.now()
    due = Q()
    for attempts in range(NOTICE_ATTEMPTS):
        due |= Q(attempts=attempts, created_at__lte=now - NOTICE_RETRY_AFTER * (attempts + 1))
    notices = (Notice.objects.filter(due, status__in=UNDELIVERED, has_secrets=False)
               .select_related("card__holder", "case__card__holder").order_by("created_at")[:limit])
    handed = 0
    for notice in notices:
        try:
            address = _address_on_file(notice)
        except CannotResend:
            Notice.objects.filter(id=notice.id).update(attempts=NOTICE_ATTEMPTS, error="CannotResend")
            continue
        _deliver_now_or_hand_over(notice, address, {})
        handed += 1
    return handed


def notice_resend(*, reference: str) -> list[Notice]:
    """Send the customer what they missed (staff console's "resend"): the case's notices not
    delivered yet, given up or not, each to the address it was first sent to; with none missed,
    the notice of the case's current state again.

    A notice that cannot be sent again (it carried a one-time code, or the address changed) is
    left as it is.

    :raises ClosureCase.DoesNotExist: for an unknown reference.
    """
    from closeout.closures.models import ClosureCase

    case = ClosureCase.objects.select_related("card__holder").get(reference=reference)
    missed = Notice.objects.filter(case=case, status__in=UNDELIVERED, has_secrets=False).order_by("id")
    resent = []
    for notice in missed.select_related("case__card__holder"):
        try:
            resent.append(notice_retry(notice=notice))
        except CannotResend:
            continue
    return resent or notice_case_state(case=case)


def notice_case_state(*, case, key: str | None = None) -> list[Notice]:
    """Tell the holder the state the case is in now, in the case's language, by email and SMS;
    recorded in the caller's transaction and delivered after it commits. With `key`, once."""
    return notice_send_holder(
        holder=case.card.holder, template="status", language=case.language, case=case, key=key,
        context={"reference": case.reference, "state": case.state,
                 "card_masked": documents.mask_card_number(case.card.number),
                 # A case that has ended, or whose refund waits for the card, has no date to promise.
                 "sla_due": case.sla_due_date.isoformat() if case.sla_due_date and case.state not in (
                     *states.TERMINAL, states.AWAITING_RETURN) else "",
                 # "Refunded" says how much went where, as the receipt did.
                 "refund": case.quote.get("refund", 0), "currency": case.quote.get("currency", ""),
                 "destination": case.refund_destination.get("type", "original")},
    )


def notice_receipt(*, case) -> list[Notice]:
    """Send the holder the receipt of a submitted case (reference, refund, destination, expected
    date, whether the card must be posted back), whichever channel it came in by; once per case."""
    card = case.card
    return notice_send_holder(
        holder=card.holder, template="receipt", language=case.language, case=case, key=f"{case.reference}:receipt",
        context={"reference": case.reference, "refund": case.quote["refund"], "currency": case.quote["currency"],
                 "destination": case.refund_destination.get("type", "original"),
                 "sla_due": case.sla_due_date.isoformat() if case.sla_due_date else "",
                 "card_masked": documents.mask_card_number(card.number),
                 "return_required": bool(card.product.physical_return_required and card.physical),
                 "working_days": card.product.sla_working_days},
    )


def notice_cash_ready(*, case) -> list[Notice]:
    """Tell the holder their cash refund waits at the branches; once per case."""
    card = case.card
    return notice_send_holder(
        holder=card.holder, template="cash_ready", language=case.language, case=case, key=f"{case.reference}:cash_ready",
        context={"reference": case.reference, "refund": case.quote["refund"], "currency": case.quote["currency"],
                 "card_masked": documents.mask_card_number(card.number)},
    )


def notice_esim_delete_request(*, case) -> list[Notice]:
    """Ask the holder to delete the eSIM from their phone by the case's deadline: the SM-DP+ keeps
    the profile until the phone reports it gone, and the case waits for that; once per case."""
    card = case.card
    return notice_send_holder(
        holder=card.holder, template="esim_delete_request", language=case.language, case=case,
        key=f"{case.reference}:esim_delete_request",
        context={"reference": case.reference, "card_masked": documents.mask_card_number(card.number),
                 "delete_by": case.deadline_at.isoformat() if case.deadline_at else ""},
    )


def notice_card_handed_back(*, hand_back) -> list[Notice]:
    """Tell the holder that their card kept for them went back to them: posted back, with the
    carrier's tracking reference, or collected at a branch counter, and on which day; in the
    case's language (the holder's for a card without a case), once per hand-back. Recorded in the
    caller's transaction and delivered after it commits; a holder with no contact on file (or
    shredded) is sent nothing.

    :raises InvalidAddress: for a malformed address on file (the holder record never takes one).
    """
    card, case = hand_back.card, hand_back.case
    return notice_send_holder(
        holder=card.holder, template="card_handed_back", language=case.language if case else None, case=case,
        card=card, key=f"hand_back:{hand_back.id}",
        context={"reference": case.reference if case else "", "card_masked": documents.mask_card_number(card.number),
                 "method": hand_back.method, "tracking_ref": hand_back.tracking_ref,
                 "handed_back_at": hand_back.handed_back_at.isoformat()},
    )


def appointment_reminder_send(*, appointment_id: int) -> list[Notice]:
    """Remind the customer of a booked branch appointment, once per appointment time.

    :raises Appointment.DoesNotExist: for an unknown appointment.
    """
    return _appointment_notice(appointment_id, "appointment_reminder", "")


def appointment_confirmation_send(*, appointment_id: int) -> list[Notice]:
    """Confirm a booked (or moved) branch appointment, once per appointment time.

    :raises Appointment.DoesNotExist: for an unknown appointment.
    """
    return _appointment_notice(appointment_id, "appointment_booked", "booked:")


def _appointment_notice(appointment_id: int, template: str, kind: str) -> list[Notice]:
    from closeout.appointments.models import Appointment

    appointment = Appointment.objects.select_related("branch", "card__holder").get(id=appointment_id)
    branch = appointment.branch
    language = appointment.language if appointment.language in LANGUAGES else "en"
    return notice_send_holder(
        holder=appointment.card.holder, template=template, language=language,
        case=appointment.case, card=appointment.card,
        key=f"appointment:{appointment.id}:{kind}{appointment.starts_at.isoformat()}",
        context={"branch": branch.local_name(language), "address": branch.local_address(language),
                 "starts_at": appointment.starts_at.isoformat(),
                 "reference": appointment.case.reference if appointment.case_id else ""},
    )


def render(notice: Notice, secrets: dict) -> dict:
    """Return the rendered parts of a notice: subject, text, html (email) or text (SMS)."""
    context = {**notice.context, **secrets, "public_url": settings.PUBLIC_URL, "language": notice.language}
    base = f"notifications/{notice.template}"
    with translation.override(notice.language):
        if notice.channel == Notice.Channel.SMS:
            return {"text": render_to_string(f"{base}/sms.txt", context).strip()}
        return {
            "subject": " ".join(render_to_string(f"{base}/subject.txt", context).split()),
            "text": render_to_string(f"{base}/body.txt", context).strip() + "\n",
            "html": render_to_string(f"{base}/body.html", context),
        }


def _subject_header(subject: str) -> str:
    """The subject as RFC 2047 encoded words that leave room for "Subject: " on the first line.

    Left to the mail library, a Chinese subject becomes one long encoded word that cannot follow
    "Subject: " on its line, so the header starts with a fold, and many readers show the subject
    with a leading space. Encoded words apart are one text (the space between them is dropped).
    """
    if subject.isascii():
        return subject
    return " ".join(Header(subject, "utf-8", header_name="Subject").encode().split())


def _deliver(notice: Notice, address: str, secrets: dict) -> None:
    """Send one notice and record the outcome on the row and on `notice`; failures are recorded,
    never raised to the caller.

    The attempt is claimed first (the row's attempt count moves on from the one `notice` holds), so
    a notice already sent, or being sent by another caller, is not sent again whatever copy of the
    row this caller has.
    """
    claimed = Notice.objects.filter(id=notice.id, attempts=notice.attempts).exclude(status=Notice.Status.SENT)
    if not claimed.update(attempts=F("attempts") + 1):
        return
    notice.attempts += 1
    parts = render(notice, secrets)
    provider_ref, error = "", ""
    try:
        if notice.channel == Notice.Channel.SMS:
            result = gateway().send(to=address, body=parts["text"], idempotency_key=f"notice:{notice.id}")
            provider_ref = result.message_ref
        else:
            message = EmailMultiAlternatives(
                subject=_subject_header(parts["subject"]), body=parts["text"], from_email=settings.DEFAULT_FROM_EMAIL, to=[address],
                connection=get_connection(timeout=getattr(settings, "EMAIL_TIMEOUT", None) or 10),
                headers={"Message-ID": make_msgid(domain=settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].strip(">")),
                         "Content-Language": language_tag(notice.language)},
            )
            message.attach_alternative(parts["html"], "text/html")
            message.send()
            provider_ref = message.extra_headers["Message-ID"]
    except (AdapterError, OSError) as exc:
        error = type(exc).__name__
        # Neither the address nor the text is logged: they may hold PII or a code. Where it went
        # (the relay, the gateway's answer) and the case it is about tell the on-call what to look at.
        if notice.channel == Notice.Channel.SMS:
            where = f"SMS gateway: {exc}" if isinstance(exc, AdapterError) else "SMS gateway"
        else:
            where = f"mail relay {settings.EMAIL_HOST}:{settings.EMAIL_PORT}"
        from closeout.closures.models import ClosureCase

        reference = (ClosureCase.objects.filter(id=notice.case_id).values_list("reference", flat=True).first()
                     if notice.case_id else None)
        log.warning("notice %s (%s by %s) failed: %s (%s)", notice.id, notice.template, notice.channel, error, where,
                    extra={"case": reference, "notice": notice.id, "channel": notice.channel, "error_type": error,
                           "attempt": notice.attempts})
    notice.status = Notice.Status.FAILED if error else Notice.Status.SENT
    notice.provider_ref, notice.error = provider_ref[:120], error[:200]
    notice.sent_at = None if error else clock.now()
    Notice.objects.filter(id=notice.id).update(status=notice.status, provider_ref=notice.provider_ref,
                                               error=notice.error, sent_at=notice.sent_at)


class Notifier:
    """A worker's thread that delivers the notices of one channel its workflow steps write, one after
    the other, after their commit. A notice it has not sent when the worker stops stays queued for
    the sweep."""

    def __init__(self, channel: str):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"closeout-notifier-{channel}", daemon=True)

    def start(self) -> Notifier:
        self._thread.start()
        return self

    def put(self, notice: Notice, address: str) -> None:
        self._queue.put((notice, address))

    def stop(self) -> None:
        """Ask the thread to stop once it has sent what is waiting."""
        self._queue.put(None)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout=timeout)

    def _run(self) -> None:
        from django.db import close_old_connections

        while (item := self._queue.get()) is not None:
            close_old_connections()
            try:
                _deliver(*item, {})
            except Exception:  # noqa: BLE001 - the notice stays queued; the sweep sends it later
                log.warning("notice %s could not be delivered; the sweep retries it", item[0].id, exc_info=True)
        close_old_connections()


# One thread per channel: a mail relay that stalls does not hold up the text messages.
_notifiers: dict[str, Notifier] = {}


def notifier_start() -> None:
    """Deliver this process's notices (but those carrying a one-time code) on threads of their own."""
    for channel in Notice.Channel.values:
        if channel not in _notifiers:
            _notifiers[channel] = Notifier(channel).start()


def notifier_stop(timeout: float = 10.0) -> None:
    """Stop the threads, giving them up to `timeout` seconds to send what is waiting."""
    stopping = list(_notifiers.values())
    _notifiers.clear()
    for notifier in stopping:
        notifier.stop()
    for notifier in stopping:
        notifier.join(timeout)


def _deliver_now_or_hand_over(notice: Notice, address: str, secrets: dict) -> None:
    notifier = _notifiers.get(notice.channel)
    if notifier is None or secrets:
        _deliver(notice, address, secrets)
    else:
        notifier.put(notice, address)

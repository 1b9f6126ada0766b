"""One-time codes for the customer portal: request, verify, throttle.

A code is a low-assurance confirmation bound to one card: it lets the browser session that asked
for it act on that card's closure, nothing else. Every answer is the same whether or not the card
exists or the ID document matches; throttles count the card number as typed, so an unknown number
is throttled exactly like a known one. The code page names no contact either ("if the details
match a card, we have sent a code to the phone number on file").
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction

from closeout.cards.models import Card, Holder
from closeout.catalog.models import Product
from closeout.common import clock
from closeout.common.fastinsert import fetch_one, insert_one
from closeout.identity import documents, rules, vault
from closeout.identity.models import OtpChallenge, OtpEvent, PiiKeyCheck


class UnableToSendCode(Exception):
    """Base of the errors of `otp_request`."""


class CodeSendThrottled(UnableToSendCode):
    def __init__(self, until: datetime):
        super().__init__("too many codes requested")
        self.until = until


class ResendTooSoon(UnableToSendCode):
    """A new code for this sign-in was asked for within a minute of the last one."""

    def __init__(self, until: datetime):
        super().__init__("a new code was sent less than a minute ago")
        self.until = until


class SignInNotPending(UnableToSendCode):
    """The sign-in to send a new code for is unknown or already done: start again."""


class UnableToVerifyCode(Exception):
    """Base of the errors of `otp_verify`."""


class CodeWrong(UnableToVerifyCode):
    def __init__(self, attempts_left: int):
        super().__init__("wrong code")
        self.attempts_left = attempts_left


class CodeExpired(UnableToVerifyCode):
    """The code is older than its time to live, or the challenge is unknown."""


class CodeUsedUp(UnableToVerifyCode):
    """The code was already used or entered wrongly too many times: ask for a new one."""


class VerifyLocked(UnableToVerifyCode):
    def __init__(self, until: datetime):
        super().__init__("too many wrong codes")
        self.until = until


@dataclass(frozen=True)
class Verified:
    card: Card
    challenge_id: str


def subject_hash(card_number: str) -> str:
    return vault.lookup_hash("otp-subject", card_number)


def client_hash(client_address: str) -> str:
    return vault.lookup_hash("otp-client", client_address or "-")


def _code_hash(public_id: str, code: str) -> str:
    return vault.lookup_hash("otp-code", f"{public_id}:{code}")


def _times(kind: str, field: str, value: str, limits, now: datetime, *, before: int | None = None) -> list[datetime]:
    """When the events that count towards `limits` happened (only those written before event
    `before`, when given)."""
    since = now - rules.history_span(limits)
    events = OtpEvent.objects.filter(**{field: value}, kind=kind, at__gt=since)
    if before is not None:
        events = events.filter(id__lt=before)
    return list(events.values_list("at", flat=True))


def _locked_until(subject: str, client: str, now: datetime) -> datetime | None:
    checks = (
        (OtpEvent.Kind.FAILURE, "subject_hash", subject, rules.FAILURE_LIMITS_SUBJECT),
        (OtpEvent.Kind.FAILURE, "client_hash", client, rules.FAILURE_LIMITS_CLIENT),
    )
    return _latest(checks, now)


def _latest(checks, now: datetime) -> datetime | None:
    until = None
    for kind, field, value, limits in checks:
        candidate = rules.blocked_until(_times(kind, field, value, limits, now), limits, now)
        if candidate and (until is None or candidate > until):
            until = candidate
    return until


def _send_blocked_until(subject: str, client: str, now: datetime) -> datetime | None:
    """Until when no code may be sent for this card number (as typed) from this client address."""
    return _latest((
        (OtpEvent.Kind.SEND, "subject_hash", subject, rules.SEND_LIMITS_SUBJECT),
        (OtpEvent.Kind.SEND, "client_hash", client, rules.SEND_LIMITS_CLIENT),
        (OtpEvent.Kind.FAILURE, "subject_hash", subject, rules.FAILURE_LIMITS_SUBJECT),
        (OtpEvent.Kind.FAILURE, "client_hash", client, rules.FAILURE_LIMITS_CLIENT),
    ), now)


def _send_code(card: Card | None, channel: str, code: str, language: str) -> None:
    """Send the code to the card's holder; nothing for details that matched no card."""
    from closeout.notifications.services import notice_send_holder

    if card is not None and card.holder.data_key:
        # Delivered after commit, outside the transaction; the code itself is never stored.
        notice_send_holder(
            holder=card.holder, template="otp", language=language, channels=code_channels(card, channel),
            context={"minutes": int(rules.CODE_TTL.total_seconds() // 60)}, secrets={"code": code}, card=card,
        )


def otp_request(*, card_number: str, id_type: str, id_number: str, channel: str, client_address: str,
                language: str) -> OtpChallenge:
    """Create a challenge and, when the card and ID document match, send its code.

    The code goes where `code_channels` says. Nothing in the result says whether a code was sent.

    :raises documents.InvalidDocument: for a malformed card or ID number.
    :raises CodeSendThrottled: when this card number or client address asked too often, or is
        locked after wrong codes.
    """
    from closeout.closures.services import IdentityNotVerified, identity_check

    number = documents.normalize_card_number(card_number)
    subject, client = subject_hash(number), client_hash(client_address)
    now = clock.now()
    if channel not in OtpChallenge.Channel.values:
        channel = OtpChallenge.Channel.SMS
    try:
        card = identity_check(card_number=number, id_type=id_type, id_number=id_number)
    except IdentityNotVerified:
        card = None
    code = f"{secrets.randbelow(10**rules.CODE_DIGITS):0{rules.CODE_DIGITS}d}"
    public_id = secrets.token_urlsafe(32)
    with transaction.atomic():
        until = _send_blocked_until(subject, client, now)
        if until is None:
            challenge = OtpChallenge.objects.create(
                public_id=public_id, card=card, subject_hash=subject, client_hash=client, channel=channel,
                code_hash=_code_hash(public_id, code), created_at=now, expires_at=now + rules.CODE_TTL,
            )
            OtpEvent.objects.create(kind=OtpEvent.Kind.SEND, subject_hash=subject, client_hash=client, at=now)
            _send_code(card, channel, code, language)
    if until is not None:
        raise CodeSendThrottled(until)
    return challenge


def otp_resend(*, public_id: str, client_address: str, language: str) -> OtpChallenge:
    """Send a new code for a pending sign-in: to the same card and contacts, without asking for
    the card number and ID document again. The new challenge replaces the old one, whose code
    stops working.

    A challenge whose details matched no card gets a new challenge too, and still no code, so the
    answer stays the same. The throttles of `otp_request` count this send as well.

    :raises SignInNotPending: for an unknown challenge or one whose code was used to sign in.
    :raises ResendTooSoon: within `rules.RESEND_AFTER` of the last code.
    :raises CodeSendThrottled: when this card number or client address asked too often, or is
        locked after wrong codes.
    """
    client = client_hash(client_address)
    now = clock.now()
    code = f"{secrets.randbelow(10**rules.CODE_DIGITS):0{rules.CODE_DIGITS}d}"
    new_id = secrets.token_urlsafe(32)
    with transaction.atomic():
        old = (OtpChallenge.objects.select_for_update(of=("self",)).select_related("card__holder", "card__product")
               .filter(public_id=public_id).first())
        if old is None or old.used_at is not None:
            raise SignInNotPending("no pending sign-in")
        subject = old.subject_hash
        # The last code sent for these details, not this challenge's: a challenge already replaced
        # (or a second request racing this one, which waits on the lock above) starts no new wait.
        last = (OtpEvent.objects.filter(kind=OtpEvent.Kind.SEND, subject_hash=subject)
                .order_by("-at").values_list("at", flat=True).first())
        last = max(filter(None, (last, old.created_at)))
        if now < last + rules.RESEND_AFTER:
            raise ResendTooSoon(last + rules.RESEND_AFTER)
        until = _send_blocked_until(subject, client, now)
        if until is None:
            old.expires_at = min(old.expires_at, now)
            old.save(update_fields=["expires_at"])
            card = old.card
            challenge = OtpChallenge.objects.create(
                public_id=new_id, card=card, subject_hash=subject, client_hash=client, channel=old.channel,
                code_hash=_code_hash(new_id, code), created_at=now, expires_at=now + rules.CODE_TTL,
            )
            OtpEvent.objects.create(kind=OtpEvent.Kind.SEND, subject_hash=subject, client_hash=client, at=now)
            _send_code(card, old.channel, code, language)
    if until is not None:
        raise CodeSendThrottled(until)
    return challenge


def code_channels(card: Card, wanted: str) -> tuple[str, ...]:
    """Where a card's code goes: the channel the customer chose, or the other one when the holder
    has no such contact.

    A SIM's (or eSIM's) code always goes to the email address on file too: the phone number on
    file may be the very SIM being closed, switched off, left at home or already out of service.
    Only a holder with no email address gets it by SMS alone.
    """
    holder = card.holder
    have = {"email": bool(holder.email_encrypted), "sms": bool(holder.phone_encrypted)}
    if card.product.kind != Product.Kind.STORED_VALUE and have["email"]:
        return ("email", "sms") if wanted == "sms" and have["sms"] else ("email",)
    if have.get(wanted):
        return (wanted,)
    other = "email" if wanted == "sms" else "sms"
    return (other,) if have[other] else ()


def otp_verify(*, public_id: str, code: str, client_address: str) -> Verified:
    """Check a code once; on success the challenge is spent and its card returned.

    :raises CodeWrong: with the attempts left on this code.
    :raises CodeExpired: when the code is too old or the challenge unknown.
    :raises CodeUsedUp: when the code was used or entered wrongly too often.
    :raises VerifyLocked: after too many wrong codes for this card number or client address.
    """
    now = clock.now()
    client = client_hash(client_address)
    code = "".join(ch for ch in documents.half_width(code) if not ch.isspace())
    failure: UnableToVerifyCode | None = None
    with transaction.atomic():
        challenge = (OtpChallenge.objects.select_for_update(of=("self",)).select_related("card")
                     .filter(public_id=public_id).first())
        if challenge is None:
            raise CodeExpired("unknown challenge")
        until = _locked_until(challenge.subject_hash, client, now)
        if until is not None:
            raise VerifyLocked(until)
        if challenge.used_at is not None or challenge.attempts >= rules.MAX_ATTEMPTS_PER_CODE:
            raise CodeUsedUp("code used up")
        if now >= challenge.expires_at:
            raise CodeExpired("code expired")
        matches = hmac.compare_digest(challenge.code_hash, _code_hash(public_id, code))
        if matches and challenge.card is not None:
            challenge.used_at = now
            challenge.save(update_fields=["used_at"])
            return Verified(card=challenge.card, challenge_id=challenge.public_id)
        challenge.attempts += 1
        challenge.save(update_fields=["attempts"])
        OtpEvent.objects.create(kind=OtpEvent.Kind.FAILURE, subject_hash=challenge.subject_hash,
                                client_hash=client, at=now)
        left = rules.MAX_ATTEMPTS_PER_CODE - challenge.attempts
        failure = CodeWrong(left) if left > 0 else CodeUsedUp("too many wrong codes")
    raise failure


def identity_attempt_begin(*, card_number: str, client_address: str) -> tuple[int | None, datetime | None]:
    """Take one identity check for this card number (normalised): `(attempt, None)`, or
    `(None, until)` while checks are refused after too many that failed (wrong codes or ID
    documents that did not match).

    The attempt is written as a failure *before* the check and counted against the attempts
    written before it, so that checks sent in parallel cannot all pass a lock that none of them
    has yet recorded; `identity_attempt_void` takes it back when the check did not fail. Per card
    only: an API key serves all of a partner's customers, so a lock per key would let one
    customer typing wrong documents shut the partner out for everyone.
    """
    subject, now = subject_hash(card_number), clock.now()
    # Written without waiting for PostgreSQL's WAL flush (on its own, outside a transaction), as
    # is its voiding: a crash of the database server itself may forget the last fraction of a
    # second of attempts, which costs the lock a few counts and no one anything else.
    attempt = OtpEvent(kind=OtpEvent.Kind.FAILURE, subject_hash=subject, client_hash=client_hash(client_address),
                       at=now)
    insert_one(attempt, durable=False)
    limits = rules.FAILURE_LIMITS_SUBJECT
    earlier = _times(OtpEvent.Kind.FAILURE, "subject_hash", subject, limits, now, before=attempt.id)
    until = rules.blocked_until(earlier, limits, now)
    if until is not None:
        identity_attempt_void(attempt.id)
        return None, until
    return attempt.id, None


def identity_attempt_void(attempt: int) -> None:
    """The check taken with `identity_attempt_begin` did not fail (it passed, or never ran)."""
    fetch_one(f'DELETE FROM "{OtpEvent._meta.db_table}" WHERE "id" = %s RETURNING "id"', [attempt], durable=False)


# --- the PII master key ------------------------------------------------------------------------


class UnableToUsePiiKey(Exception):
    """Base of the errors of `pii_key_check`: the process must not start with this key."""


class PiiKeyMissing(UnableToUsePiiKey):
    """The key file is gone while the database holds personal data encrypted under it."""

    def __init__(self, path):
        super().__init__(f"{path.parent} has no pii_key file and CLOSEOUT_PII_KEY is not set, but the database "
                         "holds personal data encrypted under a PII key; no new key was made (it could read none "
                         f"of it): restore {path.name} from your backup into {path.parent} or set CLOSEOUT_PII_KEY "
                         "(docs/reliability.md, \"The PII key\")")


class PiiKeyWrong(UnableToUsePiiKey):
    """The key given is not the one the database's personal data is encrypted under."""

    def __init__(self, *, where: str, found: str):
        super().__init__(f"the PII key ({where}) is not the one this database's personal data is encrypted under "
                         f"({found}): restore the right pii_key from your backup (docs/reliability.md, "
                         "\"The PII key\")")


def pii_key_check() -> None:
    """Start with the PII master key only if it is the database's: keep a new key only for a
    database that holds no personal data yet, and record the key's fingerprint once.

    Costs one or two reads (and, for personal data stored before fingerprints were, one AES-GCM
    open of a holder key).

    :raises PiiKeyMissing: when the key is new but the database holds data under an earlier one.
    :raises PiiKeyWrong: when the key does not match the recorded fingerprint or opens no holder key.
    """
    tables = set(connection.introspection.table_names())
    checked = PiiKeyCheck._meta.db_table in tables
    recorded = PiiKeyCheck.objects.filter(id=1).values_list("fingerprint", flat=True).first() if checked else None
    holder_key = None
    if Holder._meta.db_table in tables:
        holder_key = (Holder.objects.exclude(data_key=None).exclude(data_key="").order_by("id")
                      .values_list("data_key", flat=True).first())
        if recorded is None and holder_key is None and Holder.objects.exists():
            holder_key = ""  # holders all shredded: their lookup hashes still need the old key
    unsaved = getattr(settings, "PII_KEY_UNSAVED_PATH", None)
    if unsaved is not None and unsaved.exists():  # kept since the settings loaded (`serve` starting beside)
        settings.PII_MASTER_KEY, settings.PII_KEY_UNSAVED_PATH = unsaved.read_text().strip(), None
        unsaved = None
    if unsaved is not None:
        if recorded is not None or holder_key is not None:
            raise PiiKeyMissing(unsaved)
        settings.PII_MASTER_KEY = _pii_key_keep(unsaved, settings.PII_MASTER_KEY)
        settings.PII_KEY_UNSAVED_PATH = None
    given = vault.key_fingerprint()
    where = "CLOSEOUT_PII_KEY" if os.environ.get("CLOSEOUT_PII_KEY") else str(settings.DATA_DIR / "pii_key")
    if recorded is not None:
        if not hmac.compare_digest(recorded, given):
            raise PiiKeyWrong(where=where, found=f"its fingerprint is {given[:12]}, the database's {recorded[:12]}")
        return
    if holder_key and not vault.key_opens(holder_key):
        raise PiiKeyWrong(where=where, found="it cannot open the holders' data keys")
    if checked:
        PiiKeyCheck.objects.get_or_create(id=1, defaults={"fingerprint": given, "recorded_at": clock.now()})


def _pii_key_keep(path, key: str) -> str:
    """Write a new key where the settings would have (owner-only), or take the one another process
    starting at the same moment wrote first."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key

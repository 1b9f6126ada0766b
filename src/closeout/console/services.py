"""Writes of the staff console: staff accounts and sign-in, notes, fee waivers, notices, and
closures opened for a caller, email or chat customer. Case state changes go through
`closures.services`."""

from __future__ import annotations

import hmac
import re
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.db import transaction
from django.db.models import F
from django_otp.plugins.otp_totp.models import TOTPDevice

from closeout.appointments.models import Branch
from closeout.audit.services import audit_record
from closeout.cards.models import Card, CardCharge
from closeout.closures import services as closures
from closeout.closures import states
from closeout.closures.models import ClosureCase
from closeout.common import clock
from closeout.common.text import UnusableLabel, ascii_digits, one_line_label
from closeout.console import roles
from closeout.console.models import NAME_MAX_LENGTH, AssistedCheck, CaseNote, StaffProfile
from closeout.identity import documents, vault
from closeout.notifications import services as notifications

ASSISTED_CHANNELS = ("phone", "email", "chat", "branch")


# --- staff accounts and sign-in --------------------------------------------------------------


class UnableToCreateStaff(Exception):
    pass


class UnableToSignIn(Exception):
    """Wrong email, password or code, or a locked account: one error so nothing is revealed."""


# The account's user name is its email address, and a user name holds fewer characters than an email.
EMAIL_MAX_LENGTH = get_user_model()._meta.get_field("username").max_length


def staff_create(*, email: str, role: str, password: str | None = None, branch_code: str = "", name: str = "",
                 actor: str = "cli") -> tuple[StaffProfile, TOTPDevice, str]:
    """Create a staff account with an argon2 password and an unconfirmed TOTP device, and the name
    the console shows them by (without one, it shows their email until an admin sets one).

    Returns the profile, the device (its `config_url` is the enrolment URI) and the password
    (generated when none is given).

    A branch clerk may be created without a branch (there may be none yet); they cannot serve at
    a counter until an admin sets one on the staff page (`staff_branch_set`).

    :raises UnableToCreateStaff: for an unknown role, a malformed email, an existing account, a
        branch that does not exist or is closed, or a name that cannot be shown.
    """
    if role not in roles.ROLES:
        raise UnableToCreateStaff(f"role must be one of {', '.join(roles.ROLES)}")
    if name.strip():
        try:
            name = one_line_label(name, limit=NAME_MAX_LENGTH)
        except UnusableLabel as exc:
            raise UnableToCreateStaff(_name_problem(exc)) from None
    else:
        name = ""
    try:
        email = documents.normalize_email(email)
    except documents.InvalidDocument:
        raise UnableToCreateStaff("email address is not valid")
    if len(email) > EMAIL_MAX_LENGTH:
        raise UnableToCreateStaff(f"email address is {len(email)} characters long; a staff account's holds at "
                                  f"most {EMAIL_MAX_LENGTH}")
    typed = (branch_code or "").strip()
    if typed and role != "branch_clerk":
        raise UnableToCreateStaff("only a branch clerk works at one branch; leave --branch out")
    # Codes are written in capitals; hk-cen is HK-CEN, kept as the branch spells it.
    branch_code = (Branch.objects.filter(code__iexact=typed, active=True).values_list("code", flat=True).first()
                   if typed else "")
    if typed and branch_code is None:
        raise UnableToCreateStaff(f"no open branch {typed!r} (branch codes: {_branch_codes()})")
    password = password or secrets.token_urlsafe(15)
    if len(password) < 12:
        raise UnableToCreateStaff("password must have at least 12 characters")
    users = get_user_model()
    with transaction.atomic():
        if users.objects.filter(username=email).exists():
            raise UnableToCreateStaff("a staff account with this email already exists")
        user = users.objects.create_user(username=email, email=email, password=password)
        profile = StaffProfile.objects.create(user=user, role=role, branch_code=branch_code, name=name,
                                              created_at=clock.now())
        device = TOTPDevice.objects.create(user=user, name="console", confirmed=True)
        audit_record(actor=actor, action="staff.created", subject=f"staff:{profile.id}", after=role,
                     data={"name": name} if name else None)
    return profile, device, password


def _name_problem(exc: UnusableLabel) -> str:
    if exc.problem == "too_long":
        return f"--name is {exc.length} characters long; at most {exc.limit} fit"
    if exc.problem == "control":
        return "--name holds a control character"
    return "--name is empty"


class UnableToSetName(Exception):
    """The name cannot be shown as typed: `problem` is `UnusableLabel`'s."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


def staff_name_set(*, staff_id: int, name: str, actor: str) -> StaffProfile:
    """Give a member of staff the name the console shows them by, or change it. Their email stays
    their identifier in the audit trail; the event keeps the name before and after.

    :raises UnableToSetName: for an empty name, one too long, or one holding a control character.
    :raises StaffProfile.DoesNotExist: for an unknown account.
    """
    try:
        name = one_line_label(name, limit=NAME_MAX_LENGTH)
    except UnusableLabel as exc:
        raise UnableToSetName(exc.problem) from None
    with transaction.atomic():
        profile = StaffProfile.objects.select_for_update(of=("self",)).select_related("user").get(id=staff_id)
        if profile.name == name:
            return profile
        before, profile.name = profile.name, name
        profile.save(update_fields=["name"])
        audit_record(actor=actor, action="staff.name_changed", subject=f"staff:{profile.id}", before=before,
                     after=name)
    return profile


def _branch_codes() -> str:
    return ", ".join(Branch.objects.filter(active=True).order_by("code").values_list("code", flat=True)) or "none yet"


class UnableToSetBranch(Exception):
    pass


def staff_branch_set(*, staff_id: int, branch_code: str, actor: str) -> StaffProfile:
    """Move a branch clerk to another open branch (a transfer, or an account whose branch closed).

    :raises UnableToSetBranch: when the account is not a clerk's or the branch is not open.
    """
    with transaction.atomic():
        profile = StaffProfile.objects.select_for_update().get(id=staff_id)
        if profile.role != roles.BRANCH_CLERK:
            raise UnableToSetBranch("only a branch clerk works at one branch")
        if not Branch.objects.filter(code=branch_code, active=True).exists():
            raise UnableToSetBranch(f"no open branch {branch_code!r}")
        before, profile.branch_code = profile.branch_code, branch_code
        profile.save(update_fields=["branch_code"])
        audit_record(actor=actor, action="staff.branch_changed", subject=f"staff:{profile.id}",
                     before=before, after=branch_code)
    return profile


def _locked(profile: StaffProfile) -> bool:
    return bool(profile.locked_until and profile.locked_until > clock.now())


def _count_failure(profile: StaffProfile, stage: str) -> None:
    with transaction.atomic():
        StaffProfile.objects.filter(id=profile.id).update(failed_logins=F("failed_logins") + 1)
        profile = StaffProfile.objects.select_for_update().get(id=profile.id)
        audit_record(actor=profile.actor, action="staff.sign_in_failed", subject=f"staff:{profile.id}",
                     reason=stage)
        if profile.failed_logins >= settings.CONSOLE_LOCKOUT_FAILURES:
            profile.locked_until = clock.now() + timedelta(minutes=settings.CONSOLE_LOCKOUT_MINUTES)
            profile.failed_logins = 0
            profile.save(update_fields=["locked_until", "failed_logins"])
            audit_record(actor="system", action="staff.locked", subject=f"staff:{profile.id}",
                         reason=f"{settings.CONSOLE_LOCKOUT_FAILURES} failed sign-ins")


def staff_sign_in_password(*, email: str, password: str) -> StaffProfile:
    """Check the first factor.

    :raises UnableToSignIn: for a wrong email or password, an inactive or locked account.
    """
    email = (email or "").strip().lower()[:254]
    profile = StaffProfile.objects.select_related("user").filter(user__username=email).first()
    # authenticate() runs the password hasher for unknown users too, so timing reveals nothing.
    user = authenticate(username=email, password=password or "")
    if profile is None:
        raise UnableToSignIn()
    if _locked(profile):
        raise UnableToSignIn()
    if user is None or user.pk != profile.user_id:
        _count_failure(profile, "password")
        raise UnableToSignIn()
    return profile


def staff_sign_in_code(*, profile: StaffProfile, code: str) -> TOTPDevice:
    """Check the TOTP code of a profile whose password was just checked.

    :raises UnableToSignIn: for a wrong or replayed code, or a locked account.
    """
    profile.refresh_from_db()
    if _locked(profile) or not profile.user.is_active:
        raise UnableToSignIn()
    device = _code_verified(profile, code)
    if device is None:
        _count_failure(profile, "code")
        raise UnableToSignIn()
    with transaction.atomic():
        StaffProfile.objects.filter(id=profile.id).update(failed_logins=0, locked_until=None)
        audit_record(actor=profile.actor, action="staff.signed_in", subject=f"staff:{profile.id}")
    return device


def _code_verified(profile: StaffProfile, code: str) -> TOTPDevice | None:
    """The profile's authenticator device when `code` is its current code, used once; else None."""
    code = re.sub(r"\s", "", documents.half_width(code or ""))
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().filter(user=profile.user, confirmed=True).first()
        verified = bool(device) and ascii_digits(code) and len(code) == 6 and device.verify_token(code)
    return device if verified else None


class UnableToWitness(Exception):
    """The witness is not another active member of staff, or their code is wrong: one error, as at
    sign-in, so nothing is revealed about the accounts."""


def staff_witness_confirm(*, email: str, code: str, actor: str) -> StaffProfile:
    """Check that a second member of staff watches what `actor` records (cards destroyed): another
    active, unlocked account, present with the current code of their own authenticator app. A
    wrong code counts towards their lockout, as at sign-in.

    :raises UnableToWitness: for an unknown, inactive or locked account, the actor themself, or a
        wrong or used code.
    """
    email = (email or "").strip().lower()[:254]
    profile = StaffProfile.objects.select_related("user").filter(user__username=email).first()
    if profile is None or profile.actor == actor or _locked(profile) or not profile.user.is_active:
        raise UnableToWitness()
    if _code_verified(profile, code) is None:
        _count_failure(profile, "witness code")
        raise UnableToWitness()
    return profile


def staff_unlock(*, staff_id: int, actor: str) -> StaffProfile:
    with transaction.atomic():
        profile = StaffProfile.objects.select_for_update().get(id=staff_id)
        profile.failed_logins = 0
        profile.locked_until = None
        profile.save(update_fields=["failed_logins", "locked_until"])
        audit_record(actor=actor, action="staff.unlocked", subject=f"staff:{profile.id}")
    return profile


def name_search_record(*, actor: str, references: list[str], total: int) -> None:
    """Put a look-up by a holder's name on record: who looked, and which cases they were shown.
    The name typed is not kept (it is personal data the audit trail would keep for good)."""
    audit_record(actor=actor, action="case.searched_by_name", subject=actor,
                 data={"shown": references, "matches": total})


# --- notes, notices, waivers ----------------------------------------------------------------


class UnableToUpdateCase(Exception):
    pass


def _case(reference: str) -> ClosureCase:
    case = ClosureCase.objects.select_related("card").filter(reference=reference).first()
    if case is None:
        raise closures.CaseNotFound(reference)
    return case


def case_note_add(*, reference: str, author: str, text: str, kind: str = CaseNote.Kind.NOTE) -> CaseNote:
    """Add a note to a case's timeline.

    :raises UnableToUpdateCase: for an empty note.
    :raises closures.CaseNotFound: for an unknown reference.
    """
    text = (text or "").strip()
    if not text:
        raise UnableToUpdateCase("the note is empty")
    case = _case(reference)
    with transaction.atomic():
        note = CaseNote.objects.create(case=case, kind=kind, author=author, at=clock.now(), text=text[:1000])
        audit_record(actor=author, action="closure.note", subject=case.reference, data={"kind": kind})
    return note


def notice_resend(*, reference: str, actor: str) -> CaseNote:
    """Send the customer what they missed: the case's undelivered notices, or else the notice of
    its current state (`notifications.services.notice_resend`).

    The request is recorded in the timeline and the audit trail; the notice goes out once that
    commits.
    """
    case = _case(reference)
    with transaction.atomic():
        note = CaseNote.objects.create(case=case, kind=CaseNote.Kind.NOTICE, author=actor, at=clock.now(),
                                       text=f"notice resent: {case.state}")
        audit_record(actor=actor, action="notice.resend", subject=case.reference, after=case.state)
        transaction.on_commit(lambda: notifications.notice_resend(reference=case.reference))
    return note


class UnableToWaive(Exception):
    pass


def charge_waive(*, charge_id: int, actor: str, reason: str) -> CardCharge:
    """Waive an outstanding charge with a reason, and let a case that waits for payment settle.

    :raises UnableToWaive: for an unknown or settled charge, or without a reason.
    """
    reason = (reason or "").strip()
    if not reason:
        raise UnableToWaive("a reason is required")
    with transaction.atomic():
        charge = CardCharge.objects.select_for_update().filter(id=charge_id).first()
        if charge is None or charge.settled_at is not None:
            raise UnableToWaive("this charge is not outstanding")
        charge.settled_at = clock.now()
        charge.settled_how = "waived"
        charge.settled_note = reason[:200]
        charge.save(update_fields=["settled_at", "settled_how", "settled_note"])
        audit_record(actor=actor, action="charge.waived", subject=f"card:{charge.card_id}", reason=reason[:200],
                     data={"charge": charge.id, "code": charge.code, "amount": charge.amount_minor,
                           "currency": charge.currency})
        case = ClosureCase.objects.filter(card_id=charge.card_id).exclude(state__in=states.TERMINAL).first()
        if case is not None:
            closures.closure_settle_again(reference=case.reference, actor=actor,
                                          note=f"fee waived: {reason}"[:300])
    return charge


# --- assisted channels ------------------------------------------------------------------------


class UnableToOpenCase(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def assisted_identify(*, card_number: str, holder_name: str, contact: str, id_type: str,
                      id_number: str) -> Card:
    """Check what a caller told the agent: card and ID document (HMAC match), name and contact.

    :raises documents.InvalidDocument: for a malformed card number, ID number, email or phone.
    :raises closures.IdentityNotVerified: when card and ID document do not belong together.
    :raises UnableToOpenCase: when the name or the contact is not the holder's.
    """
    contact = (contact or "").strip()
    if "@" in contact:
        kind, value = "email", documents.normalize_email(contact)
    else:
        kind, value = "phone", documents.normalize_phone(contact, local_country=settings.PHONE_COUNTRY_CODE)
    card = closures.identity_check(card_number=card_number, id_type=id_type, id_number=id_number)
    if not documents.same_name(holder_name or "", card.holder.name):
        raise UnableToOpenCase("holder_name", "name does not match the holder")
    stored = card.holder.email_hash if kind == "email" else card.holder.phone_hash
    if not stored or not hmac.compare_digest(stored, vault.lookup_hash(kind, value)):
        raise UnableToOpenCase("contact", "contact does not match the holder")
    return card


def assisted_closure_open(*, staff: StaffProfile, card: Card, channel: str, channel_ref: str, checks: dict,
                          refund_destination: dict | None = None, reason: str = "",
                          language: str = "en") -> ClosureCase:
    """Open a closure for a customer on the phone, by email, in a chat or at the counter, with
    the agent's identity checklist and the customer's consent and its channel reference.

    :raises roles.NotAllowed: when the staff role may not open cases.
    :raises UnableToOpenCase: for an unknown channel, a missing reference or an unconfirmed check.
    :raises closures.UnableToCloseCard: from `closure_request`.
    """
    roles.require(staff.role, "case.open")
    if channel not in ASSISTED_CHANNELS:
        raise UnableToOpenCase("channel", "channel must be phone, email, chat or branch")
    channel_ref = (channel_ref or "").strip()
    if not channel_ref or len(channel_ref) > 120:
        raise UnableToOpenCase("channel_ref", "the channel reference is required")
    wanted = ("card_number", "name", "contact", "id_document")
    missing = [item for item in wanted if not checks.get(item)]
    if missing:
        raise UnableToOpenCase("checks", f"not confirmed: {', '.join(missing)}")
    with transaction.atomic():
        case = closures.closure_request(
            card=card, channel=channel, channel_ref=channel_ref, requester=staff.actor, reason=reason,
            refund_destination=refund_destination, language=language,
        )
        AssistedCheck.objects.create(
            case=case, staff=staff, channel=channel, channel_ref=channel_ref, card_number_confirmed=True,
            name_confirmed=True, contact_confirmed=True, id_document_confirmed=True, consent_at=clock.now(),
        )
        audit_record(actor=staff.actor, action="closure.consent", subject=case.reference,
                     data={"channel": channel, "channel_ref": channel_ref, "checks": list(wanted)})
    return case

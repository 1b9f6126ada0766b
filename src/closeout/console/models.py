from django.conf import settings
from django.db import models

from closeout.closures.models import ClosureCase
from closeout.console import roles

NAME_MAX_LENGTH = 100


class StaffProfile(models.Model):
    """A member of staff: one role, the name the console shows them by, and the login failure
    counter behind the lockout. Their sign-in email stays their identifier in the audit trail."""

    # Named as everywhere else in the console, in the reader's language.
    class Role(models.TextChoices):
        AGENT = roles.AGENT, roles.ROLE_LABELS[roles.AGENT]
        BRANCH_CLERK = roles.BRANCH_CLERK, roles.ROLE_LABELS[roles.BRANCH_CLERK]
        WAREHOUSE = roles.WAREHOUSE, roles.ROLE_LABELS[roles.WAREHOUSE]
        REFUND_APPROVER = roles.REFUND_APPROVER, roles.ROLE_LABELS[roles.REFUND_APPROVER]
        SUPERVISOR = roles.SUPERVISOR, roles.ROLE_LABELS[roles.SUPERVISOR]
        ADMIN = roles.ADMIN, roles.ROLE_LABELS[roles.ADMIN]

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="staff")
    # Empty until set: the console then falls back to the email.
    name = models.CharField(max_length=NAME_MAX_LENGTH, blank=True, default="")
    role = models.CharField(max_length=20, choices=Role.choices)
    branch_code = models.CharField(max_length=20, blank=True)
    failed_logins = models.PositiveIntegerField(default=0)
    locked_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(role__in=roles.ROLES), name="staff_role_valid")]

    @property
    def shown_name(self) -> str:
        """How the console names this person: their name, or their email while they have none."""
        return self.name or self.user.email

    @property
    def actor(self) -> str:
        """How this person appears as the actor of audit events and case events."""
        return f"staff:{self.user.email}"

    def __str__(self):
        return self.actor


class CaseNote(models.Model):
    """A note staff add to a case; shown in the case timeline. Never a state change."""

    class Kind(models.TextChoices):
        NOTE = "NOTE", "Note"
        NOTICE = "NOTICE", "Notice resent"
        IDENTITY = "IDENTITY", "Identity checked"

    case = models.ForeignKey(ClosureCase, on_delete=models.PROTECT, related_name="staff_notes")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.NOTE)
    author = models.CharField(max_length=120)
    at = models.DateTimeField()
    text = models.CharField(max_length=1000)

    class Meta:
        ordering = ["at", "id"]


class AssistedCheck(models.Model):
    """What the agent confirmed when opening a case for a caller, email or chat customer."""

    case = models.OneToOneField(ClosureCase, on_delete=models.PROTECT, related_name="assisted_check")
    staff = models.ForeignKey(StaffProfile, on_delete=models.PROTECT, related_name="assisted_checks")
    channel = models.CharField(max_length=20)
    channel_ref = models.CharField(max_length=120)
    card_number_confirmed = models.BooleanField()
    name_confirmed = models.BooleanField()
    contact_confirmed = models.BooleanField()
    id_document_confirmed = models.BooleanField()
    consent_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(card_number_confirmed=True, name_confirmed=True, contact_confirmed=True,
                                   id_document_confirmed=True),
                name="assisted_check_all_confirmed",
            ),
        ]

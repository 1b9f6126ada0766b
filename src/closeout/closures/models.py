from django.db import models

from closeout.cards.models import Card
from closeout.closures import states


class ReferenceCounter(models.Model):
    year = models.PositiveIntegerField(primary_key=True)
    last = models.PositiveIntegerField(default=0)


class BulkRun(models.Model):
    """One `closeout bulk-close` file; `lines_done` makes an interrupted run resumable."""

    fingerprint = models.CharField(max_length=64, unique=True)
    source = models.CharField(max_length=255)
    reason = models.CharField(max_length=200)
    requester = models.CharField(max_length=120)
    lines_done = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    rejected_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)


class BulkBatch(models.Model):
    """A batch of bulk cases that moves through batched actions (one call per batch per system)."""

    run = models.ForeignKey(BulkRun, on_delete=models.PROTECT, related_name="batches")
    number = models.PositiveIntegerField()
    case_count = models.PositiveIntegerField(default=0)
    next_action = models.CharField(max_length=30, blank=True)
    next_action_id = models.CharField(max_length=80, blank=True)
    next_action_due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    action_runs = models.JSONField(default=dict)
    created_at = models.DateTimeField()
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "number"], name="bulk_batch_number_once")]

    @property
    def key(self) -> str:
        return f"BULK-{self.run_id}-{self.number}"


class ClosureCase(models.Model):
    class Channel(models.TextChoices):
        WEB = "web", "Web"
        PHONE = "phone", "Phone"
        EMAIL = "email", "Email"
        CHAT = "chat", "Chat"
        BRANCH = "branch", "Branch counter"
        PARTNER_API = "partner_api", "Partner API"
        BULK = "bulk", "Bulk closure"

    reference = models.CharField(max_length=20, unique=True)
    card = models.ForeignKey(Card, on_delete=models.PROTECT, related_name="closures")
    channel = models.CharField(max_length=20, choices=Channel.choices)
    channel_ref = models.CharField(max_length=120, blank=True)
    requester = models.CharField(max_length=120)
    reason = models.CharField(max_length=200, blank=True)
    language = models.CharField(max_length=8, default="en")
    refund_destination = models.JSONField(default=dict)  # type + masked fields; secrets sealed in *_sealed
    refund_destination_sealed = models.TextField(blank=True)
    quote = models.JSONField(default=dict)
    state = models.CharField(max_length=30, default=states.DRAFT)
    resume_to = models.CharField(max_length=30, blank=True)
    sla_due_date = models.DateField(null=True, blank=True)
    next_action = models.CharField(max_length=30, blank=True)
    next_action_id = models.CharField(max_length=80, blank=True)
    next_action_due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # The workflow id last handed to DBOS: the worker's pump hands over every due action whose id
    # differs (the case row is the outbox; see closures.dispatch).
    next_action_queued = models.CharField(max_length=80, blank=True, default="")
    action_runs = models.JSONField(default=dict)
    deadline_at = models.DateTimeField(null=True, blank=True, db_index=True)
    attention_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    bulk_batch = models.ForeignKey(BulkBatch, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="cases")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["card"], condition=~models.Q(state__in=states.TERMINAL), name="one_open_closure_per_card"
            ),
            models.CheckConstraint(condition=models.Q(state__in=states.ALL), name="closure_state_valid"),
        ]

    def __str__(self):
        return self.reference


class CaseEvent(models.Model):
    """The case timeline; `key` makes a replayed transition return the recorded result."""

    case = models.ForeignKey(ClosureCase, on_delete=models.PROTECT, related_name="events")
    key = models.CharField(max_length=120)
    at = models.DateTimeField()
    actor = models.CharField(max_length=120)
    from_state = models.CharField(max_length=30, blank=True)
    to_state = models.CharField(max_length=30, blank=True)
    note = models.CharField(max_length=300, blank=True)
    data = models.JSONField(default=dict)

    class Meta:
        ordering = ["at", "id"]
        constraints = [models.UniqueConstraint(fields=["case", "key"], name="case_event_key_once")]


class Refund(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    case = models.OneToOneField(ClosureCase, on_delete=models.PROTECT, related_name="refund")
    idempotency_key = models.CharField(max_length=80, unique=True)
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    destination_type = models.CharField(max_length=20)
    provider_ref = models.CharField(max_length=80, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices)
    failure_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(amount_minor__gte=0), name="refund_amount_gte_0")]


class RefundApproval(models.Model):
    """Maker-checker: a refund above the product threshold, or to a destination other than the
    original payment method, waits for a second person with the approver role."""

    class Decision(models.TextChoices):
        PENDING = "", "Pending"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    case = models.OneToOneField(ClosureCase, on_delete=models.PROTECT, related_name="refund_approval")
    requested_by = models.CharField(max_length=120)
    requested_at = models.DateTimeField()
    reason = models.CharField(max_length=40)  # above_threshold | other_destination
    decision = models.CharField(max_length=10, choices=Decision.choices, blank=True, default="")
    decided_by = models.CharField(max_length=120, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=300, blank=True)

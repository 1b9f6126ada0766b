"""Notices sent to customers. The address is never stored in clear: a mask to show and a keyed
hash (the same as the holder's lookup hash) to find notices sent to one address."""

from django.db import models

# The statuses of a notice not sent (yet): what the sweep retries, the metrics count and the
# partial index holds.
UNDELIVERED = ("queued", "failed")


class Notice(models.Model):
    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        SMS = "sms", "SMS"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    key = models.CharField(max_length=120, unique=True, null=True, blank=True)  # send once per key
    case = models.ForeignKey("closures.ClosureCase", null=True, blank=True, on_delete=models.PROTECT,
                             related_name="notices")
    card = models.ForeignKey("cards.Card", null=True, blank=True, on_delete=models.PROTECT, related_name="notices")
    channel = models.CharField(max_length=8, choices=Channel.choices)
    template = models.CharField(max_length=40)
    language = models.CharField(max_length=8)
    to_masked = models.CharField(max_length=120)
    to_hash = models.CharField(max_length=64, db_index=True)
    context = models.JSONField(default=dict)  # what the template needs, minus secrets (codes)
    has_secrets = models.BooleanField(default=False)  # cannot be re-sent from the row alone
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    provider_ref = models.CharField(max_length=120, blank=True)
    error = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(channel__in=["email", "sms"]), name="notice_channel_valid"),
            models.CheckConstraint(condition=models.Q(status__in=["queued", "sent", "failed"]),
                                   name="notice_status_valid"),
        ]
        # The sweep looks for undelivered notices every tick: only those are indexed, so the look-up
        # stays small however many notices were ever sent.
        indexes = [models.Index(fields=["created_at"], condition=models.Q(status__in=list(UNDELIVERED)),
                                name="notice_undelivered")]

    def __str__(self):
        return f"{self.template} {self.channel} to {self.to_masked}"

from django.db import models


class AuditHead(models.Model):
    """One row that serialises appends to the chain (row lock on PostgreSQL, write lock on SQLite)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="0" * 64)


class AuditEvent(models.Model):
    # NULL (with empty hashes) until the sealer links the event into the chain; see audit.services.
    seq = models.BigIntegerField(unique=True, null=True)
    at = models.DateTimeField()
    actor = models.CharField(max_length=120)
    action = models.CharField(max_length=80)
    subject = models.CharField(max_length=80, db_index=True)
    before = models.CharField(max_length=40, blank=True)
    after = models.CharField(max_length=40, blank=True)
    reason = models.TextField(blank=True)
    data = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["seq"]
        indexes = [models.Index(fields=["id"], condition=models.Q(seq__isnull=True), name="audit_event_unsealed")]

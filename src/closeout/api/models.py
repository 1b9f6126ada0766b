from django.db import models


class ApiKey(models.Model):
    class Scope(models.TextChoices):
        PARTNER = "partner"
        OPERATOR = "operator"

    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.PARTNER)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # To the minute (`api.keys.USE_RECORDED_EVERY`), not a write on every request.
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_refused_at = models.DateTimeField(null=True, blank=True)  # the right secret, after the key was revoked

    def __str__(self):
        return f"{self.name} ({self.prefix})"


class IdempotencyRecord(models.Model):
    """The first answer to a POST, replayed byte for byte for the same (client, key)."""

    client = models.CharField(max_length=80)
    key = models.CharField(max_length=200)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True)  # NULL only on rows from before answers were stored with the case
    body = models.TextField(blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client", "key"], name="idempotency_key_per_client")]

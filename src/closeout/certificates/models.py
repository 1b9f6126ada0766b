import uuid

from django.db import models

from closeout.closures.models import ClosureCase


class SigningKey(models.Model):
    """An Ed25519 key that signs certificates. Rotation retires the active key and destroys its
    private half; its public half stays so every certificate it signed still verifies."""

    key_id = models.CharField(max_length=40, unique=True)
    public_key = models.CharField(max_length=64)  # base64 of the 32 raw bytes
    private_key_sealed = models.TextField(blank=True)  # AES-GCM under a key derived from the master key
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField()
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["active"], condition=models.Q(active=True), name="one_active_signing_key"),
        ]

    def __str__(self):
        return self.key_id


class Certificate(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    case = models.OneToOneField(ClosureCase, on_delete=models.PROTECT, related_name="certificate")
    key = models.ForeignKey(SigningKey, on_delete=models.PROTECT, related_name="certificates")
    facts = models.TextField()  # the canonical JSON exactly as signed
    signature = models.CharField(max_length=100)  # base64 Ed25519 signature over `facts`
    issued_at = models.DateTimeField()

    def __str__(self):
        return f"certificate {self.id} for {self.case_id}"

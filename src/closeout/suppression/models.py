from django.db import models


class Suppression(models.Model):
    """A contact that must receive no marketing, kept only as the vault's keyed hash."""

    class Kind(models.TextChoices):
        EMAIL = "email"
        PHONE = "phone"

    contact_hash = models.CharField(max_length=64, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    reason = models.CharField(max_length=40)  # closure_submitted | opt_out
    case_reference = models.CharField(max_length=20, blank=True)
    created_at = models.DateTimeField()

    def __str__(self):
        return f"{self.kind} suppression ({self.reason})"


class MarketingDelivery(models.Model):
    """One marketing message considered for one holder: sent or suppressed, never the address."""

    campaign = models.CharField(max_length=60, db_index=True)
    holder_id = models.BigIntegerField(db_index=True)
    outcome = models.CharField(max_length=20)  # sent | suppressed | no_contact | failed
    at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "holder_id"], name="one_delivery_per_campaign")]

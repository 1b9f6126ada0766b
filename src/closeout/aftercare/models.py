from django.db import models


class CardFeedTransaction(models.Model):
    """The card system's own record of what went through (simulated feed). Offline readers and
    gates approve from their downloaded hotlist, so a charge can exist here that closeout never saw."""

    external_ref = models.CharField(max_length=80, unique=True)
    card_number = models.CharField(max_length=20, db_index=True)
    at = models.DateTimeField(db_index=True)
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    kind = models.CharField(max_length=20, default="purchase")  # purchase | top_up
    status = models.CharField(max_length=20, default="approved")  # approved | declined
    source = models.CharField(max_length=40, blank=True)  # reader, gate or merchant id


class GuardAlert(models.Model):
    """A charge that slipped past a closing or closed card; staff were told about it."""

    transaction = models.OneToOneField(CardFeedTransaction, on_delete=models.PROTECT, related_name="alert")
    case_reference = models.CharField(max_length=20, db_index=True)
    card_masked = models.CharField(max_length=20)
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    charged_at = models.DateTimeField()
    detected_at = models.DateTimeField()
    notified_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=200, blank=True)

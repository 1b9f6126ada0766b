from django.db import models

from closeout.cards.models import Card
from closeout.closures.models import ClosureCase


class ReturnLabel(models.Model):
    """The prepaid return label of a case; its code is what the warehouse scans."""

    case = models.OneToOneField(ClosureCase, on_delete=models.PROTECT, related_name="return_label")
    code = models.CharField(max_length=20, unique=True)
    created_at = models.DateTimeField()
    tracking_ref = models.CharField(max_length=80, blank=True)


DESK_MAX_LENGTH = 40


class CheckIn(models.Model):
    """One scan at the warehouse, the desk it was made at, and what came of it."""

    class Outcome(models.TextChoices):
        RECEIVED = "RECEIVED", "Received"
        EXCEPTION = "EXCEPTION", "Exception"

    at = models.DateTimeField()
    staff = models.CharField(max_length=120)
    # The name the desk's browser was given (empty: not named, or not scanned at a desk).
    desk = models.CharField(max_length=DESK_MAX_LENGTH, blank=True, default="")
    scanned_masked = models.CharField(max_length=40)
    case = models.ForeignKey(ClosureCase, null=True, blank=True, on_delete=models.PROTECT, related_name="checkins")
    card = models.ForeignKey(Card, null=True, blank=True, on_delete=models.PROTECT, related_name="checkins")
    outcome = models.CharField(max_length=10, choices=Outcome.choices)


class ReturnException(models.Model):
    """A scanned card the warehouse could not match to a case waiting for it."""

    class Reason(models.TextChoices):
        UNKNOWN = "UNKNOWN", "Unknown label or card"
        MISMATCH = "MISMATCH", "Card does not match the label"
        NOT_EXPECTED = "NOT_EXPECTED", "No case is waiting for this card"

    checkin = models.OneToOneField(CheckIn, on_delete=models.PROTECT, related_name="exception")
    reason = models.CharField(max_length=20, choices=Reason.choices)
    # Kept so staff can trace the physical card; card numbers are not personal data here.
    scanned_code = models.CharField(max_length=40)
    card_number = models.CharField(max_length=20, blank=True)
    case = models.ForeignKey(ClosureCase, null=True, blank=True, on_delete=models.PROTECT,
                             related_name="return_exceptions")
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=120, blank=True)
    resolution = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [
            # One open exception per scan: an unknown label or card has no row to lock, so two desks
            # scanning it at once are kept apart here (the second is answered with the first).
            models.UniqueConstraint(fields=["scanned_code", "card_number", "reason"],
                                    condition=models.Q(resolved_at__isnull=True),
                                    name="return_exception_one_open_per_scan"),
        ]


class Destruction(models.Model):
    """The record that a physical card was destroyed: who, when, how, in which batch, where, and
    the second member of staff who watched it at the warehouse (at a counter, the customer does)."""

    class Method(models.TextChoices):
        SHRED = "SHRED", "Shredded"
        PUNCH = "PUNCH", "Chip punched"
        CUT = "CUT", "Cut through chip"
        INCINERATE = "INCINERATE", "Incinerated"

    card = models.OneToOneField(Card, on_delete=models.PROTECT, related_name="destruction")
    case = models.ForeignKey(ClosureCase, null=True, blank=True, on_delete=models.PROTECT,
                             related_name="destructions")
    method = models.CharField(max_length=12, choices=Method.choices)
    batch = models.CharField(max_length=40)
    place = models.CharField(max_length=60)
    destroyed_by = models.CharField(max_length=120)
    witnessed_by = models.CharField(max_length=120, blank=True)
    destroyed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(method__in=["SHRED", "PUNCH", "CUT", "INCINERATE"]),
                                   name="destruction_method_valid"),
        ]


TRACKING_REF_MAX_LENGTH = 80
HAND_BACK_NOTE_MAX_LENGTH = 300


class HandBack(models.Model):
    """The record that a received card kept for the customer went back to its holder: how (posted
    back, with the carrier's tracking reference, or collected at a branch counter), who recorded it,
    when and at which desk. Without it such a card would wait on the warehouse's list for ever.
    One per card received: the check-in is the physical card on the shelf."""

    class Method(models.TextChoices):
        POST = "POST", "Posted back to the holder"
        COUNTER = "COUNTER", "Collected at a branch counter"

    checkin = models.OneToOneField(CheckIn, on_delete=models.PROTECT, related_name="hand_back")
    card = models.ForeignKey(Card, on_delete=models.PROTECT, related_name="hand_backs")
    case = models.ForeignKey(ClosureCase, null=True, blank=True, on_delete=models.PROTECT,
                             related_name="hand_backs")
    method = models.CharField(max_length=10, choices=Method.choices)
    # The carrier's reference of the envelope posted back; none for a card collected at a counter.
    tracking_ref = models.CharField(max_length=TRACKING_REF_MAX_LENGTH, blank=True, default="")
    note = models.CharField(max_length=HAND_BACK_NOTE_MAX_LENGTH, blank=True, default="")
    handed_back_by = models.CharField(max_length=120)
    desk = models.CharField(max_length=DESK_MAX_LENGTH, blank=True, default="")
    handed_back_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(method__in=["POST", "COUNTER"]),
                                   name="hand_back_method_valid"),
            # A card posted back can be traced; one collected at a counter has nothing to trace.
            models.CheckConstraint(
                condition=(models.Q(method="POST") & ~models.Q(tracking_ref=""))
                | models.Q(method="COUNTER", tracking_ref=""),
                name="hand_back_tracking_ref_by_post_only"),
        ]

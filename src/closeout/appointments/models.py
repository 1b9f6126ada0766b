from django.db import models
from django.utils import translation

from closeout.cards.models import Card
from closeout.closures.models import ClosureCase


class Branch(models.Model):
    """A branch with counters; each active counter serves one customer per slot."""

    code = models.CharField(max_length=20, unique=True)
    name = models.CharField(max_length=120)
    name_zh_hans = models.CharField(max_length=120, blank=True)
    name_zh_hant = models.CharField(max_length=120, blank=True)
    address = models.CharField(max_length=300, blank=True)
    calendar = models.CharField(max_length=4, default="HK")  # holidays close the branch
    slot_minutes = models.PositiveSmallIntegerField(default=30)
    active = models.BooleanField(default=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(slot_minutes__gte=5), name="branch_slot_gte_5")]

    def local_name(self) -> str:
        """The branch's name in the active language (English where no translation is kept)."""
        language = translation.get_language() or "en"
        local = {"zh-hans": self.name_zh_hans, "zh-hant": self.name_zh_hant}.get(language, "")
        return local or self.name

    def __str__(self):
        return self.code


class OpeningHours(models.Model):
    """Opening hours of a branch on one weekday (0 = Monday), in local time."""

    branch = models.ForeignKey(Branch, on_delete=models.CASCADE, related_name="hours")
    weekday = models.PositiveSmallIntegerField()
    opens = models.TimeField()
    closes = models.TimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["branch", "weekday"], name="one_opening_per_weekday"),
            models.CheckConstraint(condition=models.Q(weekday__lte=6), name="opening_weekday_valid"),
            models.CheckConstraint(condition=models.Q(opens__lt=models.F("closes")), name="opening_opens_before_closes"),
        ]


class Counter(models.Model):
    branch = models.ForeignKey(Branch, on_delete=models.CASCADE, related_name="counters")
    label = models.CharField(max_length=20)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["label"]
        constraints = [models.UniqueConstraint(fields=["branch", "label"], name="counter_label_once")]


class Appointment(models.Model):
    """A booked slot at one counter. The database refuses two live bookings of one counter slot
    and two live bookings for one card."""

    class Status(models.TextChoices):
        BOOKED = "BOOKED", "Booked"
        CANCELLED = "CANCELLED", "Cancelled"
        SERVED = "SERVED", "Served"

    branch = models.ForeignKey(Branch, on_delete=models.PROTECT, related_name="appointments")
    counter = models.ForeignKey(Counter, on_delete=models.PROTECT, related_name="appointments")
    card = models.ForeignKey(Card, on_delete=models.PROTECT, related_name="appointments")
    case = models.ForeignKey(ClosureCase, null=True, blank=True, on_delete=models.PROTECT,
                             related_name="appointments")
    starts_at = models.DateTimeField(db_index=True)
    ends_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.BOOKED)
    booked_by = models.CharField(max_length=120)
    booked_at = models.DateTimeField()
    language = models.CharField(max_length=8, default="en")
    reminder_sent_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["starts_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["counter", "starts_at"], condition=models.Q(status="BOOKED"),
                                    name="one_booking_per_counter_slot"),
            models.UniqueConstraint(fields=["card"], condition=models.Q(status="BOOKED"),
                                    name="one_booking_per_card"),
            models.CheckConstraint(condition=models.Q(status__in=["BOOKED", "CANCELLED", "SERVED"]),
                                   name="appointment_status_valid"),
        ]


class CounterVisit(models.Model):
    """What happened at the counter: the original ID document checked, the card taken, the
    customer's confirmation on screen."""

    case = models.ForeignKey(ClosureCase, on_delete=models.PROTECT, related_name="counter_visits")
    appointment = models.OneToOneField(Appointment, null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="visit")
    branch = models.ForeignKey(Branch, on_delete=models.PROTECT, related_name="visits")
    clerk = models.CharField(max_length=120)
    started_at = models.DateTimeField()
    id_type = models.CharField(max_length=20)
    id_masked = models.CharField(max_length=32)
    id_original_seen = models.BooleanField()
    id_photo_matches = models.BooleanField()
    id_number_matches = models.BooleanField()
    card_taken = models.BooleanField(default=False)
    customer_confirmed_at = models.DateTimeField(null=True, blank=True)
    card_received_recorded = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(id_original_seen=True, id_photo_matches=True, id_number_matches=True),
                name="visit_id_fully_checked",
            ),
        ]

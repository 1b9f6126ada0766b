from django.db import models

from closeout.catalog.models import Product
from closeout.common.money import Money


class Holder(models.Model):
    """A card holder. Contact details and the ID number are stored encrypted under the holder's own
    data key (crypto-shredding deletes that key) with keyed HMACs for lookup; shown masked."""

    name = models.CharField(max_length=200)
    language = models.CharField(max_length=8, default="en")
    data_key = models.TextField(null=True, blank=True)  # wrapped by the master key; NULL once shredded
    id_type = models.CharField(max_length=20)
    id_hash = models.CharField(max_length=64, db_index=True)
    id_encrypted = models.TextField()
    id_masked = models.CharField(max_length=32)
    email_hash = models.CharField(max_length=64, blank=True, db_index=True)
    email_encrypted = models.TextField(blank=True)
    email_masked = models.CharField(max_length=120, blank=True)
    phone_hash = models.CharField(max_length=64, blank=True, db_index=True)
    phone_encrypted = models.TextField(blank=True)
    phone_masked = models.CharField(max_length=32, blank=True)
    shredded_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.name} ({self.id_masked})"


class Card(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        BLOCKED = "blocked", "Blocked"
        CLOSING = "closing", "Closing"
        CLOSED = "closed", "Closed"

    number = models.CharField(max_length=20, unique=True)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="cards")
    holder = models.ForeignKey(Holder, on_delete=models.PROTECT, related_name="cards")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    physical = models.BooleanField(default=True)
    issued_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    transaction_count = models.PositiveIntegerField(default=0)
    # SIM plans, priced in the product currency.
    plan_price_minor = models.BigIntegerField(default=0)
    plan_starts_at = models.DateTimeField(null=True, blank=True)
    plan_ends_at = models.DateTimeField(null=True, blank=True)
    plan_data_mb = models.PositiveIntegerField(default=0)
    plan_data_used_mb = models.PositiveIntegerField(default=0)
    hotlist_version = models.BigIntegerField(null=True, blank=True, db_index=True)
    # The provider's reference of the payment that bought or last topped up the card (a Stripe
    # PaymentIntent or charge id): where a refund "to the original method" goes.
    original_payment_ref = models.CharField(max_length=80, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=["active", "blocked", "closing", "closed"]),
                                   name="card_status_valid"),
        ]

    def __str__(self):
        return f"card ••••{self.number[-4:]}"


class CardCharge(models.Model):
    """An outstanding fee or overdraft on a card; it must be settled (paid, waived or deducted)."""

    card = models.ForeignKey(Card, on_delete=models.PROTECT, related_name="charges")
    code = models.CharField(max_length=40)
    reason = models.CharField(max_length=200)
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    created_at = models.DateTimeField()
    settled_at = models.DateTimeField(null=True, blank=True)
    settled_how = models.CharField(max_length=20, blank=True)  # paid | waived | deducted
    settled_note = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(amount_minor__gt=0), name="charge_amount_gt_0")]

    @property
    def amount(self) -> Money:
        return Money(self.amount_minor, self.currency)


class Binding(models.Model):
    """A partner app (map/transit app, wallet) the card is bound to."""

    card = models.ForeignKey(Card, on_delete=models.PROTECT, related_name="bindings")
    partner = models.CharField(max_length=40)
    external_ref = models.CharField(max_length=80)
    bound_at = models.DateTimeField()
    unbound_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["card", "partner"], name="one_binding_per_partner")]


class AuthorizationAttempt(models.Model):
    card = models.ForeignKey(Card, null=True, on_delete=models.PROTECT, related_name="authorizations")
    at = models.DateTimeField()
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    source = models.CharField(max_length=40, default="api")
    decision = models.CharField(max_length=10)
    reason = models.CharField(max_length=40)

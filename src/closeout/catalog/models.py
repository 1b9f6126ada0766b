from django.db import models
from django.utils import translation

from closeout.catalog import rules
from closeout.common.money import Money


class RefundPolicy(models.Model):
    code = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    rules = models.JSONField()

    def clean(self):
        rules.validate_policy(self.rules)

    def __str__(self):
        return self.name


class Product(models.Model):
    class Kind(models.TextChoices):
        STORED_VALUE = "stored_value", "Stored-value card"
        TRAVEL_SIM = "travel_sim", "Travel SIM"
        ESIM = "esim", "eSIM"

    code = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    name_zh_hans = models.CharField(max_length=200, blank=True)
    name_zh_hant = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    currency = models.CharField(max_length=3)
    deposit_minor = models.BigIntegerField(default=0)
    number_prefix = models.CharField(max_length=12, unique=True)
    physical_return_required = models.BooleanField(default=False)
    sla_working_days = models.PositiveIntegerField(default=10)
    calendar = models.CharField(max_length=2, default="HK")
    allowed_channels = models.JSONField(default=list)
    # How long a closed case keeps the holder's personal data before it is crypto-shredded.
    retention_years = models.PositiveSmallIntegerField(default=5)
    policy = models.ForeignKey(RefundPolicy, on_delete=models.PROTECT, related_name="products")

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(deposit_minor__gte=0), name="product_deposit_gte_0")]

    @property
    def deposit(self) -> Money:
        return Money(self.deposit_minor, self.currency)

    def local_name(self) -> str:
        """The product's name in the active language (English where no translation is kept)."""
        language = translation.get_language() or "en"
        local = {"zh-hans": self.name_zh_hans, "zh-hant": self.name_zh_hant}.get(language, "")
        return local or self.name

    def __str__(self):
        return self.name

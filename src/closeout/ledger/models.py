from django.db import models


class Account(models.Model):
    class Kind(models.TextChoices):
        ASSET = "ASSET"
        LIABILITY = "LIABILITY"
        INCOME = "INCOME"

    code = models.CharField(max_length=80, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    currency = models.CharField(max_length=3)


class Posting(models.Model):
    key = models.CharField(max_length=120, unique=True)
    at = models.DateTimeField()
    memo = models.CharField(max_length=200, blank=True)
    subject = models.CharField(max_length=80, blank=True, db_index=True)


class Line(models.Model):
    posting = models.ForeignKey(Posting, on_delete=models.PROTECT, related_name="lines")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="lines")
    # Debit positive, credit negative; each posting sums to zero per currency.
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)

    class Meta:
        constraints = [models.CheckConstraint(condition=~models.Q(amount_minor=0), name="line_amount_not_zero")]

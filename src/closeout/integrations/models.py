"""State of the built-in simulators. They live in the application database so that the web
process (which serves /sim/...) and every worker process see the same external world."""

from django.db import models


class SimFault(models.Model):
    """A scripted misbehaviour: the next `remaining` calls of `operation` fail with `mode`."""

    system = models.CharField(max_length=20)
    operation = models.CharField(max_length=40)
    mode = models.CharField(max_length=20)  # timeout | error_5xx | decline | pending | lost_response
    remaining = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)


class SimRefund(models.Model):
    idempotency_key = models.CharField(max_length=120, unique=True)
    provider_ref = models.CharField(max_length=40, unique=True)
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    destination = models.JSONField(default=dict)
    status = models.CharField(max_length=20)
    failure_reason = models.CharField(max_length=200, blank=True)
    request_count = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    settle_after = models.DateTimeField(null=True, blank=True)


class SimCardBlock(models.Model):
    idempotency_key = models.CharField(max_length=120, unique=True)
    card_number = models.CharField(max_length=20, db_index=True)
    request_count = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)


class SimPayment(models.Model):
    """A customer payment taken by the simulated provider (outstanding fees before a closure)."""

    idempotency_key = models.CharField(max_length=120, unique=True)
    provider_ref = models.CharField(max_length=40, unique=True)
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    description = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=20)
    failure_reason = models.CharField(max_length=200, blank=True)
    request_count = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)

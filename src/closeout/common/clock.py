"""The one place that reads the system clock; rules take `now` as an argument."""

from datetime import datetime

from django.utils import timezone


def now() -> datetime:
    return timezone.now()

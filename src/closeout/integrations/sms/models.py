"""State of the SMS gateway simulator, in the application database so web and worker share it.
Like a real gateway's log it keeps the text; the number only masked and as a keyed hash."""

from django.db import models


class SimSmsMessage(models.Model):
    idempotency_key = models.CharField(max_length=120, unique=True)
    message_ref = models.CharField(max_length=40, unique=True)
    to_masked = models.CharField(max_length=32)
    to_hash = models.CharField(max_length=64, db_index=True)
    body = models.TextField()
    status = models.CharField(max_length=10)
    request_count = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField()

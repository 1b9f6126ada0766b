"""What the demo's mailbox received, in the application database so the web process can list
it. Like the SMS simulator it keeps the text; the address only masked and as a keyed hash."""

from django.db import models


class SimMail(models.Model):
    message_id = models.CharField(max_length=250, blank=True)
    to_masked = models.CharField(max_length=254)
    to_hash = models.CharField(max_length=64, db_index=True)
    subject = models.CharField(max_length=500)
    text = models.TextField()
    received_at = models.DateTimeField()

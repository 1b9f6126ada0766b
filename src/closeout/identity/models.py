"""One-time codes for the customer portal. Only keyed hashes are kept: never the code, the card
number as typed, or the client address."""

from django.db import models


class OtpChallenge(models.Model):
    """A 6-digit code sent to the contact on file of one card.

    A challenge is created for every request, also when the card number and ID document did not
    match (``card`` is NULL then, and no code is sent): the page cannot tell the two apart.
    """

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        SMS = "sms", "SMS"

    public_id = models.CharField(max_length=43, unique=True)  # random handle kept in the session
    card = models.ForeignKey("cards.Card", null=True, blank=True, on_delete=models.CASCADE,
                             related_name="otp_challenges")
    subject_hash = models.CharField(max_length=64, db_index=True)  # keyed HMAC of the card number as typed
    client_hash = models.CharField(max_length=64, db_index=True)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    code_hash = models.CharField(max_length=64)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(attempts__lte=5), name="otp_attempts_lte_5"),
            models.CheckConstraint(condition=models.Q(channel__in=["email", "sms"]), name="otp_channel_valid"),
        ]


class OtpEvent(models.Model):
    """A code sent or a wrong code entered, counted per card number and per client address."""

    class Kind(models.TextChoices):
        SEND = "send", "Code sent"
        FAILURE = "failure", "Wrong code"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    subject_hash = models.CharField(max_length=64)
    client_hash = models.CharField(max_length=64)
    at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["subject_hash", "kind", "at"], name="otp_event_subject"),
            models.Index(fields=["client_hash", "kind", "at"], name="otp_event_client"),
        ]


class PiiKeyCheck(models.Model):
    """The fingerprint of the PII master key the database's personal data is encrypted under.

    One row, written under the first key; every command that starts compares its own key with it,
    so a lost key is never replaced by a new one and a wrong key restored is refused.
    """

    fingerprint = models.CharField(max_length=64)
    recorded_at = models.DateTimeField()

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="pii_key_check_one_row")]

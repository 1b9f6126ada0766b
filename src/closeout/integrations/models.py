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


class SimNumberDeactivation(models.Model):
    """A SIM number (MSISDN behind an ICCID) the simulated card system took out of service."""

    idempotency_key = models.CharField(max_length=120, unique=True)
    iccid = models.CharField(max_length=22, db_index=True)
    request_count = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)


class SimOutbox(models.Model):
    """A message a simulated external system sends to closeout (a webhook or a notification).

    Delivered by `integrations.outbox.outbox_deliver`, which honours the scripted delivery faults
    (duplicate, out of order, dropped)."""

    system = models.CharField(max_length=20)
    path = models.CharField(max_length=200)
    body = models.TextField()
    headers = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    deliver_after = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["system", "delivered_at"])]


class WebhookReceipt(models.Model):
    """Every signed inbound message closeout accepted, once: a replayed id changes nothing."""

    source = models.CharField(max_length=20)
    event_id = models.CharField(max_length=120)
    received_at = models.DateTimeField()
    outcome = models.CharField(max_length=60, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "event_id"], name="webhook_receipt_once")]


class SimEsimProfile(models.Model):
    """A profile at the simulated SM-DP+, and the simulated eUICC (device) it may be installed on."""

    iccid = models.CharField(max_length=22, unique=True)
    eid = models.CharField(max_length=32)
    state = models.CharField(max_length=12)
    matching_id = models.CharField(max_length=40, blank=True)
    euicc_key = models.TextField()  # the simulated device's private key (base64 raw Ed25519)
    euicc_certificate = models.JSONField(default=dict)
    notification_seq = models.PositiveIntegerField(default=0)
    device_delete_at = models.DateTimeField(null=True, blank=True)  # the simulated customer deletes it then
    calls = models.JSONField(default=list)  # [{function, call_id, outcome}]
    updated_at = models.DateTimeField(auto_now=True)


class EsimDeletionProof(models.Model):
    """The device's signed profile-deletion notification (ES9+ handleNotification), kept as proof."""

    iccid = models.CharField(max_length=22, db_index=True)
    eid = models.CharField(max_length=32)
    seq_number = models.PositiveIntegerField()
    operation = models.CharField(max_length=20)
    notification = models.JSONField()
    signature = models.TextField()
    certificate = models.JSONField()
    received_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["eid", "iccid", "seq_number"], name="esim_notification_once"),
        ]


class HotlistCounter(models.Model):
    """The global hotlist version; each newly listed card takes the next number."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    version = models.BigIntegerField(default=0)


class Partner(models.Model):
    """A partner app (map/transit app, wallet) that cards are bound to; `code` matches Binding.partner."""

    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=120)
    endpoint_url = models.URLField(max_length=300)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField()

    def __str__(self):
        return self.name


class PartnerSecret(models.Model):
    """A Standard Webhooks signing secret, sealed; during a rotation the old one signs until expiry."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="secrets")
    sealed = models.TextField()
    hint = models.CharField(max_length=12)  # last characters, to tell secrets apart in the console
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)


class UnbindDelivery(models.Model):
    """One partner's unbind webhook for one case: attempts, last answer, acknowledgement."""

    class Status(models.TextChoices):
        PENDING = "PENDING"
        ACKNOWLEDGED = "ACKNOWLEDGED"
        FAILED = "FAILED"

    case = models.ForeignKey("closures.ClosureCase", on_delete=models.PROTECT, related_name="unbind_deliveries")
    partner = models.CharField(max_length=40)
    message_id = models.CharField(max_length=120, unique=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=200, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["case", "partner"], name="one_unbind_per_partner")]


class SimPartnerDelivery(models.Model):
    """What the simulated partner endpoints received, with the verdict on the signature."""

    partner = models.CharField(max_length=40)
    message_id = models.CharField(max_length=120)
    event_type = models.CharField(max_length=40)
    body = models.JSONField(default=dict)
    signature_valid = models.BooleanField()
    signatures = models.PositiveSmallIntegerField(default=0)
    status_code = models.PositiveIntegerField()
    received_at = models.DateTimeField(auto_now_add=True)


class SimShipment(models.Model):
    """A prepaid return label at the simulated carrier, with its tracking events."""

    idempotency_key = models.CharField(max_length=120, unique=True)
    label_number = models.CharField(max_length=30, unique=True)
    tracking_number = models.CharField(max_length=30, unique=True)
    reference = models.CharField(max_length=40)
    events = models.JSONField(default=list)  # [{code, at, location}]
    request_count = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)


class ReturnLabel(models.Model):
    """The prepaid return label closeout obtained for a case, and the tracking it has seen."""

    case = models.OneToOneField("closures.ClosureCase", on_delete=models.PROTECT, related_name="shipment")
    carrier = models.CharField(max_length=40)
    label_number = models.CharField(max_length=30)
    tracking_number = models.CharField(max_length=30)
    label_url = models.CharField(max_length=300, blank=True)
    tracking_events = models.JSONField(default=list)
    created_at = models.DateTimeField()
    tracked_at = models.DateTimeField(null=True, blank=True)

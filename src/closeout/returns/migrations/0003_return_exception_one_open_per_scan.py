from django.db import migrations, models
from django.db.models import Count, Min
from django.utils import timezone

# Written into the resolution of a duplicate closed here; the first of the same scan stays open.
RESOLUTION = "Closed as a duplicate: the same scan was queued twice at once; exception #%d stays open."


def close_duplicate_open_exceptions(apps, schema_editor):
    """Close every open exception but the first of one scan (the race the constraint below stops
    may have queued some twice), each with an audit event, so that the constraint can be added."""
    ReturnException = apps.get_model("returns", "ReturnException")
    AuditEvent = apps.get_model("audit", "AuditEvent")
    repeated = (ReturnException.objects.filter(resolved_at__isnull=True)
                .values("scanned_code", "card_number", "reason")
                .annotate(copies=Count("id"), first=Min("id")).filter(copies__gt=1))
    now = timezone.now()
    for scan in repeated:
        duplicates = ReturnException.objects.select_related("case").filter(
            resolved_at__isnull=True, scanned_code=scan["scanned_code"], card_number=scan["card_number"],
            reason=scan["reason"]).exclude(id=scan["first"])
        for item in duplicates:
            item.resolved_at, item.resolved_by = now, "system"
            item.resolution = RESOLUTION % scan["first"]
            item.save(update_fields=["resolved_at", "resolved_by", "resolution"])
            # Unsealed, as `audit_record` writes them: the sealer chains it.
            AuditEvent.objects.create(seq=None, at=now, actor="system", action="return.exception_resolved",
                                      subject=item.case.reference if item.case else "unknown",
                                      reason=item.resolution, data={}, prev_hash="", hash="")


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0002_unsealed_events'),
        ('closures', '0004_closurecase_next_action_queued'),
        ('returns', '0002_destruction_witness'),
    ]

    operations = [
        migrations.RunPython(close_duplicate_open_exceptions, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='returnexception',
            constraint=models.UniqueConstraint(condition=models.Q(('resolved_at__isnull', True)),
                                               fields=('scanned_code', 'card_number', 'reason'),
                                               name='return_exception_one_open_per_scan'),
        ),
    ]

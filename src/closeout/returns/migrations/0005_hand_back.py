import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """Cards kept for the customer are handed back to their holders, once per card received."""

    dependencies = [
        ("cards", "0001_initial"),
        ("closures", "0001_initial"),
        ("returns", "0004_checkin_desk"),
    ]

    operations = [
        migrations.CreateModel(
            name="HandBack",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("method", models.CharField(choices=[("POST", "Posted back to the holder"),
                                                     ("COUNTER", "Collected at a branch counter")], max_length=10)),
                ("tracking_ref", models.CharField(blank=True, default="", max_length=80)),
                ("note", models.CharField(blank=True, default="", max_length=300)),
                ("handed_back_by", models.CharField(max_length=120)),
                ("desk", models.CharField(blank=True, default="", max_length=40)),
                ("handed_back_at", models.DateTimeField()),
                ("card", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="hand_backs",
                                           to="cards.card")),
                ("case", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT,
                                           related_name="hand_backs", to="closures.closurecase")),
                ("checkin", models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name="hand_back",
                                                 to="returns.checkin")),
            ],
            options={
                "constraints": [
                    models.CheckConstraint(condition=models.Q(("method__in", ["POST", "COUNTER"])),
                                           name="hand_back_method_valid"),
                    models.CheckConstraint(
                        condition=models.Q(models.Q(("method", "POST"), models.Q(("tracking_ref", ""), _negated=True)),
                                           models.Q(("method", "COUNTER"), ("tracking_ref", "")), _connector="OR"),
                        name="hand_back_tracking_ref_by_post_only"),
                ],
            },
        ),
    ]

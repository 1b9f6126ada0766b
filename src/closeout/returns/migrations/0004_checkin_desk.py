from django.db import migrations, models


class Migration(migrations.Migration):
    """A check-in records the desk it was scanned at; those made before have none."""

    dependencies = [
        ("returns", "0003_return_exception_one_open_per_scan"),
    ]

    operations = [
        migrations.AddField(
            model_name="checkin",
            name="desk",
            field=models.CharField(blank=True, default="", max_length=40),
        ),
    ]

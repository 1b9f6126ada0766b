from django.db import migrations, models


class Migration(migrations.Migration):
    """Staff get a name the console shows them by; accounts made before it have none yet."""

    dependencies = [
        ("console", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="staffprofile",
            name="name",
            field=models.CharField(blank=True, default="", max_length=100),
        ),
    ]

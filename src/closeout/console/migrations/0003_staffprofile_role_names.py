from django.db import migrations, models


class Migration(migrations.Migration):
    """Roles carry the names the console shows them by ("Customer service agent", "Administrator");
    the stored codes do not change."""

    dependencies = [
        ("console", "0002_staffprofile_name"),
    ]

    operations = [
        migrations.AlterField(
            model_name="staffprofile",
            name="role",
            field=models.CharField(choices=[("agent", "Customer service agent"), ("branch_clerk", "Branch clerk"),
                                            ("warehouse", "Warehouse"), ("refund_approver", "Refund approver"),
                                            ("supervisor", "Supervisor"), ("admin", "Administrator")],
                                   max_length=20),
        ),
    ]

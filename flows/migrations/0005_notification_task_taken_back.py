"""Notifications of a new kind: a claimed task taken back to the queue by the merchant admin (choices only: no
SQL, core.migration_operations.AlterLabels)."""

from django.db import migrations, models

from core.migration_operations import AlterLabels


class Migration(migrations.Migration):
    dependencies = [
        ("flows", "0004_refund_recent_refunds"),
    ]

    operations = [
        AlterLabels(
            model_name="notification",
            name="kind",
            field=models.CharField(
                choices=[
                    ("reminder", "Reminder"),
                    ("escalation", "Escalation"),
                    ("approved", "Approved"),
                    ("rejected", "Rejected"),
                    ("executed", "Carried out"),
                    ("failed", "Failed"),
                    ("activated", "Activated"),
                    ("taken_back", "Task taken back"),
                ],
                max_length=16,
            ),
        ),
    ]

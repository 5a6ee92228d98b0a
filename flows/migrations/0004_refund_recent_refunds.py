"""Refund requests keep what the member's other refund requests of the 24 hours before came to at submission
(counted with the request's amount toward the finance threshold: a split refund still reaches finance)."""

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("flows", "0003_free_value_requests"),
    ]

    operations = [
        migrations.AddField(
            model_name="refundrequest",
            name="recent_refunds_fen",
            field=models.BigIntegerField(
                default=0,
                validators=[django.core.validators.MinValueValidator(0)],
                verbose_name="member's other refunds in the 24 hours before (fen)",
            ),
        ),
    ]

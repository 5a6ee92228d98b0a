# The mobile rule takes ASCII digits only (\d matched any Unicode digit) and no trailing newline. A validator:
# no SQL (core.migration_operations.AlterLabels).

import django.core.validators
from django.db import migrations, models

from core.migration_operations import AlterLabels


class Migration(migrations.Migration):
    dependencies = [
        ("members", "0007_free_value_read_permissions"),
    ]

    operations = [
        AlterLabels(
            model_name="owner",
            name="mobile",
            field=models.CharField(
                max_length=11,
                validators=[
                    django.core.validators.RegexValidator(
                        "^1[3-9][0-9]{9}\\Z", "Enter an 11-digit mainland mobile number starting with 13–19."
                    )
                ],
                verbose_name="mobile phone",
            ),
        ),
        AlterLabels(
            model_name="staff",
            name="mobile",
            field=models.CharField(
                blank=True,
                max_length=11,
                validators=[
                    django.core.validators.RegexValidator(
                        "^1[3-9][0-9]{9}\\Z", "Enter an 11-digit mainland mobile number starting with 13–19."
                    )
                ],
                verbose_name="mobile phone",
            ),
        ),
    ]

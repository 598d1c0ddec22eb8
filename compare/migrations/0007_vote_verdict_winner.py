# A vote becomes a verdict plus the winning generation (step 1 of 3: new columns;
# `choice` may be null from here on, so that the way back can re-add it empty).
# Three migrations, not one: PostgreSQL refuses to alter a table in the transaction
# that has just written rows with deferred foreign-key checks pending.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("compare", "0006_claim"),
    ]

    operations = [
        migrations.AlterField(
            model_name="vote",
            name="choice",
            field=models.CharField(max_length=20, null=True),
        ),
        migrations.AddField(
            model_name="vote",
            name="verdict",
            field=models.CharField(
                choices=[("better", "One side is better"), ("tie", "Tie"), ("all_bad", "All bad")],
                max_length=10,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="vote",
            name="winner",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="wins",
                to="compare.generation",
            ),
        ),
    ]

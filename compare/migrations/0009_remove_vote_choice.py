# Step 3 of 3: every vote has a verdict now; `choice` goes, and the database checks
# that a vote names a winner exactly when its verdict is "better".

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("compare", "0008_vote_choice_to_verdict"),
    ]

    operations = [
        migrations.RemoveField(
            model_name="vote",
            name="choice",
        ),
        migrations.AlterField(
            model_name="vote",
            name="verdict",
            field=models.CharField(
                choices=[("better", "One side is better"), ("tie", "Tie"), ("all_bad", "All bad")],
                max_length=10,
            ),
        ),
        migrations.AddConstraint(
            model_name="vote",
            constraint=models.CheckConstraint(
                condition=models.Q(("verdict", "better"), ("winner__isnull", False))
                | models.Q(("verdict__in", ["tie", "all_bad"]), ("winner__isnull", True)),
                name="vote_winner_exactly_when_better",
            ),
        ),
    ]

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("compare", "0013_generation_cost_max"),
    ]

    operations = [
        migrations.AddField(
            model_name="teamsettings",
            name="rerun_interrupted",
            field=models.BooleanField(
                default=False,
                help_text="When the server or worker running a generation stops, run it again by itself (once) instead"
                " of waiting for Retry. The provider may have billed the interrupted call, so such a generation can"
                " cost twice.",
                verbose_name="re-run interrupted generations",
            ),
        ),
        # A run's markup overlay (GPT Image 2.5) is a Reference of its own kind.
        migrations.AlterField(
            model_name="reference",
            name="kind",
            field=models.CharField(
                choices=[("reference", "Reference"), ("mask", "Mask"), ("markup", "Markup overlay")],
                default="reference",
                max_length=10,
            ),
        ),
    ]

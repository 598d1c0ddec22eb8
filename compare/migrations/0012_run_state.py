"""The run's status, stored (`Run.state`) and indexed for the history's filters and pages,
instead of computed from its generations on every read; and the indexes of the history's
keyset pages. The data step computes the state of every existing run with the rule of
compare/models.py `state_rule`, written out here as it is at this migration; going back
drops the column (the status is computed again from the generations)."""

from django.db import migrations, models
from django.db.models import Case, CharField, Exists, OuterRef, Value, When

PENDING = ("queued", "running")


def compute_states(apps, schema_editor):
    Run = apps.get_model("compare", "Run")
    Generation = apps.get_model("compare", "Generation")
    gens = Generation.objects.filter(run=OuterRef("pk"))
    rule = Case(
        When(~Exists(gens), then=Value("empty")),
        When(Exists(gens.filter(status__in=PENDING)), then=Value("running")),
        When(~Exists(gens.exclude(status="succeeded")), then=Value("done")),
        When(Exists(gens.filter(status="succeeded")), then=Value("partial")),
        default=Value("failed"),
        output_field=CharField(),
    )
    Run.objects.using(schema_editor.connection.alias).update(state=rule)


class Migration(migrations.Migration):
    dependencies = [("compare", "0011_reference_suite")]

    operations = [
        migrations.AddField(
            model_name="run",
            name="state",
            field=models.CharField(default="empty", editable=False, max_length=8),
        ),
        migrations.RunPython(compute_states, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(fields=["created_at", "id"], name="run_created_id"),
        ),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(fields=["state", "created_at", "id"], name="run_state_created_id"),
        ),
    ]

from django.db import migrations

# The criteria designers use when they compare these models (editable in the admin).
DEFAULTS = [
    ("Prompt adherence", "Does it show what the prompt asked for, and only that?", False),
    ("Text accuracy", "Is every requested word spelt and set correctly, in every script?", False),
    ("Layout", "Composition, hierarchy, alignment and spacing.", False),
    ("Visual quality", "Detail, lighting, colour, absence of artefacts.", False),
    ("Usability as delivered", "Could this go to a client or a page as it is? 4–5 stars = usable.", True),
]


def add_defaults(apps, schema_editor):
    Criterion = apps.get_model("compare", "Criterion")
    for position, (name, description, usability) in enumerate(DEFAULTS):
        Criterion.objects.get_or_create(
            name=name, defaults={"description": description, "position": position, "is_usability": usability}
        )


class Migration(migrations.Migration):
    dependencies = [("compare", "0003_judging")]
    operations = [migrations.RunPython(add_defaults, migrations.RunPython.noop)]

"""The built-in suite "Reference: poster, UI mockup, infographic".

Self-contained on purpose: a frozen copy of the three cases as they shipped here (the
suite's current cases live in compare/suites/builtin.py; a later change to them comes
with a new data migration, so this one always does what it did). It uses the models as
they were at this migration (`apps.get_model`).

It never takes over a suite of the team's: when a suite that is not built-in already
has the name, that suite is left exactly as it is and the built-in one is created as
"Reference: poster, UI mockup, infographic (built-in)" (or "(built-in 2)"…, whichever is
free). Going back leaves the built-in suite in place: it is ordinary data by then, and
going forward again does not add a second one.
"""

from django.db import migrations

NAME = "Reference: poster, UI mockup, infographic"
DESCRIPTION = (
    "The three reference prompts of the published model comparisons: a Chinese sale poster, "
    "a SaaS dashboard mockup and a numbered infographic. Each image must render the quoted texts "
    "exactly; run it several times per model to read off a success rate."
)

CASES = [
    {
        "title": "Chinese New Year sale poster",
        "prompt": (
            "A festive Chinese New Year sale poster for a department store, in red and gold. "
            'The large headline reads "新春钜惠 全场 8 折" in bold brush-style Chinese calligraphy, '
            "centred in the upper third. Below it, paper lanterns, plum blossoms and a gold ingot motif "
            "frame the scene; confetti falls across a deep red background with subtle cloud patterns. "
            "Crisp, print-ready typography with every character rendered exactly as written."
        ),
        "tags": ["poster", "zh"],
        "options": {"aspect_ratio": "3:4", "quality": "high"},
        "expectations": ["新春钜惠 全场 8 折"],
    },
    {
        "title": "SaaS analytics dashboard mockup",
        "prompt": (
            "A high-fidelity UI mockup of a SaaS web app, desktop layout, light theme. "
            'A left sidebar with the items "Overview", "Reports" and "Settings"; '
            'the page title at the top reads "Analytics Dashboard". '
            'Below the title, three KPI cards labelled "Monthly Revenue", "Active Users" and "Churn Rate" '
            "with plausible numbers, then a line chart of revenue over twelve months and a table of recent "
            "signups. Clean sans-serif type, consistent 8-pixel spacing, realistic product-design detail."
        ),
        "tags": ["ui-mockup"],
        "options": {"aspect_ratio": "16:9", "quality": "high"},
        "expectations": ["Analytics Dashboard", "Monthly Revenue", "Active Users", "Churn Rate"],
    },
    {
        "title": "Coffee supply chain infographic",
        "prompt": (
            'A clean vertical infographic titled "How Coffee Gets to Your Cup", flat illustration style, '
            "warm browns and cream. Five numbered steps run top to bottom, each with a small icon and its "
            'label: "1. Harvest", "2. Processing", "3. Roasting", "4. Grinding", "5. Brewing". '
            "Dotted arrows connect the steps; generous white space; all text legible and spelled exactly."
        ),
        "tags": ["infographic"],
        "options": {"aspect_ratio": "2:3", "quality": "high"},
        "expectations": [
            "How Coffee Gets to Your Cup",
            "1. Harvest",
            "2. Processing",
            "3. Roasting",
            "4. Grinding",
            "5. Brewing",
        ],
    },
]


def free_name(Suite) -> str:
    """NAME, or the first of "NAME (built-in)", "NAME (built-in 2)"… that no suite has."""
    for suffix in ["", " (built-in)", *(f" (built-in {n})" for n in range(2, 1000))]:
        if not Suite.objects.filter(name=NAME + suffix).exists():
            return NAME + suffix
    raise RuntimeError(f"No free name for the suite {NAME!r}")


def install_reference_suite(apps, schema_editor):
    Suite = apps.get_model("compare", "Suite")
    SuiteCase = apps.get_model("compare", "SuiteCase")
    if Suite.objects.filter(builtin=True, name__startswith=NAME).exists():
        return  # migrated forward before, then back (which kept it)
    suite = Suite.objects.create(name=free_name(Suite), description=DESCRIPTION, builtin=True)
    for position, case in enumerate(CASES):
        SuiteCase.objects.create(suite=suite, position=position, **case)


class Migration(migrations.Migration):
    dependencies = [("compare", "0010_suites_checks_limits")]

    operations = [migrations.RunPython(install_reference_suite, migrations.RunPython.noop)]

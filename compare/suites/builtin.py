"""The built-in suite "Reference: poster, UI mockup, infographic": the three kinds of
prompt the published comparisons of gpt-image-2 and Nano Banana Pro score, with the
texts each image must render exactly as its expectations.

This is the one place its current cases live. The data migration
compare/migrations/0011_reference_suite.py created it from a frozen copy of them (a
migration must keep doing what it did, whatever this file says later). A later change
to the cases here ships with a new data migration of its own (its own frozen copy, or a
call of `install` with the historical models, knowing `install` may change again); the
tests and a manual refresh call `install`.

**A suite of the team's with the same name is never taken over.** The built-in suite is
the one with `builtin` set; when a team's own suite already had NAME, the built-in one
is named "NAME (built-in)" (or "(built-in 2)"…) and theirs stays exactly as it was.
"""

from typing import Any

from compare.suites.io import CaseData

NAME = "Reference: poster, UI mockup, infographic"
DESCRIPTION = (
    "The three reference prompts of the published model comparisons: a Chinese sale poster, "
    "a SaaS dashboard mockup and a numbered infographic. Each image must render the quoted texts "
    "exactly; run it several times per model to read off a success rate."
)

CASES = [
    CaseData(
        title="Chinese New Year sale poster",
        prompt=(
            "A festive Chinese New Year sale poster for a department store, in red and gold. "
            'The large headline reads "新春钜惠 全场 8 折" in bold brush-style Chinese calligraphy, '
            "centred in the upper third. Below it, paper lanterns, plum blossoms and a gold ingot motif "
            "frame the scene; confetti falls across a deep red background with subtle cloud patterns. "
            "Crisp, print-ready typography with every character rendered exactly as written."
        ),
        tags=["poster", "zh"],
        options={"aspect_ratio": "3:4", "quality": "high"},
        expectations=["新春钜惠 全场 8 折"],
    ),
    CaseData(
        title="SaaS analytics dashboard mockup",
        prompt=(
            "A high-fidelity UI mockup of a SaaS web app, desktop layout, light theme. "
            'A left sidebar with the items "Overview", "Reports" and "Settings"; '
            'the page title at the top reads "Analytics Dashboard". '
            'Below the title, three KPI cards labelled "Monthly Revenue", "Active Users" and "Churn Rate" '
            "with plausible numbers, then a line chart of revenue over twelve months and a table of recent "
            "signups. Clean sans-serif type, consistent 8-pixel spacing, realistic product-design detail."
        ),
        tags=["ui-mockup"],
        options={"aspect_ratio": "16:9", "quality": "high"},
        expectations=["Analytics Dashboard", "Monthly Revenue", "Active Users", "Churn Rate"],
    ),
    CaseData(
        title="Coffee supply chain infographic",
        prompt=(
            'A clean vertical infographic titled "How Coffee Gets to Your Cup", flat illustration style, '
            "warm browns and cream. Five numbered steps run top to bottom, each with a small icon and its "
            'label: "1. Harvest", "2. Processing", "3. Roasting", "4. Grinding", "5. Brewing". '
            "Dotted arrows connect the steps; generous white space; all text legible and spelled exactly."
        ),
        tags=["infographic"],
        options={"aspect_ratio": "2:3", "quality": "high"},
        expectations=[
            "How Coffee Gets to Your Cup",
            "1. Harvest",
            "2. Processing",
            "3. Roasting",
            "4. Grinding",
            "5. Brewing",
        ],
    ),
]


def free_name(suite_model: Any) -> str:
    """NAME, or the first of "NAME (built-in)", "NAME (built-in 2)"… that no suite has."""
    for suffix in ["", " (built-in)", *(f" (built-in {n})" for n in range(2, 1000))]:
        if not suite_model.objects.filter(name=NAME + suffix).exists():
            return NAME + suffix
    raise ValueError(f"No free name for the suite {NAME!r}")


def find(suite_model: Any) -> Any:
    """The stored built-in suite, or None: never a team's own suite of the same name."""
    return suite_model.objects.filter(builtin=True, name__startswith=NAME).order_by("pk").first()


def install(suite_model: Any) -> Any:
    """Create the built-in suite, or bring the stored one up to date with CASES (a new
    version only when its cases differ). Works with the current and historical models."""
    from compare.suites import edits

    suite = find(suite_model)
    if suite is None:
        suite = suite_model.objects.create(name=free_name(suite_model), description=DESCRIPTION, builtin=True)
        for position, case in enumerate(CASES):
            suite.cases.create(position=position, **case.fields())
        return suite
    stored = [
        {k: getattr(c, k) for k in ("title", "prompt", "options", "tags", "expectations")}
        for c in suite.cases.order_by("position", "pk")
    ]
    if stored != [case.fields() for case in CASES]:
        edits.replace_cases(suite, CASES, description=DESCRIPTION)
    elif suite.description != DESCRIPTION:
        suite.description = DESCRIPTION
        suite.save(update_fields=["description"])
    return suite

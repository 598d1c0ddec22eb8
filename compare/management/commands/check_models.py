"""`manage.py check_models [--json]`: is every registry model still offered by its provider?

Exits 1 when an enabled model is missing (retired) or its provider could not be
asked, so a deploy script or cron job can stop before designers meet dead panes.
"""

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from compare.modelcheck import ModelStatus, check_models

COLUMNS = [("Model", "key"), ("Id", "model_id"), ("Provider", "provider"), ("Status", "status"), ("Note", "note")]


def table(rows: list[ModelStatus]) -> str:
    cells = [[title for title, _ in COLUMNS]]
    for row in rows:
        values = row.as_dict()
        provider = f"{values['provider']} (simulated)" if row.simulated else values["provider"]
        cells.append([provider if name == "provider" else str(values[name]) for _, name in COLUMNS])
    # The note is last and left ragged, so a long error message does not widen every line.
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + "  " + line[-1]
        for line in cells
    )


class Command(BaseCommand):
    help = "List each provider's models and report which registry models are ok, missing or failing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the results as JSON.")

    def handle(self, *args, **options) -> None:
        rows = check_models()
        if options["json"]:
            self.stdout.write(json.dumps([row.as_dict() for row in rows], indent=2))
        else:
            self.stdout.write(table(rows))
        failing = [row for row in rows if row.failing]
        if failing:
            names = ", ".join(f"{row.key} ({row.status})" for row in failing)
            raise CommandError(f"{len(failing)} enabled model(s) need attention: {names}", returncode=1)

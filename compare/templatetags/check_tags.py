"""Template filters for the automatic checks (compare/checks/report.py): `gen|check_report:hidden`
for a pane's badges and details, `gen|fallback_reason` for why a fallback side ran."""

from django import template

from compare.checks import report
from compare.models import Generation

register = template.Library()


@register.filter
def check_report(gen: Generation, hidden: bool = False) -> report.CheckReport | None:
    return report.report(gen, bool(hidden))


@register.filter
def fallback_reason(gen: Generation) -> str:
    return report.fallback_reason(gen)

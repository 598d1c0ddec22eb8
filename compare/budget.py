"""The budget guard: a per-person daily spending limit (estimated cost) and a
per-person limit on generations in flight, both set by an admin in Team settings.

It runs inside the transaction that creates the run, so two comparisons sent at
the same moment cannot both slip under the limit (SQLite's IMMEDIATE transactions
and PostgreSQL's row lock on the team settings serialise them)."""

from decimal import Decimal

from django.db.models import Sum
from django.utils import timezone

from compare.models import Generation, TeamSettings


class BudgetExceeded(Exception):
    """The comparison would pass a limit; the message says which and what to do."""


def check(user, estimates: list[Decimal | None], generations: int) -> None:
    team = TeamSettings.objects.select_for_update().get_or_create(pk=1)[0]
    if team.max_in_flight:
        in_flight = Generation.objects.filter(run__author=user).pending().count()
        if in_flight + generations > team.max_in_flight:
            raise BudgetExceeded(
                f"You have {in_flight} generation{'s' if in_flight != 1 else ''} queued or running and this "
                f"comparison adds {generations}; the limit is {team.max_in_flight}. Try again when some have finished."
            )
    if team.daily_budget_usd:
        start = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
        spent = Generation.objects.filter(run__author=user, run__created_at__gte=start).aggregate(
            total=Sum("estimated_cost_usd")
        )["total"] or Decimal("0")
        new = sum((e for e in estimates if e is not None), Decimal("0"))
        if spent + new > team.daily_budget_usd:
            raise BudgetExceeded(
                f"This comparison (≈ ${new:.2f}) would take you past today's limit of ${team.daily_budget_usd:.2f}: "
                f"≈ ${spent:.2f} is already spent. An admin can raise the limit in Team settings."
            )

"""Money: what a generation costs (or may have cost), a run's total, and the budget
guard: a per-person daily spending limit and a per-person limit on generations in
flight, both set by an admin in Team settings.

One rule (`charge`, and `_charged` in SQL) says what counts as spent: the cost the
provider's usage gives when it reported one; the estimate while a generation is
queued or running, or when it succeeded without usage; the estimate as "may have
been charged" when the request reached the provider and then stopped in a way that
can still be billed (a timeout, a lost connection, an unreadable reply, a server
restart, a cancel while running); nothing when the provider refused or rejected it
(those are not billed) or when it never left the queue.

The guard runs inside the transaction that creates the run, so two comparisons sent
at the same moment cannot both slip under the limit (SQLite's IMMEDIATE transactions
and PostgreSQL's row lock on the team settings serialise them)."""

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Case, DecimalField, F, Q, Sum, Value, When
from django.utils import timezone

from compare.models import Generation, TeamSettings

ZERO = Decimal("0")
# Ways a call can end after reaching the provider in which it may still have been billed.
MAYBE_BILLED = frozenset({"timeout", "network", "malformed", "interrupted"})


@dataclass(frozen=True)
class Charge:
    """What one generation costs: `kind` is "spent" (from the provider's usage),
    "estimate" (queued, running, or done without usage), "maybe" (may have been
    charged) or "none" (not charged); `amount` in USD, None when unknown."""

    kind: str
    amount: Decimal | None

    @property
    def counted(self) -> Decimal:
        """What the daily limit counts."""
        return ZERO if self.kind == "none" or self.amount is None else self.amount


def charge(gen: Generation) -> Charge:
    if gen.cost_usd is not None:
        return Charge("spent", gen.cost_usd)
    if gen.status in Generation.PENDING or gen.status == Generation.Status.SUCCEEDED:
        return Charge("estimate", gen.estimated_cost_usd)
    if gen.started_at is not None and (gen.status == Generation.Status.CANCELLED or gen.error_kind in MAYBE_BILLED):
        return Charge("maybe", gen.estimated_cost_usd)
    return Charge("none", ZERO)


def _charged():
    """`charge(gen).counted`, in SQL."""
    money = DecimalField(max_digits=10, decimal_places=4)
    maybe = Q(started_at__isnull=False) & (Q(status=Generation.Status.CANCELLED) | Q(error_kind__in=MAYBE_BILLED))
    return Case(
        When(cost_usd__isnull=False, then=F("cost_usd")),
        When(status__in=[*Generation.PENDING, Generation.Status.SUCCEEDED], then=F("estimated_cost_usd")),
        When(maybe, then=F("estimated_cost_usd")),
        default=Value(ZERO),
        output_field=money,
    )


@dataclass(frozen=True)
class RunCost:
    """A run's total: `spent` (reported by the providers), `estimated` (still running,
    or done without usage) and `maybe` (may have been charged), each in USD."""

    spent: Decimal
    estimated: Decimal
    maybe: Decimal
    known: bool  # some side has a cost or an estimate at all


def run_cost(generations) -> RunCost:
    charges = [charge(gen) for gen in generations]
    totals = {"spent": ZERO, "estimate": ZERO, "maybe": ZERO}
    for c in charges:
        if c.amount is not None and c.kind in totals:
            totals[c.kind] += c.amount
    known = any(c.amount is not None for c in charges)
    return RunCost(totals["spent"], totals["estimate"], totals["maybe"], known)


def _start_of_today():
    return timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)


def spent_today(user) -> Decimal:
    """What the daily limit counts for `user` today (runs they started since midnight)."""
    rows = Generation.objects.filter(run__author=user, run__created_at__gte=_start_of_today())
    return rows.aggregate(total=Sum(_charged()))["total"] or ZERO


@dataclass(frozen=True)
class Today:
    limit: Decimal
    spent: Decimal

    @property
    def left(self) -> Decimal:
        return max(ZERO, self.limit - self.spent)


def today(user) -> Today | None:
    """The user's daily limit and what counts against it so far; None without a limit."""
    team = TeamSettings.current()  # a GET writes nothing
    limit = team.daily_budget_usd
    if not limit:
        return None
    return Today(limit, spent_today(user))


class BudgetExceeded(Exception):
    """The comparison would pass a limit; the message says which and what to do."""


def check(user, estimates: list[Decimal | None], generations: int, *, what: str = "This comparison") -> None:
    """Raise BudgetExceeded when starting `generations` more (costing `estimates`) would
    pass a limit. A suite run checks its whole cost with `generations=0`: it is queued
    work, released within the in-flight limit by compare/suites/dispatch.py."""
    team = TeamSettings.objects.select_for_update().get_or_create(pk=1)[0]
    if team.max_in_flight and generations:
        in_flight = Generation.objects.filter(run__author=user).pending().count()
        if in_flight + generations > team.max_in_flight:
            raise BudgetExceeded(
                f"You have {in_flight} generation{'s' if in_flight != 1 else ''} queued or running and this "
                f"comparison adds {generations}; the limit is {team.max_in_flight}. Try again when some have finished."
            )
    if team.daily_budget_usd:
        spent = spent_today(user)
        new = sum((e for e in estimates if e is not None), ZERO)
        if spent + new > team.daily_budget_usd:
            raise BudgetExceeded(
                f"{what} (≈ ${new:.2f}) would take you past today's limit of ${team.daily_budget_usd:.2f}: "
                f"≈ ${spent:.2f} is already spent. An admin can raise the limit in Team settings."
            )

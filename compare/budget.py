"""Money: what a generation costs (or may have cost), a run's total, and the budget
guard: a per-person daily spending limit and a per-person limit on generations in
flight, both set by an admin in Team settings.

One rule (`charge`, and `_charged` in SQL) says what counts as spent. Every billed
attempt counts, not only the last: a call that timed out or sent an unreadable reply
reached the provider and may have been billed, and so may its retry. The generate task
(compare/tasks.py) logs each attempt's cost from its reply's usage, or marks it "may have
been billed" when the reply had none (`attempt_cost`); `tally` turns the log into the row's
`cost_usd` (what the usage reports, all attempts) and `cost_max_usd` (the most it may have
cost: each unknown attempt at its estimate, the high end of the range, compare/pricing.py).

A generation's charge is at least `cost_usd` and at most `cost_max_usd`; while it is queued
or running the estimate is added for the call under way; a success without usage counts its
estimate; a stop that may be billed (a server restart, compare/recovery.py; a cancel
while running, compare/runs.py) adds an entry "billed unknown" to the log, so it counts
at its estimate as "may have been charged" (rows from before such entries: by their
status); nothing when the provider refused or rejected it (not billed) or when it never
left the queue. The budget guard counts the upper bound, and refuses outright, while a
daily limit is on, a model the registry has no price for: its cost could not be counted.

The guard runs inside the transaction that creates the run, so two comparisons sent
at the same moment cannot both slip under the limit (SQLite's IMMEDIATE transactions
and PostgreSQL's row lock on the team settings serialise them)."""

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Case, DecimalField, F, Q, Sum, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from compare import pricing
from compare.models import Generation, TeamSettings
from compare.providers.base import MAY_BE_BILLED

ZERO = Decimal("0")
# Ways a call can end after reaching the provider in which it may still have been billed
# (a server restart stops a call as "interrupted", compare/recovery.py).
MAYBE_BILLED = frozenset({kind.value for kind in MAY_BE_BILLED} | {"interrupted"})


def attempt_cost(kind: str | None, cost: Decimal | None, unknown_share: float | None = None) -> dict:
    """What an attempt's log entry records about its bill: the cost its reply's usage gives,
    and/or that it may have been billed for an unknown amount (it succeeded without usage,
    stopped in a way that can still be billed, or the adapter says part of it was:
    `unknown_share` of the estimate, compare/providers/base.py), or nothing (not billed)."""
    entry = {"cost_usd": str(cost)} if cost is not None else {}
    share = Decimal(str(unknown_share or 0))
    if cost is None and (kind is None or kind in MAYBE_BILLED):  # kind None: a success
        share = Decimal(1)
    if share:
        entry["billed"] = "unknown"
        if share != 1:
            entry["share"] = str(share)
    return entry


def _unknown_share(entry: dict) -> Decimal:
    try:
        return min(Decimal(1), max(ZERO, Decimal(str(entry.get("share", 1)))))
    except ArithmeticError:  # an unreadable share: the whole estimate, never less
        return Decimal(1)


def end_running(row: tuple, kind: str, *, then: tuple[dict, ...] = (), **fields) -> int:
    """End a generation whose call is still on its way (cancelled, or its process died):
    `row` is its (pk, claim, attempt_log, estimated_cost_usd) as read. The call may have
    been billed, so the log records it as such (`kind`), followed by `then`, and the cost
    is tallied again; written only if the row still runs under that claim. 1 if written."""
    pk, claim, log, estimate = row
    lost = {"kind": kind, "at": timezone.now().isoformat(), **attempt_cost(kind, None, 1)}
    attempts = [*log, lost, *then]
    same = Generation.objects.filter(pk=pk, status=Generation.Status.RUNNING, claim=claim)
    return same.update(**fields, attempt_log=attempts, **tally(attempts, estimate))


def tally(attempts: list, estimate: Decimal | None) -> dict:
    """`cost_usd` and `cost_max_usd` of a generation from its attempt log (entries written
    before attempts recorded their bill count for nothing: their bill is not known). An
    unknown bill counts at the estimate, or at its `share` of it (one of n Gemini requests)."""
    entries = [a for a in attempts if isinstance(a, dict)]
    known = [Decimal(a["cost_usd"]) for a in entries if "cost_usd" in a]
    unknown = [_unknown_share(a) for a in entries if a.get("billed") == "unknown"]
    spent = sum(known, ZERO) if known else None
    most = None
    if unknown:
        most = ((spent or ZERO) + sum(unknown, ZERO) * (estimate or ZERO)).quantize(pricing.CENT)
    return {"cost_usd": spent, "cost_max_usd": most}


@dataclass(frozen=True)
class Charge:
    """What one generation costs: `kind` is "spent" (from the providers' usage),
    "estimate" (queued, running, or done without usage), "maybe" (may have been
    charged, amount unknown) or "none" (not charged); `amount` in USD (the estimate for
    "estimate" and "maybe"), None when unknown; `at_least` / `at_most` bound it;
    `settled` is False while it is queued or running (its bounds are an estimate)."""

    kind: str
    amount: Decimal | None
    at_least: Decimal = ZERO
    at_most: Decimal = ZERO
    settled: bool = True

    @property
    def counted(self) -> Decimal:
        """What the daily limit counts: the most it may cost."""
        return self.at_most

    @property
    def uncertain(self) -> bool:
        """Some attempt's cost is unknown: show "at least … / at most …"."""
        return self.settled and self.at_least != self.at_most


def charge(gen: Generation) -> Charge:
    spent = gen.cost_usd
    most = gen.cost_max_usd if gen.cost_max_usd is not None else (spent or ZERO)
    estimate = gen.estimated_cost_usd
    if gen.status in Generation.PENDING:  # earlier attempts, and the call under way at its estimate
        return Charge("estimate", estimate, spent or ZERO, most + (estimate or ZERO), settled=False)
    if spent is not None:
        return Charge("spent", spent, spent, most)
    if gen.cost_max_usd is not None:  # every billed attempt's cost unknown
        if gen.status == Generation.Status.SUCCEEDED:  # at least the success, at its estimate
            return Charge("estimate", estimate, min(estimate or ZERO, gen.cost_max_usd), gen.cost_max_usd)
        return Charge("maybe", estimate, ZERO, gen.cost_max_usd)
    if gen.status == Generation.Status.SUCCEEDED:
        return Charge("estimate", estimate, estimate or ZERO, estimate or ZERO)
    if gen.started_at is not None and (gen.status == Generation.Status.CANCELLED or gen.error_kind in MAYBE_BILLED):
        return Charge("maybe", estimate, ZERO, estimate or ZERO)
    return Charge("none", ZERO)


def _charged():
    """`charge(gen).counted`, in SQL."""
    money = DecimalField(max_digits=10, decimal_places=4)
    zero = Value(ZERO, output_field=money)
    maybe = Q(started_at__isnull=False) & (Q(status=Generation.Status.CANCELLED) | Q(error_kind__in=MAYBE_BILLED))
    return Case(
        When(
            status__in=Generation.PENDING,
            then=Coalesce(F("cost_max_usd"), F("cost_usd"), zero) + Coalesce(F("estimated_cost_usd"), zero),
        ),
        When(cost_max_usd__isnull=False, then=F("cost_max_usd")),
        When(cost_usd__isnull=False, then=F("cost_usd")),
        When(status=Generation.Status.SUCCEEDED, then=Coalesce(F("estimated_cost_usd"), zero)),
        When(maybe, then=Coalesce(F("estimated_cost_usd"), zero)),
        default=zero,
        output_field=money,
    )


@dataclass(frozen=True)
class RunCost:
    """A run's total: `spent` (reported by the providers), `estimated` (still running,
    or done without usage) and `maybe` (may have been charged), each in USD; `at_least` /
    `at_most` bound the whole (they differ when some billed attempt's cost is unknown);
    `prices` says how recent the prices behind it are ("prices as of 27 Nov 2026")."""

    spent: Decimal
    estimated: Decimal
    maybe: Decimal
    known: bool  # some side has a cost or an estimate at all
    at_least: Decimal = ZERO
    at_most: Decimal = ZERO
    uncertain: bool = False
    prices: str = ""


def run_cost(generations) -> RunCost:
    generations = list(generations)
    charges = [charge(gen) for gen in generations]
    totals = {"spent": ZERO, "estimate": ZERO, "maybe": ZERO}
    for c in charges:
        if c.amount is not None and c.kind in totals:
            totals[c.kind] += c.amount
    known = any(c.amount is not None for c in charges)
    return RunCost(
        totals["spent"],
        totals["estimate"],
        totals["maybe"],
        known,
        at_least=sum((c.at_least for c in charges), ZERO),
        at_most=sum((c.at_most for c in charges), ZERO),
        uncertain=any(c.uncertain for c in charges),
        prices=pricing.as_of(pricing.prices_checked(g.model for g in generations)),
    )


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


def _unpriced(estimates: list[Decimal | None], labels: Sequence[str]) -> str:
    """The refusal when a model has no price: it names the models by `labels` (parallel to
    `estimates`), or says "This model" without them (a retry: a blind pane must not learn
    its model's name)."""
    names = list(dict.fromkeys(label for label, e in zip(labels, estimates, strict=False) if e is None and label))
    if len(names) > 1:
        who = f"{', '.join(names[:-1])} and {names[-1]} have no price in the model registry, so they cannot"
    else:
        who = f"{names[0] if names else 'This model'} has no price in the model registry, so it cannot"
    whose = "their" if len(names) > 1 else "its"
    return f"{who} be checked against your daily limit — an admin can add {whose} prices, or set the limit to 0."


def check(
    user,
    estimates: list[Decimal | None],
    generations: int,
    *,
    what: str = "This comparison",
    labels: Sequence[str] = (),
) -> None:
    """Raise BudgetExceeded when starting `generations` more (costing `estimates`; `labels`
    names their models) would pass a limit, or when the daily limit is on and a model has
    no price: the limit could not hold. A suite run checks its whole cost with
    `generations=0`: it is queued work, released within the in-flight limit by
    compare/suites/dispatch.py."""
    team = TeamSettings.objects.select_for_update().get_or_create(pk=1)[0]
    if team.max_in_flight and generations:
        in_flight = Generation.objects.filter(run__author=user).pending().count()
        if in_flight + generations > team.max_in_flight:
            raise BudgetExceeded(
                f"You have {in_flight} generation{'s' if in_flight != 1 else ''} queued or running and this "
                f"comparison adds {generations}; the limit is {team.max_in_flight}. Try again when some have finished."
            )
    if team.daily_budget_usd and any(e is None for e in estimates):
        raise BudgetExceeded(_unpriced(estimates, labels))
    if team.daily_budget_usd:
        spent = spent_today(user)
        new = sum((e for e in estimates if e is not None), ZERO)
        if spent + new > team.daily_budget_usd:
            raise BudgetExceeded(
                f"{what} (≈ ${new:.2f}) would take you past today's limit of ${team.daily_budget_usd:.2f}: "
                f"≈ ${spent:.2f} is already spent. An admin can raise the limit in Team settings."
            )

"""What a suite run has done so far and what it shows: its progress, the results grid
(case × model, success rate with a 95 % Wilson interval, latency, cost), a verdict per
case, and the comparison of two suite runs. The suite run page
(compare/views/suite_runs.py), the JSON API and `manage.py suite` all read these, so
they agree to the digit.

**Success of a generation** (`outcome`): it succeeded, its automatic checks
(compare/checks/) passed, and, when someone rated it on the usability criterion
(`Criterion.is_usability`), the mean of those ratings is at least 4 stars. A failed or
refused generation, failed checks or a usability mean below 4 is a failure. Not counted
yet: a generation still queued or running, or whose checks still run. Not counted at
all: a cancelled generation, and one whose checks could not run ("unavailable", or never
run) — that says nothing about the model. A fallback side (`Generation.fallback_of`) is
a different model stepping in: it counts in the cost, not in any cell.

Everything from "Plain data" down works on plain values and can be checked by hand
(tests/test_suite_results.py does).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connections, router
from django.db.models import Count, DateTimeField, IntegerField, Max, OuterRef, Prefetch, Q, Subquery, Sum
from django.utils import timezone

from compare.budget import ZERO, charge
from compare.checks import spec_items, text_items
from compare.judging.scorecard import USABLE_STARS
from compare.models import Criterion, Generation, Image, Rating
from compare.precompiled import Precompiled, prep_of
from compare.registry import get_model
from compare.stats import Rate, newcombe, percentile
from compare.suites.models import SuiteRun

# The outcomes of one generation (`outcome`).
SUCCESS, FAILURE, PENDING, UNCOUNTED = "success", "failure", "pending", "uncounted"


def rule_text(usability: str | None) -> str:
    """The sentence each page shows: what success means here."""
    rated = (
        f" and, when rated on “{usability}”, its mean rating is at least {USABLE_STARS} stars"
        if usability
        else " (no criterion is marked as the usability one, so ratings do not count)"
    )
    return (
        "A generation counts as a success when it delivered an image, its automatic checks (text read back, "
        f"size, format) passed{rated}. Failed or refused generations count as failures; generations still "
        "running or being checked are not counted yet; cancelled ones, and ones whose checks could not run, "
        "are left out. Intervals: 95 % Wilson score intervals."
    )


# ---------------------------------------------------------------- Plain data


def outcome(status: str, check_status: str, usability_stars: Sequence[int] = ()) -> str:
    """SUCCESS, FAILURE, PENDING (not counted yet) or UNCOUNTED (cancelled, or checks
    that could not run) for one generation: the rule in the module docstring."""
    S, C = Generation.Status, Generation.CheckStatus
    if status in Generation.PENDING:
        return PENDING
    if status == S.CANCELLED:
        return UNCOUNTED
    if status != S.SUCCEEDED:
        return FAILURE
    if check_status == C.PENDING:
        return PENDING
    if check_status == C.FAILED:
        return FAILURE
    if check_status != C.PASSED:
        return UNCOUNTED
    if usability_stars and sum(usability_stars) / len(usability_stars) < USABLE_STARS:
        return FAILURE
    return SUCCESS


def pct(share: float) -> str:
    return f"{100 * share:.0f}"


def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(x, digits)


def _money(x: Decimal | None) -> str | None:
    return None if x is None else str(x.quantize(Decimal("0.0001")))


@dataclass
class Sample:
    """One generation of a cell: its run (the link), outcome and thumbnail."""

    run_id: Any
    run_url: str
    sample: int
    status: str
    check_status: str
    outcome: str
    thumbnail_url: str | None
    width: int | None
    height: int | None
    latency_s: float | None
    cost: Decimal
    # expected string → passed, for this generation's text checks (every final image must pass)
    text_checks: dict[str, bool] = field(default_factory=dict)
    # specification item ("size", "aspect", "format", "transparency", "count") → passed, every image
    spec_checks: dict[str, bool] = field(default_factory=dict)

    @property
    def delivered_nothing(self) -> bool:
        """Failed or refused: it rendered none of the expected text and met no specification."""
        return self.status in (Generation.Status.FAILED, Generation.Status.REFUSED)


@dataclass
class Cell:
    case: int
    model_key: str
    label: str
    samples: list[Sample]

    @property
    def counted(self) -> Rate:
        return Rate(
            sum(s.outcome == SUCCESS for s in self.samples), sum(s.outcome in (SUCCESS, FAILURE) for s in self.samples)
        )

    @property
    def pending(self) -> int:
        return sum(s.outcome == PENDING for s in self.samples)

    @property
    def uncounted(self) -> int:
        return sum(s.outcome == UNCOUNTED for s in self.samples)

    @property
    def latencies(self) -> list[float]:
        return [s.latency_s for s in self.samples if s.latency_s is not None and s.status == "succeeded"]

    @property
    def median_latency_s(self) -> float | None:
        return percentile(self.latencies, 50)

    @property
    def p90_latency_s(self) -> float | None:
        return percentile(self.latencies, 90)

    @property
    def cost(self) -> Decimal:
        return sum((s.cost for s in self.samples), ZERO)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model_key,
            "generations": len(self.samples),
            **self.counted.as_dict(),
            "pending": self.pending,
            "uncounted": self.uncounted,
            "median_latency_s": _round(self.median_latency_s, 2),
            "p90_latency_s": _round(self.p90_latency_s, 2),
            "cost_usd": _money(self.cost),
            "samples": [
                {
                    "run": str(s.run_id),
                    "sample": s.sample,
                    "status": s.status,
                    "check_status": s.check_status,
                    "outcome": s.outcome,
                    "text_checks": s.text_checks,
                    "spec_checks": s.spec_checks,
                }
                for s in self.samples
            ],
        }


@dataclass
class Verdict:
    """Which model did best on a case, and whether the intervals separate it from the next."""

    leader: str | None  # model key; None when level or nothing counted
    clear: bool  # the leader's interval lies above every other model's
    text: str


def verdict(rates: Sequence[tuple[str, Rate]], labels: dict[str, str], pending: int = 0) -> Verdict:
    """A verdict from (model, rate) pairs: the best against the runner-up."""
    counted = sorted(((k, r) for k, r in rates if r.n), key=lambda kr: -(kr[1].rate or 0.0))
    suffix = f" ({pending} still to come)" if pending else ""
    if not counted:
        return Verdict(None, False, ("No results yet" if pending else "Nothing counted") + suffix + ".")
    if len(counted) == 1:
        key, rate = counted[0]
        return Verdict(None, False, f"Only {labels.get(key, key)} has results: {rate.text()}{suffix}.")
    (best, top), (_, second) = counted[0], counted[1]
    if top.rate == second.rate:
        level = [labels.get(k, k) for k, r in counted if r.rate == top.rate]
        every = "both" if len(level) == 2 else "all"
        return Verdict(None, False, f"No difference: {_join(level)} {every} at {pct(top.rate or 0)} %{suffix}.")
    name = labels.get(best, best)
    versus = f"{pct(top.rate or 0)} % vs {pct(second.rate or 0)} %"
    if all(top.apart_from(r) for _, r in counted[1:]):
        return Verdict(best, True, f"{name} better: {versus}, and the intervals do not overlap{suffix}.")
    return Verdict(best, False, f"{name} ahead, {versus}, but the intervals overlap: no clear difference{suffix}.")


def _join(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _leader(shares: dict[str, float]) -> str | None:
    """The one model with the highest share, when at least two models have one; else None (level)."""
    if len(shares) < 2:
        return None
    best = max(shares.values())
    leaders = [k for k, v in shares.items() if v == best]
    return leaders[0] if len(leaders) == 1 else None


def text_check_line(cells: Sequence[Cell], labels: dict[str, str]) -> str:
    """Per expected string (of each case), which model had it read back correctly more often:
    "Nano Banana Pro better on 2 of 3 text checks, level on 1". A case's strings are those
    any of its generations was checked for; a failed or refused generation rendered none of
    them, so each counts as not rendered (a model that failed does not drop out of the count)."""
    strings: dict[int, dict[str, None]] = defaultdict(dict)  # case → its expected strings, in order
    for cell in cells:
        for s in cell.samples:
            strings[cell.case].update(dict.fromkeys(s.text_checks))
    by_string: dict[tuple[int, str], dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for cell in cells:
        for s in cell.samples:
            read = dict.fromkeys(strings[cell.case], False) if s.delivered_nothing else s.text_checks
            for expected, passed in read.items():
                by_string[(cell.case, expected)][cell.model_key].append(passed)
    if not by_string:
        return ""
    wins: dict[str, int] = defaultdict(int)
    level = 0
    for per_model in by_string.values():
        leader = _leader({k: sum(v) / len(v) for k, v in per_model.items() if v})
        if leader is None:
            level += 1
        else:
            wins[leader] += 1
    total = len(by_string)
    noun = "text check" if total == 1 else "text checks"
    parts = [
        f"{labels.get(k, k)} better on {n} of {total} {noun}" for k, n in sorted(wins.items(), key=lambda x: -x[1])
    ]
    if level:
        parts.append(f"level on {level}")
    return ", ".join(parts) + "."


# The specification items (compare/checks/spec.py), in the order a sentence names them.
SPEC_NAMES = {
    "size": "size",
    "aspect": "aspect",
    "format": "format",
    "transparency": "transparency",
    "count": "number of images",
}


def _spec_met(sample: Sample) -> bool | None:
    """Whether a generation delivered what was asked for (every specification item passed);
    False for a failed or refused one (it delivered nothing); None when not checked (yet)."""
    if sample.delivered_nothing:
        return False
    if sample.status != Generation.Status.SUCCEEDED or not sample.spec_checks:
        return None
    return all(sample.spec_checks.values())


def _spec_tally(cells: Sequence[Cell]) -> tuple[list[str], dict[str, tuple[int, int]]]:
    """The specification items checked in these cells, and per model (met, counted). Failed
    generations count only where something was checked: otherwise there is no specification line."""
    names = [n for n in SPEC_NAMES if any(n in s.spec_checks for c in cells for s in c.samples)]
    tally: dict[str, tuple[int, int]] = {}
    if not names:
        return names, tally
    for cell in cells:
        met = [m for s in cell.samples if (m := _spec_met(s)) is not None]
        if met:
            done, n = tally.get(cell.model_key, (0, 0))
            tally[cell.model_key] = (done + sum(met), n + len(met))
    return names, tally


def _requested(names: Sequence[str]) -> str:
    """ "Requested size, aspect and format"."""
    return "Requested " + _join([SPEC_NAMES[n] for n in names])


def spec_check_line(cells: Sequence[Cell], labels: dict[str, str]) -> str:
    """One case's specification checks per model, the layout side of the verdict:
    "Requested size and format: GPT Image 2 met them in 10 of 10, Nano Banana Pro in 7 of 10."
    A generation meets them when every item passed on every image; a failed or refused one
    does not meet them; "" when nothing was checked."""
    names, tally = _spec_tally(cells)
    if not tally:
        return ""
    pronoun = "it" if len(names) == 1 else "them"
    parts = [
        f"{labels.get(k, k)} {f'met {pronoun} ' if i == 0 else ''}in {met} of {n}"
        for i, (k, (met, n)) in enumerate(tally.items())
    ]
    return f"{_requested(names)}: " + ", ".join(parts) + "."


def spec_summary_line(case_cells: Sequence[Sequence[Cell]], labels: dict[str, str]) -> str:
    """The specification side across cases: which model met the request more often in how
    many cases, and the totals: "Requested size and format: GPT Image 2 better on 2 of 3
    cases, level on 1 (met by GPT Image 2 in 30 of 30, Nano Banana Pro in 21 of 30)." """
    wins: dict[str, int] = defaultdict(int)
    totals: dict[str, tuple[int, int]] = {}
    every: list[str] = []
    level = 0
    for cells in case_cells:
        names, tally = _spec_tally(cells)
        if not tally:
            continue
        every += [name for name in names if name not in every]
        for key, (passed, counted) in tally.items():
            done, count = totals.get(key, (0, 0))
            totals[key] = (done + passed, count + counted)
        leader = _leader({k: passed / counted for k, (passed, counted) in tally.items()})
        if leader is None:
            level += 1
        else:
            wins[leader] += 1
    cases = sum(wins.values()) + level
    if not cases:
        return ""
    noun = "case" if cases == 1 else "cases"
    parts = [
        f"{labels.get(k, k)} better on {n} of {cases} {noun}" for k, n in sorted(wins.items(), key=lambda x: -x[1])
    ]
    if level:
        parts.append(f"level on {level}")
    met_by = ", ".join(f"{labels.get(k, k)} in {done} of {count}" for k, (done, count) in totals.items())
    ordered = [name for name in SPEC_NAMES if name in every]
    return f"{_requested(ordered)}: " + ", ".join(parts) + f" (met by {met_by})."


@dataclass
class CaseRow:
    index: int
    title: str
    prompt: str
    tags: list[str]
    expectations: list[str]
    cells: list[Cell]
    verdict: Verdict
    text_checks: str  # `text_check_line`, "" when the case has no text checks
    spec_checks: str = ""  # `spec_check_line`, "" when nothing was checked against the request

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "title": self.title,
            "prompt": self.prompt,
            "tags": self.tags,
            "expectations": self.expectations,
            "verdict": self.verdict.text,
            "leader": self.verdict.leader,
            "clear": self.verdict.clear,
            "text_checks": self.text_checks,
            "spec_checks": self.spec_checks,
            "cells": [c.as_dict() for c in self.cells],
        }


@dataclass
class ModelTotal:
    key: str
    label: str
    cells: list[Cell]

    @property
    def counted(self) -> Rate:
        rates = [c.counted for c in self.cells]
        return Rate(sum(r.successes for r in rates), sum(r.n for r in rates))

    @property
    def generations(self) -> int:
        return sum(len(c.samples) for c in self.cells)

    @property
    def pending(self) -> int:
        return sum(c.pending for c in self.cells)

    @property
    def median_latency_s(self) -> float | None:
        return percentile([x for c in self.cells for x in c.latencies], 50)

    @property
    def p90_latency_s(self) -> float | None:
        return percentile([x for c in self.cells for x in c.latencies], 90)

    @property
    def cost(self) -> Decimal:
        return sum((c.cost for c in self.cells), ZERO)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.key,
            "label": self.label,
            "generations": self.generations,
            **self.counted.as_dict(),
            "pending": self.pending,
            "median_latency_s": _round(self.median_latency_s, 2),
            "p90_latency_s": _round(self.p90_latency_s, 2),
            "cost_usd": _money(self.cost),
        }


@dataclass
class Summary:
    suite_run: SuiteRun
    models: list[ModelTotal]
    cases: list[CaseRow]
    rule: str
    overall: str  # one line across the cases: who leads how many
    text_checks: str = ""  # `text_check_line` across every case's expected strings
    spec_checks: str = ""  # `spec_summary_line` across the cases

    @property
    def labels(self) -> dict[str, str]:
        return {m.key: m.label for m in self.models}

    @property
    def unchecked(self) -> int:
        """Generations that delivered but are left out because their checks could not run."""
        return sum(
            s.outcome == UNCOUNTED and s.status == Generation.Status.SUCCEEDED
            for case in self.cases
            for cell in case.cells
            for s in cell.samples
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "overall": self.overall,
            "text_checks": self.text_checks,
            "spec_checks": self.spec_checks,
            "unchecked": self.unchecked,
            "models": [m.as_dict() for m in self.models],
            "cases": [c.as_dict() for c in self.cases],
        }


def overall_line(cases: Sequence[CaseRow], labels: dict[str, str]) -> str:
    """ "Across 3 cases: Nano Banana Pro ahead on 2 (1 clearly), GPT Image 2 ahead on 1 (0 clearly), no model ahead on 0." """
    if not cases:
        return "This suite run has no cases."
    ahead: dict[str, int] = defaultdict(int)
    clear: dict[str, int] = defaultdict(int)
    for case in cases:
        if case.verdict.leader:
            ahead[case.verdict.leader] += 1
            clear[case.verdict.leader] += case.verdict.clear
    undecided = len(cases) - sum(ahead.values())
    noun = "case" if len(cases) == 1 else "cases"
    parts = [
        f"{labels.get(k, k)} ahead on {n} ({clear[k]} clearly)" for k, n in sorted(ahead.items(), key=lambda x: -x[1])
    ]
    parts.append(f"no model ahead on {undecided}")
    return f"Across {len(cases)} {noun}: " + ", ".join(parts) + "."


# ---------------------------------------------------------------- Comparing two suite runs


@dataclass
class Change:
    case_a: int
    case_b: int
    title: str
    prompt: str
    model_key: str
    label: str
    a: Rate
    b: Rate

    @property
    def difference(self) -> float | None:
        return None if self.a.rate is None or self.b.rate is None else self.b.rate - self.a.rate

    @property
    def interval(self) -> tuple[float, float] | None:
        """95 % interval of the change (Newcombe's hybrid score interval, built from the two Wilson intervals)."""
        if not self.a.n or not self.b.n:
            return None
        return newcombe(self.a.successes, self.a.n, self.b.successes, self.b.n)

    @property
    def significant(self) -> bool:
        """Flagged: the two runs' Wilson intervals do not overlap."""
        return self.a.apart_from(self.b)

    def change_text(self) -> str:
        d, ci = self.difference, self.interval
        if d is None or ci is None:
            return "—"
        return f"{100 * d:+.0f} pts ({100 * ci[0]:+.0f} to {100 * ci[1]:+.0f})"

    def as_dict(self) -> dict[str, Any]:
        ci = self.interval
        return {
            "case_a": self.case_a,
            "case_b": self.case_b,
            "title": self.title,
            "model": self.model_key,
            "a": self.a.as_dict(),
            "b": self.b.as_dict(),
            "difference": _round(self.difference),
            "difference_low": _round(ci[0]) if ci else None,
            "difference_high": _round(ci[1]) if ci else None,
            "significant": self.significant,
        }


@dataclass
class Comparison:
    a: SuiteRun
    b: SuiteRun
    matched_by: str  # "position" (same suite and version) or "prompt"
    changes: list[Change]
    unmatched_a: list[str]  # case titles only in A
    unmatched_b: list[str]
    models_only_a: list[str]
    models_only_b: list[str]
    rule: str

    @property
    def flagged(self) -> list[Change]:
        return [c for c in self.changes if c.significant]

    def as_dict(self) -> dict[str, Any]:
        return {
            "a": str(self.a.pk),
            "b": str(self.b.pk),
            "matched_by": self.matched_by,
            "rule": self.rule,
            "changes": [c.as_dict() for c in self.changes],
            "unmatched_cases_a": self.unmatched_a,
            "unmatched_cases_b": self.unmatched_b,
            "models_only_a": self.models_only_a,
            "models_only_b": self.models_only_b,
        }


def match_cases(cases_a: Sequence[dict], cases_b: Sequence[dict], same_suite: bool) -> list[tuple[int, int]]:
    """Pairs of case indexes: by position for two runs of the same suite version, else by
    prompt (whitespace-normalised, each case of B used once)."""
    if same_suite and len(cases_a) == len(cases_b):
        return [(i, i) for i in range(len(cases_a))]
    free: dict[str, list[int]] = defaultdict(list)
    for j, case in enumerate(cases_b):
        free[_norm(case.get("prompt", ""))].append(j)
    pairs = []
    for i, case in enumerate(cases_a):
        if slots := free.get(_norm(case.get("prompt", ""))):
            pairs.append((i, slots.pop(0)))
    return pairs


def _norm(prompt: str) -> str:
    return " ".join(str(prompt).split())


def case_title(case: dict, index: int) -> str:
    return str(case.get("title") or "").strip() or f"Case {index + 1}: {_norm(case.get('prompt', ''))[:60]}"


# ---------------------------------------------------------------- Reading the database


@dataclass
class Progress:
    """Where a suite run stands. `queued` counts every queued generation; `waiting` is the
    part of those held back by a provider limit (`Generation.waiting_for`), with the reasons."""

    total: int
    done: int  # succeeded
    failed: int  # failed or refused
    cancelled: int
    queued: int
    running: int
    waiting: int
    checking: int  # succeeded, checks still running
    elapsed_seconds: float
    estimated_cost_usd: Decimal | None
    actual_cost_usd: Decimal
    finished: bool
    waiting_reasons: list[str] = field(default_factory=list)

    @property
    def finished_count(self) -> int:
        return self.done + self.failed + self.cancelled

    def share(self, n: int) -> float:
        """`n` as a percentage of the total, for the bar's segments."""
        return round(100 * n / self.total, 1) if self.total else 0.0

    @property
    def segments(self) -> list[tuple[str, str, str, int]]:
        """The bar, left to right: (part, x %, width %, count) for done, failed, cancelled and running."""
        out, x = [], 0.0
        for name, n in (("done", self.done), ("failed", self.failed), ("cancelled", self.cancelled)):
            width = self.share(n)
            out.append((name, f"{x:.2f}", f"{width:.2f}", n))
            x += width
        out.append(("running", f"{x:.2f}", f"{self.share(self.running):.2f}", self.running))
        return out

    @property
    def elapsed_text(self) -> str:
        """ "0:42", "12:05", "1:02:03"."""
        seconds = int(self.elapsed_seconds)
        h, m, s = seconds // 3600, seconds // 60 % 60, seconds % 60
        return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "queued": self.queued,
            "running": self.running,
            "waiting": self.waiting,
            "waiting_for": self.waiting_reasons,
            "checking": self.checking,
            "elapsed_seconds": round(self.elapsed_seconds, 1),
            "estimated_cost_usd": _money(self.estimated_cost_usd),
            "actual_cost_usd": _money(self.actual_cost_usd),
            "finished": self.finished,
        }


def _expected(cases: Any, model_keys: Any, samples: int) -> int:
    """How many generations the suite run is made of: cases × models × samples."""
    return len(cases or []) * len(model_keys or []) * samples


def _finished(expected: int, present: int, cancelled_at: Any, unfinished: int) -> bool:
    """Every generation is there (or the rest was cancelled) and none is queued, running or being checked."""
    return (present >= expected or cancelled_at is not None) and not unfinished


@dataclass(frozen=True)
class Stamp:
    """What the suite run page shows, as a short token (`stamp`), and whether it is final."""

    token: str
    finished: bool


def _stamp_query(suite_run_id: Any) -> Any:
    """One row for the suite run: the fields its progress depends on, and aggregates over
    its generations (and their ratings) that change whenever the bar or the grid would."""
    S, C = Generation.Status, Generation.CheckStatus
    g = "runs__generations__"

    def count(**where: Any) -> Count:
        return Count(f"{g}pk", filter=Q(**{g + k: v for k, v in where.items()}))

    ratings = (
        Rating.objects.filter(generation__run__suite_run=OuterRef("pk")).order_by().values("generation__run__suite_run")
    )
    aggregates: dict[str, Any] = {
        "n": Count(f"{g}pk"),
        **{f"status_{v}": count(status=v) for v in S.values},
        **{f"check_{v or 'none'}": count(check_status=v) for v in C.values},
        "checking": count(status=S.SUCCEEDED, check_status=C.PENDING),
        "waiting": Count(f"{g}pk", filter=~Q(**{f"{g}waiting_for": ""})),
        "waiting_for": Max(f"{g}waiting_for"),
        "attempts": Sum(f"{g}attempts"),
        "started": Max(f"{g}started_at"),
        "ended": Max(f"{g}finished_at"),
        "cost": Sum(f"{g}cost_usd"),
        "ratings": Subquery(ratings.annotate(x=Count("pk")).values("x")[:1], output_field=IntegerField()),
        "rated": Subquery(ratings.annotate(x=Max("updated_at")).values("x")[:1], output_field=DateTimeField()),
    }
    fields = ("cases", "model_keys", "samples", "cancelled_at")
    return SuiteRun.objects.filter(pk=suite_run_id).order_by().annotate(**aggregates).values(*fields, *aggregates)[:1]


# Compiling `_stamp_query` costs fifty times what running it does (about 5 ms against 0.1 ms
# for a 3 × 2 × 10 suite run on SQLite): compiled once per database (compare/precompiled.py).
_STAMP = Precompiled(_stamp_query, [(uuid.UUID("00000000-0000-4000-8000-00000005a1e5"), prep_of(SuiteRun, "id"))])


def _stamp_row(suite_run_id: Any) -> dict[str, Any] | None:
    alias = router.db_for_read(SuiteRun)
    sql, params = _STAMP.sql(alias, suite_run_id)
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
        names = [column[0] for column in cursor.description]
    return None if row is None else dict(zip(names, row, strict=True))


def _json_list(value: Any) -> list:
    """A JSON list column as the database driver returned it (text, or already decoded)."""
    if isinstance(value, str | bytes):
        value = json.loads(value)
    return value if isinstance(value, list) else []


def stamp(suite_run_id: Any) -> Stamp | None:
    """The suite run's change token, from one aggregate query over its generations (counts
    per status and check status, what they wait for, attempts, the last start and finish,
    the cost, the ratings) — everything the progress bar and the grid are drawn from. The
    suite run page's one poll (compare/views/suite_runs.py) compares it with the page's
    token and draws nothing while they agree. None when there is no such suite run. The
    values are the database's own (a token only needs them to be the same each time)."""
    row = _stamp_row(suite_run_id)
    if row is None:
        return None
    S = Generation.Status
    cases, model_keys = _json_list(row.pop("cases")), _json_list(row.pop("model_keys"))
    unfinished = row[f"status_{S.QUEUED}"] + row[f"status_{S.RUNNING}"] + row["checking"]
    expected = _expected(cases, model_keys, row["samples"])
    finished = _finished(expected, row["n"], row["cancelled_at"], unfinished)
    facts = [*sorted(row.items()), expected, finished]
    return Stamp(hashlib.blake2b(repr(facts).encode(), digest_size=6).hexdigest(), finished)


def progress(suite_run: SuiteRun) -> Progress:
    gens = list(
        Generation.objects.filter(run__suite_run=suite_run).only(
            "status",
            "check_status",
            "waiting_for",
            "fallback_of",
            "cost_usd",
            "cost_max_usd",
            "estimated_cost_usd",
            "started_at",
            "finished_at",
            "error_kind",
        )
    )
    S = Generation.Status
    count: dict[str, int] = defaultdict(int)
    for g in gens:
        count[g.status] += 1
    queued = [g for g in gens if g.status == S.QUEUED]
    waiting = [g for g in queued if g.waiting_for]
    checking = sum(g.status == S.SUCCEEDED and g.check_status == Generation.CheckStatus.PENDING for g in gens)
    expected = _expected(suite_run.cases, suite_run.model_keys, suite_run.samples)
    total = max(expected, len(gens))
    finished = _finished(expected, len(gens), suite_run.cancelled_at, len(queued) + count[S.RUNNING] + checking)
    end = timezone.now()
    if finished:
        ends = [g.finished_at for g in gens if g.finished_at]
        end = max([*ends, suite_run.cancelled_at] if suite_run.cancelled_at else ends, default=suite_run.created_at)
    return Progress(
        total=total,
        done=count[S.SUCCEEDED],
        failed=count[S.FAILED] + count[S.REFUSED],
        cancelled=count[S.CANCELLED],
        queued=len(queued),
        running=count[S.RUNNING],
        waiting=len(waiting),
        checking=checking,
        elapsed_seconds=max(0.0, (end - suite_run.created_at).total_seconds()),
        estimated_cost_usd=suite_run.estimated_cost_usd,
        actual_cost_usd=sum((charge(g).counted for g in gens), ZERO),
        finished=finished,
        waiting_reasons=sorted({g.waiting_for for g in waiting}),
    )


def _usability() -> Criterion | None:
    return Criterion.objects.filter(is_usability=True, active=True).first()


def _text_checks(checks: Any) -> dict[str, bool]:
    """expected string → passed in every final image (compare/checks/__init__.py's schema)."""
    out: dict[str, bool] = {}
    for item in text_items(checks):
        if "expected" in item:
            key = str(item["expected"])
            out[key] = out.get(key, True) and bool(item.get("passed"))
    return out


def _spec_checks(checks: Any) -> dict[str, bool]:
    """specification item name → passed, on the generation and every final image (compare/checks/__init__.py)."""
    out: dict[str, bool] = {}
    for item in spec_items(checks):
        if item.get("name") in SPEC_NAMES:
            name = str(item["name"])
            out[name] = out.get(name, True) and bool(item.get("passed"))
    return out


def _label(key: str, gens: Iterable[Generation]) -> str:
    for g in gens:
        if g.model_key == key and g.model_label:
            return g.model_label
    model = get_model(key)
    return model.label if model is not None else key


def summarize(suite_run: SuiteRun) -> Summary:
    usability = _usability()
    finals = Prefetch("images", queryset=Image.objects.filter(is_partial=False).order_by("index"))
    gens = list(
        Generation.objects.filter(run__suite_run=suite_run, fallback_of__isnull=True)
        .select_related("run")
        .prefetch_related(finals)
        .order_by("run__suite_case", "run__suite_sample", "position")
    )
    stars: dict[Any, list[int]] = defaultdict(list)
    if usability is not None:
        for gen_id, value in Rating.objects.filter(
            criterion=usability, generation__run__suite_run=suite_run
        ).values_list("generation_id", "stars"):
            stars[gen_id].append(value)
    # A fallback's cost belongs to the cell of the side it stood in for.
    fallback_cost: dict[Any, Decimal] = defaultdict(lambda: ZERO)
    for fb in Generation.objects.filter(run__suite_run=suite_run, fallback_of__isnull=False):
        fallback_cost[fb.fallback_of_id] += charge(fb).counted

    keys = list(suite_run.model_keys)
    for g in gens:
        if g.model_key not in keys:
            keys.append(g.model_key)
    labels = {k: _label(k, gens) for k in keys}
    grid: dict[tuple[int, str], list[Sample]] = defaultdict(list)
    for g in gens:
        if g.run.suite_case is None:
            continue
        images = list(g.images.all())
        first = images[0] if images else None
        grid[(g.run.suite_case, g.model_key)].append(
            Sample(
                run_id=g.run_id,
                run_url=g.run.get_absolute_url(),
                sample=g.run.suite_sample or 0,
                status=g.status,
                check_status=g.check_status,
                outcome=outcome(g.status, g.check_status, stars.get(g.pk, ())),
                thumbnail_url=first.thumbnail_url if first else None,
                width=first.width if first else None,
                height=first.height if first else None,
                latency_s=g.latency_ms / 1000 if g.latency_ms is not None and not g.cached_from_id else None,
                cost=charge(g).counted + fallback_cost[g.pk],
                text_checks=_text_checks(g.checks),
                spec_checks=_spec_checks(g.checks),
            )
        )
    cases = []
    for index, case in enumerate(suite_run.cases):
        case = case if isinstance(case, dict) else {}
        cells = [Cell(index, k, labels[k], grid.get((index, k), [])) for k in keys]
        cases.append(
            CaseRow(
                index=index,
                title=case_title(case, index),
                prompt=str(case.get("prompt", "")),
                tags=[str(t) for t in case.get("tags") or []],
                expectations=[str(e) for e in case.get("expectations") or []],
                cells=cells,
                verdict=verdict([(c.model_key, c.counted) for c in cells], labels, sum(c.pending for c in cells)),
                text_checks=text_check_line(cells, labels),
                spec_checks=spec_check_line(cells, labels),
            )
        )
    models = [ModelTotal(k, labels[k], [row.cells[i] for row in cases]) for i, k in enumerate(keys)]
    return Summary(
        suite_run=suite_run,
        models=models,
        cases=cases,
        rule=rule_text(usability.name if usability else None),
        overall=overall_line(cases, labels),
        text_checks=text_check_line([c for row in cases for c in row.cells], labels),
        spec_checks=spec_summary_line([row.cells for row in cases], labels),
    )


def compare(run_a: SuiteRun, run_b: SuiteRun) -> Comparison:
    """Per matched case and shared model: A's rate, B's rate, the change and its interval,
    flagged when the two Wilson intervals do not overlap."""
    sa, sb = summarize(run_a), summarize(run_b)
    same = (
        run_a.suite_id is not None and run_a.suite_id == run_b.suite_id and run_a.suite_version == run_b.suite_version
    )
    pairs = match_cases(run_a.cases, run_b.cases, same)
    models_a, models_b = [m.key for m in sa.models], [m.key for m in sb.models]
    shared = [k for k in models_a if k in models_b]
    labels = {**sb.labels, **sa.labels}
    changes = []
    for i, j in pairs:
        row_a, row_b = sa.cases[i], sb.cases[j]
        for key in shared:
            cell_a = row_a.cells[models_a.index(key)]
            cell_b = row_b.cells[models_b.index(key)]
            changes.append(Change(i, j, row_a.title, row_a.prompt, key, labels[key], cell_a.counted, cell_b.counted))
    used_a, used_b = {i for i, _ in pairs}, {j for _, j in pairs}
    return Comparison(
        a=run_a,
        b=run_b,
        matched_by="position" if same and len(run_a.cases) == len(run_b.cases) else "prompt",
        changes=changes,
        unmatched_a=[c.title for c in sa.cases if c.index not in used_a],
        unmatched_b=[c.title for c in sb.cases if c.index not in used_b],
        models_only_a=[labels[k] for k in models_a if k not in shared],
        models_only_b=[labels[k] for k in models_b if k not in shared],
        rule=sa.rule,
    )

"""The leaderboard: which model wins the team's votes, and by how much.

Votes become pairwise *battles*; a Bradley–Terry model fitted to the battles gives
each model a strength, shown on an Elo-like scale. Everything above "Reading the
database" works on plain data so it can be checked by hand.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from django.db.models import Count, Q, QuerySet

from compare.models import Generation, Run, Vote

BASE, SCALE = 1000.0, 400.0  # Elo's scale: 400 points = 10:1 odds
PRIOR = 1.0  # virtual ties against every other model: keeps undefeated/winless models finite
RESAMPLES, SEED = 200, 1234  # a fixed seed: the same votes always give the same intervals
TINY = 1e-300


@dataclass(frozen=True, order=True)
class Battle:
    """`a` met `b`; `score` is a's result: 1 win, 0.5 tie, 0 loss."""

    a: str
    b: str
    score: float


Verdict = tuple[Battle, ...]  # the battles one vote stands for


def battles_from_vote(sides: Sequence[str], winner: str | None) -> Verdict:
    """A winner beats every other side; no winner ("tie" or "all_bad") ties every pair.
    "All bad" counts as a tie, as LMArena does: it says nothing about which side is better.
    `sides` are the sides that delivered an image (`leaderboard_for` passes only those):
    a side without one was not judged on its merits, so it meets no one."""
    sides = list(dict.fromkeys(sides))  # a model shown twice in one run never meets itself
    if winner is not None:
        return tuple(Battle(winner, other, 1.0) for other in sides if other != winner)
    return tuple(Battle(a, b, 0.5) for i, a in enumerate(sides) for b in sides[i + 1 :])


Matrix = list[list[float]]


def _matrices(weighted: Iterable[tuple[Battle, float]], models: Sequence[str]) -> tuple[Matrix, Matrix]:
    """W[i][j]: i's wins over j (a tie is half a win each); N[i][j]: their battles."""
    index = {m: i for i, m in enumerate(models)}
    W = [[0.0] * len(models) for _ in models]
    N = [[0.0] * len(models) for _ in models]
    for battle, weight in weighted:
        i, j = index[battle.a], index[battle.b]
        W[i][j] += weight * battle.score
        W[j][i] += weight * (1 - battle.score)
        N[i][j] += weight
        N[j][i] += weight
    return W, N


def _mm(
    W: Matrix, N: Matrix, prior: float, start: Sequence[float] | None = None, tol: float = 1e-10, max_iter: int = 10_000
) -> list[float]:
    """Bradley–Terry strengths by Hunter's (2004) MM iteration, geometric mean 1.

    p_i ← W_i / Σ_j N_ij / (p_i + p_j); the prior adds `prior` tied battles per pair."""
    m = len(W)
    if not m:
        return []
    wins = [sum(W[i]) + prior * (m - 1) / 2 for i in range(m)]
    games = [[N[i][j] + (prior if i != j else 0.0) for j in range(m)] for i in range(m)]
    p = list(start) if start else [1.0] * m
    for _ in range(max_iter):
        new = []
        for i in range(m):
            denom = sum(games[i][j] / (p[i] + p[j]) for j in range(m) if j != i and games[i][j])
            new.append(max(wins[i] / denom, TINY) if denom else p[i])  # no battles: stays put
        mean_log = sum(math.log(x) for x in new) / m
        new = [x / math.exp(mean_log) for x in new]
        done = max(abs(math.log(x / y)) for x, y in zip(new, p, strict=True)) < tol
        p = new
        if done:
            break
    return p


def to_scores(strengths: Sequence[float]) -> list[float]:
    """Elo-like points; strengths have geometric mean 1, so the scores average BASE."""
    return [BASE + SCALE * math.log10(p) for p in strengths]


def fit_bradley_terry(battles: Iterable[Battle], models: Sequence[str], prior: float = PRIOR) -> dict[str, float]:
    """Strength per model (geometric mean 1): P(a beats b) = p_a / (p_a + p_b)."""
    W, N = _matrices(((b, 1.0) for b in battles), models)
    return dict(zip(models, _mm(W, N, prior), strict=True))


def win_probability(score_a: float, score_b: float) -> float:
    return 1 / (1 + 10 ** ((score_b - score_a) / SCALE))


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (NumPy's default, PERCENTILE.INC)."""
    return _quantile(values, q) if values else None


def _quantile(values: Sequence[float], q: float) -> float:
    """`percentile` of values that are not empty."""
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100
    lo = math.floor(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def _multinomial(rng: random.Random, n: int, counts: Sequence[int]) -> list[int]:
    """One multinomial draw by successive binomials: a draw per kind, not per vote."""
    left_n, left_c, out = n, sum(counts), []
    for c in counts:
        x = rng.binomialvariate(left_n, c / left_c) if left_c and left_n else 0
        out.append(x)
        left_n, left_c = left_n - x, left_c - c
    return out


def bootstrap_intervals(
    votes: Sequence[Verdict],
    models: Sequence[str],
    prior: float = PRIOR,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    start: Sequence[float] | None = None,
) -> dict[str, tuple[float, float]]:
    """95% percentile intervals of the scores, refitting on votes resampled with replacement.
    Votes, not battles, are resampled: the battles of one three-way vote are one judgement."""
    kinds = sorted(Counter(votes).items())  # identical votes are one kind with a count
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {m: [] for m in models}
    for _ in range(resamples if votes else 0):
        weights = _multinomial(rng, len(votes), [count for _, count in kinds])
        pairs = ((b, float(w)) for (kind, _), w in zip(kinds, weights, strict=True) if w for b in kind)
        for m, s in zip(models, to_scores(_mm(*_matrices(pairs, models), prior, start, tol=1e-8)), strict=True):
            samples[m].append(s)
    return {m: (_quantile(v, 2.5), _quantile(v, 97.5)) for m, v in samples.items() if v}


@dataclass(frozen=True)
class GenFacts:
    """What the leaderboard needs from one generation."""

    model_key: str
    succeeded: bool
    latency_ms: int | None
    cost: float | None  # actual, else the estimate when it succeeded; None: nothing charged
    images: int  # final images (streamed previews excluded)


@dataclass
class ModelRow:
    key: str
    label: str
    score: float
    low: float
    high: float
    battles: int
    wins: int
    ties: int
    losses: int
    median_latency_s: float | None
    p90_latency_s: float | None
    cost_per_image: float | None
    cost_per_win: float | None
    preliminary: bool
    rank: int = 0

    @property
    def win_rate(self) -> float:
        return (self.wins + self.ties / 2) / self.battles if self.battles else 0.0

    @property
    def win_pct(self) -> float:
        return 100 * self.win_rate


@dataclass
class Cell:
    rate: float | None  # row beats column, ties half; None: they never met
    battles: int

    @property
    def pct(self) -> float | None:
        return None if self.rate is None else 100 * self.rate


@dataclass
class Leaderboard:
    rows: list[ModelRow]
    matrix: list[tuple[ModelRow, list[Cell]]]
    votes: int
    battles: int
    # Votes left out: on runs where fewer than two sides delivered an image, or for a
    # side without one (no battle between two images came of them).
    left_out: int = 0
    # Votes on blind runs whose names this viewer has not seen yet (not shown to them).
    not_judged: int = 0


def build_leaderboard(
    votes: Sequence[Verdict],
    generations: Iterable[GenFacts],
    min_battles: int,
    labels: Mapping[str, str] | None = None,
    resamples: int = RESAMPLES,
) -> Leaderboard:
    labels = labels or {}
    battles = [b for vote in votes for b in vote]
    models = sorted({b.a for b in battles} | {b.b for b in battles})  # sorted: reproducible
    W, N = _matrices(((b, 1.0) for b in battles), models)
    strengths = _mm(W, N, PRIOR)
    intervals = bootstrap_intervals(votes, models, resamples=resamples, start=strengths)
    outcome: dict[str, Counter[float]] = defaultdict(Counter)
    for b in battles:
        outcome[b.a][b.score] += 1
        outcome[b.b][1 - b.score] += 1
    gens: dict[str, list[GenFacts]] = defaultdict(list)
    for g in generations:
        gens[g.model_key].append(g)
    rows = []
    for key, score in zip(models, to_scores(strengths), strict=True):
        won, tied, lost = outcome[key][1.0], outcome[key][0.5], outcome[key][0.0]
        mine = gens.get(key, [])
        latencies = [g.latency_ms / 1000 for g in mine if g.succeeded and g.latency_ms is not None]
        priced = [(g.cost, g.images) for g in mine if g.succeeded and g.images and g.cost is not None]
        costs = [g.cost for g in mine if g.cost is not None]
        credit = won + tied / 2
        low, high = intervals.get(key, (score, score))
        rows.append(
            ModelRow(
                key=key,
                label=labels.get(key, key),
                score=score,
                low=low,
                high=high,
                battles=won + tied + lost,
                wins=won,
                ties=tied,
                losses=lost,
                median_latency_s=percentile(latencies, 50),
                p90_latency_s=percentile(latencies, 90),
                # per image, not per generation: a 4-image generation weighs four times
                cost_per_image=sum(cost for cost, _ in priced) / sum(n for _, n in priced) if priced else None,
                cost_per_win=sum(costs) / credit if costs and credit else None,
                preliminary=won + tied + lost < min_battles,
            )
        )
    order = sorted(range(len(rows)), key=lambda i: -rows[i].score)
    ranked = [rows[i] for i in order]
    for n, row in enumerate(ranked):  # equal scores share a rank (1, 1, 3)
        same = n and round(row.score, 6) == round(ranked[n - 1].score, 6)
        row.rank = ranked[n - 1].rank if same else n + 1
    matrix = [(rows[i], [Cell(W[i][j] / N[i][j] if N[i][j] else None, int(N[i][j])) for j in order]) for i in order]
    return Leaderboard(rows=ranked, matrix=matrix, votes=len(votes), battles=len(battles))


# --- Reading the database -------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    tag: str = ""
    date_from: date | None = None
    date_to: date | None = None
    voter: str = ""
    blind_only: bool = False

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> tuple[Filters, list[str]]:
        """Filters from a query string, and messages about the parts that were ignored."""
        errors: list[str] = []

        def day(name: str) -> date | None:
            raw = (query.get(name) or "").strip()
            try:
                return date.fromisoformat(raw) if raw else None
            except ValueError:
                errors.append(f"“{raw}” is not a date like 2026-01-31; ignored.")
                return None

        filters = cls(
            tag=(query.get("tag") or "").strip(),
            date_from=day("from"),
            date_to=day("to"),
            voter=(query.get("voter") or "").strip(),
            blind_only=query.get("blind") in ("1", "on", "true"),
        )
        return filters, errors

    def as_query(self) -> dict[str, str]:
        raw = {
            "tag": self.tag,
            "from": self.date_from.isoformat() if self.date_from else "",
            "to": self.date_to.isoformat() if self.date_to else "",
            "voter": self.voter,
            "blind": "1" if self.blind_only else "",
        }
        return {k: v for k, v in raw.items() if v}


def filter_votes(votes: QuerySet[Vote], filters: Filters) -> QuerySet[Vote]:
    if filters.tag:
        votes = votes.filter(run__tags__name=filters.tag)
    if filters.date_from:
        votes = votes.filter(run__created_at__date__gte=filters.date_from)
    if filters.date_to:  # inclusive: "to 31 Jan" includes runs made on 31 Jan
        votes = votes.filter(run__created_at__date__lte=filters.date_to)
    if filters.voter:
        votes = votes.filter(user__username=filters.voter)
    if filters.blind_only:
        votes = votes.filter(blind=True)
    return votes


def leaderboard_for(filters: Filters, min_battles: int, resamples: int = RESAMPLES, viewer=None) -> Leaderboard:
    """The board of the votes `filters` select. With a `viewer`, votes on blind runs whose
    names are hidden from that viewer are left out (`RunQuerySet.with_viewer`): their
    board must not tell them, through a filter that isolates one run, which side was
    which model before they have voted on it themselves."""
    votes = filter_votes(Vote.objects.all(), filters)
    not_judged = 0
    if viewer is not None:
        visible = Run.objects.with_viewer(viewer).filter(names_hidden=False).values("pk")
        not_judged = votes.exclude(run__in=visible).count()
        votes = votes.filter(run__in=visible)
    # Each run's generations once, however many people voted on it: costs count once.
    generations = (
        Generation.objects.filter(run__in=votes.values("run"))
        .only("run", "position", "model_key", "model_label", "status", "latency_ms", "cost_usd", "estimated_cost_usd")
        .annotate(finals=Count("images", filter=Q(images__is_partial=False)))
        .order_by("run__created_at", "position")
    )
    # run id → {generation id: model key} of the sides that delivered an image, by position;
    # and every generation id of the run, to tell an imageless winner from a stray one.
    sides: dict[object, dict[object, str]] = defaultdict(dict)
    members: dict[object, set] = defaultdict(set)
    labels: dict[str, str] = {}
    facts = []
    for g in generations:
        members[g.run_id].add(g.pk)
        ok = g.status == Generation.Status.SUCCEEDED
        if ok and g.finals:
            sides[g.run_id][g.pk] = g.model_key
        labels[g.model_key] = g.model_label  # the newest label wins
        cost = g.cost_usd if g.cost_usd is not None else (g.estimated_cost_usd if ok else None)
        facts.append(GenFacts(g.model_key, ok, g.latency_ms, float(cost) if cost is not None else None, g.finals))
    vote_battles, left_out = [], 0
    for run_id, verdict, winner_id in votes.order_by("pk").values_list("run_id", "verdict", "winner_id"):
        run_sides = sides[run_id]
        winner = run_sides.get(winner_id) if verdict == Vote.Verdict.BETTER else None
        if verdict == Vote.Verdict.BETTER and winner is None and winner_id not in members[run_id]:
            continue  # a winner that is not a side of the voted run counts for no one
        if len(run_sides) < 2 or (verdict == Vote.Verdict.BETTER and winner is None):
            left_out += 1  # fewer than two images to compare, or an imageless side voted better
            continue
        vote_battles.append(battles_from_vote(list(run_sides.values()), winner))
    board = build_leaderboard(vote_battles, facts, min_battles, labels, resamples)
    board.left_out, board.not_judged = left_out, not_judged
    return board

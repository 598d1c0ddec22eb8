"""The leaderboard: which model wins the team's votes, and by how much.

Votes become pairwise *battles*, each vote weighing one in all; a Bradley–Terry model
fitted to the battles by maximum likelihood (Newton's method, to convergence) gives each
model a strength, shown on an Elo-like scale. Models never compared, directly or through
others, form separate groups fitted on their own. Intervals come from a bootstrap of the
votes, or from a Wilson interval when every vote is the same. Everything above "Reading the
database" works on plain data so it can be checked by hand.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from django.db.models import Count, Q, QuerySet

from compare.models import Generation, Run, Vote
from compare.stats import percentile, quantile, wilson

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
Weighted = Iterable[tuple[Battle, float]]


def weighted_battles(votes: Sequence[Verdict], counts: Sequence[float] | None = None) -> Weighted:
    """Each vote weighs one in all, spread evenly over its battles: a decisive vote in an
    N-sided run is N−1 battles of 1/(N−1) each, a tie or "all bad" N(N−1)/2 half-battles of
    2/(N(N−1)) each. A two-sided vote is one battle of weight one. `counts`: how many times
    each vote is taken (the bootstrap's resampled counts)."""
    for vote, count in zip(votes, [1.0] * len(votes) if counts is None else counts, strict=True):
        for battle in vote:
            yield battle, count / len(vote)


def _matrices(weighted: Weighted, models: Sequence[str]) -> tuple[Matrix, Matrix]:
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


def _with_prior(W: Matrix, N: Matrix, prior: float) -> tuple[Matrix, Matrix]:
    """The counts plus `prior` virtual tied battles between every pair."""
    m = len(W)
    Wp = [[W[i][j] + (prior / 2 if i != j else 0.0) for j in range(m)] for i in range(m)]
    Np = [[N[i][j] + (prior if i != j else 0.0) for j in range(m)] for i in range(m)]
    return Wp, Np


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def _log_likelihood(Wp: Matrix, Np: Matrix, theta: Sequence[float]) -> float:
    total = 0.0
    for i in range(len(theta)):
        for j in range(i + 1, len(theta)):
            if Np[i][j]:
                d = theta[i] - theta[j]  # log σ(d) = −log(1 + e^−d), computed without overflow
                log_p = -(math.log1p(math.exp(-d)) if d >= 0 else -d + math.log1p(math.exp(d)))
                log_q = log_p - d
                total += Wp[i][j] * log_p + Wp[j][i] * log_q
    return total


def _solve(A: Matrix, b: Sequence[float]) -> list[float] | None:
    """A x = b by Gaussian elimination with partial pivoting; None when A is singular."""
    m = len(b)
    M = [[*row, b[i]] for i, row in enumerate(A)]
    scale = max((abs(x) for row in A for x in row), default=0.0) or 1.0
    for c in range(m):
        pivot = max(range(c, m), key=lambda r: abs(M[r][c]))
        if abs(M[pivot][c]) < 1e-13 * scale:
            return None
        M[c], M[pivot] = M[pivot], M[c]
        for r in range(c + 1, m):
            f = M[r][c] / M[c][c]
            if f:
                for k in range(c, m + 1):
                    M[r][k] -= f * M[c][k]
    x = [0.0] * m
    for r in range(m - 1, -1, -1):
        x[r] = (M[r][m] - sum(M[r][k] * x[k] for k in range(r + 1, m))) / M[r][r]
    return x


MAX_ITER = 100  # Newton steps; converged fits take 3–15 (more only on extreme data)


def _fit(
    W: Matrix,
    N: Matrix,
    prior: float,
    start: Sequence[float] | None = None,
    tol: float = 1e-10,
    max_iter: int | None = None,
) -> tuple[list[float], bool]:
    """Bradley–Terry strengths (geometric mean 1) maximising the likelihood, and whether the
    fit converged. Newton's method on θ = ln(strength) with a backtracking line search: the
    log-likelihood is concave, so each accepted step climbs, and near the top the steps shrink
    quadratically. Converged means the last step moved no θ by more than `tol` (1e-10 in θ is
    about 2e-8 points). The prior adds `prior` tied battles per pair."""
    m = len(W)
    if m < 2:
        return [1.0] * m, True
    Wp, Np = _with_prior(W, N, prior)
    theta = [math.log(max(p, TINY)) for p in start] if start else [0.0] * m
    mean = sum(theta) / m
    theta = [t - mean for t in theta]
    current = _log_likelihood(Wp, Np, theta)
    for _ in range(MAX_ITER if max_iter is None else max_iter):
        grad = [0.0] * m
        # −Hessian, plus the all-ones matrix: the likelihood does not change when every θ moves
        # together, and adding 11ᵀ pins that direction (the step then sums to zero).
        A = [[1.0] * m for _ in range(m)]
        for i in range(m):
            for j in range(i + 1, m):
                if not Np[i][j]:
                    continue
                p = _sigmoid(theta[i] - theta[j])
                grad[i] += Wp[i][j] - Np[i][j] * p
                grad[j] += Wp[j][i] - Np[i][j] * (1 - p)
                h = Np[i][j] * p * (1 - p)
                A[i][i] += h
                A[j][j] += h
                A[i][j] -= h
                A[j][i] -= h
        step = _solve(A, grad)
        if step is None:  # no prior and groups that never met: nudge towards a solvable system
            step = _solve([[x + (1e-9 if i == j else 0.0) for j, x in enumerate(row)] for i, row in enumerate(A)], grad)
            if step is None:
                return [math.exp(t) for t in theta], False
        size = 1.0
        while True:
            trial = [t + size * s for t, s in zip(theta, step, strict=True)]
            value = _log_likelihood(Wp, Np, trial)
            if value >= current - 1e-12 * (1 + abs(current)) or size < 1e-6:
                break
            size /= 2
        moved = size * max(abs(s) for s in step)
        mean = sum(trial) / m
        theta, current = [t - mean for t in trial], value
        if moved < tol:
            return [math.exp(t) for t in theta], True
    return [math.exp(t) for t in theta], False


def to_scores(strengths: Sequence[float]) -> list[float]:
    """Elo-like points; strengths have geometric mean 1, so the scores average BASE."""
    return [BASE + SCALE * math.log10(p) for p in strengths]


def fit_bradley_terry(battles: Iterable[Battle], models: Sequence[str], prior: float = PRIOR) -> dict[str, float]:
    """Strength per model (geometric mean 1): P(a beats b) = p_a / (p_a + p_b). Each battle weighs one."""
    W, N = _matrices(((b, 1.0) for b in battles), models)
    return dict(zip(models, _fit(W, N, prior)[0], strict=True))


def fit_votes(votes: Sequence[Verdict], models: Sequence[str], prior: float = PRIOR) -> tuple[dict[str, float], bool]:
    """Strength per model from votes, each vote weighing one (`weighted_battles`), and whether it converged."""
    strengths, converged = _fit(*_matrices(weighted_battles(votes), models), prior)
    return dict(zip(models, strengths, strict=True)), converged


def groups_of(votes: Iterable[Verdict]) -> list[list[str]]:
    """The connected groups of models: two models are in one group when they met in a battle,
    directly or through others. The prior links every pair but says nothing, so it is ignored.
    Largest group first, then by name; models sorted within a group."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for vote in votes:
        for b in vote:
            parent.setdefault(b.a, b.a)
            parent.setdefault(b.b, b.b)
            parent[root(b.a)] = root(b.b)
    members: dict[str, list[str]] = defaultdict(list)
    for model in sorted(parent):
        members[root(model)].append(model)
    return sorted(members.values(), key=lambda g: (-len(g), g))


def win_probability(score_a: float, score_b: float) -> float:
    return 1 / (1 + 10 ** ((score_b - score_a) / SCALE))


def _multinomial(rng: random.Random, n: int, counts: Sequence[int]) -> list[int]:
    """One multinomial draw by successive binomials: a draw per kind, not per vote."""
    left_n, left_c, out = n, sum(counts), []
    for c in counts:
        x = rng.binomialvariate(left_n, c / left_c) if left_c and left_n else 0
        out.append(x)
        left_n, left_c = left_n - x, left_c - c
    return out


def _bootstrap(
    votes: Sequence[Verdict],
    models: Sequence[str],
    prior: float = PRIOR,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    start: Sequence[float] | None = None,
) -> tuple[dict[str, tuple[float, float]], bool]:
    """`bootstrap_intervals`, and whether every refit converged."""
    kinds = sorted(Counter(votes).items())  # identical votes are one kind with a count
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {m: [] for m in models}
    all_converged = True
    for _ in range(resamples if votes else 0):
        weights = _multinomial(rng, len(votes), [count for _, count in kinds])
        picked = [(kind, float(w)) for (kind, _), w in zip(kinds, weights, strict=True) if w]
        W, N = _matrices(weighted_battles([k for k, _ in picked], [w for _, w in picked]), models)
        strengths, converged = _fit(W, N, prior, start, tol=1e-8)
        all_converged = all_converged and converged
        for m, s in zip(models, to_scores(strengths), strict=True):
            samples[m].append(s)
    return {m: (quantile(v, 2.5), quantile(v, 97.5)) for m, v in samples.items() if v}, all_converged


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
    return _bootstrap(votes, models, prior, resamples, seed, start)[0]


def _solve_share(Np: Matrix, theta: Sequence[float], i: int, target: float) -> float:
    """The θ_i at which model i's expected win share against its opponents (the others' θ
    fixed) is `target`, by bisection: the share rises with θ_i."""
    games = sum(Np[i])
    a, b = theta[i] - 60.0, theta[i] + 60.0
    for _ in range(200):
        mid = (a + b) / 2
        share = sum(Np[i][j] * _sigmoid(mid - theta[j]) for j in range(len(theta)) if j != i) / games
        a, b = (mid, b) if share < target else (a, mid)
    return (a + b) / 2


def small_sample_intervals(
    votes: Sequence[Verdict], models: Sequence[str], strengths: Sequence[float], prior: float = PRIOR
) -> dict[str, tuple[float, float]]:
    """95% intervals when resampling cannot show any uncertainty (every vote the same: all
    resamples equal the data). Per model: its win share against its opponents, prior
    included (wins + ½ ties + ½ per virtual tie, over battles + virtual battles), gets a
    Wilson interval; each bound is mapped to the score at which the fitted model expects that
    share against the same opponents, moving the model's θ alone (the others' fitted
    θ fixed), then re-centred as the scores are ((m−1)/m of the move). With two models this is
    the Wilson interval of the pair's win share on the score scale, each score taking half the gap."""
    W, N = _matrices(weighted_battles(votes), models)
    Wp, Np = _with_prior(W, N, prior)
    m = len(models)
    theta = [math.log(p) for p in strengths]
    to_points = SCALE / math.log(10)
    out = {}
    for i, model in enumerate(models):
        games = sum(Np[i])
        if m < 2 or not games:
            continue
        lo, hi = wilson(sum(Wp[i]) / games, games)

        bounds = [theta[i] + (_solve_share(Np, theta, i, q) - theta[i]) * (m - 1) / m for q in (lo, hi)]
        out[model] = (BASE + to_points * bounds[0], BASE + to_points * bounds[1])
    return out


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
    votes: int = 0  # votes in which this model took part (the unit of the preliminary mark)
    group: int = 1  # its connected group (1 = the largest); scores compare only within a group
    small_sample: bool = False  # interval from `small_sample_intervals`, not the bootstrap
    rank: int = 0  # within its group

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
    # The rows by connected group (`groups_of`); more than one: their relative order is unknown.
    groups: list[list[ModelRow]] = field(default_factory=list)
    converged: bool = True  # False: a fit stopped at MAX_ITER; the scores are rough

    @property
    def small_sample(self) -> bool:
        """Some interval comes from `small_sample_intervals` (every vote of its group the same)."""
        return any(row.small_sample for row in self.rows)


def build_leaderboard(
    votes: Sequence[Verdict],
    generations: Iterable[GenFacts],
    min_votes: int,
    labels: Mapping[str, str] | None = None,
    resamples: int = RESAMPLES,
) -> Leaderboard:
    """The board of `votes`. Each connected group of models is fitted on its own votes (no vote
    spans two groups), so a group's scores average BASE and owe nothing to another group.
    A model is preliminary when it took part in fewer than `min_votes` votes."""
    labels = labels or {}
    counted = [vote for vote in votes if vote]
    battles = [b for vote in counted for b in vote]
    outcome: dict[str, Counter[float]] = defaultdict(Counter)
    for b in battles:
        outcome[b.a][b.score] += 1
        outcome[b.b][1 - b.score] += 1
    took_part: Counter[str] = Counter(m for vote in counted for m in {x for b in vote for x in (b.a, b.b)})
    gens: dict[str, list[GenFacts]] = defaultdict(list)
    for g in generations:
        gens[g.model_key].append(g)
    groups, converged = [], True
    for number, members in enumerate(groups_of(counted), start=1):
        member_set = set(members)
        mine_votes = [vote for vote in counted if vote[0].a in member_set]
        strengths, ok = _fit(*_matrices(weighted_battles(mine_votes), members), PRIOR)
        intervals, ok_boot = _bootstrap(mine_votes, members, resamples=resamples, start=strengths)
        converged = converged and ok and ok_boot
        small = len(set(mine_votes)) == 1  # every vote the same: every resample equals the data
        if small:
            intervals = small_sample_intervals(mine_votes, members, strengths)
        rows = []
        for key, score in zip(members, to_scores(strengths), strict=True):
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
                    preliminary=took_part[key] < min_votes,
                    votes=took_part[key],
                    group=number,
                    small_sample=small,
                )
            )
        rows.sort(key=lambda row: -row.score)
        for n, row in enumerate(rows):  # equal scores share a rank (1, 1, 3)
            same = n and round(row.score, 6) == round(rows[n - 1].score, 6)
            row.rank = rows[n - 1].rank if same else n + 1
        groups.append(rows)
    ranked = [row for rows in groups for row in rows]
    # The head-to-head table shows what happened: battles counted one each, not weighted.
    models = [row.key for row in ranked]
    W, N = _matrices(((b, 1.0) for b in battles), models)
    matrix = [
        (ranked[i], [Cell(W[i][j] / N[i][j] if N[i][j] else None, int(N[i][j])) for j in range(len(models))])
        for i in range(len(models))
    ]
    return Leaderboard(
        rows=ranked, matrix=matrix, votes=len(votes), battles=len(battles), groups=groups, converged=converged
    )


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


def leaderboard_for(filters: Filters, min_votes: int, resamples: int = RESAMPLES, viewer=None) -> Leaderboard:
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
    board = build_leaderboard(vote_battles, facts, min_votes, labels, resamples)
    board.left_out, board.not_judged = left_out, not_judged
    return board

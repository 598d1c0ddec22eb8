"""The scorecard's sums: mean stars per model and criterion, the share of rated
generations judged usable (mean usability rating of 4 stars or more), and the
automatic checks (compare/checks/) per model with 95 % Wilson intervals."""

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from django.db.models import Count, Max, Q

from compare.models import Criterion, Generation, Rating, Run
from compare.stats import Rate

# "Usable as delivered": a generation's mean usability rating is at least this many stars.
# The one place of this rule: the scorecard here and the suite results (compare/suites/results.py).
USABLE_STARS = 4


@dataclass
class ScoreCell:
    mean: float | None
    count: int


@dataclass
class ScoreRow:
    key: str
    label: str
    cells: list[ScoreCell]
    success_rate: float | None  # share of rated generations judged usable (mean ≥ 4 stars)
    success_base: int

    @property
    def success_pct(self) -> float | None:
        return None if self.success_rate is None else 100 * self.success_rate


def build_scorecard(
    ratings: Iterable[tuple[str, object, int, int]],
    criteria: Sequence[int],
    usability: int | None,
    labels: Mapping[str, str] | None = None,
) -> list[ScoreRow]:
    """`ratings`: (model_key, generation id, criterion id, stars), one per user."""
    stars: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    usable: dict[str, dict[object, list[int]]] = defaultdict(lambda: defaultdict(list))
    for key, generation, criterion, value in ratings:
        stars[key][criterion].append(value)
        if criterion == usability:
            usable[key][generation].append(value)
    rows = []
    for key in stars:
        per_gen = [sum(v) / len(v) for v in usable[key].values()]  # several raters: their mean
        cells = [ScoreCell(sum(v) / len(v) if (v := stars[key][c]) else None, len(v)) for c in criteria]
        rate = sum(m >= USABLE_STARS for m in per_gen) / len(per_gen) if per_gen else None
        rows.append(ScoreRow(key, (labels or {}).get(key, key), cells, rate, len(per_gen)))
    return sorted(rows, key=lambda r: (-(r.success_rate or 0), r.label))


def scorecard_for(tag: str = "", viewer=None) -> tuple[list[Criterion], list[ScoreRow], int]:
    """The scorecard, and how many ratings it left out for `viewer`: those on blind runs
    whose names are hidden from them (`RunQuerySet.with_viewer`). A rating belongs to a
    side; summed per model on a page a tag can narrow to one run, the viewer's own
    1★ for side A and 5★ for side B would name the models before they have voted."""
    criteria = list(Criterion.objects.filter(active=True))
    usability = next((c.pk for c in criteria if c.is_usability), None)
    ratings = Rating.objects.filter(criterion__active=True)
    if tag:
        ratings = ratings.filter(generation__run__tags__name=tag)
    not_judged = 0
    if viewer is not None:
        visible = Run.objects.with_viewer(viewer).filter(names_hidden=False).values("pk")
        not_judged = ratings.exclude(generation__run__in=visible).count()
        ratings = ratings.filter(generation__run__in=visible)
    rows = list(
        ratings.order_by("generation__run__created_at").values_list(
            "generation__model_key", "generation__model_label", "generation_id", "criterion_id", "stars"
        )
    )
    labels = {key: label for key, label, *_ in rows}
    facts = [(key, gen, crit, stars) for key, _, gen, crit, stars in rows]
    return criteria, build_scorecard(facts, [c.pk for c in criteria], usability, labels), not_judged


@dataclass
class CheckRow:
    key: str
    label: str
    passed: Rate  # all automatic checks passed, of the generations with an outcome
    text: Rate  # every expected string read exactly, of those whose text was read back
    unavailable: int  # generations whose text could not be checked (no engine, unreadable script)

    @property
    def shares(self) -> list[Rate]:
        """The table's columns, in order."""
        return [self.passed, self.text]


def checks_for(tag: str = "", viewer=None) -> list[CheckRow]:
    """The automatic checks per model in one query: the same runs as the ratings above
    (a tag; for `viewer`, only runs whose names they may see)."""
    gens = Generation.objects.filter(status=Generation.Status.SUCCEEDED).exclude(check_status__in=["", "pending"])
    if tag:
        gens = gens.filter(run__tags__name=tag)
    if viewer is not None:
        gens = gens.filter(run__in=Run.objects.with_viewer(viewer).filter(names_hidden=False).values("pk"))
    S = Generation.CheckStatus
    rows = (
        gens.order_by()
        .values("model_key")
        .annotate(
            label=Max("model_label"),
            decided=Count("pk", filter=Q(check_status__in=[S.PASSED, S.FAILED])),
            passed=Count("pk", filter=Q(check_status=S.PASSED)),
            text_checked=Count("pk", filter=Q(checks__text_checked=True)),
            text_failed=Count("pk", filter=Q(checks__text_checked=True, checks__text_failed=True)),
            unavailable=Count("pk", filter=Q(check_status=S.UNAVAILABLE)),
        )
    )
    result = [
        CheckRow(
            r["model_key"],
            r["label"],
            Rate(r["passed"], r["decided"]),
            Rate(r["text_checked"] - r["text_failed"], r["text_checked"]),
            r["unavailable"],
        )
        for r in rows
    ]
    return sorted(result, key=lambda r: (-(r.passed.pct or 0), r.label))

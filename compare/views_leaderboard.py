"""Leaderboard (with CSV and JSON exports) and scorecard pages, and the scorecard's sums.

Login is required by LoginRequiredMiddleware, like every page. Filters live in the
query string so a filtered view can be bookmarked, shared and exported as it is.
The leaderboard's maths lives in compare/leaderboard.py; the scorecard's is a few
means, kept here beside its only page.
"""

import csv
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from compare.leaderboard import BASE, PRIOR, RESAMPLES, SCALE, Filters, Leaderboard, leaderboard_for
from compare.models import Criterion, Rating, Tag, TeamSettings

METHOD = (
    f"Bradley–Terry strengths fitted by Hunter's MM algorithm, ties counted as half a win, "
    f"plus {PRIOR:g} virtual tie between every pair of models; score = {BASE:g} + {SCALE:g}·log10(strength), "
    f"averaging {BASE:g}; 95% interval: percentiles of {RESAMPLES} bootstrap resamples of the votes (fixed seed)."
)
COLUMNS = ["rank", "key", "label", "score", "low", "high", "battles", "wins", "ties", "losses", "win_rate",
           "median_latency_s", "p90_latency_s", "cost_per_image_usd", "cost_per_win_usd", "preliminary"]


def _board(request: HttpRequest) -> tuple[Filters, list[str], Leaderboard, int]:
    filters, errors = Filters.from_query(request.GET)
    min_battles = TeamSettings.current().leaderboard_min_votes
    return filters, errors, leaderboard_for(filters, min_battles), min_battles


def _r(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _records(board: Leaderboard) -> list[dict]:
    """The rows as exported: scores to 0.1 point (the page shows whole points), money to 4 places."""
    return [{
        "rank": row.rank, "key": row.key, "label": row.label,
        "score": _r(row.score, 1), "low": _r(row.low, 1), "high": _r(row.high, 1),
        "battles": row.battles, "wins": row.wins, "ties": row.ties, "losses": row.losses,
        "win_rate": _r(row.win_rate, 4),
        "median_latency_s": _r(row.median_latency_s, 2), "p90_latency_s": _r(row.p90_latency_s, 2),
        "cost_per_image_usd": _r(row.cost_per_image, 4), "cost_per_win_usd": _r(row.cost_per_win, 4),
        "preliminary": row.preliminary,
    } for row in board.rows]


@require_GET
def leaderboard(request: HttpRequest) -> HttpResponse:
    filters, errors, board, min_battles = _board(request)
    context = {
        "board": board, "filters": filters, "errors": errors, "min_battles": min_battles, "method": METHOD,
        "query": urlencode(filters.as_query()),
        "tags": Tag.objects.values_list("name", flat=True),
        "voters": get_user_model().objects.filter(votes__isnull=False).distinct()
        .order_by("username").values_list("username", flat=True),
    }
    # A history restore needs the whole page, not the fragment.
    partial = request.htmx and not request.htmx.history_restore_request
    response = render(request, "leaderboard.html#results" if partial else "leaderboard.html", context)
    patch_vary_headers(response, ["HX-Request"])  # the same URL answers with a page or a fragment
    if partial:  # push the tidy URL (no empty fields) rather than the form's raw query
        response["HX-Push-Url"] = request.path + (f"?{context['query']}" if context["query"] else "")
    return response


@require_GET
def leaderboard_csv(request: HttpRequest) -> HttpResponse:
    _, _, board, _ = _board(request)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="leaderboard.csv"'
    writer = csv.DictWriter(response, fieldnames=COLUMNS)
    writer.writeheader()
    for record in _records(board):
        writer.writerow({k: "" if v is None else v for k, v in record.items()})
    return response


@require_GET
def leaderboard_json(request: HttpRequest) -> JsonResponse:
    filters, _, board, min_battles = _board(request)
    return JsonResponse({
        "filters": filters.as_query(), "method": METHOD, "min_battles": min_battles,
        "votes": board.votes, "battles": board.battles, "models": _records(board),
        # row beats column, ties counted half; null where the two never met
        "win_rate_matrix": {
            "models": [row.key for row in board.rows],
            "rates": [[_r(cell.rate, 4) for cell in cells] for _, cells in board.matrix],
            "battles": [[cell.battles for cell in cells] for _, cells in board.matrix],
        },
    }, json_dumps_params={"ensure_ascii": False})


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


def build_scorecard(ratings: Iterable[tuple[str, object, int, int]], criteria: Sequence[int],
                    usability: int | None, labels: Mapping[str, str] | None = None) -> list[ScoreRow]:
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
        rate = sum(m >= 4 for m in per_gen) / len(per_gen) if per_gen else None
        rows.append(ScoreRow(key, (labels or {}).get(key, key), cells, rate, len(per_gen)))
    return sorted(rows, key=lambda r: (-(r.success_rate or 0), r.label))


def scorecard_for(tag: str = "") -> tuple[list[Criterion], list[ScoreRow]]:
    criteria = list(Criterion.objects.filter(active=True))
    usability = next((c.pk for c in criteria if c.is_usability), None)
    ratings = Rating.objects.filter(criterion__active=True)
    if tag:
        ratings = ratings.filter(generation__run__tags__name=tag)
    rows = list(ratings.order_by("generation__run__created_at").values_list(
        "generation__model_key", "generation__model_label", "generation_id", "criterion_id", "stars"))
    labels = {key: label for key, label, *_ in rows}
    facts = [(key, gen, crit, stars) for key, _, gen, crit, stars in rows]
    return criteria, build_scorecard(facts, [c.pk for c in criteria], usability, labels)


@require_GET
def scorecard(request: HttpRequest) -> HttpResponse:
    tag = (request.GET.get("tag") or "").strip()
    criteria, rows = scorecard_for(tag)
    context = {
        "criteria": criteria, "rows": rows, "tag": tag,
        "usability": next((c for c in criteria if c.is_usability), None),
        "tags": Tag.objects.values_list("name", flat=True),
    }
    return render(request, "scorecard.html", context)


"""Leaderboard (with CSV and JSON exports) and scorecard pages.

Login is required by LoginRequiredMiddleware, like every page. Filters live in the
query string so a filtered view can be bookmarked, shared and exported as it is.
The maths lives in compare/judging/leaderboard.py and compare/judging/scorecard.py.
"""

import csv
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from compare.judging.leaderboard import (
    BASE,
    PRIOR,
    RESAMPLES,
    SCALE,
    Filters,
    Leaderboard,
    filter_votes,
    leaderboard_for,
)
from compare.judging.scorecard import checks_for, scorecard_for
from compare.models import Generation, Run, Tag, TeamSettings, Vote
from compare.views.base import HtmxHttpRequest

METHOD = (
    f"Bradley–Terry strengths fitted by maximum likelihood (Newton's method, run until no score moves by "
    f"more than a millionth of a point), ties counted as half a win, plus {PRIOR:g} virtual tie between every "
    f"pair of models; score = {BASE:g} + {SCALE:g}·log10(strength), averaging {BASE:g} within each group of "
    f"models; 95% interval: percentiles of {RESAMPLES} bootstrap resamples of the votes (fixed seed), or, when "
    f"every vote is the same (resampling then shows no spread), a Wilson interval on the win share."
)
COLUMNS = [
    "rank",
    "key",
    "label",
    "score",
    "low",
    "high",
    "battles",
    "wins",
    "ties",
    "losses",
    "win_rate",
    "median_latency_s",
    "p90_latency_s",
    "cost_per_image_usd",
    "cost_per_win_usd",
    "preliminary",
    "votes",
    "group",
    "interval",
]


def _board(request: HttpRequest) -> tuple[Filters, list[str], Leaderboard, int]:
    """The board as this viewer may see it: votes on blind runs they have not judged are left out."""
    filters, errors = Filters.from_query(request.GET)
    min_votes = TeamSettings.current().leaderboard_min_votes
    return filters, errors, leaderboard_for(filters, min_votes, viewer=request.user), min_votes


def _r(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _records(board: Leaderboard) -> list[dict]:
    """The rows as exported: scores to 0.1 point (the page shows whole points), money to 4 places."""
    return [
        {
            "rank": row.rank,
            "key": row.key,
            "label": row.label,
            "score": _r(row.score, 1),
            "low": _r(row.low, 1),
            "high": _r(row.high, 1),
            "battles": row.battles,
            "wins": row.wins,
            "ties": row.ties,
            "losses": row.losses,
            "win_rate": _r(row.win_rate, 4),
            "median_latency_s": _r(row.median_latency_s, 2),
            "p90_latency_s": _r(row.p90_latency_s, 2),
            "cost_per_image_usd": _r(row.cost_per_image, 4),
            "cost_per_win_usd": _r(row.cost_per_win, 4),
            "preliminary": row.preliminary,
            "votes": row.votes,  # votes the model took part in: the unit of "preliminary"
            "group": row.group,  # scores and ranks compare only within a group
            "interval": "wilson" if row.small_sample else "bootstrap",
        }
        for row in board.rows
    ]


def _spread(filters: Filters, viewer) -> dict[str, tuple[list[float], list[float]]]:
    """Per model key, the latencies (s) and costs per image (USD) of the generations that
    succeeded in the runs behind the board's votes (the same runs and viewer rule as
    `leaderboard_for`; cost as there: reported, else the estimate), for the box plots.
    One query however many runs."""
    votes = filter_votes(Vote.objects.all(), filters)
    visible = Run.objects.with_viewer(viewer).filter(names_hidden=False).values("pk")
    generations = (
        Generation.objects.filter(
            run__in=votes.filter(run__in=visible).values("run"), status=Generation.Status.SUCCEEDED
        )
        .annotate(finals=Count("images", filter=Q(images__is_partial=False)))
        .order_by("queued_at")
        .values_list("model_key", "latency_ms", "cost_usd", "estimated_cost_usd", "finals")
    )
    spread: dict[str, tuple[list[float], list[float]]] = {}
    for key, latency_ms, cost, estimate, finals in generations:
        latencies, costs = spread.setdefault(key, ([], []))
        if latency_ms is not None:
            latencies.append(latency_ms / 1000)
        charged = cost if cost is not None else estimate
        if finals and charged is not None:
            costs.append(float(charged) / finals)
    return spread


@require_GET
def leaderboard(request: HtmxHttpRequest) -> HttpResponse:
    filters, errors, board, min_votes = _board(request)
    context = {
        "board": board,
        "spread": _spread(filters, request.user) if board.rows else {},
        "filters": filters,
        "errors": errors,
        "min_votes": min_votes,
        "method": METHOD,
        "query": urlencode(filters.as_query()),
        "tags": Tag.objects.values_list("name", flat=True),
        "voters": get_user_model()
        .objects.filter(votes__isnull=False)
        .distinct()
        .order_by("username")
        .values_list("username", flat=True),
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
    filters, _, board, min_votes = _board(request)
    return JsonResponse(
        {
            "filters": filters.as_query(),
            "method": METHOD,
            # a model in fewer votes than this is preliminary ("min_battles": the old name, kept for readers)
            "min_votes": min_votes,
            "min_battles": min_votes,
            "votes": board.votes,
            "battles": board.battles,
            # false: a fit stopped before converging; treat the scores as rough
            "converged": board.converged,
            # groups of models never compared with each other, directly or through others
            "groups": [[row.key for row in rows] for rows in board.groups],
            # votes not counted: fewer than two sides with an image, or an imageless side voted better
            "left_out": board.left_out,
            # votes on blind runs whose names this viewer has not seen yet
            "not_judged": board.not_judged,
            "models": _records(board),
            # row beats column, ties counted half; null where the two never met
            "win_rate_matrix": {
                "models": [row.key for row in board.rows],
                "rates": [[_r(cell.rate, 4) for cell in cells] for _, cells in board.matrix],
                "battles": [[cell.battles for cell in cells] for _, cells in board.matrix],
            },
        },
        json_dumps_params={"ensure_ascii": False},
    )


@require_GET
def scorecard(request: HttpRequest) -> HttpResponse:
    tag = (request.GET.get("tag") or "").strip()
    criteria, rows, not_judged = scorecard_for(tag, viewer=request.user)
    context = {
        "criteria": criteria,
        "rows": rows,
        "tag": tag,
        "usability": next((c for c in criteria if c.is_usability), None),
        "tags": Tag.objects.values_list("name", flat=True),
        "not_judged": not_judged,
        "check_rows": checks_for(tag, viewer=request.user),
    }
    return render(request, "scorecard.html", context)

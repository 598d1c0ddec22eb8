"""Benchmarks (`make bench`): figures to watch, printed, with generous ceilings that
only catch a collapse. Not part of `make test`."""

import statistics
import time
import tracemalloc
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from compare.judging.leaderboard import Filters, leaderboard_for
from compare.models import Generation, Run, Vote
from compare.simulator.render import render
from tests.bench.reporting import report
from tests.factories import make_run, make_user, wait_for_generations

pytestmark = pytest.mark.bench
MODELS = ["gpt-image-2", "gemini-3-pro-image"]


def _runs(user, count: int, images: int = 0) -> list[Run]:
    return [
        make_run(
            user, f"benchmark prompt {i}", latency_ms=1000 + 37 * i % 5000, cost_usd=Decimal("0.05"), images=images
        )
        for i in range(count)
    ]


@pytest.mark.django_db
def test_history_page_with_a_thousand_runs(auth_client, user):
    _runs(user, 1000)
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        with CaptureQueriesContext(connection) as queries:
            assert auth_client.get("/runs/").status_code == 200
        timings.append(time.perf_counter() - started)
    report("history page, 1000 runs", median_ms=round(statistics.median(timings) * 1000), queries=len(queries))
    assert statistics.median(timings) < 2.0 and len(queries) < 40


@pytest.mark.django_db
def test_leaderboard_with_five_thousand_votes(user):
    # Battles count only between sides that delivered an image: every side has one.
    runs = _runs(user, 1000, images=1)
    voters = [make_user(f"v{i}") for i in range(5)]
    sides = {(g.run_id, g.position): g for g in Generation.objects.filter(run__in=runs)}

    def verdict(run, k: int) -> dict:
        return {"verdict": Vote.Verdict.TIE} if k == 2 else {"verdict": Vote.Verdict.BETTER, "winner": sides[run.pk, k]}

    Vote.objects.bulk_create(
        Vote(run=run, user=v, blind=True, **verdict(run, (i + j) % 3))
        for i, run in enumerate(runs)
        for j, v in enumerate(voters)
    )
    started = time.perf_counter()
    board = leaderboard_for(Filters(), 10)
    elapsed = time.perf_counter() - started
    report("leaderboard, 5000 votes, 200 bootstrap resamples", seconds=round(elapsed, 2), models=len(board.rows))
    assert len(board.rows) == 2, "the benchmark must fit real battles"
    assert elapsed < 20


def test_simulator_renders_4k():
    tracemalloc.start()
    started = time.perf_counter()
    data = render('A poster that says "Fresh Bread" and "新鲜面包"', "simulated", b"seed" * 8, 3840, 2160, "png")
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    report("simulator 3840x2160 PNG", seconds=round(elapsed, 2), bytes=len(data), peak_mb=round(peak / 1e6))
    assert elapsed < 10


@pytest.mark.django_db(transaction=True)
def test_forty_generations_in_flight_at_once(auth_client, simulator, settings):
    """20 runs × 2 models with 2 s of simulated latency each: in parallel this takes
    about one latency, not forty."""
    settings.COMPARE_SIMULATOR_LATENCY = 0.5
    from compare.models import TeamSettings

    TeamSettings.objects.update_or_create(pk=1, defaults={"max_in_flight": 0, "daily_budget_usd": 0})
    started = time.perf_counter()
    for i in range(20):
        auth_client.post("/", {"prompt": f"parallel {i} [[latency:2]]", "models": MODELS, "regenerate": "on"})
    for run in Run.objects.all():
        wait_for_generations(run, timeout=120)
    elapsed = time.perf_counter() - started
    gens = Generation.objects.all()
    report(
        "40 generations, 2 s latency each",
        wall_seconds=round(elapsed, 1),
        succeeded=gens.filter(status="succeeded").count(),
    )
    assert gens.filter(status="succeeded").count() == 40 and elapsed < 30

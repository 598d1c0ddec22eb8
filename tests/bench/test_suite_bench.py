"""Benchmark (`make bench`): a 3 × 2 × 10 suite run through the simulator, end to end
through the same task path as ordinary runs, against its slowest single generation."""

import time

import pytest

from compare.models import Generation, TeamSettings
from compare.suites import dispatch
from compare.suites.models import Suite, SuiteCase
from tests.bench.test_bench import MODELS, report

pytestmark = pytest.mark.bench
LATENCY = 3  # seconds per simulated generation ([[latency:N]] in the prompt)
CASES = [
    ('A Chinese New Year sale poster with the headline "新春钜惠 全场 8 折"', ["poster", "zh"]),
    ('A SaaS dashboard mockup titled "Analytics Dashboard"', ["ui-mockup"]),
    ('An infographic titled "How Coffee Gets to Your Cup"', ["infographic"]),
]


def _wait(query, timeout: float) -> float:
    started = time.perf_counter()
    while query().exists():
        assert time.perf_counter() - started < timeout, "the suite run did not finish in time"
        time.sleep(0.1)
    return time.perf_counter()


@pytest.mark.django_db(transaction=True)
def test_a_three_by_two_by_ten_suite(user, simulator):
    # No spending or in-flight limit: the figure is the engine's, not the team's settings.
    TeamSettings.objects.update_or_create(pk=1, defaults={"max_in_flight": 0, "daily_budget_usd": 0})
    suite = Suite.objects.create(name="bench")
    for position, (prompt, tags) in enumerate(CASES):
        SuiteCase.objects.create(suite=suite, position=position, prompt=f"{prompt} [[latency:{LATENCY}]]", tags=tags)
    started = time.perf_counter()
    suite_run = dispatch.start_suite_run(suite, user, MODELS, 10)
    gens = Generation.objects.filter(run__suite_run=suite_run)
    images_done = _wait(lambda: gens.filter(status__in=Generation.PENDING), 300)
    checks_done = _wait(lambda: gens.filter(check_status=Generation.CheckStatus.PENDING), 600)
    slowest = max(ms or 0 for ms in gens.values_list("latency_ms", flat=True)) / 1000
    report(
        "suite 3 cases × 2 models × 10 samples (60 generations)",
        wall_seconds=round(images_done - started, 1),
        slowest_generation_seconds=round(slowest, 1),
        wall_over_slowest=round((images_done - started) / slowest, 2),
        with_checks_seconds=round(checks_done - started, 1),
        succeeded=gens.filter(status="succeeded").count(),
        checks_passed=gens.filter(check_status="passed").count(),
    )
    assert gens.filter(status="succeeded").count() == 60

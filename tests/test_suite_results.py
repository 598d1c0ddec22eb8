"""Suite run results (compare/suites/results.py) and their pages (compare/views/suite_runs.py):
success rates and Wilson intervals against hand-computed values, the success rule with
ratings, pending generations not counted, verdict lines from planted data, the
comparison of two suite runs, and pages that never 500."""

import re
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from compare import stats
from compare.models import Criterion, Generation, Rating, Run
from compare.stats import newcombe, wilson
from compare.suites import results
from compare.suites.models import Suite, SuiteRun
from tests import factories
from tests.factories import GPT, NANO
from tests.test_security import Markup, csp

CASES = [
    {"title": "Poster", "prompt": 'A poster that says "新春钜惠"', "tags": ["poster zh"], "expectations": ["新春钜惠"]},
    {"title": "Dashboard", "prompt": 'A UI mockup titled "Analytics Dashboard"', "tags": ["ui-mockup"]},
    {"title": "Infographic", "prompt": "An infographic about water", "tags": ["infographic"]},
]
PASSED, FAILED = Generation.CheckStatus.PASSED, Generation.CheckStatus.FAILED


def text_checks(*items: tuple[str, bool]) -> dict:
    """`Generation.checks` with one image whose text items passed or not (compare/checks/__init__.py)."""
    text = [{"expected": e, "read": e if ok else "?", "cer": 0.0 if ok else 0.25, "passed": ok} for e, ok in items]
    return {"engine": "test", "images": [{"index": 0, "text": text, "spec": []}]}


def plant(author, plan: dict, *, cases=CASES, samples: int = 4, suite: Suite | None = None, **fields) -> SuiteRun:
    """A suite run straight in the database. `plan[(case, model_key)]` is a list, one per
    sample, of dicts of Generation fields (status, check_status, latency_ms, cost_usd, checks…);
    a missing entry is a passed, succeeded generation with an image."""
    suite_run = SuiteRun.objects.create(
        suite=suite,
        suite_name=suite.name if suite else "Reference",
        suite_version=suite.version if suite else 1,
        cases=cases,
        model_keys=[GPT[0], NANO[0]],
        samples=samples,
        author=author,
        estimated_cost_usd=Decimal("1.2000"),
        **fields,
    )
    for index, case in enumerate(cases):
        for sample in range(samples):
            run = factories.make_run(author, case["prompt"], images=1, latency_ms=1000)
            Run.objects.filter(pk=run.pk).update(suite_run=suite_run, suite_case=index, suite_sample=sample)
            for gen in run.generations.all():
                spec = dict(plan.get((index, gen.model_key), [{}] * samples)[sample])
                spec.setdefault("check_status", PASSED)
                Generation.objects.filter(pk=gen.pk).update(**spec)
    return suite_run


def cell(summary: results.Summary, case: int, key: str) -> results.Cell:
    return next(c for c in summary.cases[case].cells if c.model_key == key)


# --- the statistics, by hand -------------------------------------------------------------


def test_wilson_3_of_4_hand_computed():
    # p = 3/4, n = 4, z = 1.95996, z² = 3.84146:
    #   denominator 1 + z²/n = 1.96037; centre (0.75 + z²/2n) / 1.96037 = (0.75 + 0.48018) / 1.96037 = 0.62752
    #   half-width z·√(p(1−p)/n + z²/4n²) / 1.96037 = 1.95996·√(0.046875 + 0.060023) / 1.96037 = 0.32688
    #   → 0.30064 … 0.95441: "75 % (30–95 %)"
    lo, hi = wilson(0.75, 4)
    assert lo == pytest.approx(0.30064, abs=1e-5) and hi == pytest.approx(0.95441, abs=1e-5)
    assert stats.Rate(3, 4).text() == "75 % (30–95 %)"
    # 5 of 5: centre (1 + z²/10) / (1 + z²/5) = 1.384146 / 1.768292 = 0.78276, half 1.95996·√(z²/100) / 1.768292 = 0.21724
    assert wilson(1.0, 5)[0] == pytest.approx(0.56552, abs=1e-5)
    assert stats.Rate(5, 5).text() == "100 % (57–100 %)" and stats.Rate(0, 0).text() == "—"


def test_newcombe_interval_of_a_change():
    # B − A = 0/5 − 5/5 = −1; lower −1 − √((0−0)² + (1−1)²) = −1;
    # upper −1 + √((0.43448 − 0)² + (1 − 0.56552)²) = −1 + 0.61445 = −0.38555
    lo, hi = newcombe(5, 5, 0, 5)
    assert lo == pytest.approx(-1.0) and hi == pytest.approx(-0.38555, abs=1e-5)


@pytest.mark.parametrize(
    ("status", "check", "stars", "expected"),
    [
        ("succeeded", "passed", (), results.SUCCESS),
        ("succeeded", "passed", (4,), results.SUCCESS),
        ("succeeded", "passed", (5, 3), results.SUCCESS),  # mean 4
        ("succeeded", "passed", (4, 3), results.FAILURE),  # mean 3.5
        ("succeeded", "failed", (), results.FAILURE),
        ("succeeded", "failed", (5,), results.FAILURE),
        ("failed", "", (), results.FAILURE),
        ("refused", "", (), results.FAILURE),
        ("queued", "", (), results.PENDING),
        ("running", "", (), results.PENDING),
        ("succeeded", "pending", (), results.PENDING),
        ("cancelled", "", (), results.UNCOUNTED),
        ("succeeded", "unavailable", (), results.UNCOUNTED),
        ("succeeded", "", (), results.UNCOUNTED),
    ],
)
def test_the_success_rule(status, check, stars, expected):
    assert results.outcome(status, check, stars) == expected


# --- summarize ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_cell_rates_intervals_latency_and_cost(user):
    plan = {
        (0, GPT[0]): [
            {"latency_ms": 1000, "cost_usd": "0.0400"},
            {"latency_ms": 2000, "cost_usd": "0.0400"},
            {"latency_ms": 3000, "cost_usd": "0.0400"},
            {"latency_ms": 4000, "cost_usd": "0.0400", "check_status": FAILED},
        ],
    }
    summary = results.summarize(plant(user, plan))
    gpt, nano = cell(summary, 0, GPT[0]), cell(summary, 0, NANO[0])
    assert (gpt.counted.successes, gpt.counted.n) == (3, 4)
    assert gpt.counted.text() == "75 % (30–95 %)"
    assert nano.counted.text() == "100 % (51–100 %)"  # 4 of 4: Wilson low 0.51010
    # Latencies 1, 2, 3, 4 s: median (2 + 3) / 2 = 2.5; p90 at rank 0.9 × 3 = 2.7 → 3 + 0.7 × (4 − 3) = 3.7
    assert gpt.median_latency_s == pytest.approx(2.5) and gpt.p90_latency_s == pytest.approx(3.7)
    assert gpt.cost == Decimal("0.1600")
    # Per model: GPT 3 of 4 + 4 of 4 + 4 of 4 = 11 of 12
    total = next(m for m in summary.models if m.key == GPT[0])
    assert (total.counted.successes, total.counted.n) == (11, 12) and total.label == "GPT Image 2"
    data = summary.as_dict()
    assert data["cases"][0]["cells"][0]["rate"] == 0.75 and data["cases"][0]["cells"][0]["low"] == pytest.approx(0.3006)
    assert "automatic checks" in data["rule"]


@pytest.mark.django_db
def test_pending_generations_are_not_counted_yet(user):
    plan = {
        (0, GPT[0]): [
            {"status": "queued", "check_status": ""},
            {"status": "running", "check_status": ""},
            {"check_status": "pending"},
            {"check_status": FAILED},
        ],
        (0, NANO[0]): [{"status": "cancelled", "check_status": ""}, {}, {}, {"check_status": "unavailable"}],
    }
    summary = results.summarize(plant(user, plan))
    gpt, nano = cell(summary, 0, GPT[0]), cell(summary, 0, NANO[0])
    assert (gpt.counted.successes, gpt.counted.n, gpt.pending) == (0, 1, 3)
    assert (nano.counted.successes, nano.counted.n, nano.uncounted) == (2, 2, 2)
    assert summary.cases[0].verdict.text.endswith("(3 still to come).")
    assert summary.unchecked == 1  # the cancelled one is not "unchecked": it delivered nothing


@pytest.mark.django_db
def test_usability_ratings_below_four_make_a_failure(user, other_user):
    usability = Criterion.objects.get(is_usability=True)
    suite_run = plant(user, {}, samples=1)
    gens = list(Generation.objects.filter(run__suite_run=suite_run, run__suite_case=0).order_by("position"))
    Rating.objects.create(generation=gens[0], user=user, criterion=usability, stars=4)
    Rating.objects.create(generation=gens[0], user=other_user, criterion=usability, stars=3)  # mean 3.5
    Rating.objects.create(generation=gens[1], user=user, criterion=usability, stars=4)
    other = Criterion.objects.exclude(pk=usability.pk).first()
    assert other is not None
    Rating.objects.create(generation=gens[1], user=other_user, criterion=other, stars=1)  # not the usability one
    summary = results.summarize(suite_run)
    assert cell(summary, 0, GPT[0]).counted.successes == 0
    assert cell(summary, 0, NANO[0]).counted.successes == 1
    assert f"when rated on “{usability.name}”, its mean rating is at least 4 stars" in summary.rule


@pytest.mark.django_db
def test_verdict_lines_are_computed_from_the_data(user):
    fail = {"check_status": FAILED}
    plan = {
        (0, GPT[0]): [fail] * 5,  # 0 of 5 against 5 of 5: the intervals separate them
        (1, NANO[0]): [fail, fail, {}, {}, {}],  # 5 of 5 against 3 of 5: apart? no, they overlap
        (2, GPT[0]): [fail, {}, {}, {}, {}],
        (2, NANO[0]): [fail, {}, {}, {}, {}],  # 4 of 5 each
    }
    summary = results.summarize(plant(user, plan, samples=5))
    lines = [case.verdict.text for case in summary.cases]
    assert lines[0] == "Nano Banana Pro better: 100 % vs 0 %, and the intervals do not overlap."
    assert lines[1] == "GPT Image 2 ahead, 100 % vs 60 %, but the intervals overlap: no clear difference."
    assert lines[2] == "No difference: GPT Image 2 and Nano Banana Pro both at 80 %."
    assert [c.verdict.leader for c in summary.cases] == [NANO[0], GPT[0], None]
    assert (
        summary.overall
        == "Across 3 cases: Nano Banana Pro ahead on 1 (1 clearly), GPT Image 2 ahead on 1 (0 clearly), no model ahead on 1."
    )


@pytest.mark.django_db
def test_text_check_line_counts_expected_strings(user):
    cases = [{"title": "Poster", "prompt": 'Poster: "新春钜惠" "全场 8 折" "SALE"', "tags": ["poster zh"]}, CASES[1]]
    good = {"checks": text_checks(("新春钜惠", True), ("全场 8 折", True), ("SALE", True))}
    misread = {"checks": text_checks(("新春钜惠", False), ("全场 8 折", True), ("SALE", True)), "check_status": FAILED}
    title = {"checks": text_checks(("Analytics Dashboard", True))}
    plan = {
        (0, GPT[0]): [misread, misread],
        (0, NANO[0]): [good, good],
        (1, GPT[0]): [title] * 2,
        (1, NANO[0]): [title] * 2,
    }
    summary = results.summarize(plant(user, plan, cases=cases, samples=2))
    assert summary.cases[0].text_checks == "Nano Banana Pro better on 1 of 3 text checks, level on 2."
    # Across the suite: the poster's three strings and the dashboard's one (both read right by both models).
    assert summary.text_checks == "Nano Banana Pro better on 1 of 4 text checks, level on 3."
    assert cell(summary, 0, GPT[0]).samples[0].text_checks == {"新春钜惠": False, "全场 8 折": True, "SALE": True}


@pytest.mark.django_db
def test_a_model_that_failed_loses_its_text_checks_instead_of_dropping_out(user):
    read = {"checks": text_checks(("新春钜惠", True))}
    plan = {
        (0, GPT[0]): [{"status": "failed", "check_status": ""}, {"status": "refused", "check_status": ""}],
        (0, NANO[0]): [read, read],
        (1, GPT[0]): [
            {"status": "refused", "check_status": ""},
            {"checks": text_checks(("Analytics Dashboard", True))},
        ],
        (1, NANO[0]): [{"checks": text_checks(("Analytics Dashboard", True))}] * 2,
    }
    summary = results.summarize(plant(user, plan, cases=CASES[:2], samples=2))
    # GPT delivered nothing on the poster: its string counts as not rendered twice (0 of 2 against 2 of 2).
    assert summary.cases[0].text_checks == "Nano Banana Pro better on 1 of 1 text check."
    # One refusal, one correct title: 1 of 2 against 2 of 2.
    assert summary.cases[1].text_checks == "Nano Banana Pro better on 1 of 1 text check."
    assert summary.text_checks == "Nano Banana Pro better on 2 of 2 text checks."
    # Nothing checked in a case (both models failed every sample): no text line at all.
    nothing = plant(
        user,
        {(0, k): [{"status": "failed", "check_status": ""}] for k in (GPT[0], NANO[0])},
        cases=CASES[:1],
        samples=1,
    )
    assert results.summarize(nothing).cases[0].text_checks == ""


def spec_checks(**passed: bool) -> dict:
    """`Generation.checks` with one image whose specification items passed or not (compare/checks/spec.py)."""
    items = [{"name": n, "expected": "x", "actual": "x" if ok else "y", "passed": ok} for n, ok in passed.items()]
    return {"engine": "", "spec": [], "images": [{"index": 0, "text": [], "spec": items}]}


@pytest.mark.django_db
def test_spec_check_lines_say_who_met_the_request(user):
    met = {"checks": spec_checks(size=True, format=True)}
    wrong_size = {"checks": spec_checks(size=False, format=True), "check_status": FAILED}
    opaque = {"checks": spec_checks(size=True, transparency=False), "check_status": FAILED}
    clear = {"checks": spec_checks(size=True, transparency=True)}
    plan = {
        (0, GPT[0]): [met] * 5,
        (0, NANO[0]): [met, met, met, wrong_size, {"status": "failed", "check_status": ""}],
        (1, GPT[0]): [clear, clear, clear, opaque, opaque],
        (1, NANO[0]): [clear] * 5,
        # Case 2 checked nothing against the request (the planted default: no spec items).
    }
    summary = results.summarize(plant(user, plan, samples=5))
    assert (
        summary.cases[0].spec_checks
        == "Requested size and format: GPT Image 2 met them in 5 of 5, Nano Banana Pro in 3 of 5."
    )
    assert summary.cases[1].spec_checks == (
        "Requested size and transparency: GPT Image 2 met them in 3 of 5, Nano Banana Pro in 5 of 5."
    )
    assert summary.cases[2].spec_checks == ""
    assert summary.spec_checks == (
        "Requested size, format and transparency: GPT Image 2 better on 1 of 2 cases, Nano Banana Pro better on 1 of 2 cases"
        " (met by GPT Image 2 in 8 of 10, Nano Banana Pro in 8 of 10)."
    )
    data = summary.as_dict()
    assert (
        data["spec_checks"] == summary.spec_checks and data["cases"][1]["spec_checks"] == summary.cases[1].spec_checks
    )
    assert data["cases"][0]["cells"][1]["samples"][3]["spec_checks"] == {"size": False, "format": True}


@pytest.mark.django_db
def test_spec_line_with_one_item_and_a_level_case(user):
    one = {"checks": spec_checks(size=True)}
    plan = {(0, GPT[0]): [one] * 2, (0, NANO[0]): [one] * 2}
    summary = results.summarize(plant(user, plan, cases=CASES[:1], samples=2))
    assert summary.cases[0].spec_checks == "Requested size: GPT Image 2 met it in 2 of 2, Nano Banana Pro in 2 of 2."
    assert (
        summary.spec_checks == "Requested size: level on 1 (met by GPT Image 2 in 2 of 2, Nano Banana Pro in 2 of 2)."
    )


@pytest.mark.django_db
def test_suite_runs_are_never_blind(user, no_task_execution):
    from compare.suites import dispatch
    from compare.suites.models import SuiteCase

    suite = Suite.objects.create(name="Two cases")
    for position, case in enumerate(CASES[:2]):
        SuiteCase.objects.create(suite=suite, position=position, title=str(case["title"]), prompt=str(case["prompt"]))
    suite_run = dispatch.start_suite_run(suite, user, [GPT[0], NANO[0]], 2)
    runs = Run.objects.filter(suite_run=suite_run)
    # The grid shows every thumbnail with its model's column: that needs runs that are not blind.
    assert runs.count() == 4 and not runs.filter(blind=True).exists()
    assert not Generation.objects.filter(run__suite_run=suite_run).exclude(blind_position=F("position")).exists()


# --- progress -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_progress_counts_and_costs(user):
    plan = {
        (0, GPT[0]): [
            {
                "status": "queued",
                "check_status": "",
                "waiting_for": "waiting for GPT Image 2's rate limit",
                "cost_usd": None,
            },
            {"status": "queued", "check_status": "", "cost_usd": None, "estimated_cost_usd": "0.0500"},
        ],
        (0, NANO[0]): [
            {"status": "running", "check_status": "", "cost_usd": None},
            {"status": "failed", "cost_usd": None},
        ],
        (1, GPT[0]): [{"status": "refused", "cost_usd": None}, {"status": "cancelled", "cost_usd": None}],
        (1, NANO[0]): [{"check_status": "pending"}, {}],
    }
    p = results.progress(plant(user, plan, cases=CASES[:2], samples=2))
    assert (p.total, p.done, p.failed, p.cancelled, p.queued, p.running, p.waiting, p.checking) == (
        8,
        2,
        2,
        1,
        2,
        1,
        1,
        1,
    )
    assert p.waiting_reasons == ["waiting for GPT Image 2's rate limit"] and not p.finished
    # Two succeeded at $0.04 each; queued and running count their estimate ($0.05 each); refused,
    # failed without starting and cancelled before starting count nothing (compare/budget.py).
    assert p.actual_cost_usd == Decimal("0.2300")
    assert p.as_dict()["estimated_cost_usd"] == "1.2000"
    assert [s[0] for s in p.segments] == ["done", "failed", "cancelled", "running"]
    assert p.segments[0][2] == "25.00" and p.segments[1][1] == "25.00"


@pytest.mark.django_db
def test_a_finished_run_has_stopped_its_clock(user):
    suite_run = plant(user, {}, cases=CASES[:1], samples=1)
    later = suite_run.created_at + timedelta(seconds=75)
    Generation.objects.filter(run__suite_run=suite_run).update(finished_at=later)
    p = results.progress(suite_run)
    assert p.finished and p.elapsed_seconds == pytest.approx(75) and p.elapsed_text == "1:15"


# --- comparing two suite runs ------------------------------------------------------------------


@pytest.mark.django_db
def test_compare_flags_a_planted_regression_and_not_equal_runs(user):
    suite = Suite.objects.create(name="Reference")
    before = plant(user, {}, suite=suite, samples=5)
    same = plant(user, {}, suite=suite, samples=5)
    equal = results.compare(before, same)
    assert equal.matched_by == "position" and len(equal.changes) == 6 and equal.flagged == []

    # After a "model update" GPT's text check fails on the poster every time.
    regressed = plant(user, {(0, GPT[0]): [{"check_status": FAILED}] * 5}, suite=suite, samples=5)
    comparison = results.compare(before, regressed)
    assert [(c.case_a, c.model_key) for c in comparison.flagged] == [(0, GPT[0])]
    change = comparison.flagged[0]
    assert change.difference == -1.0 and change.change_text() == "-100 pts (-100 to -39)"
    data = comparison.as_dict()
    assert [c["significant"] for c in data["changes"]].count(True) == 1


@pytest.mark.django_db
def test_compare_runs_of_different_suites_matches_by_prompt(user):
    other_cases = [CASES[2], {"title": "New", "prompt": "Something else"}, {**CASES[0], "title": "Poster (renamed)"}]
    a = plant(user, {}, samples=1)
    b = plant(user, {}, cases=other_cases, samples=1)
    comparison = results.compare(a, b)
    assert comparison.matched_by == "prompt"
    assert sorted({(c.case_a, c.case_b) for c in comparison.changes}) == [(0, 2), (2, 0)]
    assert comparison.unmatched_a == ["Dashboard"] and comparison.unmatched_b == ["New"]


# --- pages ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_suite_run_page_shows_the_grid(auth_client, user):
    suite_run = plant(user, {(0, GPT[0]): [{}, {}, {}, {"check_status": FAILED}]})
    html = auth_client.get(suite_run.get_absolute_url()).content.decode()
    assert 'Reference <span class="version">v1</span>' in html
    assert "75 % (30–95 %)" in html and "3/4" in html
    assert "What counts as a success" in html and "Success rate per case and model" in html
    first = Run.objects.get(suite_run=suite_run, suite_case=0, suite_sample=0)
    assert f'href="{first.get_absolute_url()}"' in html
    assert 'data-finished="1"' in html and "every 1s" not in html  # finished: no polling
    assert "data-unchecked" not in html
    assert "Cancel the rest" not in html
    # The run page of a case-sample leads back to its suite run.
    run_page = auth_client.get(first.get_absolute_url()).content.decode()
    back = re.search(r"<p class=\"lineage\" data-suite-run>(.*?)</p>", run_page, re.S)
    assert back is not None
    assert re.sub(r"<[^>]+>|\s+", " ", back.group(1)).split() == (
        f"Case 1 “Poster”, sample 1 of {suite_run.samples} in the suite run Reference v1".split()
    )
    assert f'href="{suite_run.get_absolute_url()}"' in back.group(1)


def poll_url(html: str) -> str:
    """The page's one poll: the only element that polls, and its URL (with the page's token)."""
    assert html.count('hx-trigger="every') == 1, "one poll per page"
    found = re.search(r'<div id="suite-progress"[^>]*hx-get="([^"]+)"', html)
    assert found is not None, "the progress bar carries the poll"
    return found.group(1).replace("&amp;", "&")


@pytest.mark.django_db
def test_unfinished_run_polls_and_cancels(auth_client, user):
    suite_run = plant(user, {(0, GPT[0]): [{"status": "queued", "check_status": ""}] * 4})
    page = auth_client.get(suite_run.get_absolute_url()).content.decode()
    assert "Cancel the rest" in page and 'data-elapsed="' in page  # static/suite_run.js keeps the clock going
    poll = poll_url(page)
    assert auth_client.get(poll).status_code == 204  # nothing changed since the page was drawn
    response = auth_client.post(f"/suite-runs/{suite_run.pk}/cancel", follow=True)
    assert "Cancelled 4 generations" in response.content.decode()
    assert Generation.objects.filter(run__suite_run=suite_run, status="cancelled").count() == 4
    last = auth_client.get(poll)
    html = last.content.decode()
    assert last.status_code == 286 and "hx-trigger" not in html  # htmx swaps the last news in and stops polling
    assert "20 of 24 done" in html and "4 cancelled" in html and "Cancel the rest" not in html
    assert 'id="suite-grid" class="suite-grid-wrap" hx-swap-oob="true"' in html


@pytest.mark.django_db
def test_a_poll_draws_both_parts_only_when_something_changed(auth_client, user):
    running = {"status": "running", "check_status": "", "cost_usd": None}
    suite_run = plant(user, {(0, GPT[0]): [running] * 2}, cases=CASES[:1], samples=2)
    poll = poll_url(auth_client.get(suite_run.get_absolute_url()).content.decode())
    assert auth_client.get(poll).status_code == 204

    # One generation finishes and its checks pass: the bar and the grid come back, with a new token.
    first = Generation.objects.filter(run__suite_run=suite_run, model_key=GPT[0]).order_by("run__suite_sample").first()
    assert first is not None
    Generation.objects.filter(pk=first.pk).update(status="succeeded", check_status=PASSED, cost_usd="0.0400")
    changed = auth_client.get(poll)
    html = changed.content.decode()
    assert changed.status_code == 200
    assert html.lstrip().startswith('<div id="suite-progress"') and "3 of 4 done" in html and "1 running" in html
    assert 'id="suite-grid" class="suite-grid-wrap" hx-swap-oob="true"' in html and "2/2" in html and "1/1" in html
    again = poll_url(html)
    assert again != poll and auth_client.get(again).status_code == 204  # the new token holds until the next change

    # A check still running keeps the poll alive; its result is news too.
    Generation.objects.filter(run__suite_run=suite_run, status="running").update(
        status="succeeded", check_status="pending"
    )
    checking = auth_client.get(again)
    assert checking.status_code == 200 and "1 being checked" in checking.content.decode()
    Generation.objects.filter(run__suite_run=suite_run, check_status="pending").update(check_status=FAILED)
    last = auth_client.get(poll_url(checking.content.decode()))
    assert last.status_code == 286 and "4 of 4 done" in last.content.decode() and "1/2" in last.content.decode()


@pytest.mark.django_db
def test_an_unchanged_poll_costs_a_few_queries_whatever_the_size(auth_client, user):
    small = plant(user, {(0, GPT[0]): [{"status": "running", "check_status": ""}]}, cases=CASES[:1], samples=1)
    big = plant(user, {(1, NANO[0]): [{"status": "running", "check_status": ""}] * 6}, samples=6)
    counts = []
    for suite_run in (small, big):
        poll = poll_url(auth_client.get(suite_run.get_absolute_url()).content.decode())
        with CaptureQueriesContext(connection) as queries:
            response = auth_client.get(poll)
        assert response.status_code == 204 and response.content == b""
        counts.append(len(queries))
    # The session, its user, and the one aggregate query of `results.stamp`.
    assert counts[0] == counts[1] <= 3, counts


@pytest.mark.django_db
def test_bad_ids_never_500(auth_client, user):
    missing = uuid.uuid4()
    assert auth_client.get(f"/suite-runs/{missing}/").status_code == 404
    assert auth_client.get(f"/suite-runs/{missing}/parts/updates").status_code == 404
    assert auth_client.post(f"/suite-runs/{missing}/cancel").status_code == 404
    assert auth_client.get("/suite-runs/not-a-uuid/").status_code == 404
    suite_run = plant(user, {}, cases=CASES[:1], samples=1)
    assert auth_client.get(f"/suite-runs/{suite_run.pk}/parts/nope").status_code == 404
    assert auth_client.get(f"/suite-runs/{suite_run.pk}/cancel").status_code == 405

    bad = auth_client.get("/suite-runs/compare?a=xyz&b=1")
    assert bad.status_code == 400 and "That is not a suite run id" in bad.content.decode()
    gone = auth_client.get(f"/suite-runs/compare?a={suite_run.pk}&b={missing}")
    assert gone.status_code == 400 and "does not exist" in gone.content.decode()
    twice = auth_client.get(f"/suite-runs/compare?a={suite_run.pk}&b={suite_run.pk}")
    assert twice.status_code == 400 and "same suite run twice" in twice.content.decode()
    empty = auth_client.get("/suite-runs/compare")
    assert empty.status_code == 200 and "Pick two suite runs" in empty.content.decode()


@pytest.mark.django_db
def test_compare_page_flags_the_change(auth_client, user):
    suite = Suite.objects.create(name="Reference")
    before = plant(user, {}, suite=suite, samples=5)
    after = plant(user, {(0, GPT[0]): [{"check_status": FAILED}] * 5}, suite=suite, samples=5)
    page = auth_client.get(after.get_absolute_url()).content.decode()
    link = f"/suite-runs/compare?a={before.pk}&amp;b={after.pk}"
    assert link in page  # "Compare with…" lists the earlier run
    html = auth_client.get(link.replace("&amp;", "&")).content.decode()
    assert html.count("data-changed") == 1 and "changed: worse" in html
    assert "1 of 6 case–model pairs changed" in html
    assert "100 % (57–100 %)" in html and "0 % (0–43 %)" in html


@pytest.mark.django_db
def test_pages_keep_the_csp_and_escape_what_people_typed(auth_client, user):
    xss = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'
    cases = [{"title": xss, "prompt": f'"{xss}"', "tags": [xss], "expectations": [xss]}]
    a = plant(user, {}, cases=cases, samples=1)
    b = plant(user, {(0, GPT[0]): [{"status": "queued", "check_status": ""}]}, cases=cases, samples=1)
    for url in [
        a.get_absolute_url(),
        b.get_absolute_url(),
        f"/suite-runs/{b.pk}/parts/updates",
        f"/suite-runs/compare?a={a.pk}&b={b.pk}",
    ]:
        response = auth_client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        markup = Markup()
        markup.feed(html)
        assert markup.inline == [] and markup.styles == [], url
        assert all(tag.get("nonce") for tag in markup.scripts), url
        assert "<script>alert(1)" not in html and "<img src=x onerror" not in html, url
        assert "'unsafe-inline'" not in csp(response).get("style-src", []), url


@pytest.mark.django_db
def test_the_page_costs_the_same_queries_for_any_size(auth_client, user):
    small = plant(user, {}, cases=CASES[:1], samples=1)
    big = plant(user, {(1, NANO[0]): [{"status": "running", "check_status": ""}] * 6}, samples=6)
    counts = []
    for suite_run in (small, big):
        with CaptureQueriesContext(connection) as queries:
            assert auth_client.get(suite_run.get_absolute_url()).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]


@pytest.mark.django_db
def test_the_page_says_why_generations_wait(auth_client, user):
    waiting = {"status": "queued", "check_status": "", "waiting_for": "Waiting for GPT Image 2's rate limit."}
    suite_run = plant(user, {(0, GPT[0]): [waiting] * 2}, cases=CASES[:1], samples=2)
    html = auth_client.get(f"/suite-runs/{suite_run.pk}/parts/updates").content.decode()
    assert "2 queued" in html and "(2 held back)" in html
    assert "Held back: Waiting for GPT Image 2&#x27;s rate limit." in html


@pytest.mark.django_db
def test_the_page_says_when_checks_could_not_run(auth_client, user):
    suite_run = plant(user, {(0, NANO[0]): [{"check_status": "unavailable"}] * 2}, cases=CASES[:1], samples=2)
    html = auth_client.get(suite_run.get_absolute_url()).content.decode()
    assert 'data-unchecked="2"' in html and "2 generations delivered an image but are not counted" in html
    assert "0/0" in html  # Nano Banana Pro: nothing counted, its rate a dash

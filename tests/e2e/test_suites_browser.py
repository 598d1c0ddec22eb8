"""A suite run in a real browser (Debian's chromium driven by Playwright), end to end through
the simulator: 3 cases × 2 models × 3 samples started with "Run this suite", the progress
bar moving without a reload, the results grid filling in, a thumbnail opening its
comparison; and the page comparing two suite runs. With COMPARE_SHOTS=<directory> set, the
tests save screenshots (1440×900 light and dark, 390×844) of the pages they look at."""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from compare.models import Generation, Run
from compare.suites.models import Suite, SuiteCase, SuiteRun
from tests.e2e.site import LAPTOP, PHONE, settle
from tests.e2e.test_a11y import severe_violations
from tests.factories import GPT
from tests.test_suite_results import plant

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SHOTS = os.environ.get("COMPARE_SHOTS")
CASES = [
    ("Poster", 'A spring sale poster that says "SALE 50%"', ["poster"]),
    ("Dashboard", 'A UI mockup of a web app titled "Analytics Dashboard"', ["ui-mockup"]),
    ("Infographic", 'An infographic about water with the heading "Drink more water"', ["infographic"]),
]


def shots(open_page, user, url: str, name: str) -> None:
    """Screenshots of `url` at laptop size (light, dark) and phone size, when COMPARE_SHOTS is set."""
    if not SHOTS:
        return
    for suffix, options in (
        ("laptop", {"viewport": LAPTOP}),
        ("laptop-dark", {"viewport": LAPTOP, "color_scheme": "dark"}),
        ("phone", {"viewport": PHONE}),
    ):
        page = open_page(user, **options)
        page.goto(url)
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(Path(SHOTS) / f"suite-{name}-{suffix}.png"), full_page=True)


def test_a_suite_runs_end_to_end_with_live_progress(open_page, simulator, user, settings):
    settings.COMPARE_SIMULATOR_LATENCY = 1.0  # long enough to watch the bar move
    suite = Suite.objects.create(name="Browser suite", created_by=user)
    for position, (title, prompt, tags) in enumerate(CASES):
        SuiteCase.objects.create(suite=suite, position=position, title=title, prompt=prompt, tags=tags)

    page = open_page(user, viewport=LAPTOP)
    page.goto(simulator.url + suite.get_absolute_url())
    for key in ("gpt-image-2", "gemini-3-pro-image"):
        page.locator(f'#run-suite input[name=models][value="{key}"]').check()
    page.locator("#run-suite input[name=samples]").fill("3")
    polls: list[str] = []  # the suite run page's requests for its parts: one poll, nothing else
    page.on("request", lambda r: polls.append(r.url) if re.search(r"/suite-runs/[^/]+/parts/", r.url) else None)
    page.get_by_role("button", name="Run this suite").click()

    page.wait_for_url(re.compile(r"/suite-runs/[0-9a-f-]{36}/$"))
    suite_run = SuiteRun.objects.get()
    assert Generation.objects.filter(run__suite_run=suite_run).count() == 18
    page.evaluate("window.__sameDocument = true")  # lost by a reload
    bar = page.locator("#suite-progress rect.seg-done")
    text = page.locator("#suite-progress-text")
    first_width, first_text = bar.get_attribute("width"), text.inner_text()
    assert "of 18 done" in first_text and not first_text.startswith("18 of 18 done")

    # The bar moves while generations finish, without a reload...
    page.wait_for_function(
        "w => document.querySelector('#suite-progress rect.seg-done').getAttribute('width') !== w",
        arg=first_width,
        timeout=60_000,
    )
    assert float(bar.get_attribute("width") or 0) > float(first_width or 0)
    assert text.inner_text() != first_text
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / "suite-run-progress-laptop.png"))
    # ... until every generation has finished and been checked: the polling stops.
    expect(page.locator("#suite-progress")).to_have_attribute("data-finished", "1", timeout=180_000)
    expect(text).to_contain_text("18 of 18 done")
    expect(bar).to_have_attribute("width", "100.00")
    expect(page.get_by_role("button", name="Cancel the rest")).to_have_count(0)
    assert page.evaluate("window.__sameDocument === true")

    # One poll per page, each carrying the token of what the page showed; none once finished.
    expect(page.locator("#suite-progress")).not_to_have_attribute("hx-trigger", re.compile("every"))
    assert polls and all(re.search(r"/parts/updates\?since=[0-9a-f]{12}$", url) for url in polls), polls
    # The grid, redrawn by the same poll: 3 cases × 2 models, every cell with its 3 thumbnails and a rate with its interval.
    rows = page.locator("table.suite-grid tbody tr")
    expect(rows).to_have_count(3)
    cells = page.locator("table.suite-grid tbody td.suite-cell")
    expect(cells).to_have_count(6)
    for i in range(6):
        expect(cells.nth(i).locator("a.suite-thumb img")).to_have_count(3)
        expect(cells.nth(i).locator("[data-rate]")).to_have_text(re.compile(r"^\d+ % \(\d+–\d+ %\)$|^—$"))
    expect(page.locator("[data-verdict]")).to_have_count(3)
    expect(page.locator("figure.chart")).not_to_have_count(0)

    shots(open_page, user, simulator.url + suite_run.get_absolute_url(), "run")

    # A thumbnail opens that sample's comparison.
    thumb = cells.nth(0).locator("a.suite-thumb").first
    href = thumb.get_attribute("href") or ""
    thumb.click()
    page.wait_for_url(f"**{href}")
    run = Run.objects.get(pk=href.strip("/").split("/")[-1])
    assert run.suite_run_id == suite_run.pk and run.suite_case == 0
    expect(page.locator("p.prompt-full")).to_have_text(CASES[0][1])  # the compare stage of that sample
    expect(page.get_by_role("heading", name="GPT Image 2")).to_be_visible()


def test_two_suite_runs_compared_in_the_browser(open_page, simulator, user):
    suite = Suite.objects.create(name="Reference")
    before = plant(user, {}, suite=suite, samples=5)
    after = plant(user, {(0, GPT[0]): [{"check_status": "failed"}] * 5}, suite=suite, samples=5)
    page = open_page(user, viewport=PHONE)
    page.goto(simulator.url + after.get_absolute_url())
    page.get_by_role("link", name=re.compile(r"^Reference v1")).first.click()
    page.wait_for_url(re.compile(rf"/suite-runs/compare\?a={before.pk}&b={after.pk}$"))
    changed = page.locator("[data-changed]")
    expect(changed).to_have_count(1)
    expect(changed).to_have_text("changed: worse")
    expect(page.locator("tr.changed")).to_contain_text("Poster")
    # Nothing wider than the phone's screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shots(open_page, user, page.url, "compare")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_suite_pages_pass_the_accessibility_scan(open_page, simulator, user, scheme):
    suite = Suite.objects.create(name="Reference")
    before = plant(user, {}, suite=suite, samples=3)
    running = {"status": "queued", "check_status": "", "waiting_for": "Waiting for GPT Image 2's rate limit."}
    after = plant(user, {(0, GPT[0]): [{"check_status": "failed"}, running, running]}, suite=suite, samples=3)
    found = {}
    for viewport in (LAPTOP, PHONE):
        page = open_page(user, viewport=viewport, color_scheme=scheme)
        for url in (after.get_absolute_url(), f"/suite-runs/compare?a={before.pk}&b={after.pk}"):
            page.goto(simulator.url + url)
            # Thumbnails load lazily: bring each into view once, so `settle` finds every image loaded.
            for thumb in page.locator("img[loading=lazy]").all():
                thumb.scroll_into_view_if_needed()
            page.evaluate("window.scrollTo(0, 0)")
            settle(page)
            if problems := severe_violations(page):
                found[f"{url} at {viewport['width']} px"] = problems
    assert found == {}, found


def test_the_clock_ticks_while_the_poll_has_nothing_new(open_page, simulator, user):
    queued = {"status": "queued", "check_status": "", "waiting_for": "Waiting for GPT Image 2's rate limit."}
    suite_run = plant(user, {(0, GPT[0]): [queued]}, samples=1)
    page = open_page(user, viewport=PHONE)
    page.goto(simulator.url + suite_run.get_absolute_url())
    progress = page.locator("#suite-progress")
    stamp, elapsed = progress.get_attribute("data-stamp"), page.locator("#suite-progress .elapsed")
    first = elapsed.inner_text()
    assert re.fullmatch(r"\d+:\d\d", first)
    # The poll answers 204 (nothing changed), so the clock moves by static/suite_run.js alone.
    expect(elapsed).not_to_have_text(first, timeout=5_000)
    assert re.fullmatch(r"\d+:\d\d", elapsed.inner_text())
    assert progress.get_attribute("data-stamp") == stamp

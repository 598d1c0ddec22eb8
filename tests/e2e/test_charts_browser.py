"""The charts (compare/charts.py) in Chromium: on the leaderboard, scorecard and history
they are drawn with a real size at 1440×900 and at 390×844 without widening the page,
break no CSP rule (a violation is a console error, which `open_page` turns into a failure),
and in dark mode their text is light on a dark card.

Set COMPARE_SHOTS to a folder to keep a screenshot of each page at each size
(`charts-<page>-<laptop|phone|dark>.png`)."""

import os
from pathlib import Path

import pytest
from playwright.sync_api import Page

from compare.models import Criterion, Rating, Vote
from tests.e2e.site import LAPTOP, PHONE
from tests.e2e.test_layout import overflow
from tests.factories import GPT, MINI, NANO, make_run, make_user

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SHOTS = os.environ.get("COMPARE_SHOTS", "")
PAGES = {"leaderboard": "/leaderboard", "scorecard": "/scorecard", "history": "/runs/"}
LONG = ("gateway-model", "A gateway model with a very long display name indeed", "gw-1")

# Each chart's drawing: its size, and the computed colours of its text and of its card.
MEASURE = """() => [...document.querySelectorAll('figure.chart')].map(fig => {
  const svg = fig.querySelector('svg[role=img]'), box = svg.getBoundingClientRect();
  const label = svg.querySelector('text.label, text.panel-name');
  return {title: fig.querySelector('.chart-title').textContent, width: box.width, height: box.height,
          right: box.right, text: getComputedStyle(label).fill, card: getComputedStyle(fig).backgroundColor};
})"""


def luminance(css: str) -> float:
    """Relative luminance of an "rgb(r, g, b)" colour (WCAG)."""
    r, g, b = (int(v) / 255 for v in css[css.index("(") + 1 : css.index(")")].split(",")[:3])

    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)


@pytest.fixture
def charted(user):
    """Votes, ratings and latencies across three models (one with a long name), over a few days."""
    other = make_user("lee")
    # (A transactional test empties the tables, the migration's default criteria included.)
    usable, _ = Criterion.objects.get_or_create(name="Usable as delivered", defaults={"is_usability": True})
    text, _ = Criterion.objects.get_or_create(name="Text accuracy")
    for i in range(9):
        models = (GPT, NANO, LONG if i % 3 == 0 else MINI)
        run = make_run(user, models=models, images=1, days_ago=i % 4, latency_ms=4000 + 2500 * (i % 5), cost_usd="0.04")
        gens = list(run.generations.order_by("position"))
        Vote.objects.create(run=run, user=user, verdict=Vote.Verdict.BETTER, winner=gens[i % 2])
        for gen, stars in zip(gens, (5, 3), strict=False):
            Rating.objects.create(generation=gen, user=other, criterion=usable, stars=stars - (i % 2))
            Rating.objects.create(generation=gen, user=other, criterion=text, stars=max(1, stars - 2 + (i % 3)))
    for i in range(4):
        run = make_run(user, models=(GPT, LONG), images=1, days_ago=i, latency_ms=9000 + 1000 * i, cost_usd="0.07")
        Vote.objects.create(run=run, user=user, verdict=Vote.Verdict.BETTER, winner=run.generations.get(position=i % 2))


def visit(page: Page, base: str, name: str, size: str) -> list[dict]:
    page.goto(base + PAGES[name])
    # Not `settle`: the history's thumbnails far below the fold load lazily, only when scrolled to.
    page.wait_for_load_state("load")
    # The history's chart follows the list (htmx, on load): wait for it to take its slot.
    page.wait_for_function("() => !document.querySelector('.chart-loading')")
    page.evaluate("document.fonts.ready.then(() => new Promise(r => requestAnimationFrame(() => r(true))))")
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"charts-{name}-{size}.png"), full_page=True)
    return page.evaluate(MEASURE)


@pytest.mark.parametrize("size", ["laptop", "phone"])
def test_charts_are_drawn_and_fit_the_screen(open_page, simulator, user, charted, size):
    viewport = LAPTOP if size == "laptop" else PHONE
    page = open_page(user, viewport=viewport)
    expected = {"leaderboard": 4, "scorecard": 1, "history": 1}
    for name, count in expected.items():
        charts = visit(page, simulator.url, name, size)
        assert len(charts) == count, (name, charts)
        for chart in charts:
            assert chart["width"] > 200 and chart["height"] > 60, (name, chart)
        found = overflow(page)
        assert found["scrollWidth"] <= found["clientWidth"], (name, found)


def test_dark_mode_draws_light_text_on_a_dark_card(open_page, simulator, user, charted):
    page = open_page(user, viewport=PHONE, color_scheme="dark")
    for name in PAGES:
        for chart in visit(page, simulator.url, name, "dark"):
            assert luminance(chart["text"]) > 0.6 and luminance(chart["card"]) < 0.05, (name, chart)
    light = open_page(user, viewport=PHONE)
    for chart in visit(light, simulator.url, "leaderboard", "light"):
        assert luminance(chart["text"]) < 0.05 and luminance(chart["card"]) > 0.9, chart


# The heat maps' column headings, each line of each, as drawn: [column, left, right, top, bottom].
HEADINGS = """() => [...document.querySelectorAll('svg.heat-svg')].map(svg =>
  [...svg.querySelectorAll('text.col-name')].flatMap((text, column) =>
    [...text.querySelectorAll('tspan')].map(line => {
      const box = line.getBoundingClientRect();
      return [column, box.left, box.right, box.top, box.bottom];
    })))"""


@pytest.mark.parametrize("size", ["laptop", "phone"])
def test_the_heat_maps_column_headings_keep_apart(open_page, filled_site, staff, size):
    # "GPT Image 1" ran into "Nano Banana" above the head-to-head matrix (the filled site
    # ranks them side by side): two names read as one.
    seen = 0
    page = open_page(staff, viewport=LAPTOP if size == "laptop" else PHONE)
    for name in ("leaderboard", "scorecard"):
        visit(page, filled_site.base, name, size)
        for lines in page.evaluate(HEADINGS):
            assert len({column for column, *_ in lines}) >= 2, (name, lines)
            for a in lines:
                for b in lines:
                    if a[0] < b[0] and a[3] < b[4] and b[3] < a[4]:  # side by side
                        seen += 1
                        assert b[1] - a[2] >= 8, (name, a, b)
    assert seen

"""Every page on a phone (390×844), empty and filled: nothing is wider than the screen; and
on the run page the sides are tabs that swipe, with the verdict always in reach.

The pages and what fills them are in tests/e2e/site.py. Set COMPARE_SHOTS to a folder to
also save a screenshot of every page visited, at phone and laptop size, light and dark
(`layout-<empty|filled>-<page>-<phone|laptop|dark|laptop-dark>.png`)."""

import os
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from compare.models import Run, Vote
from tests.e2e.site import LAPTOP, PHONE, Site, settle
from tests.factories import BOTH, make_run, make_user, wait_for_generations

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SHOTS = os.environ.get("COMPARE_SHOTS", "")

# How wide the page is, and the elements that stick out of it: not those clipped by a box
# that scrolls or clips sideways on purpose (a table's box, the row of sides) — but only a
# box on the element's containing-block chain clips it, as in CSS.
OVERFLOW = """() => {
  const root = document.documentElement, width = root.clientWidth;
  const clips = (box) => /(auto|scroll|hidden|clip)/.test(getComputedStyle(box).overflowX);
  const clipped = (el) => {
    let mode = getComputedStyle(el).position;
    for (let p = el.parentElement; p && p !== root; p = p.parentElement) {
      const s = getComputedStyle(p);
      const holds = s.transform !== 'none' || s.contain !== 'none';
      if (mode === 'fixed' && !holds) continue;
      if (mode === 'absolute' && s.position === 'static' && !holds) continue;
      if (clips(p) && p.getBoundingClientRect().right <= width + 0.5) return true;
      mode = s.position === 'absolute' || s.position === 'fixed' ? s.position : 'static';
    }
    return false;
  };
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (typeof el.className === 'string' && el.className.trim() ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
  const wide = [...document.body.querySelectorAll('*')]
    .filter(el => { const r = el.getBoundingClientRect(); return r.width && r.right > width + 0.5 && !clipped(el); })
    .slice(0, 6).map(el => name(el) + ' right=' + Math.round(el.getBoundingClientRect().right));
  return {scrollWidth: root.scrollWidth, clientWidth: width, wide};
}"""


def overflow(page: Page) -> dict:
    return page.evaluate(OVERFLOW)


def shoot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"layout-{name}.png"), full_page=True)
        page.screenshot(path=str(Path(SHOTS) / f"layout-{name}-fold.png"))  # what the screen shows first


def visit_every_page(open_page, site: Site, state: str, user: User) -> dict[str, dict]:
    """Open each page at 390×844 (and, with COMPARE_SHOTS, at 1440×900 and in dark mode);
    return the pages wider than the screen, with what sticks out."""
    too_wide = {}
    sizes: list[tuple[str, dict[str, object]]] = [("phone", {"viewport": PHONE})]
    if SHOTS:
        sizes += [("laptop", {"viewport": LAPTOP}), ("dark", {"viewport": PHONE, "color_scheme": "dark"})]
        sizes += [("laptop-dark", {"viewport": LAPTOP, "color_scheme": "dark"})]
    for size, options in sizes:
        page = open_page(user, **options)
        for name, path in site.pages.items():
            page.goto(site.base + path)
            settle(page)
            shoot(page, f"{state}-{name}-{size}")
            if size == "phone" and (found := overflow(page))["scrollWidth"] > found["clientWidth"]:
                too_wide[f"{name} ({page.url})"] = found
        # Logged out: the login page.
        logged_out = open_page(None, **options)
        logged_out.goto(site.base + "/login/")
        settle(logged_out)
        shoot(logged_out, f"{state}-login-{size}")
        if size == "phone" and (found := overflow(logged_out))["scrollWidth"] > found["clientWidth"]:
            too_wide["login"] = found
    return too_wide


def report(too_wide: dict[str, dict]) -> str:
    return "\n".join(
        f"{page}: {found['scrollWidth']} px wide for {found['clientWidth']}; sticking out: {', '.join(found['wide'])}"
        for page, found in too_wide.items()
    )


def test_no_page_is_wider_than_a_phone_when_empty(open_page, empty_site, staff):
    too_wide = visit_every_page(open_page, empty_site, "empty", staff)
    assert not too_wide, report(too_wide)


def test_no_page_is_wider_than_a_phone_when_filled(open_page, filled_site, staff):
    too_wide = visit_every_page(open_page, filled_site, "filled", staff)
    assert not too_wide, report(too_wide)


# Each filter bar's controls (selects, date fields, the Apply button), grouped by the row they sit on.
FILTER_ROWS = """(bar) => {
  const rows = {};
  for (const el of document.querySelectorAll(`${bar} select, ${bar} input[type=date], ${bar} button`)) {
    const box = el.getBoundingClientRect();
    (rows[Math.round(box.bottom)] ??= []).push([el.name || el.textContent.trim(), Math.round(box.top), Math.round(box.height)]);
  }
  return Object.values(rows);
}"""


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_the_filter_bars_controls_line_up(open_page, filled_site, staff, viewport):
    # Chromium draws a date field taller than a select: side by side, their tops and labels were 5 px apart.
    page = open_page(staff, viewport=viewport)
    for path, bar in [("/runs/", ".history-filters"), ("/leaderboard", ".board-filters")]:
        page.goto(filled_site.base + path)
        rows = page.evaluate(FILTER_ROWS, bar)
        assert sum(len(row) for row in rows) >= 4, (path, rows)
        for row in rows:
            assert len({(top, height) for _, top, height in row}) == 1, (path, row)


def in_view(box, viewport=PHONE) -> bool:
    return (
        box is not None
        and box["x"] >= -0.5
        and box["y"] >= -0.5
        and box["x"] + box["width"] <= viewport["width"] + 0.5
        and box["y"] + box["height"] <= viewport["height"] + 0.5
    )


def swipe(page: Page, target, dx: int) -> None:
    """A finger's sideways swipe across `target`: touch start, ten moves, touch end."""
    box = target.bounding_box()
    x, y = box["x"] + box["width"] / 2 - dx / 2, box["y"] + box["height"] / 2
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    for step in range(1, 11):
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x + dx * step / 10, "y": y}]})
        page.wait_for_timeout(16)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def test_on_a_phone_the_sides_are_tabs_that_swipe_and_the_verdict_stays_in_reach(
    open_page, simulator, user, auth_client
):
    data = {"prompt": 'A poster that says "Fresh Bread"', "models": BOTH, "aspect_ratio": "16:9", "resolution": "2K"}
    assert auth_client.post("/", data).status_code == 302
    run = Run.objects.get()
    wait_for_generations(run)
    page = open_page(user, has_touch=True, is_mobile=True)
    page.goto(simulator.url + run.get_absolute_url())
    settle(page)
    assert (found := overflow(page))["scrollWidth"] <= found["clientWidth"], found

    tabs = page.get_by_role("tablist", name="Sides").get_by_role("tab")
    expect(tabs).to_have_text(["GPT Image 2", "Nano Banana Pro"])
    expect(tabs.nth(0)).to_have_attribute("aria-selected", "true")
    panes = page.locator("article.pane")
    # One side fills the screen; the other waits beside it, off screen.
    a, b = panes.nth(0).bounding_box(), panes.nth(1).bounding_box()
    assert a["x"] >= 0 and a["x"] + a["width"] <= PHONE["width"] and b["x"] >= a["x"] + a["width"]
    # The verdict is on the first screen, without scrolling: sticky at the bottom.
    assert in_view(page.locator(".verdict-bar").bounding_box())
    expect(page.get_by_role("button", name=re.compile("^Right better"))).to_be_in_viewport()

    tabs.nth(1).click()
    page.wait_for_function(
        "() => Math.abs(document.querySelectorAll('article.pane')[1].getBoundingClientRect().x - 16) < 2"
    )
    expect(tabs.nth(1)).to_have_attribute("aria-selected", "true")
    expect(tabs.nth(0)).to_have_attribute("aria-selected", "false")

    # A swipe to the right on the side's header brings side A back, and its tab follows.
    swipe(page, panes.nth(1).locator(".pane-head"), 300)
    expect(tabs.nth(0)).to_have_attribute("aria-selected", "true")
    page.wait_for_function(
        "() => Math.abs(document.querySelectorAll('article.pane')[0].getBoundingClientRect().x - 16) < 2"
    )

    # Arrow keys move between the tabs, as in any tab list.
    tabs.nth(0).focus()
    page.keyboard.press("ArrowRight")
    expect(tabs.nth(1)).to_be_focused()
    expect(tabs.nth(1)).to_have_attribute("aria-selected", "true")
    page.wait_for_function(
        "() => Math.abs(document.querySelectorAll('article.pane')[1].getBoundingClientRect().x - 16) < 2"
    )

    # Deep in side B's ratings the verdict is still on screen, and a vote from there counts.
    panes.nth(1).locator(".ratings").scroll_into_view_if_needed()
    assert in_view(page.locator(".verdict-bar").bounding_box())
    page.get_by_role("button", name=re.compile("^Right better")).click()
    expect(page.get_by_role("button", name=re.compile("^Right better"))).to_have_attribute("aria-pressed", "true")
    assert Vote.objects.values_list("winner__position", flat=True).get(run=run) == 1
    expect(tabs).to_have_text(["GPT Image 2", "Nano Banana Pro ✓"])
    assert (found := overflow(page))["scrollWidth"] <= found["clientWidth"], found

    # A tablet held upright: still tabs, a side as wide as the screen allows.
    page.set_viewport_size({"width": 768, "height": 1024})
    expect(tabs.nth(1)).to_be_visible()
    assert (found := overflow(page))["scrollWidth"] <= found["clientWidth"], found
    # From 900 px the sides stand side by side again, and the tabs are gone.
    page.set_viewport_size(LAPTOP)
    expect(page.get_by_role("tablist", name="Sides")).to_be_hidden()
    a, b = panes.nth(0).bounding_box(), panes.nth(1).bounding_box()
    assert a["y"] == b["y"] and a["x"] + a["width"] < b["x"] and b["x"] + b["width"] <= LAPTOP["width"]


def test_blind_sides_are_tabs_a_and_b_and_keep_their_place_when_named(open_page, simulator, user):
    lee = make_user("lee")
    run = make_run(lee, "an EV infographic, judged blind", blind=True, images=1)
    page = open_page(user, has_touch=True, is_mobile=True)
    page.goto(simulator.url + "/judge")
    expect(page).to_have_url(re.compile(re.escape(run.get_absolute_url())))
    settle(page)
    tabs = page.get_by_role("tablist", name="Sides").get_by_role("tab")
    expect(tabs).to_have_text(["Side A", "Side B"])
    tabs.nth(1).click()
    expect(tabs.nth(1)).to_have_attribute("aria-selected", "true")
    page.wait_for_function(
        "() => Math.abs(document.querySelectorAll('article.pane')[1].getBoundingClientRect().x - 16) < 2"
    )
    page.get_by_role("button", name=re.compile("^B better")).click()
    # The names appear on the tabs where the letters were; side B stays selected and in view.
    b = run.generations.get(blind_position=1)
    expect(tabs.nth(1)).to_have_text(re.compile(rf"{b.model_label} ✓$"))
    expect(tabs.nth(1)).to_have_attribute("aria-selected", "true")
    assert abs(page.locator("article.pane").nth(1).bounding_box()["x"] - 16) < 2
    assert Vote.objects.get(run=run).winner == b

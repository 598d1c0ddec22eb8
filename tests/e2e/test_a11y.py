"""An automated accessibility scan (axe-core, bundled by the PyPI package
axe-playwright-python) of every page, empty and filled (tests/e2e/site.py), at laptop and
phone size, in light and in dark mode: no serious or critical violation (contrast, names
and labels, landmarks, duplicate ids, ARIA, focusable scroll boxes).

axe is injected with Playwright's `page.evaluate`, which runs outside the page's
Content-Security-Policy, so the strict CSP stays as it is in production. The admin's
pages are Django's own and are not scanned."""

import re

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from compare.models import Criterion, Run, Vote
from compare.runs import cast_vote
from tests.e2e.site import LAPTOP, PHONE, Site, settle
from tests.factories import BOTH, make_run

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

AXE = Axe()
SEVERE = ("serious", "critical")


def severe_violations(page: Page) -> list[str]:
    """axe's serious and critical findings on the page as it is now, one line per element."""
    found = []
    for violation in AXE.run(page).response["violations"]:
        if violation["impact"] not in SEVERE:
            continue
        for node in violation["nodes"]:
            detail = " ".join(node.get("failureSummary", "").split())
            found.append(f"{violation['id']} ({violation['impact']}) at {node['target']}: {detail}")
    return found


def scan_every_page(open_page, site: Site, user, scheme: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for viewport in (LAPTOP, PHONE):
        page = open_page(user, viewport=viewport, color_scheme=scheme)
        for name, path in site.pages.items():
            if name.startswith("admin"):
                continue
            page.goto(site.base + path)
            settle(page)
            if problems := severe_violations(page):
                found[f"{name} at {viewport['width']} px ({page.url})"] = problems
        logged_out = open_page(None, viewport=viewport, color_scheme=scheme)
        logged_out.goto(site.base + "/login/")
        settle(logged_out)
        if problems := severe_violations(logged_out):
            found[f"login at {viewport['width']} px"] = problems
    return found


def report(found: dict[str, list[str]]) -> str:
    return "\n".join(f"{page}:\n  " + "\n  ".join(problems) for page, problems in found.items())


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_empty_pages_pass_an_accessibility_scan(open_page, empty_site, staff, scheme):
    found = scan_every_page(open_page, empty_site, staff, scheme)
    assert not found, report(found)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_filled_pages_pass_an_accessibility_scan(open_page, filled_site, staff, scheme):
    found = scan_every_page(open_page, filled_site, staff, scheme)
    assert not found, report(found)


def luminance(colour: str) -> float:
    """Relative luminance (WCAG 2.2) of a computed CSS colour, "rgb(r, g, b)"."""
    channels = [int(c) / 255 for c in re.findall(r"[\d.]+", colour)[:3]]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


# What axe does not measure: the boundary of a control and an empty star against what is
# around them (3:1), and text on the grey image surround or on an accent fill (4.5:1).
COLOURS = """() => {
  const style = (selector) => getComputedStyle(document.querySelector(selector));
  const empty = [...document.querySelectorAll('.stars label')].find(l => !l.querySelector('input:checked'));
  return {
    page: style('body').backgroundColor,
    surface: style('article.pane').backgroundColor,
    surround: style('.pane-body').backgroundColor,
    caption: style('.result figcaption').color,
    input: style('#tag-add').borderTopColor,
    select: style('#note-about').borderTopColor,
    star: getComputedStyle(empty).webkitTextStrokeColor,
    chosen: style('.vote.chosen').color,
    chosenFill: style('.vote.chosen').backgroundColor,
  };
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_control_edges_empty_stars_captions_and_accent_buttons_have_enough_contrast(
    open_page, simulator, staff, scheme
):
    Criterion.objects.get_or_create(name="Text rendering", defaults={"description": "Small text is legible"})
    run = make_run(staff, "a poster", images=1)
    cast_vote(run, staff, Vote.Verdict.BETTER, run.generations.get(position=1))
    page = open_page(staff, viewport=LAPTOP, color_scheme=scheme)
    page.goto(simulator.url + run.get_absolute_url())
    settle(page)
    c = page.evaluate(COLOURS)
    assert contrast(c["caption"], c["surround"]) >= 4.5, c  # was 3.4:1
    for edge in ("input", "select", "star"):  # were 1.4:1
        assert contrast(c[edge], c["surface"]) >= 3 and contrast(c[edge], c["page"]) >= 3, (edge, c)
    assert contrast(c["chosen"], c["chosenFill"]) >= 4.5, c  # was 2.4:1 in dark mode

    page.goto(simulator.url + "/")
    primary = page.get_by_role("button", name="Compare")
    fg, bg = primary.evaluate("b => [getComputedStyle(b).color, getComputedStyle(b).backgroundColor]")
    assert contrast(fg, bg) >= 4.5, (fg, bg)
    prompt = page.get_by_label("Prompt").evaluate("t => getComputedStyle(t).borderTopColor")
    assert contrast(prompt, c["page"]) >= 3, prompt


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_run_page_passes_while_generating_in_every_stage_mode_and_in_the_viewer(
    open_page, simulator, staff, auth_client, settings, scheme
):
    settings.COMPARE_SIMULATOR_LATENCY = 1.5  # long enough to scan the page while the models work
    data = {"prompt": 'A poster that says "Fresh Bread"', "models": BOTH, "aspect_ratio": "16:9", "resolution": "2K"}
    assert auth_client.post("/", data).status_code == 302
    run = Run.objects.get()
    found: dict[str, list[str]] = {}
    page = open_page(staff, viewport=LAPTOP, color_scheme=scheme)
    page.goto(simulator.url + run.get_absolute_url())
    expect(page.locator("[data-status=running]").first).to_be_attached()
    found["generating"] = severe_violations(page)
    expect(page.locator(".panes .stage-frame figure.is-selected img")).to_have_count(2, timeout=30_000)
    settle(page)
    for mode in ("Side by side", "Swipe", "Onion skin", "Difference", "Blink", "Loupe"):
        page.get_by_role("button", name=re.compile(f"^{mode}")).click()
        found[mode] = severe_violations(page)
    page.get_by_role("button", name=re.compile("^Full screen")).click()
    expect(page.locator("dialog[open]")).to_be_visible()
    found["viewer"] = severe_violations(page)
    found = {state: problems for state, problems in found.items() if problems}
    assert not found, report(found)

"""The suite editor in a real browser: create a suite, add and edit a case, reorder, delete
after a confirmation; the pages fit a phone and show no console error (a CSP violation
would be one). Set COMPARE_SHOTS to a folder to save screenshots of the list and suite
pages at laptop and phone size, light and dark (`suites-<page>-<size>.png`)."""

import os
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from compare.suites import builtin, edits
from compare.suites.models import Suite
from tests.e2e.site import LAPTOP, PHONE, settle
from tests.factories import password_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SHOTS = os.environ.get("COMPARE_SHOTS", "")
WIDEST = "() => Math.max(...[...document.querySelectorAll('body *')].map(e => e.getBoundingClientRect().right))"


def shoot(page: Page, name: str) -> None:
    if SHOTS:
        settle(page)
        page.screenshot(path=str(Path(SHOTS) / f"suites-{name}.png"), full_page=True)


def test_edit_a_suite_in_the_browser(open_page, simulator, user):
    builtin.install(Suite)
    page = open_page(user)
    page.goto(simulator.url + "/suites/")
    page.get_by_text("New suite", exact=True).click()
    page.get_by_label("Name").fill("Spring posters")
    page.get_by_role("button", name="Create and add cases").click()
    expect(page.get_by_role("heading", name="Spring posters")).to_be_visible()

    # The add form is open on an empty suite.
    page.get_by_label("Prompt").fill('A red and gold poster with the headline "新春钜惠 全场 8 折"')
    page.get_by_label("Title").fill("Chinese sale poster")
    page.get_by_label("Tags").fill("poster zh")
    page.get_by_role("button", name="Add case").click()
    expect(page.get_by_text("the suite is now version 2")).to_be_visible()

    page.get_by_text("Add a case").click()
    page.get_by_label("Prompt").fill('A dashboard titled "Analytics Dashboard"')
    page.locator("#add-case .case-options summary").click()
    page.locator("#add-quality").select_option("high")
    page.get_by_role("button", name="Add case").click()
    expect(page.get_by_text("Quality High")).to_be_visible()

    page.get_by_role("button", name="Move case 2 up").click()
    expect(page.locator(".suite-case h3").first).to_contain_text("Untitled case")

    page.get_by_role("link", name="Edit case 2").click()
    page.locator("#edit-title").fill("Sale poster")
    page.get_by_role("button", name="Save case").click()
    expect(page.get_by_text("Sale poster")).to_be_visible()

    assert page.evaluate(WIDEST) <= PHONE["width"] + 0.5
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete case 1").click()
    expect(page.locator(".suite-case")).to_have_count(1)
    expect(page.get_by_text("version 6", exact=True)).to_be_visible()


@pytest.mark.skipif(not SHOTS, reason="set COMPARE_SHOTS to a folder to take the screenshots")
def test_screenshots(open_page, simulator, user):
    suite = builtin.install(Suite)
    shots: list[tuple[str, dict[str, Any]]] = [
        ("laptop", {"viewport": LAPTOP}),
        ("phone", {"viewport": PHONE}),
        ("laptop-dark", {"viewport": LAPTOP, "color_scheme": "dark"}),
        ("phone-dark", {"viewport": PHONE, "color_scheme": "dark"}),
    ]
    for size, options in shots:
        page = open_page(user, **options)
        page.goto(simulator.url + "/suites/")
        shoot(page, f"list-{size}")
        page.goto(simulator.url + suite.get_absolute_url())
        shoot(page, f"suite-{size}")
        copy = simulator.url + f"/suites/{suite.pk}/"
        page.goto(copy)
        page.get_by_role("button", name="Duplicate to edit").click()
        page.get_by_role("link", name="Edit case 1").click()
        page.locator(".suite-case .case-options summary").click()
        shoot(page, f"edit-{size}")
        assert page.evaluate(WIDEST) <= options["viewport"]["width"] + 0.5


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_suite_pages_pass_the_accessibility_scan(open_page, simulator, user, scheme):
    from tests.e2e.test_a11y import severe_violations

    suite = builtin.install(Suite)
    copy = edits.duplicate(suite, user)
    case = copy.cases.first()
    assert case is not None
    found = {}
    for viewport in (LAPTOP, PHONE):
        page = open_page(user, viewport=viewport, color_scheme=scheme)
        for path in ["/suites/", suite.get_absolute_url(), f"{copy.get_absolute_url()}?edit={case.pk}"]:
            page.goto(simulator.url + path)
            folded = page.locator("details:not([open]) > summary")
            while folded.count():
                folded.first.click()  # the folded forms too (new suite, import, options, add a case)
            settle(page)
            if problems := severe_violations(page):
                found[f"{path} at {viewport['width']} px"] = problems
    assert found == {}


@pytest.mark.skipif(not SHOTS, reason="set COMPARE_SHOTS to a folder to take the screenshots")
def test_screenshot_of_import_problems(browser, simulator, user):
    """Its own context: the 422 of the refused upload is logged by the browser as a console
    error, which `open_page` rightly counts as a failure elsewhere."""
    shots: list[tuple[str, dict[str, Any]]] = [
        ("laptop", {"viewport": LAPTOP}),
        ("phone-dark", {"viewport": PHONE, "color_scheme": "dark"}),
    ]
    for size, options in shots:
        context = browser.new_context(**options)
        page = context.new_page()
        page.goto(simulator.url + "/login/")
        page.get_by_label("Username").fill(user.get_username())
        page.get_by_label("Password").fill(password_for(user.get_username()))
        page.get_by_role("button", name="Log in").click()
        page.goto(simulator.url + "/suites/")
        page.locator("#import-suite summary").click()
        bad = b"name: x\ncases:\n  - {prompt: a, options: {quality: ultra, aspect_ratio: 3:4}}\n  - {title: 5}\n"
        page.get_by_label("Suite file").set_input_files({"name": "bad.yaml", "mimeType": "text/yaml", "buffer": bad})
        page.get_by_role("button", name="Import", exact=True).click()
        expect(page.get_by_text("case 2: 'prompt' is required")).to_be_visible()
        shoot(page, f"import-errors-{size}")
        context.close()

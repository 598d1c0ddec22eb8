"""The automatic checks on the run page in a real browser (Debian's chromium): the pane says
"Checking text…" while the check runs and shows its verdict without a reload; the details
mark the misread character; at phone width nothing pushes the page wide; no CSP error.
tests/test_checks_ui.py covers the server's side.

Set COMPARE_SHOTS to a folder to keep screenshots (`checks-<laptop|phone|dark>.png`)."""

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from compare.models import Generation, Run
from tests.e2e.site import LAPTOP, PHONE
from tests.factories import form_data

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SHOTS = os.environ.get("COMPARE_SHOTS")
PROMPT = (
    'A red sale poster with the headline "新春钜惠 全场 8 折" and the line "Analytics Dashboard" [[swap@openai:钜>巨]]'
)


@pytest.mark.parametrize(
    ("size", "options"),
    [
        ("laptop", {"viewport": LAPTOP}),
        ("phone", {"viewport": PHONE}),
        ("dark", {"viewport": LAPTOP, "color_scheme": "dark"}),
    ],
)
def test_the_pane_shows_the_check_live_and_marks_the_misread_character(
    open_page, simulator, user, auth_client, settings, size, options
):
    settings.COMPARE_SIMULATOR_LATENCY = 0.6  # long enough to open the page before the sides are done
    response = auth_client.post("/", form_data(PROMPT, regenerate="on"))
    assert response.status_code == 302
    run = Run.objects.latest("created_at")
    page = open_page(user, **options)
    page.goto(simulator.url + run.get_absolute_url())
    page.evaluate("window.__sameDocument = true")

    misread = run.generations.get(model_key="gpt-image-2")  # the first side: in view on a phone too
    checks = page.locator(f"#checks-{misread.id}")
    expect(checks.get_by_text("Text ✗ 1 of 2")).to_be_visible(timeout=60_000)
    good = page.locator(f"#checks-{run.generations.get(model_key='gemini-3-pro-image').id}")
    expect(good.get_by_text("Text ✓")).to_be_attached()
    assert page.evaluate("window.__sameDocument === true")  # no reload: the live poll brought it
    assert Generation.objects.get(pk=misread.pk).check_status == "failed"

    checks.get_by_text("Check details").click()
    expect(checks.locator("del", has_text="钜")).to_be_visible()
    expect(checks.locator("ins", has_text="巨")).to_be_visible()
    if size == "phone":
        wide = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert wide <= 0, f"the page is {wide} px wider than the phone"
    if SHOTS:
        checks.scroll_into_view_if_needed()
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"checks-{size}.png"), full_page=True)
        checks.screenshot(path=str(Path(SHOTS) / f"checks-{size}-block.png"))


def test_a_failed_text_check_brings_in_the_fallback_side_on_the_open_page(open_page, simulator, user, auth_client):
    prompt = 'A sale poster with the headline "新春钜惠 全场 8 折" [[swap@gemini:钜>巨]]'
    data = form_data(prompt, regenerate="on", fallback_model="gpt-image-2", fallback_on_text_check="on")
    assert auth_client.post("/", data).status_code == 302
    run = Run.objects.latest("created_at")
    page = open_page(user, viewport=LAPTOP)
    page.goto(simulator.url + run.get_absolute_url())
    # The check fails on one side, the page learns of the new side and shows it with the reason.
    expect(page.get_by_text("started because its text check failed")).to_be_visible(timeout=60_000)
    expect(page.locator("h2", has_text="GPT Image 2 (fallback for Nano Banana Pro)")).to_be_visible()
    page.get_by_text("Fairness ledger").click()
    expect(page.get_by_role("cell", name="for Nano Banana Pro: its text check failed")).to_be_visible()
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / "checks-fallback.png"), full_page=True)

"""The whole loop in a real browser: Debian's chromium driven by Playwright."""

import re

import pytest
from playwright.sync_api import expect

from compare.models import Note, Run, Vote
from tests.factories import png

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page(browser, simulator):
    # One chromium per module (tests/e2e/conftest.py); a fresh context per test.
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    yield page
    context.close()
    # A CSP violation, a script error or a failed htmx response would show here.
    # A request that htmx itself aborted (hx-sync replaced it) is expected, not an error.
    expected = ("htmx:sendAbort", "htmx:afterRequest")
    assert [e for e in errors if not e.startswith(expected)] == [], errors


def log_in(page, simulator) -> str:
    """Log in as the `user` fixture through the real login form; return the base URL."""
    base = simulator.url
    page.goto(base + "/")
    page.get_by_label("Username").fill("dana")
    page.get_by_label("Password").fill("pw-dana-123")
    page.get_by_role("button", name="Log in").click()
    return base


def test_compare_two_models_vote_note_and_find_it_in_history(page, simulator, user, settings):
    settings.COMPARE_SIMULATOR_LATENCY = 0.5  # long enough to see panes fill in live
    base = log_in(page, simulator)

    expect(page.get_by_role("heading", name="New comparison")).to_be_visible()
    page.get_by_label("Prompt").fill('A bakery poster that says "Fresh Bread"')
    expect(page.locator("input[name=models][value=gpt-image-2]")).to_be_checked()
    expect(page.locator("input[name=models][value=gemini-3-pro-image]")).to_be_checked()
    page.get_by_role("button", name="Compare").click()

    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]+/$"))
    # Mark the document: if the page reloads, the mark disappears.
    page.evaluate("document.body.dataset.sameDocument = 'yes'")
    panes = page.locator("article.pane")
    expect(panes).to_have_count(2)
    expect(panes.nth(0).locator("[data-status]")).to_have_attribute("data-status", re.compile("queued|running"))
    for index in range(2):
        expect(panes.nth(index).locator("[data-status]")).to_have_attribute("data-status", "succeeded", timeout=30_000)
        expect(panes.nth(index).locator("figure.result img")).to_be_visible()
        expect(panes.nth(index).locator("figcaption")).to_contain_text("×")
    assert page.evaluate("document.body.dataset.sameDocument") == "yes"

    page.get_by_role("button", name="Right better").click()
    expect(page.locator("#votes")).to_contain_text("Right better: 1")
    expect(page.get_by_role("button", name="Right better")).to_have_attribute("aria-pressed", "true")

    page.get_by_label("Note").fill("The right one has cleaner lettering")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator("#notes")).to_contain_text("The right one has cleaner lettering")
    expect(page.locator("#notes")).to_contain_text("dana")
    assert page.evaluate("document.body.dataset.sameDocument") == "yes"

    run = Run.objects.get()
    assert Vote.objects.values_list("verdict", "winner__position").get(run=run) == ("better", 1)
    assert Note.objects.get(run=run).body == "The right one has cleaner lettering"

    page.get_by_role("link", name="History").click()
    row = page.locator("li.history-row").filter(has_text="Fresh Bread")
    expect(row).to_have_count(1)
    expect(row.locator("img")).to_have_count(2)
    row.get_by_role("link", name=re.compile("Fresh Bread")).click()
    expect(page).to_have_url(base + run.get_absolute_url())


def test_reference_images_by_picker_and_drop_and_a_streamed_preview(page, simulator, user, settings):
    settings.COMPARE_SIMULATOR_LATENCY = 1.5  # GPT Image 2 takes 6 s: previews arrive well before
    log_in(page, simulator)

    page.get_by_label("Prompt").fill('A shop sign that says "Open"')
    page.locator("input[name=references]").set_input_files(
        files=[{"name": "red.png", "mimeType": "image/png", "buffer": png((220, 20, 20), (200, 200))}]
    )
    # Drop a second file onto the zone, the way a designer drags one from the desktop.
    page.evaluate(
        """async (bytes) => {
            const file = new File([new Uint8Array(bytes)], "blue.png", {type: "image/png"});
            const data = new DataTransfer();
            data.items.add(file);
            const zone = document.querySelector("[data-dropzone]");
            zone.dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
        }""",
        list(png((20, 20, 220), (200, 200))),
    )
    expect(page.locator("[data-picked] li")).to_have_count(2)
    expect(page.locator("[data-reference-count]")).to_have_value("2")
    page.get_by_label("Streamed previews").fill("2")
    page.get_by_label("Streamed previews").dispatch_event("change")
    page.get_by_role("button", name="Compare").click()

    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]+/$"))
    strip = page.get_by_label("Reference images")
    expect(strip.locator("img")).to_have_count(2)
    gpt = page.locator("article.pane").nth(0)
    expect(gpt.locator("figure.preview img")).to_be_visible(timeout=15_000)
    expect(gpt.locator("[data-status]")).to_have_attribute("data-status", "succeeded", timeout=30_000)
    expect(gpt.locator("figure.preview")).to_have_count(0)
    expect(gpt.locator("figure.result img")).to_be_visible()

    run = Run.objects.get()
    assert [r.name for r in run.references.order_by("position")] == ["red.png", "blue.png"]
    assert run.generations.get(position=0).images.filter(is_partial=True).count() == 2


def test_blind_vote_with_the_keyboard_then_the_names_are_revealed(page, simulator, user, settings):
    log_in(page, simulator)
    page.get_by_label("Prompt").fill("A blind taste test")
    page.get_by_label("Blind").check()
    page.get_by_role("button", name="Compare").click()
    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]+/$"))

    panes = page.locator("article.pane")
    expect(panes.nth(0).locator("h2")).to_have_text("Side A")
    expect(panes.nth(1).locator("h2")).to_have_text("Side B")
    for index in range(2):
        expect(panes.nth(index).locator("[data-status]")).to_have_attribute("data-status", "succeeded", timeout=30_000)
    main = page.locator("main").inner_text()
    assert "GPT Image 2" not in main and "Nano Banana Pro" not in main

    expect(page.get_by_role("button", name=re.compile("^B better"))).to_be_visible()  # letters, not left/right
    page.keyboard.press("2")  # "B better"
    # The vote reveals the names: the page shows them without a manual reload.
    expect(page.locator("article.pane h2").first).to_contain_text(
        re.compile("GPT Image 2|Nano Banana Pro"), timeout=10_000
    )
    run = Run.objects.get()
    vote = run.votes.get()
    right = max(run.generations.all(), key=lambda g: g.blind_position)
    assert vote.blind and vote.verdict == Vote.Verdict.BETTER and vote.winner == right
    expect(page.locator("#votes")).to_contain_text("B better: 1")
    expect(page.locator("article.pane h2").nth(1)).to_have_text(f"B · {right.model_label}")

    page.keyboard.press("0")  # change the vote to a tie
    expect(page.locator("#votes")).to_contain_text("Tie: 1")
    assert run.votes.values_list("verdict", "winner").get() == ("tie", None)


def test_ticking_models_turns_on_exactly_the_inputs_they_take(page, simulator, user, enable_models):
    """The options follow the ticked models at once: the markup input wakes up with GPT Image
    2.5, the mask goes to sleep when no ticked model takes one (both requests of a tick, the
    options and the estimate, arrive: neither cancels the other)."""
    enable_models("gpt-image-2.5-sunburst")
    base = log_in(page, simulator)
    page.goto(base + "/")
    markup, mask = page.locator("#id_markup"), page.locator("#id_mask")
    expect(markup).to_be_disabled()  # GPT Image 2 and Nano Banana Pro, the defaults: no markup
    expect(mask).to_be_enabled()
    page.get_by_role("checkbox", name=re.compile("GPT Image 2.5 Sunburst")).check()
    expect(markup).to_be_enabled()
    expect(page.locator("#summary")).to_contain_text("GPT Image 2.5 Sunburst")
    for name in ("GPT Image 2 ", "GPT Image 2.5 Sunburst"):
        page.get_by_role("checkbox", name=re.compile("^" + re.escape(name))).uncheck()
    expect(mask).to_be_disabled()  # Nano Banana Pro alone takes no mask
    expect(page.get_by_text("None of the chosen models takes a mask.")).to_be_visible()

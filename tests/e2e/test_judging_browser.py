"""Judging blind in a real browser (Debian's chromium driven by Playwright): a vote by
keyboard reveals the names on the sides where they were. The voted image keeps its
place to the pixel, stays marked as the pick, and the page never reloads; in the
Judge queue `n` then moves on to the next comparison.

With COMPARE_SHOTS=<directory> set, the tests also save screenshots of the pages
they look at (light and dark, 1440×900) there."""

import os
import re
import time
from pathlib import Path

import pytest
from django.test import Client
from playwright.sync_api import expect

from compare.judging import blind
from compare.models import Reveal, Run, Vote
from tests.e2e.test_browser import log_in
from tests.factories import BOTH, add_image, make_run, png, wait_for_generations

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LAPTOP = {"width": 1440, "height": 900}
SHOTS = os.environ.get("COMPARE_SHOTS", "")


@pytest.fixture
def open_page(open_page):
    """The shared open_page (tests/e2e/conftest.py: console errors fail the test), at laptop size unless told."""
    return lambda **options: open_page(**{"viewport": LAPTOP, **options})


def simulated_run(client, **fields) -> Run:
    """A 1:1 run of both flagships through the simulator (both deliver 1024×1024)."""
    data = {"prompt": 'A shop sign that says "Open"', "models": BOTH, "aspect_ratio": "1:1", "resolution": "1K"}
    response = client.post("/", {**data, **fields})
    assert response.status_code == 302, response.content.decode()[:500]
    run = Run.objects.latest("created_at")
    wait_for_generations(run)
    return run


def wait_for_images(page, original: bool) -> None:
    """Every side's compared image is loaded: display copies (blind) or the originals."""
    kind = "/images/" if original else "/sides/"
    page.wait_for_function(
        """kind => {
            const imgs = [...document.querySelectorAll('.panes .pane img')].filter(i => i.closest('[data-stage-viewport]'));
            return imgs.length >= 2 && imgs.every(i => i.complete && i.naturalWidth && i.src.includes(kind));
        }""",
        arg=kind,
    )


def first_image_box(page) -> dict:
    """Where side A's compared image is on screen, once the stage has stopped moving it."""
    script = """() => {
        const pane = document.querySelector('.panes .pane');
        const img = pane.querySelector('.stage-frame figure.is-selected img') || pane.querySelector('[data-stage-viewport] img');
        const r = img.getBoundingClientRect();
        return {x: r.x, y: r.y, width: r.width, height: r.height};
    }"""
    box, deadline = page.evaluate(script), time.monotonic() + 5
    while time.monotonic() < deadline:
        page.wait_for_timeout(150)
        again = page.evaluate(script)
        if again == box:
            return box
        box = again
    return box


def assert_same_place(before: dict, after: dict) -> None:
    for key in ("x", "y", "width", "height"):
        assert abs(before[key] - after[key]) <= 1, (key, before, after)


def shoot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


def test_a_blind_vote_by_keyboard_keeps_the_side_in_place_on_the_run_page(open_page, simulator, auth_client, user):
    run = simulated_run(auth_client, blind="on")
    for scheme in ("light", "dark") if SHOTS else ():
        look = open_page(color_scheme=scheme)
        log_in(look, simulator)
        look.goto(simulator.url + run.get_absolute_url())
        wait_for_images(look, original=False)
        shoot(look, f"blind-run-{scheme}")
    page = open_page()
    log_in(page, simulator)
    page.goto(simulator.url + run.get_absolute_url())
    wait_for_images(page, original=False)
    page.evaluate("document.body.dataset.sameDocument = 'yes'")  # a reload would drop it
    panes = page.locator("article.pane")
    expect(panes.nth(0).locator("h2")).to_have_text("Side A")
    expect(page.locator("[data-run-clock]")).to_contain_text("Both done")
    main = page.locator("main").inner_text()
    assert "GPT Image 2" not in main and "Nano Banana Pro" not in main and "1024×1024" not in main
    before = first_image_box(page)

    page.keyboard.press("1")  # "A better"
    expect(panes.nth(0).locator("h2")).to_have_text(re.compile(r"^A · (GPT Image 2|Nano Banana Pro)$"))
    wait_for_images(page, original=True)
    shoot(page, "debug-after")
    assert_same_place(before, first_image_box(page))
    expect(panes.nth(0)).to_have_class(re.compile(r"\bis-pick\b"))
    expect(panes.nth(0).locator("[data-pick-badge]")).to_be_visible()
    expect(panes.nth(1).locator("[data-pick-badge]")).to_be_hidden()
    expect(page.get_by_role("button", name=re.compile("^A better"))).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#votes")).to_contain_text("A better: 1")
    expect(panes.nth(0).locator("figcaption").first).to_contain_text("1024×1024")
    assert page.evaluate("document.body.dataset.sameDocument") == "yes"

    side_a = min(run.generations.all(), key=lambda g: g.blind_position)
    vote = Vote.objects.get(run=run)
    assert vote.blind and vote.winner == side_a
    expect(panes.nth(0).locator("h2")).to_have_text(f"A · {side_a.model_label}")
    shoot(page, "blind-run-after-vote")


def test_the_stage_note_names_sizes_once_a_blind_vote_reveals_them_without_a_reload(
    open_page, simulator, user, other_user
):
    run = make_run(other_user, "a wide and a tall poster", blind=True)
    gpt, nano = run.generations.order_by("position")
    add_image(gpt, png((200, 30, 30), (64, 48)))
    add_image(nano, png((30, 30, 200), (48, 64)))  # another shape: shown in its own shape even while blind
    page = open_page()
    log_in(page, simulator)
    page.goto(simulator.url + run.get_absolute_url())
    wait_for_images(page, original=False)
    page.evaluate("document.body.dataset.sameDocument = 'yes'")  # a reload would drop it
    note = page.locator("[data-stage-note]")
    expect(note).to_have_text("The sides differ in pixel size; they are shown at one scale.")

    page.keyboard.press("1")  # "A better": the panes are swapped in with the names
    expect(page.locator("article.pane h2").first).to_have_text(re.compile(r"^A · "))
    wait_for_images(page, original=True)
    named = {gen.model_label: f"{gen.images.get().width}×{gen.images.get().height}" for gen in (gpt, nano)}
    shown, _ = blind.prepare(Run.objects.get(pk=run.pk), user)
    expected = ", ".join(f"{gen.side} · {gen.model_label} {named[gen.model_label]}" for gen in shown)
    expect(note).to_have_text(f"Shown at one scale: {expected}.")
    expect(page.locator("[data-stage]")).not_to_have_attribute("data-blind", "")
    assert page.evaluate("document.body.dataset.sameDocument") == "yes"


def test_a_blind_vote_in_the_judge_queue_swaps_in_place_and_n_moves_on(open_page, simulator, user, other_user):
    author = Client()
    author.force_login(other_user)
    run = simulated_run(author)  # not blind: the Judge queue hides the names
    if SHOTS:
        look = open_page(color_scheme="dark")
        log_in(look, simulator)
        look.goto(simulator.url + "/judge")
        wait_for_images(look, original=False)
        shoot(look, "judge-queue-dark")
    page = open_page()
    log_in(page, simulator)
    page.goto(simulator.url + "/judge")
    expect(page).to_have_url(simulator.url + run.get_absolute_url() + "?arena=1")
    wait_for_images(page, original=False)
    shoot(page, "judge-queue-light")
    page.evaluate("document.body.dataset.sameDocument = 'yes'")
    panes = page.locator("article.pane")
    expect(panes.nth(0).locator("h2")).to_have_text("Side A")
    expect(page.locator(".queue-left")).to_have_text("(the last one in your queue)")
    before = first_image_box(page)

    page.keyboard.press("1")
    expect(panes.nth(0).locator("h2")).to_have_text(re.compile(r"^A · (GPT Image 2|Nano Banana Pro)$"))
    wait_for_images(page, original=True)
    assert_same_place(before, first_image_box(page))
    expect(panes.nth(0)).to_have_class(re.compile(r"\bis-pick\b"))
    expect(page.get_by_role("button", name=re.compile("^A better"))).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_role("link", name=re.compile("^Next comparison"))).to_be_visible()
    assert page.evaluate("document.body.dataset.sameDocument") == "yes"  # no reload in judge mode
    shown, _ = blind.prepare(Run.objects.get(pk=run.pk), user, arena=True)
    vote = Vote.objects.get(run=run, user=user)
    assert vote.blind and vote.winner == shown[0]
    shoot(page, "judge-queue-after-vote")

    page.keyboard.press("n")
    expect(page.get_by_role("heading", name="All judged")).to_be_visible()
    shoot(page, "judge-queue-all-judged")


def test_a_run_opened_with_the_names_shown_leaves_the_judge_queue(open_page, simulator, user, other_user):
    author = Client()
    author.force_login(other_user)
    run = simulated_run(author)
    page = open_page()
    log_in(page, simulator)
    page.goto(simulator.url + run.get_absolute_url())
    expect(page.locator("article.pane h2").first).to_have_text("GPT Image 2")
    # The page, not its GET, records that the names were seen: a POST once it has loaded.
    deadline = time.monotonic() + 10
    while not Reveal.objects.filter(run=run, user=user).exists():
        assert time.monotonic() < deadline, "the page did not report that the names were seen"
        time.sleep(0.1)
    page.goto(simulator.url + "/judge")
    expect(page.get_by_role("heading", name="Nothing to judge yet")).to_be_visible()
    expect(page.locator(".judge-facts")).to_contain_text("1 comparison left out: you have already seen its model names")

"""Every page on a phone (390×844), empty and filled: nothing is wider than the screen, and
on the run page the sides are tabs that swipe, with the verdict always in reach.

The pages are filled through the simulator (real images of two pixel sizes) and the
factories (votes, ratings, notes, tags, a token, a failed run, a blind run by someone else).
Set COMPARE_SHOTS to a folder to also save a screenshot of every page visited, at a
laptop size, a phone size and in dark mode (`layout-<state>-<page>-<size>.png`)."""

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, Page, expect, sync_playwright

from compare.models import ApiToken, Criterion, Generation, Note, Run, Vote
from compare.runs import cast_vote, rate
from tests.e2e.test_browser import CHROMIUM
from tests.factories import BOTH, GPT, MINI, NANO, make_run, make_user, password_for, png, wait_for_generations

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1440, "height": 900}
SHOTS = os.environ.get("COMPARE_SHOTS", "")

# A prompt with a long unbroken word and a long URL: the things that push a phone page wide.
LONG_PROMPT = (
    "A Chinese Spring Festival poster with the headline “新春快乐” in gold brush lettering, red lanterns, "
    "a horse in paper-cut style, and the small print https://example.com/a-very-long-campaign/landing-page?"
    "utm_source=poster&utm_campaign=spring-festival-2026 — supercalifragilisticexpialidocious-typography"
)


@dataclass
class Site:
    """What a test visits: the live server and the pages to look at, by name."""

    base: str
    pages: dict[str, str]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One chromium for the module (each page gets a fresh context)."""
    # Playwright's sync API runs an event loop in this thread; the ORM calls here are plain
    # synchronous test code.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as pw:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser, simulator):
    """open_page(user=None, **context options) → a page, logged in as `user` when given,
    whose console errors (a CSP violation, a script error) fail the test."""
    contexts, errors = [], []

    def open_(user: User | None = None, **options) -> Page:
        context = browser.new_context(**{"viewport": PHONE, **options})
        contexts.append(context)
        # The admin's pages have no icon link, so the browser asks for /favicon.ico (a 404).
        context.route("**/favicon.ico", lambda route: route.fulfill(status=204))
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        if user is not None:
            page.goto(simulator.url + "/login/")
            page.get_by_label("Username").fill(user.get_username())
            page.get_by_label("Password").fill(password_for(user.get_username()))
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_role("button", name="Log out")).to_be_attached()
        return page

    yield open_
    for context in contexts:
        context.close()
    expected = ("htmx:sendAbort", "htmx:afterRequest")
    assert [e for e in errors if not e.startswith(expected)] == [], errors


def nav_pages() -> dict[str, str]:
    """Every page of the top navigation, plus the admin's index (the user is staff)."""
    return {
        "new": "/",
        "history": "/runs/",
        "judge": "/judge",
        "leaderboard": "/leaderboard",
        "scorecard": "/scorecard",
        "tokens": "/settings/tokens",
        "status": "/status",
        "pair": "/compare/",
        "admin": "/admin/",
    }


@pytest.fixture
def staff(user) -> User:
    user.is_staff = user.is_superuser = True
    user.save()
    return user


@pytest.fixture
def empty_site(simulator, staff) -> Site:
    return Site(simulator.url, nav_pages())


@pytest.fixture
def filled_site(simulator, staff, auth_client) -> Site:
    """Runs, votes, ratings, notes, tags and a token, made the way users make them."""
    lee = make_user("lee")
    for name in ("Prompt adherence", "Text rendering", "Overall quality"):
        Criterion.objects.get_or_create(name=name, defaults={"description": f"How good the {name.lower()} is"})
    # A real run through the form and the simulator: two images of two pixel sizes, n=2,
    # a reference image, a text reply from Gemini, long tags.
    response = auth_client.post(
        "/",
        {
            "prompt": LONG_PROMPT,
            "models": BOTH,
            "aspect_ratio": "16:9",
            "resolution": "2K",
            "n": "2",
            "tags": "poster zh spring-festival-campaign-2026-long",
            "references": [_upload("reference-with-a-rather-long-file-name-for-the-poster.png")],
        },
    )
    assert response.status_code == 302, re.findall(r"class=\"error\"[^>]*>([^<]*)", response.content.decode())
    run = Run.objects.latest("created_at")
    gens = sorted(wait_for_generations(run), key=lambda g: g.position)
    assert all(g.status == Generation.Status.SUCCEEDED for g in gens), [(g.model_key, g.error_message) for g in gens]
    cast_vote(run, staff, Vote.Verdict.BETTER, gens[1])
    cast_vote(run, lee, Vote.Verdict.TIE)
    for criterion in Criterion.objects.all():
        rate(gens[0], staff, criterion, 4)
        rate(gens[1], staff, criterion, 2)
    Note.objects.create(run=run, author=staff, body="The right one has cleaner lettering; see " + "x" * 90)
    Note.objects.create(run=run, author=lee, generation=gens[0], body="The lanterns are off-centre.")
    # A failed side, a three-way run, and a blind run by someone else (the Judge queue serves it).
    make_run(staff, "a shop sign that says “Open”", status=["succeeded", "failed"], images=1, latency_ms=6100)
    three = make_run(staff, "three models, one prompt", models=(GPT, NANO, MINI), images=1, latency_ms=4200)
    cast_vote(three, lee, Vote.Verdict.BETTER, three.generations.get(position=2))
    make_run(lee, "an EV infographic with small print, judged blind", blind=True, images=1, latency_ms=5000)
    ApiToken.issue(staff, "nightly export script for the design team’s weekly review")
    pages = nav_pages()
    first = run.generations.get(position=0).images.get(index=0)
    second = run.generations.get(position=1).images.get(index=0)
    note = Note.objects.filter(run=run, author=staff).get()
    pages |= {
        "run": run.get_absolute_url(),
        "pair": f"/compare/?a={first.sha256}&b={second.sha256}",
        "image": f"/runs/{run.id}/images/{first.sha256}",
        "note": f"/runs/{run.id}/notes/{note.id}/edit",
        "admin-runs": "/admin/compare/run/",
    }
    return Site(simulator.url, pages)


def _upload(name: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, png((200, 40, 40), (300, 200)), content_type="image/png")


def settle(page: Page) -> None:
    """Wait for the page's own work: images decoded, the stage laid out, fonts in."""
    page.wait_for_load_state("load")
    page.wait_for_function("[...document.images].every(i => i.complete)")
    page.evaluate("document.fonts.ready.then(() => new Promise(r => requestAnimationFrame(() => r(true))))")


OVERFLOW = """() => {
  const root = document.documentElement, width = root.clientWidth;
  const wide = [...document.body.querySelectorAll('*')].filter(el => {
    const r = el.getBoundingClientRect();
    if (!r.width || r.right <= width + 0.5) return false;
    // Inside a box that scrolls sideways on purpose (a table, the strip of a side's images).
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const s = getComputedStyle(p);
      if (/(auto|scroll|hidden|clip)/.test(s.overflowX) && p.getBoundingClientRect().right <= width + 0.5) return false;
    }
    return true;
  }).slice(0, 5).map(el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : '') +
    ' right=' + Math.round(el.getBoundingClientRect().right));
  return {scrollWidth: root.scrollWidth, clientWidth: width, wide};
}"""


def overflow(page: Page) -> dict:
    return page.evaluate(OVERFLOW)


def shoot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"layout-{name}.png"), full_page=True)


def visit_every_page(open_page, site: Site, state: str, user: User) -> dict[str, dict]:
    """Open each page at 390×844 (and, with COMPARE_SHOTS, at 1440×900 and in dark mode);
    return the pages wider than the screen, with what sticks out."""
    too_wide = {}
    sizes = [("phone", {"viewport": PHONE})]
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


def test_no_page_is_wider_than_a_phone_when_empty(open_page, empty_site, staff):
    assert visit_every_page(open_page, empty_site, "empty", staff) == {}


def test_no_page_is_wider_than_a_phone_when_filled(open_page, filled_site, staff):
    assert visit_every_page(open_page, filled_site, "filled", staff) == {}

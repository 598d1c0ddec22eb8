"""What the page-wide browser tests (test_layout.py, test_a11y.py) visit: every page of
the navigation, empty or filled with the things users make — runs through the simulator
(real images of two pixel sizes, n=2, a reference image), votes, ratings, notes, tags,
a token, a failed side, a three-way run and a blind run by someone else."""

import re
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from playwright.sync_api import Page

from compare.models import ApiToken, Criterion, Generation, Note, Run, Vote
from compare.runs import cast_vote, rate
from tests.factories import BOTH, GPT, MINI, NANO, make_run, make_user, png, wait_for_generations

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1440, "height": 900}

# A prompt with a long URL and a long word: the things that push a phone page wide.
LONG_PROMPT = (
    "A Chinese Spring Festival poster with the headline “新春快乐” in gold brush lettering, red lanterns, "
    "a horse in paper-cut style, and the small print https://example.com/a-very-long-campaign/landing-page?"
    "utm_source=poster&utm_campaign=spring-festival-2026 — supercalifragilisticexpialidocious-typography"
)


@dataclass
class Site:
    """The live server and the pages to look at, by name (paths)."""

    base: str
    pages: dict[str, str]


def nav_pages() -> dict[str, str]:
    """Every page of the top navigation, the image picker, and the admin's index."""
    return {
        "new": "/",
        "history": "/runs/",
        "suites": "/suites/",
        "judge": "/judge",
        "leaderboard": "/leaderboard",
        "scorecard": "/scorecard",
        "tokens": "/settings/tokens",
        "status": "/status",
        "pair": "/compare/",
        "admin": "/admin/",
    }


def fill(base: str, user: User, client: Client) -> Site:
    """Make what users make (`client` is logged in as `user`); the pages that show it."""
    lee = make_user("lee")
    for name in ("Prompt adherence", "Text rendering", "Overall quality"):
        Criterion.objects.get_or_create(name=name, defaults={"description": f"How good the {name.lower()} is"})
    reference = SimpleUploadedFile(
        "reference-with-a-rather-long-file-name-for-the-poster.png", png((200, 40, 40), (300, 200)), "image/png"
    )
    response = client.post(
        "/",
        {
            "prompt": LONG_PROMPT,
            "models": BOTH,
            "aspect_ratio": "16:9",
            "resolution": "2K",
            "n": "2",
            "tags": "poster zh spring-festival-campaign-2026-long",
            "references": [reference],
        },
    )
    assert response.status_code == 302, re.findall(r"class=\"error\"[^>]*>([^<]*)", response.content.decode())
    run = Run.objects.latest("created_at")
    gens = sorted(wait_for_generations(run), key=lambda g: g.position)
    assert all(g.status == Generation.Status.SUCCEEDED for g in gens), [(g.model_key, g.error_message) for g in gens]
    cast_vote(run, user, Vote.Verdict.BETTER, gens[1])
    cast_vote(run, lee, Vote.Verdict.TIE)
    for criterion in Criterion.objects.all():
        rate(gens[0], user, criterion, 4)
        rate(gens[1], user, criterion, 2)
    mine = Note.objects.create(run=run, author=user, body="The right one has cleaner lettering; see " + "x" * 90)
    Note.objects.create(run=run, author=lee, generation=gens[0], body="The lanterns are off-centre.")
    # A failed side, a three-way run, and a blind run by someone else (the Judge queue serves it).
    make_run(user, "a shop sign that says “Open”", status=["succeeded", "failed"], images=1, latency_ms=6100)
    three = make_run(user, "three models, one prompt", models=(GPT, NANO, MINI), images=1, latency_ms=4200)
    cast_vote(three, lee, Vote.Verdict.BETTER, three.generations.get(position=2))
    make_run(lee, "an EV infographic with small print, judged blind", blind=True, images=1, latency_ms=5000)
    ApiToken.issue(user, "nightly export script for the design team’s weekly review")
    first, second = (g.images.get(index=0) for g in gens)
    return Site(
        base,
        nav_pages()
        | {
            "run": run.get_absolute_url(),
            "pair": f"/compare/?a={first.sha256}&b={second.sha256}",
            "image": f"/runs/{run.id}/images/{first.sha256}",
            "note": f"/runs/{run.id}/notes/{mine.id}/edit",
            "admin-runs": "/admin/compare/run/",
        },
    )


def settle(page: Page) -> None:
    """Wait for the page's own work: images decoded, fonts in, one frame laid out."""
    page.wait_for_load_state("load")
    page.wait_for_function("() => [...document.images].every(i => i.complete)")
    page.evaluate("document.fonts.ready.then(() => new Promise(r => requestAnimationFrame(() => r(true))))")

"""Judging as a team: blind runs leak nothing until the viewer votes, ratings per
criterion, notes pinned and owned, tags, forks with lineage, the arena queue."""

import html
import importlib
import io
import json
import re
import threading
import time
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from django.apps import apps as django_apps
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from PIL import Image as PILImage

from compare import reuse
from compare.judging import blind, blind_images
from compare.models import ApiToken, Criterion, Generation, Image, Note, Rating, Reveal, Run, SuiteRun, Vote
from compare.runs import cast_vote
from tests import factories
from tests.factories import BOTH, GPT, MINI, NANO, submit_and_wait, wait_for_generations

pytestmark = pytest.mark.django_db(transaction=True)
# Everything that would tell a blind viewer which side is which model.
GIVEAWAYS = [
    "gpt-image-2",
    "gemini-3-pro-image",
    "GPT Image 2",
    "Nano Banana Pro",
    "OpenAI",
    "Google",
    "Gemini",
    "gemini",
    "openai",
    "$0.",
    "Here is your image",
]


def make_run(client, blind=True, prompt="a poster", **extra):
    """A run sent through the form (blind unless told otherwise), every side finished."""
    fields: dict[str, Any] = {"blind": "on"} if blind else {}
    run, _ = submit_and_wait(client, prompt, **fields, **extra)
    return run


def leaks(text: str) -> list[str]:
    return [word for word in GIVEAWAYS if word in text]


def pane_order(html: str) -> list[str]:
    """The generation ids of the panes, in the order the page shows them."""
    return re.findall(r'<article class="pane[^"]*" id="pane-([0-9a-f-]+)"', html)


def test_a_blind_run_reveals_nothing_until_the_viewer_votes(auth_client, simulator, user):
    run = make_run(auth_client)
    assert run.blind and sorted(g.blind_position for g in run.generations.all()) == [0, 1]
    page = auth_client.get(run.get_absolute_url()).content.decode()
    body = page.split("<main>")[1]
    assert leaks(body) == [], leaks(body)
    assert "Side A" in body and "Side B" in body and "blind" in body
    assert 'value="side:A"' in body and 'value="gen:' not in body  # the form names sides, not positions
    for gen in run.generations.all():
        pane = auth_client.get(f"/runs/{run.id}/generations/{gen.id}").content.decode()
        assert leaks(pane) == []
        image = gen.images.get()
        assert gen.model_key not in image.url and gen.model_key not in image.thumbnail_url
        # The original does not answer to its hash before the vote: its file tells the model apart.
        assert auth_client.get(image.url + "?download=1").status_code == 404
        assert leaks(auth_client.get(f"/runs/{run.id}/images/{image.sha256}").content.decode().split("<main>")[1]) == []
    assert auth_client.get(f"/runs/{run.id}/parts/votes").status_code == 200
    assert leaks(auth_client.get(f"/runs/{run.id}/parts/votes").content.decode()) == []

    # No address of an original file either: the sha256 would fetch it, format and metadata included.
    for image in Image.objects.filter(generation__run=run):
        assert image.sha256 not in body

    # Voting for side A stores the real position, marks the vote blind and reveals the names,
    # swapped in place (no reload): every pane comes back, in the order it had.
    first_shown = min(run.generations.all(), key=lambda g: g.blind_position)
    before = pane_order(body)
    response = auth_client.post(f"/runs/{run.id}/vote", {"choice": "side:A"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "HX-Refresh" not in response
    vote = Vote.objects.get()
    assert vote.verdict == Vote.Verdict.BETTER and vote.winner == first_shown and vote.blind
    swapped = response.content.decode()
    assert pane_order(swapped) == before and swapped.count('hx-swap-oob="true"') >= len(before)
    assert f"A · {first_shown.model_label}" in swapped and 'aria-pressed="true">A better' in swapped
    after = auth_client.get(run.get_absolute_url()).content.decode()
    assert "GPT Image 2" in after and "Nano Banana Pro" in after and f"A · {first_shown.model_label}" in after
    assert pane_order(after) == before
    for gen in run.generations.all():  # the originals once voted, under a name that is no model's
        download = auth_client.get(gen.images.get().url + "?download=1")
        assert download.status_code == 200 and gen.model_key not in download["Content-Disposition"]


def test_the_api_hides_names_of_a_blind_run_from_a_token_user_who_has_not_voted(auth_client, simulator, user):
    run = make_run(auth_client)
    client = Client()
    _, token = ApiToken.issue(user, "script")
    auth: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    detail = client.get(f"/api/runs/{run.id}", **auth).content.decode()
    assert leaks(detail.replace('"simulated"', "")) == [], leaks(detail)
    body = json.loads(detail)
    assert [g["label"] for g in body["generations"]] == ["Side A", "Side B"]
    assert body["votes"]["tally"] is None and all(g["model"] is None for g in body["generations"])
    listing = client.get("/api/runs", **auth).content.decode()
    assert leaks(listing.replace('"simulated"', "")) == []
    Vote.objects.create(run=run, user=user, verdict=Vote.Verdict.TIE)
    revealed = client.get(f"/api/runs/{run.id}", **auth).json()
    assert {g["model"] for g in revealed["generations"]} == set(BOTH)


def test_showing_names_without_voting_makes_a_later_vote_not_blind(auth_client, simulator):
    run = make_run(auth_client)
    auth_client.post(f"/runs/{run.id}/reveal")
    assert Reveal.objects.filter(run=run).exists()
    assert "Nano Banana Pro" in auth_client.get(run.get_absolute_url()).content.decode()
    auth_client.post(f"/runs/{run.id}/vote", {"choice": "gen:0"}, HTTP_HX_REQUEST="true")
    assert Vote.objects.get().blind is False


def test_votes_on_a_run_whose_names_were_seen_are_not_blind(auth_client, simulator):
    run = make_run(auth_client, blind=False)
    page = auth_client.get(run.get_absolute_url()).content.decode()
    assert "GPT Image 2" in page and 'value="gen:0"' in page
    auth_client.post(f"/runs/{run.id}/vote", {"choice": "gen:1"}, HTTP_HX_REQUEST="true")
    assert Vote.objects.get().blind is False


def test_the_arena_queue_walks_through_unvoted_runs_blind(auth_client, simulator, user, other_user):
    author = Client()
    author.force_login(other_user)
    voted = make_run(author, blind=False, prompt="voted one")
    fresh = make_run(author, blind=False, prompt="fresh one")
    Vote.objects.create(run=voted, user=user, verdict=Vote.Verdict.TIE)
    response = auth_client.get("/judge")
    assert response.status_code == 302 and response["Location"] == fresh.get_absolute_url() + "?arena=1"
    arena = auth_client.get(fresh.get_absolute_url() + "?arena=1").content.decode().split("<main>")[1]
    assert leaks(arena) == [] and "Side A" in arena
    voted_swap = auth_client.post(
        fresh.get_absolute_url() + "vote?arena=1", {"choice": "side:B"}, HTTP_HX_REQUEST="true"
    )
    assert voted_swap.status_code == 200 and "HX-Refresh" not in voted_swap  # no reload in judge mode
    assert Vote.objects.get(user=user, run=fresh).blind is True
    assert 'data-next-run class="button">Next comparison' in voted_swap.content.decode()
    done = auth_client.get("/judge")
    assert done.status_code == 200 and "All judged" in done.content.decode()
    assert "judged every comparison there is to judge blind (2)" in done.content.decode()


def test_ratings_per_criterion_are_saved_and_shown(auth_client, simulator, user):
    # Transactional tests empty the tables, so put back what the data migration adds.
    migration = importlib.import_module("compare.migrations.0004_default_criteria")
    migration.add_defaults(django_apps, None)
    run = make_run(auth_client, blind=False)
    gen = run.generations.get(position=0)
    criteria = list(Criterion.objects.filter(active=True))
    assert [c.name for c in criteria] == [
        "Prompt adherence",
        "Text accuracy",
        "Layout",
        "Visual quality",
        "Usability as delivered",
    ]
    data = {f"stars-{criteria[0].id}": "4", f"stars-{criteria[4].id}": "5"}
    fragment = auth_client.post(f"/runs/{run.id}/generations/{gen.id}/rate", data, HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200
    assert dict(Rating.objects.values_list("criterion__name", "stars")) == {
        "Prompt adherence": 4,
        "Usability as delivered": 5,
    }
    assert re.search(rf'name="stars-{criteria[0].id}" value="4"[^>]*checked', fragment.content.decode())
    auth_client.post(
        f"/runs/{run.id}/generations/{gen.id}/rate", {f"stars-{criteria[0].id}": "2"}, HTTP_HX_REQUEST="true"
    )
    assert Rating.objects.get(criterion=criteria[0]).stars == 2 and Rating.objects.count() == 2
    bad = auth_client.post(
        f"/runs/{run.id}/generations/{gen.id}/rate", {f"stars-{criteria[1].id}": "9"}, HTTP_HX_REQUEST="true"
    )
    assert bad.status_code == 422 and "give 1 to 5 stars" in bad.content.decode()


def test_notes_are_pinned_and_only_their_author_edits_or_deletes_them(auth_client, simulator, other_user):
    run = make_run(auth_client, blind=False)
    gen = run.generations.get(position=1)
    auth_client.post(
        f"/runs/{run.id}/notes", {"body": "the kerning is off", "generation": str(gen.id)}, HTTP_HX_REQUEST="true"
    )
    note = Note.objects.get()
    assert note.generation == gen
    pane = auth_client.get(f"/runs/{run.id}/generations/{gen.id}").content.decode()
    assert "the kerning is off" in pane  # shown under the generation it is about
    client = Client()
    client.force_login(other_user)
    assert client.post(f"/runs/{run.id}/notes/{note.id}/edit", {"body": "hijacked"}).status_code == 404
    assert client.post(f"/runs/{run.id}/notes/{note.id}/delete").status_code == 404
    assert "Edit</a>" not in client.get(run.get_absolute_url()).content.decode()
    assert client.get(f"/runs/{run.id}/notes/{note.id}/edit").status_code == 404
    edit_page = auth_client.get(f"/runs/{run.id}/notes/{note.id}/edit").content.decode()
    assert "the kerning is off</textarea>" in edit_page and f'value="{gen.id}" selected' in edit_page
    auth_client.post(f"/runs/{run.id}/notes/{note.id}/edit", {"body": "the kerning is fine now", "generation": ""})
    note.refresh_from_db()
    assert note.body == "the kerning is fine now" and note.generation is None
    auth_client.post(f"/runs/{run.id}/notes/{note.id}/delete", HTTP_HX_REQUEST="true")
    assert not Note.objects.exists()


@pytest.mark.django_db  # no live server: no need for the module's transactions
def test_notes_are_added_edited_pinned_and_deleted_in_place_with_focus_kept(auth_client, user):
    run = factories.make_run(user, images=1)
    left, right = run.generations.order_by("position")
    hx = {"HTTP_HX_REQUEST": "true"}
    added = auth_client.post(f"/runs/{run.id}/notes", {"body": "the kerning is off", "generation": str(right.id)}, **hx)
    html_added = added.content.decode()
    note = Note.objects.get()
    # The section anew, focus back in its (cleared) field; the note appears on its side at once.
    assert re.search(r"<textarea[^>]*autofocus[^>]*>\s*</textarea>", html_added)
    pinned = re.search(
        rf'<ul class="pinned-notes" id="pinned-{right.id}"[^>]*hx-swap-oob="true">(.*?)</ul>', html_added, re.S
    )
    assert pinned and "the kerning is off" in pinned.group(1)
    assert re.search(rf'id="pinned-{left.id}"[^>]*hidden', html_added)
    # Edit opens in place (the note's own li), its field focused.
    form = auth_client.get(f"/runs/{run.id}/notes/{note.id}/edit", **hx).content.decode()
    assert form.lstrip().startswith(f'<li class="note editing" id="note-{note.id}"') and "<html" not in form
    assert re.search(r"<textarea[^>]*autofocus[^>]*>\s*the kerning is off</textarea>", form)
    assert f'value="{right.id}" selected' in form
    # A mistake answers in the same place.
    bad = auth_client.post(f"/runs/{run.id}/notes/{note.id}/edit", {"body": " "}, **hx)
    assert (
        bad.status_code == 422
        and bad["HX-Retarget"] == f"#note-{note.id}"
        and "cannot be empty" in bad.content.decode()
    )
    # Saved and moved to the other side: the list comes back, focus on the note's Edit link, both sides updated.
    saved = auth_client.post(
        f"/runs/{run.id}/notes/{note.id}/edit", {"body": "fixed now", "generation": str(left.id)}, **hx
    ).content.decode()
    assert saved.lstrip().startswith('<ol class="note-list" id="note-list"')
    assert re.search(rf'id="edit-note-{note.id}"\s+autofocus', saved)
    assert re.search(rf'id="pinned-{left.id}"[^>]*hx-swap-oob="true">.*fixed now', saved)
    assert re.search(rf'id="pinned-{right.id}"[^>]*hidden', saved)
    # Cancel brings the list back, focus on the Edit link again.
    cancelled = auth_client.get(f"/runs/{run.id}/parts/note_list?focus={note.id}", **hx).content.decode()
    assert re.search(rf'id="edit-note-{note.id}"\s+autofocus', cancelled) and "fixed now" in cancelled
    deleted = auth_client.post(f"/runs/{run.id}/notes/{note.id}/delete", **hx).content.decode()
    assert "No notes yet." in deleted and 'tabindex="-1" autofocus' in deleted
    assert re.search(rf'id="pinned-{left.id}"[^>]*hidden', deleted)
    # Without JavaScript: a page of its own, and back to the note after saving.
    again = Note.objects.create(run=run, author=user, body="plain")
    page = auth_client.get(f"/runs/{run.id}/notes/{again.id}/edit").content.decode()
    assert "Edit your note" in page and "plain</textarea>" in page
    response = auth_client.post(f"/runs/{run.id}/notes/{again.id}/edit", {"body": "plainer"})
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.id}/#note-{again.id}"


def test_tags_from_the_form_and_the_run_page(auth_client, simulator):
    run = make_run(auth_client, blind=False, tags="poster ZH")
    assert sorted(run.tags.values_list("name", flat=True)) == ["poster", "zh"]
    auth_client.post(f"/runs/{run.id}/tags", {"add": "ui-mockup, poster"}, HTTP_HX_REQUEST="true")
    auth_client.post(f"/runs/{run.id}/tags", {"remove": "zh"}, HTTP_HX_REQUEST="true")
    assert sorted(run.tags.values_list("name", flat=True)) == ["poster", "ui-mockup"]
    bad = auth_client.post(f"/runs/{run.id}/tags", {"add": "<script>"}, HTTP_HX_REQUEST="true")
    assert bad.status_code == 422 and "Tags are single words" in bad.content.decode()


def test_fork_prefills_the_form_and_the_child_shows_lineage_and_prompt_diff(auth_client, simulator):
    parent = make_run(auth_client, blind=False, prompt="a red fox in snow", quality="high", tags="poster")
    form = auth_client.get(f"/runs/{parent.id}/fork", follow=True).content.decode()
    assert "a red fox in snow</textarea>" in form and f'value="{parent.id}"' in form
    assert re.search(r'<option value="high" selected>', form) and 'value="poster"' in form
    child_id = None
    response = auth_client.post("/", {"prompt": "a blue fox in snow", "models": BOTH, "parent": str(parent.id)})
    child = Run.objects.get(parent=parent)
    child_id = child.id
    assert response["Location"] == f"/runs/{child_id}/"
    wait_for_generations(child)
    page = auth_client.get(child.get_absolute_url()).content.decode()
    assert "Forked from" in page and "<del>red</del>" in page and "<ins>blue</ins>" in page
    assert child.get_absolute_url() in auth_client.get(parent.get_absolute_url()).content.decode()
    image = parent.generations.get(position=0).images.get()
    with_image = auth_client.get(f"/runs/{parent.id}/fork?ref={image.sha256}", follow=True).content.decode()
    assert f'name="reuse" value="{image.sha256}" checked' in with_image and f'value="{parent.id}"' in with_image


def test_a_failed_side_in_blind_mode_names_no_provider(auth_client, simulator):
    run = make_run(auth_client, prompt="x [[fault:server_error@gemini]]")
    body = auth_client.get(run.get_absolute_url()).content.decode().split("<main>")[1]
    body = body.replace(run.prompt, "")  # the prompt is the user's own words
    assert leaks(body) == [] and "This side failed." in body
    assert Generation.objects.filter(status="failed").count() == 1


# --- blind: no cache, no names in forks, arena letters; the judge queue ------------------


@pytest.mark.django_db  # no live server: no need for the module's transactions
def test_a_blind_run_never_takes_images_from_the_cache(user, settings):
    settings.COMPARE_CACHE_SECONDS = 3600
    named = factories.make_run(user)
    blind_run = factories.make_run(user, status="running", blind=True)
    for gen in list(named.generations.all()) + list(blind_run.generations.all()):
        Generation.objects.filter(pk=gen.pk).update(cache_key=reuse.key_for(gen))
    target = blind_run.generations.get(position=0)
    target.cache_key = reuse.key_for(target)
    assert reuse.find_hit(target) is None


@pytest.mark.django_db  # no live server: no need for the module's transactions
def test_judge_next_skips_the_run_on_screen(auth_client, other_user):
    first, second = factories.make_run(other_user, images=1), factories.make_run(other_user, images=1)
    response = auth_client.get(f"/judge?skip={second.id}")
    assert response["Location"] == first.get_absolute_url() + "?arena=1"


@pytest.mark.django_db  # no live server: no need for the module's transactions
def test_forking_a_blind_image_does_not_name_its_model(auth_client, user):
    run = factories.make_run(user, blind=True)
    image = factories.add_image(run.generations.get(position=0), factories.png("blue"))
    page = auth_client.get(f"/runs/{run.id}/fork?ref={image.sha256}", follow=True).content.decode()
    picked = page.split("data-picked")[1].split("</ul>")[0]
    assert "image from an earlier run" in picked and "GPT Image 2" not in picked


@pytest.mark.django_db  # no live server: no need for the module's transactions
def test_arena_notes_and_letters_hide_the_names(auth_client, user, other_user):
    run = factories.make_run(user, images=1)  # not blind: judged blind from the arena
    client = Client()
    client.force_login(other_user)
    page = client.get(f"/runs/{run.id}/?arena=1").content.decode().split("<main>")[1]
    assert "GPT Image 2" not in page and "Side A" in page
    notes = client.post(f"/runs/{run.id}/notes?arena=1", {"body": "hm"}, HTTP_HX_REQUEST="true").content.decode()
    assert "GPT Image 2" not in notes and "Nano Banana Pro" not in notes
    shown, _ = blind.prepare(run, other_user, arena=True)
    first = shown[0]
    client.post(f"/runs/{run.id}/vote?arena=1", {"choice": "side:A"}, HTTP_HX_REQUEST="true")
    assert Vote.objects.values_list("verdict", "winner").get(user=other_user) == ("better", first.pk)


@pytest.mark.django_db
def test_a_vote_names_a_winner_of_its_own_run_exactly_when_one_side_is_better(user):
    run, other = factories.make_run(user), factories.make_run(user)
    mine, theirs = run.generations.get(position=0), other.generations.get(position=0)
    for verdict, winner in [("better", None), ("tie", mine), ("all_bad", mine), ("better", theirs)]:
        with pytest.raises(ValueError, match="cannot have winner"):
            cast_vote(run, user, Vote.Verdict(verdict), winner)
    assert not Vote.objects.exists()
    cast_vote(run, user, Vote.Verdict.BETTER, mine)
    cast_vote(run, user, Vote.Verdict.TIE)  # a changed mind drops the winner
    assert Vote.objects.values_list("verdict", "winner").get() == ("tie", None)


# --- the Judge queue ---------------------------------------------------------------


def judgeable(author, days_ago: float = 0, **fields) -> Run:
    """A finished run whose every side delivered one image."""
    return factories.make_run(author, images=1, days_ago=days_ago, **fields)


def with_images(run: Run, *positions: int) -> Run:
    for gen in run.generations.filter(position__in=positions):
        factories.add_image(gen)
    return run


@pytest.mark.django_db
def test_the_judge_queue_serves_only_runs_whose_names_the_viewer_never_saw(auth_client, user, other_user):
    # Served, newest first: other people's finished runs with two or more images, names never seen.
    fresh = judgeable(other_user, days_ago=5, prompt="fresh")
    three = factories.make_run(
        other_user, "three-way", ["succeeded", "failed", "succeeded"], (GPT, NANO, MINI), days_ago=4
    )
    with_images(three, 0, 2)
    blind_run = judgeable(other_user, days_ago=3, blind=True)
    # Left out: the viewer's own run, runs voted on, revealed or opened with the names shown,
    # a run still working, and runs with fewer than two sides with an image.
    mine = judgeable(user, days_ago=1)
    voted = judgeable(other_user, days_ago=1, blind=True)
    Vote.objects.create(run=voted, user=user, verdict=Vote.Verdict.ALL_BAD, blind=True)
    revealed = judgeable(other_user, days_ago=1, blind=True)
    auth_client.post(f"/runs/{revealed.id}/reveal")
    opened = judgeable(other_user, days_ago=1)
    auth_client.get(opened.get_absolute_url())
    auth_client.post(f"/runs/{opened.id}/seen")
    with_images(factories.make_run(other_user, status=["succeeded", "running"], days_ago=1), 0)
    with_images(factories.make_run(other_user, status=["succeeded", "failed"], days_ago=1), 0)
    factories.make_run(other_user, status="failed", days_ago=1)
    factories.make_run(other_user, status=["succeeded", "cancelled"], days_ago=1)
    factories.make_run(other_user, days_ago=1)  # "succeeded" with no image file at all
    # A case-sample of a suite run: its results page names every side, so it is never blind.
    in_suite = judgeable(other_user, days_ago=1)
    in_suite.suite_run = SuiteRun.objects.create(suite_name="S", author=other_user, cases=[{"prompt": "p"}])
    in_suite.suite_case = in_suite.suite_sample = 0
    in_suite.save()

    assert list(Run.objects.judge_queue(user)) == [blind_run, three, fresh]
    first = auth_client.get("/judge")
    assert first.status_code == 302 and first["Location"] == f"/runs/{blind_run.id}/?arena=1"
    assert auth_client.get(f"/judge?skip={blind_run.id}")["Location"] == f"/runs/{three.id}/?arena=1"
    page = auth_client.get(f"/runs/{blind_run.id}/?arena=1").content.decode()
    assert "(2 more after this one)" in page and "Next in the Judge queue" in page
    # Each viewer has their own queue: lee made all the others, so lee's holds only dana's run.
    assert list(Run.objects.judge_queue(other_user)) == [mine]


@pytest.mark.django_db
def test_opening_a_run_with_the_names_shown_is_recorded_by_a_post_not_by_the_page(auth_client, user, other_user):
    run = judgeable(other_user)
    page = auth_client.get(run.get_absolute_url()).content.decode()
    assert not Reveal.objects.exists()  # a GET writes nothing
    assert f'hx-post="/runs/{run.id}/seen" hx-trigger="load"' in page
    assert list(Run.objects.judge_queue(user)) == [run]
    assert auth_client.post(f"/runs/{run.id}/seen").status_code == 204
    assert Reveal.objects.filter(run=run, user=user).count() == 1
    assert auth_client.post(f"/runs/{run.id}/seen").status_code == 204  # once is enough
    assert Reveal.objects.count() == 1 and not Run.objects.judge_queue(user).exists()
    # Seen once, seen for good: the arena shows the names, and a vote there is not blind.
    arena = auth_client.get(f"/runs/{run.id}/?arena=1").content.decode()
    assert "GPT Image 2" in arena and "/seen" not in arena
    auth_client.post(f"/runs/{run.id}/vote?arena=1", {"choice": "gen:0"}, HTTP_HX_REQUEST="true")
    assert Vote.objects.get().blind is False

    # A page that hides the names reports nothing, and a report for it records nothing.
    hidden = judgeable(other_user, blind=True)
    assert "/seen" not in auth_client.get(hidden.get_absolute_url()).content.decode()
    assert "/seen" not in auth_client.get(f"/runs/{judgeable(other_user).id}/?arena=1").content.decode()
    assert auth_client.post(f"/runs/{hidden.id}/seen").status_code == 204
    assert not Reveal.objects.filter(run=hidden).exists()
    # Nor does the author's own page (their runs are never in their queue anyway).
    mine = judgeable(user)
    assert "/seen" not in auth_client.get(mine.get_absolute_url()).content.decode()
    assert auth_client.get(f"/runs/{run.id}/seen").status_code == 405


@pytest.mark.django_db
def test_the_empty_queue_tells_nothing_yet_from_all_judged(auth_client, user, other_user):
    def judge_page() -> str:
        response = auth_client.get("/judge")
        assert response.status_code == 200
        return response.content.decode()

    assert "Nothing to judge yet" in judge_page()
    judgeable(user)
    factories.make_run(other_user, status="running")
    page = judge_page()
    assert "Nothing to judge yet" in page and "Your own comparisons (1)" in page
    assert "1 comparison by others is still generating" in page
    run = judgeable(other_user)
    assert auth_client.get("/judge").status_code == 302
    skipped = auth_client.get(f"/judge?skip={run.id}").content.decode()
    assert "You skipped the rest of your queue" in skipped and "1 comparison still waits" in skipped
    Vote.objects.create(run=run, user=user, verdict=Vote.Verdict.TIE)
    seen = judgeable(other_user)
    Reveal.objects.create(run=seen, user=user)
    page = judge_page()
    assert "All judged" in page and "(1)" in page
    assert "1 comparison left out: you have already seen its model names" in page


# --- sides never move; the verdict's words are the sides' names ------------------------------


def panes(html: str) -> list[tuple[str, str]]:
    """(generation id, heading) of each pane, in page order."""
    return re.findall(r'id="pane-([0-9a-f-]+)".*?<h2>([^<]*)</h2>', html, re.S)


@pytest.mark.django_db
@pytest.mark.parametrize("arena", [False, True], ids=["blind run", "judge queue"])
def test_a_blind_vote_reveals_the_names_on_the_sides_where_they_were(auth_client, user, other_user, arena):
    run = judgeable(other_user, blind=not arena)
    url = run.get_absolute_url() + ("?arena=1" if arena else "")
    before = auth_client.get(url).content.decode()
    shown = panes(before)
    assert [name for _, name in shown] == ["Side A", "Side B"]
    assert ">A better" in before and ">B better" in before and "Left better" not in before
    response = auth_client.post(
        f"/runs/{run.id}/vote" + ("?arena=1" if arena else ""), {"choice": "side:B"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    swapped = response.content.decode()
    labels = {g.pk: g.model_label for g in run.generations.all()}
    revealed = [(gid, f"{letter} · {labels[UUID(gid)]}") for (gid, _), letter in zip(shown, "AB", strict=True)]
    assert panes(swapped) == revealed  # same places, names on them
    assert Vote.objects.get().winner_id == UUID(shown[1][0]) and Vote.objects.get().blind
    # The chosen side stays marked: its button, its pane and its badge.
    assert re.search(r'aria-pressed="true">B better', swapped)
    assert re.search(rf'class="pane status-succeeded is-pick" id="pane-{shown[1][0]}"', swapped)
    assert len(re.findall(r"data-pick-badge >Your pick", swapped)) == 1
    assert f'"pane status-succeeded" id="pane-{shown[0][0]}"' in swapped
    # A later visit of the same page shows the same order, the same words.
    again = auth_client.get(url).content.decode()
    assert panes(again) == revealed and 'aria-pressed="true">B better' in again
    assert "B better: <strong>1</strong>" in again


@pytest.mark.django_db
def test_a_run_with_the_names_shown_keeps_left_and_right(auth_client, user):
    page = auth_client.get(judgeable(user).get_absolute_url()).content.decode()
    assert ">Left better" in page and ">Right better" in page and "A better" not in page
    assert [name for _, name in panes(page)] == ["GPT Image 2", "Nano Banana Pro"]


@pytest.mark.django_db
def test_show_names_without_voting_swaps_them_in_place(auth_client, other_user):
    run = judgeable(other_user)
    shown = panes(auth_client.get(f"/runs/{run.id}/?arena=1").content.decode())
    response = auth_client.post(f"/runs/{run.id}/reveal?arena=1", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert [gid for gid, _ in panes(response.content.decode())] == [gid for gid, _ in shown]
    plain = auth_client.post(f"/runs/{run.id}/reveal?arena=1")
    assert plain.status_code == 302 and plain["Location"] == f"/runs/{run.id}/?arena=1"


# --- votes only where they mean something --------------------------------------------


def vote_values(html: str) -> list[str]:
    return re.findall(r'name="choice" value="([^"]+)"', html)


@pytest.mark.django_db
def test_only_sides_with_an_image_can_be_voted_better_or_tie(auth_client, user):
    one = with_images(factories.make_run(user, status=["succeeded", "failed"]), 0)
    page = auth_client.get(one.get_absolute_url()).content.decode()
    assert vote_values(page) == ["all_bad"] and "only “both bad” is offered" in page
    for choice, message in [
        ("gen:1", "That side has no image"),
        ("gen:0", "Picking a better side needs two sides with an image; this run has one."),
        ("tie", "A tie needs two sides with an image; this run has one."),
    ]:
        refused = auth_client.post(f"/runs/{one.id}/vote", {"choice": choice}, HTTP_HX_REQUEST="true")
        assert refused.status_code == 422 and message in refused.content.decode(), choice
    assert not Vote.objects.exists()
    assert auth_client.post(f"/runs/{one.id}/vote", {"choice": "all_bad"}, HTTP_HX_REQUEST="true").status_code == 200

    none = factories.make_run(user, status=["failed", "cancelled"])
    page = auth_client.get(none.get_absolute_url()).content.decode()
    assert vote_values(page) == [] and "nothing to vote on" in page
    refused = auth_client.post(f"/runs/{none.id}/vote", {"choice": "all_bad"})
    assert refused.status_code == 302 and not Vote.objects.filter(run=none).exists()

    three = with_images(
        factories.make_run(user, status=["succeeded", "refused", "succeeded"], models=(GPT, NANO, MINI)), 0, 2
    )
    page = auth_client.get(three.get_absolute_url()).content.decode()
    assert vote_values(page) == ["gen:0", "gen:2", "tie", "all_bad"]
    assert re.findall(r'data-vote-key="(\w)"', page) == ["1", "3", "0", "x"]  # keys follow the sides' places
    assert "A side without an image cannot be voted better" in page
    assert auth_client.post(f"/runs/{three.id}/vote", {"choice": "gen:1"}, HTTP_HX_REQUEST="true").status_code == 422
    assert auth_client.post(f"/runs/{three.id}/vote", {"choice": "gen:2"}, HTTP_HX_REQUEST="true").status_code == 200


# --- blind hides everything but the pixels, until the viewer's vote ----------------------------


@pytest.mark.django_db
def test_a_blind_page_shows_no_time_size_format_or_original_until_the_vote(auth_client, user, other_user):
    start = timezone.now() - timedelta(seconds=10)
    run = factories.make_run(
        other_user, blind=True, started_at=start, finished_at=start + timedelta(seconds=6.1), latency_ms=6100
    )
    gpt, nano = run.generations.order_by("position")
    Generation.objects.filter(pk=nano.pk).update(
        latency_ms=4200, finished_at=start + timedelta(seconds=4.2), attempts=2
    )
    originals = [
        factories.add_image(gpt, factories.image_bytes((200, 30, 30), (65, 48), fmt="WEBP", lossless=True)),
        factories.add_image(nano, factories.png((30, 30, 200), (64, 48))),
    ]
    page = auth_client.get(run.get_absolute_url()).content.decode().split("<main>")[1]
    words = factories.without_random_ids(page)
    for giveaway in ["6100", "4200", "4.2 s", " ms<", "65×48", "64×48", "WEBP", "bytes", "KB", "attempts"]:
        assert giveaway not in words, giveaway
    for image in originals:
        assert image.sha256 not in page and image.url not in page
    # One shared timer, from the first start to the last end: it tells no side from another.
    assert page.count("6.1 s") == 1 and "Both done · 6.1 s" in page
    sources = re.findall(r'<img src="([^"]+)" alt="Side ([AB])', page)
    assert [side for _, side in sources] == ["A", "B"]
    sizes = set()
    for src, side in sources:
        assert src.startswith(f"/runs/{run.id}/sides/{side}/1?v=")
        response = auth_client.get(src)
        assert response.status_code == 200 and response["Content-Type"] == "image/png"
        with PILImage.open(io.BytesIO(response.content)) as decoded:
            assert decoded.format == "PNG" and not decoded.info.get("exif")
            sizes.add(decoded.size)
        thumb = auth_client.get(src.replace("/1?", "/1/thumbnail?"))
        assert thumb.status_code == 200 and thumb["Content-Type"] == "image/webp"
    assert sizes == {(65, 48)}  # one common size: 64×48 is resampled to 65×48 (same shape within 3 %)
    assert auth_client.get(f"/runs/{run.id}/sides/C/1").status_code == 404
    assert auth_client.get(f"/runs/{run.id}/sides/A/2").status_code == 404
    full = auth_client.get(f"/runs/{run.id}/images/{originals[0].sha256}").content.decode().split("<main>")[1]
    assert "65×48" not in full and "WEBP" not in full and originals[0].url not in full

    Vote.objects.create(run=run, user=user, verdict=Vote.Verdict.TIE)
    after = auth_client.get(run.get_absolute_url()).content.decode()
    assert "65×48 · WEBP" in after and originals[0].url in after
    assert ">6.1 s</span>" in after and ">4.2 s</span>" in after  # each side's time, in seconds


@pytest.mark.django_db
def test_an_original_of_a_hidden_side_is_not_served_by_its_hash(auth_client, user, other_user):
    run = factories.make_run(other_user, blind=True)
    data = factories.image_bytes((200, 30, 30), (65, 48), fmt="WEBP", lossless=True)
    original = factories.add_image(run.generations.get(position=0), data)
    script = Client(headers={"Authorization": f"Bearer {ApiToken.issue(user, 'script')[1]}"})
    urls = [original.url, original.url + "?download=1", original.thumbnail_url]
    # A hash learnt elsewhere (a teammate's API reply, a fork link) fetches nothing before the vote,
    # with a session or with a token: the same 404 as for a hash that does not exist.
    for url in urls:
        assert auth_client.get(url).status_code == 404, url
        assert script.get(url).status_code == 404, url
    assert auth_client.get("/images/" + "0" * 64).status_code == 404
    assert Client().get(original.url).status_code == 302  # and nothing at all without a login

    # The same bytes in a run whose names this viewer sees are that run's file: served.
    seen = factories.make_run(other_user, "the same picture, named")
    factories.add_image(seen.generations.get(position=0), data)
    assert auth_client.get(original.url).status_code == 200
    seen.delete()
    assert auth_client.get(original.url).status_code == 404

    Reveal.objects.create(run=run, user=user)  # "show the names" counts like a vote
    for url in urls:
        response = auth_client.get(url)
        assert response.status_code == 200 and script.get(url).status_code == 200, url
    assert b"".join(auth_client.get(original.url).streaming_content) == data

    # One query decides, whatever the number of runs: the image with the blind rule inside it.
    auth_client.get("/")  # the session and user are loaded by the middleware: warm them up
    with CaptureQueriesContext(connection) as captured:
        assert auth_client.get(original.url).status_code == 200
    assert len([q for q in captured if "compare_image" in q["sql"]]) == 1


def test_the_common_display_size_resamples_near_shapes_and_fits_other_shapes():
    class Img:
        def __init__(self, width, height):
            self.width, self.height = width, height

    outputs = [Img(2720, 1536), Img(2752, 1536)]  # gpt-image-2 and Nano Banana Pro at 16:9 2K
    common = blind_images.frame(outputs)
    assert common == (2752, 1536)
    assert [blind_images.display_size(img, common) for img in outputs] == [(2752, 1536), (2752, 1536)]
    # A clearly different shape keeps its shape (and its size: it is never enlarged).
    square, wide = Img(1024, 1024), Img(1536, 1024)
    assert blind_images.frame([square, wide]) == (1536, 1024)
    assert blind_images.display_size(wide, (1536, 1024)) == (1536, 1024)
    assert blind_images.display_size(square, (1536, 1024)) == (1024, 1024)
    assert blind_images.display_size(Img(500, 1000), (1000, 800)) == (400, 800)
    assert blind_images.frame([]) is None


@pytest.mark.django_db
def test_while_a_side_works_no_blind_side_shows_an_outcome(auth_client, user, other_user, settings):
    start = timezone.now() - timedelta(seconds=3)
    run = factories.make_run(other_user, blind=True, status=["succeeded", "running"], started_at=start)
    done, working = run.generations.order_by("position")
    factories.add_image(done)
    factories.add_image(working, factories.png("blue"), is_partial=True)  # a streamed preview
    page = auth_client.get(run.get_absolute_url()).content.decode().split("<main>")[1]
    assert page.count('data-status="running">Working') == 2 and "succeeded" not in page
    assert "<figure" not in page and "/images/" not in page and "/sides/" not in page
    assert page.count('hx-trigger="every') == 1  # one poll for the page (compare/live.py) waits for the last side
    found = re.search(r'id="live-poll"[^>]*hx-get="([^"]+)"', page)
    assert found, "the page polls while a side works"
    poll = html.unescape(found.group(1))
    since = ",".join(re.findall(r'data-live="([^"]+)"', page))
    assert re.search(r'Generating · <span class="timer" data-ticking>\d+\.\d s', page)
    for gen in (done, working):
        pane = auth_client.get(f"/runs/{run.id}/generations/{gen.id}").content.decode()
        assert 'data-status="running"' in pane and "<img" not in pane
    assert auth_client.get(f"/runs/{run.id}/sides/A/1").status_code == 404
    factories.succeed(Generation.objects.get(pk=working.pk), factories.png("green"))
    update = auth_client.get(f"{poll}&since={since}").content.decode()  # the last side done: both panes at once
    assert (
        update.count('data-status="succeeded"') == 2 and len(re.findall(r'<img src="/runs/[^"]+/sides/', update)) == 2
    )
    page = auth_client.get(run.get_absolute_url()).content.decode()
    assert page.count('data-status="succeeded"') == 2 and len(re.findall(r'<img src="/runs/[^"]+/sides/', page)) == 2
    assert "Preview" not in page


@pytest.mark.django_db
def test_a_blind_copy_asked_for_by_many_requests_at_once_is_made_once_and_read_whole():
    """The side and list thumbnails of a page are asked for at once: before, a second
    request could read the first one's half-written file ("cannot identify image", a 500)."""
    made: list[int] = []
    whole = bytes(range(256)) * 4096  # 1 MB: long enough to be caught half-written

    def make() -> bytes:
        made.append(1)
        time.sleep(0.05)
        return whole

    results: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: results.append(blind_images._cached("blind/te/st-copy.webp", make)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1 and len(results) == 8 and all(r == whole for r in results)

"""Judging as a team: blind runs leak nothing until the viewer votes, ratings per
criterion, notes pinned and owned, tags, forks with lineage, the arena queue."""

import importlib
import json
import re

import pytest
from django.apps import apps as django_apps
from django.test import Client

from compare.models import ApiToken, Criterion, Generation, Note, Rating, Reveal, Run, Vote
from tests.conftest import wait_for_generations

pytestmark = pytest.mark.django_db(transaction=True)
BOTH = ["gpt-image-2", "gemini-3-pro-image"]
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
    data = {"prompt": prompt, "models": BOTH, "aspect_ratio": "1:1", "resolution": "1K", **extra}
    if blind:
        data["blind"] = "on"
    response = client.post("/", data)
    assert response.status_code == 302, response.content.decode()[:400]
    run = Run.objects.latest("created_at")
    wait_for_generations(run)
    return run


def leaks(text: str) -> list[str]:
    return [word for word in GIVEAWAYS if word in text]


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
        download = auth_client.get(image.url + "?download=1")
        assert gen.model_key not in download["Content-Disposition"]
        assert leaks(auth_client.get(f"/runs/{run.id}/images/{image.sha256}").content.decode().split("<main>")[1]) == []
    assert auth_client.get(f"/runs/{run.id}/parts/votes").status_code == 200
    assert leaks(auth_client.get(f"/runs/{run.id}/parts/votes").content.decode()) == []

    # Voting for side A stores the real position, marks the vote blind and reveals the names.
    first_shown = min(run.generations.all(), key=lambda g: g.blind_position)
    response = auth_client.post(f"/runs/{run.id}/vote", {"choice": "side:A"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 204 and response["HX-Refresh"] == "true"
    vote = Vote.objects.get()
    assert vote.choice == f"gen:{first_shown.position}" and vote.blind
    after = auth_client.get(run.get_absolute_url()).content.decode()
    assert "GPT Image 2" in after and "Nano Banana Pro" in after and f"A · {first_shown.model_label}" in after


def test_the_api_hides_names_of_a_blind_run_from_a_token_user_who_has_not_voted(auth_client, simulator, user):
    run = make_run(auth_client)
    client = Client()
    _, token = ApiToken.issue(user, "script")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    detail = client.get(f"/api/runs/{run.id}", **auth).content.decode()
    assert leaks(detail.replace('"simulated"', "")) == [], leaks(detail)
    body = json.loads(detail)
    assert [g["label"] for g in body["generations"]] == ["Side A", "Side B"]
    assert body["votes"]["tally"] is None and all(g["model"] is None for g in body["generations"])
    listing = client.get("/api/runs", **auth).content.decode()
    assert leaks(listing.replace('"simulated"', "")) == []
    Vote.objects.create(run=run, user=user, choice="tie")
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


def test_the_arena_queue_walks_through_unvoted_runs_blind(auth_client, simulator, other_user):
    seen = make_run(auth_client, blind=False, prompt="seen one")
    fresh = make_run(auth_client, blind=False, prompt="fresh one")
    Vote.objects.create(run=seen, user=seen.author, choice="tie")
    response = auth_client.get("/judge")
    assert response.status_code == 302 and response["Location"] == fresh.get_absolute_url() + "?arena=1"
    client = Client()
    client.force_login(other_user)  # never saw either run
    arena = client.get(fresh.get_absolute_url() + "?arena=1").content.decode().split("<main>")[1]
    assert leaks(arena) == [] and "Side A" in arena
    client.post(fresh.get_absolute_url() + "vote?arena=1", {"choice": "side:B"}, HTTP_HX_REQUEST="true")
    assert Vote.objects.get(user=other_user).blind is True
    auth_client.post(f"/runs/{fresh.id}/vote", {"choice": "tie"}, HTTP_HX_REQUEST="true")
    done = auth_client.get("/judge")
    assert done.status_code == 302 and done["Location"] == "/runs/"


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

"""Text that reaches the database is valid, visible, normalised Unicode (compare/text.py);
anything else gets a clear message, never a 500 and never a stored row. And every form
fragment shows every error it has."""

import json

import pytest
from django.test import Client

from compare.models import ApiToken, Criterion, Note, Run
from tests.factories import BOTH, make_run, make_user

pytestmark = pytest.mark.django_db

INVISIBLE_PROMPTS = [
    "\u200b\u200b",  # zero-width spaces
    "\u200d\u200c\u2060",  # joiners, word joiner
    "\ufeff",  # BOM
    "\u202e\u2066\u2069",  # bidi override and isolates
    " \u3000\u00a0\t\n",  # every kind of space
]


@pytest.fixture(autouse=True)
def _queue_only(no_task_execution):
    pass


@pytest.fixture
def api(user):
    return Client(headers={"Authorization": f"Bearer {ApiToken.issue(user, 't')[1]}"})


def post_json(api, body: dict):
    return api.post("/api/runs", json.dumps(body), content_type="application/json")


def test_a_lone_surrogate_is_a_400_not_a_500(api):
    response = post_json(api, {"prompt": "a\ud800b", "models": BOTH})
    assert response.status_code == 400
    assert "not valid Unicode" in response.json()["error"]["fields"]["prompt"][0]
    assert not Run.objects.exists()


@pytest.mark.parametrize("prompt", INVISIBLE_PROMPTS)
def test_invisible_only_prompts_are_empty_in_the_api(api, prompt):
    response = post_json(api, {"prompt": prompt, "models": BOTH})
    assert response.status_code == 400
    assert "invisible" in response.json()["error"]["fields"]["prompt"][0]
    assert not Run.objects.exists()


@pytest.mark.parametrize("prompt", INVISIBLE_PROMPTS)
def test_invisible_only_prompts_are_empty_in_the_form(auth_client, prompt):
    response = auth_client.post("/", {"prompt": prompt, "models": BOTH})
    assert response.status_code == 400
    assert "A prompt is required" in response.content.decode()
    assert not Run.objects.exists()


def test_control_characters_and_grapheme_bombs_are_refused_with_a_reason(auth_client):
    response = auth_client.post("/", {"prompt": "a fox\x07", "models": BOTH})
    assert response.status_code == 400 and "control character (U+0007)" in response.content.decode()
    response = auth_client.post("/", {"prompt": "Z" + "\u0301" * 200, "models": BOTH})
    assert response.status_code == 400 and "combining marks" in response.content.decode()
    assert not Run.objects.exists()


def test_what_is_stored_is_nfc(auth_client):
    response = auth_client.post("/", {"prompt": "Cafe\u0301 poster", "models": BOTH, "tags": "cafe\u0301"})
    assert response.status_code == 302
    run = Run.objects.get()
    assert run.prompt == "Caf\u00e9 poster"
    assert [t.name for t in run.tags.all()] == ["caf\u00e9"]


def test_bidi_controls_are_shown_visibly_wherever_the_prompt_is(auth_client, user):
    # "RLO" would draw the rest of the prompt backwards, disguising what it says.
    run = make_run(user, prompt="logo for \u202egnp.exe\u202c shop")
    for url in (run.get_absolute_url(), "/runs/"):
        page = auth_client.get(url).content.decode()
        assert "\u202e" not in page, url
        assert "⟨RLO⟩" in page and "⟨PDF⟩" in page, url
    assert "\u202e" not in auth_client.get(run.get_absolute_url()).content.decode().split("<title>")[1][:200]


def test_notes_and_tags_take_the_same_rules(auth_client, user):
    run = make_run(user)
    response = auth_client.post(f"/runs/{run.id}/notes", {"body": "\u200b\u2060"}, headers={"HX-Request": "true"})
    assert response.status_code == 422
    assert "A note cannot be empty." in response.content.decode()
    response = auth_client.post(f"/runs/{run.id}/tags", {"add": "ok bad\x07tag"}, headers={"HX-Request": "true"})
    assert response.status_code < 500
    assert "control character" in response.content.decode()
    assert not Note.objects.exists() and not run.tags.exists()


def test_a_note_pinned_to_another_runs_generation_says_why(auth_client, user):
    run, other = make_run(user), make_run(user, prompt="another")
    foreign = other.generations.first()
    assert foreign is not None
    response = auth_client.post(
        f"/runs/{run.id}/notes", {"body": "nice", "generation": str(foreign.id)}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 422
    page = response.content.decode()
    assert 'role="alert"' in page and "About" in page and "valid choice" in page
    assert not Note.objects.exists()
    # Without htmx the redirect carries the same reason as a message.
    response = auth_client.post(f"/runs/{run.id}/notes", {"body": "nice", "generation": str(foreign.id)}, follow=True)
    assert "valid choice" in response.content.decode()


def test_the_admin_refuses_bad_criterion_text(client):
    admin = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    response = client.post(
        "/admin/compare/criterion/add/",
        {"name": "Glyphs\x1b[31m", "description": "", "position": 0, "active": "on"},
    )
    assert response.status_code == 200
    assert "control character" in response.content.decode()
    assert not Criterion.objects.filter(name__startswith="Glyphs").exists()

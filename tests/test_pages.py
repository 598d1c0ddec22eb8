"""Pages around the loop: API tokens, full-size image, history pages, three-way votes."""

import re

import pytest

from compare.models import ApiToken, Generation, Run, TeamSettings, Vote
from compare.registry import registry
from compare.runs import create_run
from tests.factories import make_run, make_user, wait_for_generations

pytestmark = pytest.mark.django_db


def test_tokens_page_shows_a_new_token_once_and_revokes_it(auth_client, user):
    page = auth_client.post("/settings/tokens", {"name": "nightly"}).content.decode()
    shown = re.search(r'<code class="token">(cmp_[^<]+)</code>', page)
    assert shown, "the new token is not shown"
    token = shown.group(1)
    row = ApiToken.objects.get(user=user)
    assert row.digest == ApiToken.hash(token) and token not in row.digest  # only the hash is kept
    again = auth_client.get("/settings/tokens").content.decode()
    assert token not in again and "nightly" in again and row.hint in again
    auth_client.post("/settings/tokens", {"revoke": row.pk})
    row.refresh_from_db()
    assert row.revoked_at is not None and ApiToken.authenticate(token) is None


def test_a_user_cannot_revoke_someone_elses_token(auth_client, other_user):
    row, token = ApiToken.issue(other_user, "theirs")
    auth_client.post("/settings/tokens", {"revoke": row.pk})
    assert ApiToken.authenticate(token) == other_user


def test_history_is_paginated_newest_first(auth_client, user, settings):
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    TeamSettings.objects.update_or_create(pk=1, defaults={"max_in_flight": 0})  # the runs stay queued here
    models = [registry()["gpt-image-2"], registry()["gemini-3-pro-image"]]
    for i in range(settings.COMPARE_RUNS_PER_PAGE + 3):
        create_run(user, f"prompt number {i}", models, {"n": 1})
    first = auth_client.get("/runs/").content.decode()
    assert "prompt number 26" in first and "prompt number 2<" not in first and "Older →" in first
    second = auth_client.get("/runs/?page=2").content.decode()
    assert "prompt number 0" in second and "prompt number 26" not in second and "Page 2 of 2" in second
    assert auth_client.get("/runs/?page=banana").status_code == 200  # a bad page number shows page 1


@pytest.mark.django_db(transaction=True)
def test_with_three_models_the_team_picks_the_best(auth_client, simulator, enable_models):
    enable_models("gpt-image-1.5")
    keys = ["gpt-image-2", "gemini-3-pro-image", "gpt-image-1.5"]
    auth_client.post("/", {"prompt": "three-way", "models": keys, "aspect_ratio": "1:1", "resolution": "1K"})
    run = Run.objects.get()
    wait_for_generations(run)
    page = auth_client.get(f"/runs/{run.id}/").content.decode()
    for label in ["GPT Image 2 best", "Nano Banana Pro best", "GPT Image 1.5 best", "All bad", "Tie"]:
        assert re.search(rf">{label}\s*<kbd>", page), label
    response = auth_client.post(f"/runs/{run.id}/vote", {"choice": "gen:2"}, HTTP_HX_REQUEST="true")
    assert "GPT Image 1.5 best: <strong>1</strong>" in response.content.decode()
    assert auth_client.post(f"/runs/{run.id}/vote", {"choice": "gen:7"}).status_code == 302
    assert Vote.objects.values_list("verdict", "winner__position").get() == ("better", 2)


@pytest.mark.django_db(transaction=True)
def test_full_size_view_shows_the_image_at_its_real_size(auth_client, simulator):
    auth_client.post(
        "/",
        {"prompt": "wide", "models": ["gpt-image-2", "gemini-3-pro-image"], "aspect_ratio": "16:9", "resolution": "2K"},
    )
    run = Run.objects.get()
    gpt = next(g for g in wait_for_generations(run) if g.model_key == "gpt-image-2")
    image = gpt.images.get()
    page = auth_client.get(f"/runs/{run.id}/images/{image.sha256}").content.decode()
    assert f'width="{image.width}" height="{image.height}"' in page
    # Fitted by default, real pixels one click away (the run page opens its own viewer).
    assert f"{image.width}×{image.height}" in page and '<a href="#actual">1:1 pixels</a>' in page
    download = auth_client.get(image.url + "?download=1")
    assert "attachment" in download["Content-Disposition"]
    assert auth_client.get(f"/runs/{run.id}/images/{'0' * 64}").status_code == 404
    assert Generation.objects.get(pk=gpt.pk).params_sent["size"] == "2720x1536"


def test_an_admin_edits_the_criteria_and_the_team_sees_them(client, user):
    admin_user = make_user("boss", is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    response = client.post(
        "/admin/compare/criterion/add/",
        {"name": "Brand fit", "description": "On-brand colours and type", "position": 9, "active": "on"},
    )
    assert response.status_code == 302
    run = make_run(user, "p")
    client.force_login(user)
    assert "<legend>Brand fit</legend>" in client.get(run.get_absolute_url()).content.decode()
    assert client.get("/admin/compare/criterion/").status_code == 302  # not for non-staff users

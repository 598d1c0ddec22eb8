"""Defects a review found, each pinned by the scenario that showed it."""

import io
from decimal import Decimal

import pytest
from django.test import Client
from PIL import Image as PILImage
from PIL import PngImagePlugin

from compare import images, reuse, tasks
from compare.judging import blind
from compare.models import Generation, Run, TeamSettings, Vote

pytestmark = pytest.mark.django_db
BOTH = ["gpt-image-2", "gemini-3-pro-image"]


def make_run(user, blind_run=False, status="succeeded", **options) -> Run:
    run = Run.objects.create(author=user, prompt="a poster", options={"n": 1, **options}, blind=blind_run)
    for position, (key, label) in enumerate(
        [("gpt-image-2", "GPT Image 2"), ("gemini-3-pro-image", "Nano Banana Pro")]
    ):
        Generation.objects.create(
            run=run,
            position=position,
            blind_position=1 - position if blind_run else position,
            model_key=key,
            model_label=label,
            model_id=key,
            status=status,
            estimated_cost_usd=Decimal("0.05"),
        )
    return run


def test_provider_metadata_is_stripped_from_stored_outputs():
    info = PngImagePlugin.PngInfo()
    info.add_text("c2pa", "Made by GPT Image 2")
    buf = io.BytesIO()
    PILImage.new("RGB", (32, 32), "red").save(buf, "PNG", pnginfo=info)
    stored = images.store(buf.getvalue(), strip=True)
    data = images.open_bytes(stored["file"])
    assert b"GPT Image 2" not in data and PILImage.open(io.BytesIO(data)).getpixel((1, 1)) == (255, 0, 0)


def test_a_task_left_over_from_before_a_retry_cannot_write(user):
    run = make_run(user, status="running")
    gen = run.generations.get(position=0)
    Generation.objects.filter(pk=gen.pk).update(claim="00000000-0000-0000-0000-000000000001")
    stale = Generation.objects.get(pk=gen.pk)
    stale.claim = "00000000-0000-0000-0000-000000000002"  # the claim of the task before the retry
    assert tasks._finish(stale, Generation.Status.FAILED, error_kind="server") is False
    assert Generation.objects.get(pk=gen.pk).status == "running"


def test_one_fallback_per_side_even_after_a_retry_fails_again(user, settings):
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    run = make_run(user, fallback_model="gpt-image-2")
    failed = run.generations.get(position=1)
    assert tasks.start_fallback(failed) is not None
    assert tasks.start_fallback(failed) is None
    assert run.generations.count() == 3


def test_the_cache_key_follows_a_fallbacks_lower_quality(user):
    run = make_run(user, quality="high")
    gen = run.generations.get(position=0)
    normal = reuse.key_for(gen)
    gen.option_overrides = {"quality": "low"}
    assert reuse.key_for(gen) != normal


def test_a_blind_run_never_takes_images_from_the_cache(user, settings):
    settings.COMPARE_CACHE_SECONDS = 3600
    named = make_run(user)
    blind_run = make_run(user, blind_run=True, status="running")
    for gen in list(named.generations.all()) + list(blind_run.generations.all()):
        Generation.objects.filter(pk=gen.pk).update(cache_key=reuse.key_for(gen))
    target = blind_run.generations.get(position=0)
    target.cache_key = reuse.key_for(target)
    assert reuse.find_hit(target) is None


@pytest.mark.parametrize(
    "url", ["/runs/options?part=summary&reference_count=²", "/judge?skip=abc,%2F..", "/api/runs?page=²"]
)
def test_odd_numbers_and_ids_are_not_a_500(auth_client, url):
    assert auth_client.get(url).status_code < 500


def test_odd_star_values_and_token_ids_are_explained(auth_client, user):
    run = make_run(user)
    gen = run.generations.get(position=0)
    response = auth_client.post(f"/runs/{run.id}/generations/{gen.id}/rate", {"stars-1": "²"}, HTTP_HX_REQUEST="true")
    assert response.status_code in (200, 422)
    assert auth_client.post("/settings/tokens", {"revoke": "abc"}, follow=True).status_code == 200


def test_judge_next_skips_the_run_on_screen(auth_client, user):
    first, second = make_run(user), make_run(user)
    response = auth_client.get(f"/judge?skip={second.id}")
    assert response["Location"] == first.get_absolute_url() + "?arena=1"


def test_a_new_side_refreshes_the_page(auth_client, user):
    run = make_run(user, status="running")
    same = auth_client.get(f"/runs/{run.id}/parts/votes?sides=2")
    assert same.status_code == 200
    more = auth_client.get(f"/runs/{run.id}/parts/votes?sides=1")
    assert more.status_code == 204 and more["HX-Refresh"] == "true"


def test_retry_respects_the_budget(auth_client, user):
    run = make_run(user, status="failed")
    TeamSettings.objects.update_or_create(pk=1, defaults={"daily_budget_usd": Decimal("0.05"), "max_in_flight": 0})
    gen = run.generations.get(position=0)
    page = auth_client.post(f"/runs/{run.id}/generations/{gen.id}/retry", follow=True).content.decode()
    assert "would take you past today" in page
    assert Generation.objects.get(pk=gen.pk).status == "failed"


def test_forking_a_blind_image_does_not_name_its_model(auth_client, user):
    from compare.models import Image

    run = make_run(user, blind_run=True)
    buf = io.BytesIO()
    PILImage.new("RGB", (16, 16), "blue").save(buf, "PNG")
    image = Image.objects.create(generation=run.generations.get(position=0), **images.store(buf.getvalue()))
    page = auth_client.get(f"/runs/{run.id}/fork?ref={image.sha256}", follow=True).content.decode()
    picked = page.split("data-picked")[1].split("</ul>")[0]
    assert "image from an earlier run" in picked and "GPT Image 2" not in picked


def test_arena_notes_and_letters_hide_the_names(auth_client, user, other_user):
    run = make_run(user)  # not blind: judged blind from the arena
    client = Client()
    client.force_login(other_user)
    page = client.get(f"/runs/{run.id}/?arena=1").content.decode().split("<main>")[1]
    assert "GPT Image 2" not in page and "Side A" in page
    notes = client.post(f"/runs/{run.id}/notes?arena=1", {"body": "hm"}, HTTP_HX_REQUEST="true").content.decode()
    assert "GPT Image 2" not in notes and "Nano Banana Pro" not in notes
    shown, _ = blind.prepare(run, other_user, arena=True)
    first = shown[0]
    client.post(f"/runs/{run.id}/vote?arena=1", {"choice": "side:A"}, HTTP_HX_REQUEST="true")
    assert Vote.objects.get(user=other_user).choice == f"gen:{first.position}"

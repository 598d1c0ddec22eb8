"""The comparison loop through the web UI: form → tasks → run page → vote → note →
history, with both models answered by the simulator over real HTTP."""

import io
import re

import pytest
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from compare.models import Generation, Image, Note, Run, Vote
from tests.factories import BOTH, form_data, wait_for_generations

pytestmark = pytest.mark.django_db(transaction=True)


def submit(client, prompt, models=BOTH, **options):
    return client.post("/", form_data(prompt, models, **options))


def test_new_comparison_page_preselects_both_flagships_and_says_simulated(auth_client, simulator):
    page = auth_client.get("/").content.decode()
    for key in BOTH:
        assert re.search(rf'value="{key}"\s+checked', page), key
    assert page.count(">simulated<") == 2
    assert "Estimated cost" in page


def test_whole_loop_from_prompt_to_history(auth_client, simulator, user):
    response = submit(auth_client, 'A poster that says "Fresh Bread"')
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.id}/"
    assert [g.model_key for g in run.ordered_generations()] == BOTH

    page = auth_client.get(response["Location"]).content.decode()
    assert "GPT Image 2" in page and "Nano Banana Pro" in page
    assert "Fresh Bread" in page

    gens = wait_for_generations(run)
    assert {g.status for g in gens} == {Generation.Status.SUCCEEDED}
    for gen in gens:
        image = gen.images.get(is_partial=False)
        assert (image.width, image.height) == (1024, 1024)
        assert gen.latency_ms is not None and gen.cost_usd is not None and gen.cost_usd > 0
        assert default_storage.exists(image.file)
        # Thumbnails are written just after the generation is marked done (or on first request).
        thumbnail = auth_client.get(image.thumbnail_url)
        assert thumbnail.status_code == 200 and thumbnail["Content-Type"] == "image/webp"
        pane = auth_client.get(f"/runs/{run.id}/generations/{gen.id}").content.decode()
        assert "1024×1024" in pane and "PNG" in pane and image.url in pane
        assert 'hx-trigger="every' not in pane  # terminal panes stop polling
        served = auth_client.get(image.url)
        assert served["Content-Type"] == "image/png"
        assert PILImage.open(io.BytesIO(b"".join(served.streaming_content))).size == (1024, 1024)

    votes = auth_client.post(f"/runs/{run.id}/vote", {"choice": "gen:0"}, HTTP_HX_REQUEST="true")
    assert votes.status_code == 200
    assert re.search(r"Left better: <strong>1</strong>", votes.content.decode())
    auth_client.post(f"/runs/{run.id}/vote", {"choice": "tie"}, HTTP_HX_REQUEST="true")
    assert list(Vote.objects.values_list("user__username", "verdict", "winner")) == [("dana", "tie", None)]

    notes = auth_client.post(
        f"/runs/{run.id}/notes", {"body": "Gemini kerned the title better"}, HTTP_HX_REQUEST="true"
    )
    assert "Gemini kerned the title better" in notes.content.decode() and "dana" in notes.content.decode()
    assert Note.objects.get().author == user

    history = auth_client.get("/runs/").content.decode()
    assert "Fresh Bread" in history and f"/runs/{run.id}/" in history
    thumbs = [img.thumbnail_url for img in Image.objects.all()]
    assert all(t in history for t in thumbs)
    assert not any(img.url + '"' in history for img in Image.objects.all())  # never the full images
    assert re.search(r"Tie <strong>1</strong>", history)


def test_models_start_together_and_the_slowest_decides(auth_client, simulator):
    submit(auth_client, "a teapot [[latency:1.0]]")
    run = Run.objects.get()
    gens = wait_for_generations(run)
    starts = sorted(g.started_at for g in gens if g.started_at is not None)
    ends = [g.finished_at for g in gens if g.finished_at is not None]
    assert len(starts) == len(ends) == len(gens)  # every side started and finished
    # In parallel, not one after the other: every side started before any side finished
    # (each takes a full simulated second). Checked by order, not by a stopwatch, so a
    # busy machine cannot fail it; the speed itself is measured by `make bench`.
    assert starts[-1] < min(ends)
    span = (max(ends) - min(g.queued_at for g in gens)).total_seconds()
    assert span >= 1.0  # the simulated latency was honoured


def test_one_model_failing_shows_the_other_result_and_the_failure(auth_client, simulator):
    submit(auth_client, "a lighthouse [[fault:server_error@gemini]]")
    run = Run.objects.get()
    gpt, gemini = sorted(wait_for_generations(run), key=lambda g: g.position)
    assert gpt.status == "succeeded" and gpt.images.count() == 1
    assert gemini.status == "failed" and gemini.error_kind == "server"
    assert gemini.attempts == 4  # retried: a 500 is worth another try
    page = auth_client.get(f"/runs/{run.id}/").content.decode()
    assert "The provider had an internal error." in page
    assert gpt.images.get().url in page


def test_refusal_is_shown_and_not_retried(auth_client, simulator):
    submit(auth_client, "something forbidden [[fault:refusal@openai]]")
    run = Run.objects.get()
    gpt, _ = sorted(wait_for_generations(run), key=lambda g: g.position)
    assert gpt.status == "refused" and gpt.attempts == 1
    assert "GPT Image 2 refused this prompt." in auth_client.get(f"/runs/{run.id}/").content.decode()


def test_votes_wait_until_every_model_has_finished(auth_client, simulator):
    submit(auth_client, "slow one [[latency:3]]")
    run = Run.objects.get()
    response = auth_client.post(f"/runs/{run.id}/vote", {"choice": "gen:0"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    assert "Votes open once every model has finished." in response.content.decode()
    assert not Vote.objects.exists()
    wait_for_generations(run)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"prompt": "cat", "models": ["gpt-image-2"]}, "Pick at least two models to compare."),
        ({"prompt": "   ", "models": BOTH}, "A prompt is required (invisible characters alone do not count)."),
        ({"prompt": "cat", "models": [*BOTH, "dall-e-9"]}, "Select a valid choice."),
        ({"prompt": "x" * 32001, "models": BOTH}, "the limit is 32,000"),
        ({"prompt": "cat", "models": BOTH, "size": "1000x1000"}, "multiples of 16"),
        ({"prompt": "cat", "models": BOTH, "size": "big"}, "WIDTHxHEIGHT"),
        ({"prompt": "cat", "models": BOTH, "n": "9"}, "less than or equal to 4"),
        ({"prompt": "cat", "models": BOTH, "background": "transparent", "output_format": "jpeg"}, "needs PNG or WebP"),
    ],
)
def test_bad_input_is_explained_and_nothing_is_stored(auth_client, data, message):
    response = auth_client.post("/", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Run.objects.exists() and not Generation.objects.exists()


def test_login_is_required_for_pages_and_images(client, auth_client, simulator):
    submit(auth_client, "a chair")
    run = Run.objects.get()
    wait_for_generations(run)
    image = Image.objects.first()
    assert image is not None
    client.logout()
    for url in ["/", "/runs/", f"/runs/{run.id}/", image.url, image.thumbnail_url]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/"), url


def test_notes_without_javascript_redirect_back(auth_client, simulator):
    submit(auth_client, "a lamp")
    run = Run.objects.get()
    response = auth_client.post(f"/runs/{run.id}/notes", {"body": "plain form post"})
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.id}/"
    empty = auth_client.post(f"/runs/{run.id}/notes", {"body": "   "}, HTTP_HX_REQUEST="true")
    assert empty.status_code == 422 and "A note cannot be empty." in empty.content.decode()
    assert Note.objects.count() == 1
    wait_for_generations(run)


def test_form_explains_what_a_model_ignores_and_estimates_cost(auth_client):
    query = "part=summary&models=gpt-image-2&models=gemini-3-pro-image&quality=high&background=transparent&n=2&resolution=1K&aspect_ratio=1:1"
    summary = auth_client.get(f"/runs/options?{query}").content.decode()
    assert "Nano Banana Pro ignores quality, background: it decides these itself." in summary
    assert "GPT Image 2 $0.4220" in summary and "Nano Banana Pro $0.2680" in summary
    assert "total ≈ $0.6900" in summary


def test_form_offers_only_what_the_chosen_models_support(auth_client):
    only_gemini = auth_client.get("/runs/options?part=options&models=gemini-3-pro-image").content.decode()
    assert re.search(r'<select name="quality"[^>]*disabled', only_gemini)
    assert not re.search(r'name="grounding"[^>]*disabled', only_gemini)
    with_gpt = auth_client.get(
        "/runs/options?part=options&models=gpt-image-2&models=gemini-3-pro-image"
    ).content.decode()
    assert not re.search(r'<select name="quality"[^>]*disabled', with_gpt)
    only_gpt = auth_client.get("/runs/options?part=options&models=gpt-image-2").content.decode()
    assert re.search(r'name="grounding"[^>]*disabled', only_gpt)


def test_form_gives_a_routing_hint_for_the_prompt(auth_client):
    query = "part=summary&models=gpt-image-2&models=gemini-3-pro-image&resolution=4K&prompt=%E6%96%B0%E9%B2%9C%E9%9D%A2%E5%8C%85+poster"
    summary = auth_client.get(f"/runs/options?{query}").content.decode()
    assert (
        "<strong>Hint:</strong> Nano Banana Pro is likely stronger here: 4K output, Chinese/Japanese text." in summary
    )
    plain = auth_client.get(
        "/runs/options?part=summary&models=gpt-image-2&models=gemini-3-pro-image&prompt=a+cat"
    ).content.decode()
    assert "Hint:" not in plain

"""What comes back: streamed previews, text and grounding, refusals, several images
per model, and the fairness ledger — through the simulator over real HTTP."""

import pytest

from compare.models import Generation, Image
from tests.factories import BOTH, submit_and_wait

pytestmark = pytest.mark.django_db(transaction=True)


def test_streamed_previews_are_stored_and_shown_before_the_final_image(auth_client, simulator):
    run, (gpt, gemini) = submit_and_wait(auth_client, partial_images="2")
    assert gpt.params_sent["stream"] is True and gpt.params_sent["partial_images"] == 2
    previews = list(gpt.images.filter(is_partial=True).order_by("index"))
    assert [p.index for p in previews] == [0, 1]
    assert gpt.images.filter(is_partial=False).count() == 1
    assert "stream" not in gemini.params_sent  # Gemini is never streamed
    # While running, the pane shows the newest preview; once done, only the result.
    Generation.objects.filter(pk=gpt.pk).update(status="running")
    running = auth_client.get(f"/runs/{run.id}/generations/{gpt.id}").content.decode()
    assert previews[-1].url in running and "Preview 2" in running
    page = auth_client.get(f"/runs/{run.id}/").content.decode()
    assert 'hx-trigger="every 100ms"' in page  # the page's one poll (compare/live.py) follows the running pane
    Generation.objects.filter(pk=gpt.pk).update(status="succeeded")
    done = auth_client.get(f"/runs/{run.id}/generations/{gpt.id}").content.decode()
    assert previews[-1].url not in done and gpt.images.get(is_partial=False).url in done


def test_gemini_text_and_grounding_are_shown_and_thought_images_are_not(auth_client, simulator):
    run, (_gpt, gemini) = submit_and_wait(auth_client, prompt="an infographic of the 2026 harvest", grounding="on")
    assert gemini.params_sent["tools"] == [{"googleSearch": {}}]
    assert gemini.images.count() == 1  # the simulator also sends a thought draft image
    grounding = gemini.grounding
    assert grounding and grounding["chunks"] and grounding["web_search_queries"]
    page = auth_client.get(f"/runs/{run.id}/").content.decode()
    assert "Search grounding" in page and grounding["chunks"][0]["uri"] in page
    assert "Here is your image" in page
    assert "Google Search grounding helped only some sides; GPT Image 2 had none." in page


@pytest.mark.parametrize(
    ("marker", "side", "reason"),
    [
        ("[[fault:refusal@openai]]", 0, "safety system"),
        ("[[fault:refusal@gemini]]", 1, "IMAGE_SAFETY"),
        ("[[fault:prompt_blocked@gemini]]", 1, "PROHIBITED_CONTENT"),
        ("[[fault:no_image@gemini]]", 1, "NO_IMAGE"),
        ("[[fault:text_only@gemini]]", 1, "answered with text instead of an image"),
    ],
)
def test_every_refusal_form_ends_refused_with_the_reason_and_no_retry(auth_client, simulator, marker, side, reason):
    run, gens = submit_and_wait(auth_client, prompt=f"something {marker}")
    refused = gens[side]
    assert refused.status == "refused" and refused.attempts == 1
    assert reason.lower() in refused.error_message.lower()
    assert gens[1 - side].status == "succeeded"
    page = auth_client.get(f"/runs/{run.id}/").content.decode()
    assert f"{refused.model_label} refused this prompt." in page


def test_several_images_per_model_gemini_in_parallel_requests(auth_client, simulator):
    _run, (gpt, gemini) = submit_and_wait(auth_client, n="2")
    assert gpt.params_sent["n"] == 2 and gpt.images.filter(is_partial=False).count() == 2
    assert gemini.params_sent["requests"] == 2
    finals = list(gemini.images.filter(is_partial=False))
    assert len(finals) == 2 and finals[0].sha256 != finals[1].sha256
    assert gemini.cost_usd is not None and gpt.cost_usd is not None
    assert gemini.cost_usd > gpt.cost_usd  # two Nano Banana Pro requests at $0.134 each


def test_fairness_ledger_warns_when_the_sides_got_different_conditions(auth_client, simulator):
    run, (gpt, gemini) = submit_and_wait(
        auth_client, aspect_ratio="16:9", resolution="4K", quality="high", background="opaque"
    )
    assert gpt.params_sent["size"] == "3840x2160" and gemini.params_sent["generationConfig"]["imageConfig"] == {
        "aspectRatio": "16:9",
        "imageSize": "4K",
    }
    gemini_image = gemini.images.get()
    assert (gemini_image.width, gemini_image.height) != (3840, 2160)
    page = auth_client.get(f"/runs/{run.id}/").content.decode()
    assert "Fairness ledger" in page and "3840×2160" in page and "16:9 · 4K" in page
    assert "Quality “high” applied only to GPT Image 2; the others chose their own." in page
    assert "The opaque background applied only to GPT Image 2" in page
    mp = gemini_image.width * gemini_image.height / 1e6
    assert f"Nano Banana Pro delivered {mp:.1f} MP but GPT Image 2 8.3 MP" in page


def test_cost_is_estimated_before_and_measured_after(auth_client, simulator):
    _run, (gpt, gemini) = submit_and_wait(auth_client, quality="medium")
    assert str(gpt.estimated_cost_usd) == "0.0530" and str(gemini.estimated_cost_usd) == "0.1340"
    # Actual cost comes from the usage tokens the provider reported.
    assert gpt.cost_usd is not None and gpt.estimated_cost_usd is not None
    assert gemini.cost_usd is not None and gemini.estimated_cost_usd is not None
    assert gpt.usage["output_tokens"] == 1767 and gpt.cost_usd >= gpt.estimated_cost_usd
    assert gemini.usage["candidatesTokenCount"] == 1120 and gemini.cost_usd >= gemini.estimated_cost_usd
    assert Image.objects.count() == 2


def test_compression_and_moderation_reach_openai_and_gemini_is_told_to_ignore_them(auth_client, simulator):
    _run, (gpt, gemini) = submit_and_wait(auth_client, output_format="webp", output_compression="60", moderation="low")
    assert (gpt.params_sent["output_format"], gpt.params_sent["output_compression"], gpt.params_sent["moderation"]) == (
        "webp",
        60,
        "low",
    )
    assert gpt.images.get().format == "webp" and gpt.params_echoed["output_format"] == "webp"
    assert "moderation" not in gemini.params_sent and "output_compression" not in gemini.params_sent
    query = "part=summary&models=gpt-image-2&models=gemini-3-pro-image&output_format=webp&output_compression=60&moderation=low"
    summary = auth_client.get(f"/runs/options?{query}").content.decode()
    assert "Nano Banana Pro ignores output format, compression, the moderation level" in summary
    bad = auth_client.post("/", {"prompt": "x", "models": BOTH, "output_format": "png", "output_compression": "50"})
    assert bad.status_code == 400 and "Compression applies to JPEG and WebP, not PNG." in bad.content.decode()

"""Which model takes which option is one rule, `Capabilities.supports` (compare/registry.py):
the form's errors and greyed-out fields, the "… ignores …" notes, and the fairness ledger
all follow it, down to single values (a model may offer some qualities and not others)."""

import json
import re

import pytest
from django.core.exceptions import ImproperlyConfigured

from compare.judging import fairness
from compare.models import ApiToken, Run
from compare.options import ignored_options
from compare.registry import Capabilities, get_model, load_registry, registry
from tests.factories import BOTH, GPT, make_run

# An OpenAI-style model that offers only some values of its options.
NARROW = """
[models."narrow"]
label = "Narrow"
protocol = "openai-images"
model_id = "narrow-1"
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"

# Priced: under the default daily limit a model without prices is refused (compare/budget.py).
[models."narrow".pricing]
per_image_by_size = { "1024x1024" = [0.01, 0.05, 0.2] }

[models."narrow".capabilities]
sizes = "wxh"
qualities = ["auto", "high"]
output_formats = ["png", "webp"]
backgrounds = ["auto", "opaque"]
max_images = 2
max_references = 1
"""


@pytest.fixture
def narrow_registry(settings, tmp_path):
    path = tmp_path / "models.toml"
    path.write_text(settings.COMPARE_MODELS_FILE.read_text() + NARROW)
    settings.COMPARE_MODELS_FILE = path
    registry.cache_clear()
    yield get_model("narrow")
    registry.cache_clear()


GPT_CAPS = Capabilities(
    sizes="wxh",
    qualities=("auto", "low", "medium", "high"),
    output_formats=("png", "jpeg", "webp"),
    backgrounds=("auto", "opaque", "transparent"),
    max_images=4,
    max_references=16,
    mask=True,
    streaming=True,
    moderation=True,
)
GEMINI_CAPS = Capabilities(sizes="aspect", max_images=4, max_references=14, grounding=True)
NARROW_CAPS = Capabilities(
    sizes="wxh", qualities=("auto", "high"), output_formats=("png", "webp"), max_images=2, max_references=1
)


@pytest.mark.parametrize(
    ("caps", "option", "value", "expected"),
    [
        # At all (no value) …
        (GPT_CAPS, "quality", None, True),
        (GEMINI_CAPS, "quality", None, False),
        (GEMINI_CAPS, "output_compression", None, False),
        (NARROW_CAPS, "output_compression", None, True),  # WebP takes a compression
        (GEMINI_CAPS, "moderation", None, False),
        (GPT_CAPS, "moderation", None, True),
        (GEMINI_CAPS, "grounding", None, True),
        (GPT_CAPS, "partial_images", None, True),
        (GEMINI_CAPS, "mask", None, False),
        (GEMINI_CAPS, "references", None, True),
        # … one value …
        (NARROW_CAPS, "quality", "high", True),
        (NARROW_CAPS, "quality", "low", False),
        (NARROW_CAPS, "output_format", "jpeg", False),
        (GEMINI_CAPS, "partial_images", 2, False),
        (GEMINI_CAPS, "grounding", True, True),
        (GPT_CAPS, "grounding", True, False),
        (NARROW_CAPS, "references", 2, False),
        (GPT_CAPS, "references", 16, True),
        (NARROW_CAPS, "n", 3, False),
        (GPT_CAPS, "n", 4, True),
        # … and the values that ask nothing, which every model takes.
        (GEMINI_CAPS, "quality", "auto", True),
        (GEMINI_CAPS, "output_format", "png", True),
        (GEMINI_CAPS, "background", "auto", True),
        (GEMINI_CAPS, "moderation", "auto", True),
        (GEMINI_CAPS, "partial_images", 0, True),
        (GPT_CAPS, "grounding", False, True),
        (GEMINI_CAPS, "mask", False, True),
        (NARROW_CAPS, "references", 0, True),
        # Sizes are adapted to every model; fallback and cache are ours.
        (GEMINI_CAPS, "size", "1536x1024", True),
        (GEMINI_CAPS, "fallback_model", "gpt-image-2", True),
    ],
)
def test_supports(caps, option, value, expected):
    assert caps.supports(option, value) is expected


def test_an_unknown_option_is_a_programming_error():
    with pytest.raises(ValueError, match="seed"):
        GPT_CAPS.supports("seed")


def test_the_moderation_level_comes_with_the_protocol(settings, tmp_path):
    models = load_registry(settings.COMPARE_MODELS_FILE)
    assert models["gpt-image-2"].capabilities.supports("moderation", "low")
    assert not models["gemini-3-pro-image"].capabilities.supports("moderation", "low")
    path = tmp_path / "models.toml"
    path.write_text(NARROW + "moderation = true\n")
    with pytest.raises(ImproperlyConfigured, match="unknown capabilities \\['moderation'\\]"):
        load_registry(path)


def post_api(client, user, body):
    _, token = ApiToken.issue(user, "s")
    return client.post(
        "/api/runs", json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )


def test_a_value_no_chosen_model_offers_is_an_error_though_the_option_is_offered(client, user, narrow_registry):
    body = {"prompt": "x", "models": ["narrow", "gemini-3-pro-image"], "quality": "low", "output_format": "jpeg"}
    response = post_api(client, user, body)
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert fields["quality"] == ["None of the chosen models supports quality."]
    assert fields["output_format"] == ["None of the chosen models supports output format."]
    # Each value that one of them offers is fine.
    body.update(quality="high", output_format="webp")
    assert post_api(client, user, body).status_code == 201
    assert Run.objects.get().options["quality"] == "high"


def test_only_gemini_models_reject_a_moderation_level(client, user, enable_models):
    enable_models("gemini-nano-banana-2.1")
    body = {"prompt": "x", "models": ["gemini-3-pro-image", "gemini-nano-banana-2.1"], "moderation": "low"}
    response = post_api(client, user, body)
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["moderation"] == ["None of the chosen models supports moderation."]
    assert not Run.objects.exists()


def test_the_notes_name_the_values_a_model_does_not_offer(narrow_registry):
    gemini = get_model("gemini-3-pro-image")
    assert gemini is not None
    notes = ignored_options([narrow_registry, gemini], {"quality": "low", "background": "opaque", "mask": True})
    assert notes[0] == "Narrow ignores quality, the mask (it edits the whole image): it decides these itself."
    assert notes[1].startswith("Nano Banana Pro ignores quality, background, the mask")
    assert ignored_options([narrow_registry], {"quality": "high", "background": "opaque"}) == []


def test_the_ledger_warns_when_a_value_reached_only_some_sides(user, narrow_registry):
    run = make_run(user, models=(GPT, ("narrow", "Narrow", "narrow-1")), options={"quality": "low"})
    warnings = fairness.warnings(run, run.ordered_generations())
    assert "Quality “low” applied only to GPT Image 2; the others chose their own." in warnings
    run = make_run(user, models=(GPT, ("narrow", "Narrow", "narrow-1")), options={"quality": "high"})
    assert not any("Quality" in w for w in fairness.warnings(run, run.ordered_generations()))


def test_the_page_greys_out_what_no_chosen_model_takes(auth_client, enable_models):
    enable_models("gemini-nano-banana-2.1")
    query = "part=options&models=gemini-3-pro-image&models=gemini-nano-banana-2.1"
    html = auth_client.get(f"/runs/options?{query}").content.decode()
    for name in ("quality", "output_format", "output_compression", "background", "moderation", "partial_images"):
        assert _disabled(html, name), name
    assert not _disabled(html, "grounding")
    html = auth_client.get(f"/runs/options?part=options&models={BOTH[0]}&models={BOTH[1]}").content.decode()
    assert not any(_disabled(html, name) for name in ("quality", "moderation", "grounding", "mask"))


def _disabled(html: str, name: str) -> bool:
    """Whether the form control named `name` carries the disabled attribute."""
    tag = re.search(rf'<(?:input|select)[^>]*name="{name}"[^>]*>', html)
    assert tag, name
    return " disabled" in tag[0]


def test_a_fork_previews_the_options_it_starts_from(auth_client, user):
    parent = make_run(user, options={"quality": "high", "background": "opaque"})
    html = auth_client.get(f"/?from={parent.id}").content.decode()
    assert "Nano Banana Pro ignores quality, background: it decides these itself." in html


def test_the_preview_keeps_each_valid_option_of_an_invalid_form(auth_client):
    # n=9 is out of range and the prompt is missing: the preview still follows the quality.
    query = f"part=summary&models={BOTH[0]}&models={BOTH[1]}&quality=high&n=9"
    response = auth_client.get(f"/runs/options?{query}")
    assert response.status_code == 200
    assert "Nano Banana Pro ignores quality: it decides these itself." in response.content.decode()

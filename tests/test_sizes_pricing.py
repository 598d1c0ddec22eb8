"""One canonical size choice mapped onto each API, and the cost estimates."""

import io
import json
from datetime import date
from decimal import Decimal

import httpx
import pytest
from PIL import Image as PILImage

from compare import pricing, sizes
from compare import registry as registry_module
from compare.judging.fairness import ledger
from compare.options import ignored_options
from compare.providers import openai_images
from compare.providers.base import GenerationRequest
from compare.registry import registry
from tests.factories import Recorder, make_run

FIXED = ("1024x1024", "1536x1024", "1024x1536")
BEFORE_SHUTDOWN = date(2026, 11, 30)  # gpt-image-1.5 answers until 2026-12-01


def wxh(size: str) -> tuple[int, int]:
    parsed = sizes.parse_wxh(size)
    assert parsed is not None, f"{size} is not WIDTHxHEIGHT"
    return parsed


@pytest.mark.parametrize(
    ("aspect", "resolution", "expected"),
    [
        ("1:1", "1K", "1024x1024"),
        ("3:2", "1K", "1536x1024"),
        ("2:3", "1K", "1024x1536"),
        ("1:1", "2K", "2048x2048"),
        ("16:9", "4K", "3840x2160"),
        ("1:1", "4K", "2880x2880"),
        ("auto", "1K", "auto"),
    ],
)
def test_openai_size_from_aspect_and_resolution(aspect, resolution, expected):
    assert sizes.openai_size(aspect, resolution) == expected


@pytest.mark.parametrize("aspect", ["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"])
@pytest.mark.parametrize("resolution", ["1K", "2K", "4K"])
def test_every_canonical_choice_is_a_valid_gpt_image_2_size(aspect, resolution):
    size = sizes.openai_size(aspect, resolution)
    assert sizes.openai_size_problem(*wxh(size)) is None, size


@pytest.mark.parametrize(
    ("size", "problem"),
    [
        ("1000x1000", "multiples of 16"),
        ("4096x4096", "long edge"),
        ("3840x1024", "3:1"),
        ("512x512", "at least"),
    ],
)
def test_invalid_openai_sizes_are_explained(size, problem):
    explained = sizes.openai_size_problem(*wxh(size))
    assert explained is not None and problem in explained


def test_gemini_config_maps_aspect_and_size_class():
    assert sizes.gemini_config("16:9", "2K") == {"aspectRatio": "16:9", "imageSize": "2K"}
    assert sizes.gemini_config("auto", "1K") == {"imageSize": "1K"}
    assert sizes.gemini_config("1:1", "1K", "3840x2160") == {"aspectRatio": "16:9", "imageSize": "4K"}


def test_estimates_use_the_published_per_image_prices():
    gpt, gemini = registry()["gpt-image-2"], registry()["gemini-3-pro-image"]
    one = {"aspect_ratio": "1:1", "resolution": "1K", "n": 1}
    assert pricing.estimate(gpt, {**one, "quality": "high"}) == Decimal("0.2110")
    assert pricing.estimate(gpt, {**one, "quality": "low", "n": 2}) == Decimal("0.0120")
    assert pricing.estimate(gemini, one) == Decimal("0.1340")
    assert pricing.estimate(gemini, {**one, "resolution": "4K", "n": 2}) == Decimal("0.4800")


def test_actual_cost_from_usage_tokens():
    gpt, gemini = registry()["gpt-image-2"], registry()["gemini-3-pro-image"]
    usage = {"input_tokens": 50, "input_tokens_details": {"text_tokens": 50, "image_tokens": 0}, "output_tokens": 1767}
    # 50 × $5/M + 1767 × $30/M
    assert pricing.actual(gpt, usage) == Decimal("0.0533")
    gem_usage = {"promptTokenCount": 10, "candidatesTokenCount": 1120, "thoughtsTokenCount": 100}
    # 10 × $2/M + 1120 × $120/M + 100 × $12/M
    assert pricing.actual(gemini, gem_usage) == Decimal("0.1356")
    assert pricing.actual(gpt, {}) is None


def test_gemini_sizes_snap_to_what_the_model_offers():
    lite = registry()["gemini-3.1-flash-lite-image"]
    assert sizes.gemini_config("16:9", "4K", None, lite.capabilities) == {"aspectRatio": "16:9", "imageSize": "1K"}
    pro = registry()["gemini-3-pro-image"]
    assert sizes.gemini_config("16:9", "4K", None, pro.capabilities) == {"aspectRatio": "16:9", "imageSize": "4K"}


# --- fixed-size models, the long aspect ratios ------------------------------------------------


@pytest.mark.parametrize(
    ("aspect", "resolution", "explicit", "expected"),
    [
        ("16:9", "1K", None, "1536x1024"),  # not 1360x768, which gpt-image-1.5 rejects
        ("1:1", "4K", None, "1024x1024"),  # not 2880x2880
        ("9:16", "2K", None, "1024x1536"),
        ("21:9", "1K", None, "1536x1024"),
        ("4:5", "1K", None, "1024x1536"),
        ("1:1", "1K", None, "1024x1024"),
        ("1:8", "1K", None, "1024x1536"),
        ("auto", "2K", None, "auto"),
        ("1:1", "1K", "1360x768", "1536x1024"),
        ("1:1", "1K", "1024x1536", "1024x1536"),
    ],
)
def test_a_fixed_size_model_gets_the_nearest_listed_size(aspect, resolution, explicit, expected):
    caps = registry()["gpt-image-1.5"].capabilities
    assert caps.sizes == "fixed" and caps.fixed_sizes == FIXED
    assert sizes.openai_size(aspect, resolution, explicit, caps) == expected


@pytest.mark.parametrize("key", ["gpt-image-1.5", "gpt-image-1-mini", "chatgpt-image-latest", "gpt-image-2.6-flare"])
def test_models_without_any_size_only_ever_get_a_listed_size(key):
    caps = registry()[key].capabilities
    every = [(a, r) for a in registry_module.ALL_ASPECTS for r in registry_module.IMAGE_SIZES]
    assert {sizes.openai_size(a, r, None, caps) for a, r in every} <= set(FIXED)


@pytest.mark.parametrize("aspect", ["1:4", "4:1", "1:8", "8:1"])
@pytest.mark.parametrize("resolution", ["1K", "2K", "4K"])
def test_the_long_ratios_become_valid_gpt_image_2_sizes_at_3_to_1(aspect, resolution):
    size = sizes.openai_size(aspect, resolution, None, registry()["gpt-image-2"].capabilities)
    w, h = wxh(size)
    assert sizes.openai_size_problem(w, h) is None, size
    assert max(w, h) == 3 * min(w, h), size


def test_the_long_ratios_have_gemini_pixel_sizes_and_only_nano_banana_2_1_takes_them():
    assert registry_module.ALL_ASPECTS[-4:] == ["1:4", "4:1", "1:8", "8:1"]
    assert set(sizes.GEMINI_SIZES_1K) == set(registry_module.ALL_ASPECTS)
    assert sizes.GEMINI_SIZES_1K["1:8"] == (352, 2928) and sizes.GEMINI_SIZES_1K["4:1"] == (2064, 512)
    for w, h in sizes.GEMINI_SIZES_1K.values():
        assert w % 16 == 0 and h % 16 == 0 and 0.85 < w * h / 1024**2 < 1.1, (w, h)
    nb21, pro = registry()["gemini-nano-banana-2.1"], registry()["gemini-3-pro-image"]
    assert nb21.capabilities.aspect_ratios == tuple(registry_module.ALL_ASPECTS)
    assert sizes.gemini_config("1:8", "2K", None, nb21.capabilities) == {"aspectRatio": "1:8", "imageSize": "2K"}
    assert sizes.gemini_config("1:8", "2K", None, pro.capabilities) == {"aspectRatio": "9:16", "imageSize": "2K"}


def test_the_notes_say_when_a_size_was_changed_for_a_model():
    gpt15, gpt2, pro = (registry()[k] for k in ("gpt-image-1.5", "gpt-image-2", "gemini-3-pro-image"))
    notes = ignored_options([gpt15, gpt2, pro], {"aspect_ratio": "16:9", "resolution": "2K"})
    assert notes == [
        "GPT Image 1.5 takes only 1024×1024, 1536×1024, 1024×1536 (or auto): 16:9 at 2K becomes 1536×1024."
    ]
    notes = ignored_options([gpt2, pro], {"aspect_ratio": "1:8", "resolution": "1K"})
    assert notes == [
        "GPT Image 2 takes shapes up to 3:1: 1:8 at 1K becomes 576×1728.",
        "Nano Banana Pro cannot do 1:8 at 1K; it gets 9:16 at 1K.",
    ]
    assert ignored_options([gpt15, gpt2], {"aspect_ratio": "1:1", "resolution": "1K"}) == []


@pytest.mark.django_db
def test_the_form_offers_an_aspect_only_if_a_chosen_model_takes_it(auth_client, enable_models):
    enable_models("gemini-nano-banana-2.1")
    html = auth_client.get("/runs/options", {"part": "options", "models": ["gpt-image-2", "gemini-3-pro-image"]})
    assert 'value="21:9"' in html.content.decode() and 'value="1:8"' not in html.content.decode()
    html = auth_client.get(
        "/runs/options", {"part": "options", "models": ["gpt-image-2", "gemini-nano-banana-2.1"]}
    ).content.decode()
    assert 'value="1:8"' in html and 'value="8:1"' in html


def forward_to(simulator_url: str) -> Recorder:
    """Record each request, then let the live simulator answer it."""

    def send(request: httpx.Request) -> httpx.Response:
        with httpx.Client() as client:
            reply = client.send(
                httpx.Request(request.method, request.url, headers=request.headers, content=request.content)
            )
            reply.read()
            return httpx.Response(reply.status_code, headers=reply.headers, content=reply.content)

    return Recorder(send)


@pytest.mark.django_db(transaction=True)
def test_gpt_image_1_5_is_sent_a_size_it_takes_and_the_simulator_answers(simulator, monkeypatch):
    monkeypatch.setattr(registry_module, "today", lambda: BEFORE_SHUTDOWN)
    model = registry()["gpt-image-1.5"]
    recorder = forward_to(simulator.url)
    request = GenerationRequest(model=model, prompt="a fox", aspect_ratio="16:9", resolution="2K")
    result = openai_images.generate(request, recorder.client())
    [sent] = recorder.requests
    assert json.loads(sent.content)["size"] == "1536x1024"
    assert result.echoed["size"] == "1536x1024"
    assert PILImage.open(io.BytesIO(result.images[0].data)).size == (1536, 1024)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("model", "body", "param", "message"),
    [
        (
            "gpt-image-1.5",
            {"size": "1360x768"},
            "size",
            "Invalid value: '1360x768'. Supported values are: '1024x1024', '1024x1536', '1536x1024', and 'auto'.",
        ),
        (
            "gpt-image-1.5",
            {"size": "2880x2880"},
            "size",
            "Invalid value: '2880x2880'. Supported values are: '1024x1024', '1024x1536', '1536x1024', and 'auto'.",
        ),
        (
            "chatgpt-image-latest",
            {"size": "2048x1152"},
            "size",
            "Invalid value: '2048x1152'. Supported values are: '1024x1024', '1024x1536', '1536x1024', and 'auto'.",
        ),
        (
            "gpt-image-2.6-sunburst",
            {"size": "1360x768"},
            "size",
            "Invalid value: '1360x768'. Supported values are: '1024x1024', '1024x1536', '1536x1024', and 'auto'.",
        ),
        (
            "gpt-image-2",
            {"quality": "xhigh"},
            "quality",
            "Invalid value: 'xhigh'. Supported values are: 'auto', 'high', 'low', 'medium'.",
        ),
        (
            "gpt-image-2.6-flare",
            {"quality": "max"},
            "quality",
            "Invalid value: 'max'. Supported values are: 'auto', 'high', 'low', 'medium'.",
        ),
    ],
)
def test_the_simulator_rejects_what_the_model_does_not_take(simulator, monkeypatch, model, body, param, message):
    monkeypatch.setattr(registry_module, "today", lambda: BEFORE_SHUTDOWN)
    reply = httpx.post(
        f"{simulator.url}/sim/openai/v1/images/generations",
        json={"model": model, "prompt": "a fox", **body},
        headers={"Authorization": "Bearer test"},
    )
    assert reply.status_code == 400
    assert reply.json()["error"] == {
        "message": message,
        "type": "invalid_request_error",
        "param": param,
        "code": "invalid_value",
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("quality", ["xhigh", "max"])
def test_gpt_image_2_5_takes_xhigh_and_max_and_any_size(simulator, quality):
    reply = httpx.post(
        f"{simulator.url}/sim/openai/v1/images/generations",
        json={"model": "gpt-image-2.5-flare-2026-09-08", "prompt": "a fox", "quality": quality, "size": "1360x768"},
        headers={"Authorization": "Bearer test"},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    assert (reply.json()["quality"], reply.json()["size"]) == (quality, "1360x768")


def test_a_quality_the_model_lacks_is_left_to_it():
    gpt2, flare = registry()["gpt-image-2"], registry()["gpt-image-2.5-flare"]
    assert openai_images.wire_params(GenerationRequest(model=gpt2, prompt="x", quality="max"))["quality"] == "auto"
    assert openai_images.wire_params(GenerationRequest(model=flare, prompt="x", quality="max"))["quality"] == "max"
    assert flare.capabilities.supports("markup") and not gpt2.capabilities.supports("markup")
    assert registry()["gpt-image-2.6-flare"].capabilities.qualities == ("auto", "low", "medium", "high")


@pytest.mark.django_db
def test_the_fairness_ledger_says_the_size_was_changed(user):
    gpt15 = ("gpt-image-1.5", "GPT Image 1.5", "gpt-image-1.5")
    run = make_run(
        user,
        models=(("gpt-image-2", "GPT Image 2", "gpt-image-2"), gpt15),
        options={"aspect_ratio": "16:9", "resolution": "2K"},
    )
    gens = list(run.generations.order_by("position"))
    gens[0].params_sent, gens[1].params_sent = {"size": "2720x1536"}, {"size": "1536x1024"}
    row = next(r for r in ledger(run, gens) if r.label == "Size asked")
    assert row.values == ["2720×1536", "1536×1024 (nearest to 16:9 at 2K)"]


def test_no_published_price_means_no_estimate():
    flare = registry()["gpt-image-2.5-flare"]
    assert pricing.estimate(flare, {"aspect_ratio": "1:1", "resolution": "1K", "n": 1, "quality": "high"}) is None

"""Requests that must not break real calls: `moderation` only where the endpoint takes it,
no streaming through a gateway that does not stream, and the seed's convention of one
OpenAI-compatible gateway serving Gemini on /v1/images/generations — through the app,
with the simulator at the other end of the wire and every outgoing request recorded."""

import base64
import io
import json
import shutil
import threading
from pathlib import Path

import httpx
import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from compare import http, pricing
from compare.models import Generation
from compare.providers import openai_images
from compare.providers.base import GenerationRequest
from compare.registry import Model, get_model, registry
from tests.factories import BOTH, form_data, png, wait_for_generations
from tests.test_provider_openai import multipart

EXAMPLE = Path(django_settings.BASE_DIR) / "compare" / "models.gateway-example.toml"
GATEWAY_MODELS = ["gpt-image-2", "gemini-3-pro-image-gateway"]


class Tap(httpx.HTTPTransport):
    """The shared client's transport, keeping every request the app sends (body read)."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[httpx.Request] = []
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        with self._lock:
            self.requests.append(request)
        return super().handle_request(request)

    def to(self, path_end: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path.endswith(path_end)]


@pytest.fixture
def wire(simulator) -> Tap:
    """The app talks to the simulator through a recording transport (the simulator fixture
    closes the client afterwards)."""
    tap = Tap()
    http.reset_shared_client()
    with http._lock:
        http._client = http.build_client(transport=tap)
    return tap


@pytest.fixture
def gateway_registry(settings, tmp_path, monkeypatch):
    """The shipped gateway example as the registry, with no gateway key: the simulator answers."""
    monkeypatch.delenv("GATEWAY_KEY", raising=False)
    monkeypatch.delenv("RELAY_KEY", raising=False)
    path = tmp_path / "gateway.toml"
    shutil.copy(EXAMPLE, path)
    settings.COMPARE_MODELS_FILE = path
    registry.cache_clear()
    yield
    registry.cache_clear()


def entry(key: str) -> Model:
    found = get_model(key)
    assert found is not None, key
    return found


def post_run(client, models, references=(), **fields):
    data = form_data("a lighthouse at dusk", models, **fields)
    if references:
        data["references"] = [SimpleUploadedFile(f"ref{i}.png", d, "image/png") for i, d in enumerate(references)]
    response = client.post("/", data)
    assert response.status_code == 302, response.content.decode()[:800]
    run = response.url.rstrip("/").rsplit("/", 1)[-1]
    from compare.models import Run

    return sorted(wait_for_generations(Run.objects.get(pk=run)), key=lambda g: g.position)


# --- moderation: generations only ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_edit_request_carries_no_moderation_and_succeeds(auth_client, wire):
    gens = post_run(auth_client, BOTH, references=[png("teal", (64, 64))], moderation="low")

    (edit,) = wire.to("/images/edits")
    names = [name for name, *_ in multipart(edit)]
    assert "moderation" not in names
    assert names.count("image") == 1 and "model" in names
    gpt = next(g for g in gens if g.model_key == "gpt-image-2")
    assert gpt.status == Generation.Status.SUCCEEDED, gpt.error_message
    assert "moderation" not in gpt.params_sent


@pytest.mark.django_db(transaction=True)
def test_generation_request_still_carries_moderation(auth_client, wire):
    gens = post_run(auth_client, BOTH, moderation="low")

    (generation,) = wire.to("/images/generations")
    assert json.loads(generation.content)["moderation"] == "low"
    gpt = next(g for g in gens if g.model_key == "gpt-image-2")
    assert gpt.status == Generation.Status.SUCCEEDED and gpt.params_sent["moderation"] == "low"


@pytest.mark.django_db
def test_form_says_the_moderation_level_is_not_sent_with_reference_images(auth_client):
    note = "GPT Image 2 edits reference images with its standard moderation: edits take no level."
    asked = {"part": "summary", "models": BOTH, "moderation": "low"}

    assert note in auth_client.get("/runs/options", {**asked, "reference_count": "1"}).content.decode()
    assert note not in auth_client.get("/runs/options", asked).content.decode()


def edits_form(model: str, **fields: str) -> tuple[dict, dict]:
    data = {"model": model, "prompt": "a fox", **fields}
    return data, {"image": ("fox.png", png("orange", (64, 64)), "image/png")}


def test_simulator_rejects_moderation_on_edits_like_the_real_api(simulator):
    url = f"{simulator.url}/sim/openai/v1/images/edits"
    headers = {"Authorization": "Bearer simulated"}
    data, files = edits_form("gpt-image-2", moderation="auto")
    refused = httpx.post(url, data=data, files=files, headers=headers, timeout=30)

    assert refused.status_code == 400
    assert refused.json() == {
        "error": {
            "message": "Unknown parameter: 'moderation'.",
            "type": "invalid_request_error",
            "param": "moderation",
            "code": "unknown_parameter",
        }
    }
    data, files = edits_form("gpt-image-2")
    assert httpx.post(url, data=data, files=files, headers=headers, timeout=30).status_code == 200


# --- a gateway that does not stream ----------------------------------------------------------


def test_example_gateway_entries_do_not_stream(gateway_registry):
    for key in GATEWAY_MODELS:
        assert entry(key).capabilities.streaming is False
        assert not entry(key).capabilities.supports("partial_images")


@pytest.mark.django_db
def test_form_offers_no_previews_for_a_non_streaming_gateway(gateway_registry, auth_client):
    page = auth_client.get("/runs/options", {"part": "options", "models": GATEWAY_MODELS})
    html = page.content.decode()
    field = html[html.index('name="partial_images"') - 200 : html.index('name="partial_images"') + 200]
    assert "disabled" in field

    refused = auth_client.post("/", form_data("a fox", GATEWAY_MODELS, partial_images="2"))
    assert refused.status_code == 400
    assert "None of the chosen models supports streamed previews." in refused.content.decode()


@pytest.mark.django_db(transaction=True)
def test_non_streaming_entry_never_sends_stream_even_when_asked(gateway_registry, wire):
    request = GenerationRequest(model=entry("gpt-image-2"), prompt="a fox", partial_images=2)
    assert "stream" not in openai_images.wire_params(request)

    result = openai_images.generate(request, http.shared_client())

    (sent,) = wire.to("/images/generations")
    body = json.loads(sent.content)
    assert "stream" not in body and "partial_images" not in body
    assert sent.headers["accept"] != "text/event-stream" and len(result.images) == 1


# --- one gateway serving Gemini on the Images API --------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_gateway_serves_gemini_on_images_generations(gateway_registry, auth_client, wire):
    gens = post_run(auth_client, GATEWAY_MODELS, resolution="2K", quality="pro")

    bodies = {json.loads(r.content)["model"]: json.loads(r.content) for r in wire.to("/images/generations")}
    assert set(bodies) == {"gpt-image-2", "gemini-3-pro-image"}
    gemini = bodies["gemini-3-pro-image"]
    assert wire.to("/images/generations")[0].url.path.startswith("/sim/openai/v1/")
    assert gemini["size"] == "2048x2048" and gemini["quality"] == "pro" and gemini["n"] == 1
    assert "stream" not in gemini
    # gpt-image-2 does not take "pro": it is sent the neutral quality, not a value it rejects.
    assert bodies["gpt-image-2"]["quality"] == "auto"

    side = next(g for g in gens if g.model_key == "gemini-3-pro-image-gateway")
    assert side.status == Generation.Status.SUCCEEDED, side.error_message
    (image,) = side.final_images()
    assert (image.width, image.height) == (2048, 2048)
    assert side.params_echoed == {}  # a gateway does not know what Gemini used: the image says it
    assert side.usage["output_tokens"] == 1120  # Gemini's tokens for a 2K image


@pytest.mark.django_db(transaction=True)
def test_the_gateway_entry_is_estimated_at_geminis_price_for_the_size_it_maps_to(gateway_registry, auth_client):
    model = get_model("gemini-3-pro-image-gateway")
    assert model is not None
    for resolution, price in [("1K", "0.1340"), ("2K", "0.1340"), ("4K", "0.2400")]:
        span = pricing.estimate_range(model, {"aspect_ratio": "16:9", "resolution": resolution, "quality": "pro"})
        assert span is not None and str(span.low) == str(span.high) == price, resolution
    # What a designer sees on the form before pressing Run: the price, not "no estimate".
    summary = auth_client.get(
        "/runs/options?part=summary&models=gemini-3-pro-image-gateway&resolution=4K&quality=pro"
    ).content.decode()
    assert "$0.2400" in summary


def test_gateway_mode_maps_the_size_onto_geminis_sizes(simulator):
    url = f"{simulator.url}/sim/openai/v1/images/generations"
    headers = {"Authorization": "Bearer simulated"}
    body = {"model": "gemini-3-pro-image", "prompt": "a fox", "size": "1536x864", "quality": "pro"}
    reply = httpx.post(url, json=body, headers=headers, timeout=30)

    assert reply.status_code == 200
    (item,) = reply.json()["data"]
    with Image.open(io.BytesIO(base64.b64decode(item["b64_json"]))) as picture:
        assert picture.size == (1376, 768)  # 16:9 at 1K, as Gemini draws it
    assert reply.json()["usage"]["output_tokens"] == 1120

    streamed = httpx.post(url, json={**body, "stream": True}, headers=headers, timeout=30)
    assert streamed.status_code == 400 and streamed.json()["error"]["param"] == "stream"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("aspect", "resolution", "sent"), [("2:3", "1K", "848x1264"), ("16:9", "2K", "2752x1536")])
def test_gateway_gemini_images_pass_the_specification_check(
    gateway_registry, auth_client, wire, aspect, resolution, sent
):
    gens = post_run(auth_client, GATEWAY_MODELS, aspect_ratio=aspect, resolution=resolution, quality="pro")

    bodies = {json.loads(r.content)["model"]: json.loads(r.content) for r in wire.to("/images/generations")}
    assert bodies["gemini-3-pro-image"]["size"] == sent  # Gemini's own size for the choice, not gpt-image-2's
    assert bodies["gpt-image-2"]["size"] != sent
    gen = next(g for g in gens if g.model_key == "gemini-3-pro-image-gateway")
    assert gen.status == Generation.Status.SUCCEEDED, gen.error_message
    (image,) = gen.final_images()
    assert f"{image.width}x{image.height}" == sent
    items = {i["name"]: i for i in gen.checks["images"][0]["spec"]}
    assert items["size"]["passed"] and items["size"]["expected"] == sent.replace("x", "×")
    assert items["aspect"]["passed"] and items["aspect"]["expected"] == aspect
    assert gen.check_status == Generation.CheckStatus.PASSED


@pytest.mark.parametrize("model_id", ["gemini-3-pro-image", "gemini-nano-banana-2.1"])
def test_the_app_and_the_gateway_read_a_size_by_one_rule(gateway_registry, model_id):
    """Every aspect and size class the app sends a gateway comes back as the same pair."""
    from dataclasses import replace

    from compare import sizes
    from compare.simulator.openai import gateway

    spec = gateway.spec_for(model_id)
    assert spec is not None
    caps = replace(entry("gemini-3-pro-image-gateway").capabilities, aspect_ratios=spec.aspects)
    for aspect in spec.aspects:
        for resolution in spec.image_sizes:
            size = sizes.openai_size(aspect, resolution, None, caps)
            assert size == "{}x{}".format(*sizes.gemini_pixels(aspect, resolution))
            assert gateway.image_config(size, spec) == (aspect, resolution), size
    # Sizes of other tools: 1536×864 is a 1K request, 2048×2048 a 2K one, 3840×2160 a 4K one.
    assert [gateway.image_config(s, spec)[1] for s in ("1536x864", "2048x2048", "3840x2160")] == ["1K", "2K", "4K"]
    assert sizes.gemini_config("1:1", "1K", "3840x2160") == {"aspectRatio": "16:9", "imageSize": "4K"}


@pytest.mark.django_db
def test_form_says_which_gemini_size_the_gateway_entry_is_sent(gateway_registry, auth_client):
    asked = {"part": "summary", "models": "gemini-3-pro-image-gateway", "size": "1920x1080"}
    page = auth_client.get("/runs/options", asked).content.decode()

    assert "takes an aspect ratio and size class, not pixels: 1920×1080 becomes 16:9 at 2K (2752×1536)." in page
    page = auth_client.get("/runs/options", {**asked, "size": "", "aspect_ratio": "16:9"}).content.decode()
    assert "not pixels" not in page and "becomes" not in page
    # "auto" carries no size class to a gateway: the form says the 2K asked for is not sent.
    page = auth_client.get("/runs/options", {**asked, "size": "", "aspect_ratio": "auto", "resolution": "2K"})
    assert "cannot do auto at 2K; it gets auto at the gateway&#x27;s own size." in page.content.decode()


def test_a_sizes_mode_the_registry_does_not_know_is_refused(settings, tmp_path):
    from django.core.exceptions import ImproperlyConfigured

    path = tmp_path / "models.toml"
    path.write_text(EXAMPLE.read_text().replace('sizes = "gemini-wxh"', 'sizes = "gemini-hxw"'))
    settings.COMPARE_MODELS_FILE = path
    registry.cache_clear()
    try:
        with pytest.raises(ImproperlyConfigured, match=r"capabilities\.sizes must be one of"):
            registry()
    finally:
        registry.cache_clear()

"""Reference images sized to what each model takes: downscaled for a model with a
`reference_max_edge` (Gemini: 2048 px) while the others get the original, said in the
fairness ledger, and a request over a model's `max_request_mb` refused before it is sent
(at the form when the sizes are known there, else as a failed, non-retried generation)."""

import base64
import dataclasses
import io
import json
import os

import httpx
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from compare.models import Generation, Run
from compare.providers import gemini, openai_images
from compare.providers.base import ErrorKind, GenerationRequest, InputImage, ProviderError
from compare.registry import registry
from tests.factories import BOTH, Recorder, form_data, png, wait_for_generations
from tests.test_gateways import entry, wire  # noqa: F401 (the recording fixture)
from tests.test_provider_openai import multipart


def noise(size: tuple[int, int]) -> bytes:
    """A PNG that does not compress: its size in bytes is about 3 × its pixels."""
    out = io.BytesIO()
    Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(out, "PNG", compress_level=1)
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        return img.size


def uploads(*images: bytes) -> list[SimpleUploadedFile]:
    return [SimpleUploadedFile(f"ref{i}.png", data, "image/png") for i, data in enumerate(images)]


@pytest.fixture
def gemini_limits(settings, tmp_path):
    """The shipped registry with Nano Banana Pro's input limits set to the given values."""

    def set_limits(**limits: int) -> None:
        text = settings.COMPARE_MODELS_FILE.read_text()
        head = '[models."gemini-3-pro-image".capabilities]\n'
        lines = "".join(f"{name} = {value}\n" for name, value in limits.items())
        path = tmp_path / "models.toml"
        path.write_text(text.replace(head, head + lines, 1))
        settings.COMPARE_MODELS_FILE = path
        registry.cache_clear()

    yield set_limits
    registry.cache_clear()


# --- the adapter, at the HTTP boundary -------------------------------------------------------


def test_gemini_gets_long_references_downscaled_and_short_ones_untouched():
    model = entry("gemini-3-pro-image")
    assert model.capabilities.reference_max_edge == 2048  # the Gemini protocol's default
    large, small = png("navy", (3000, 1500)), png("olive", (800, 600))
    reply = {"candidates": [{"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": ""}}]}}]}
    reply["candidates"][0]["content"]["parts"][0]["inlineData"]["data"] = base64.b64encode(png()).decode()
    rec = Recorder(lambda request: httpx.Response(200, json=reply))
    refs = [InputImage(large, "image/png", "a.png"), InputImage(small, "image/png", "b.png")]

    gemini.generate(GenerationRequest(model=model, prompt="a fox", references=refs), rec.client())

    parts = json.loads(rec.requests[0].content)["contents"][0]["parts"]
    sent = [base64.b64decode(p["inlineData"]["data"]) for p in parts if "inlineData" in p]
    assert size_of(sent[0]) == (2048, 1024)
    assert [p["inlineData"]["mimeType"] for p in parts if "inlineData" in p] == ["image/png", "image/png"]
    assert sent[1] == small  # within the edge: sent byte for byte as uploaded


def test_a_mask_follows_its_downscaled_reference():
    base = entry("gpt-image-2")
    model = dataclasses.replace(base, capabilities=dataclasses.replace(base.capabilities, reference_max_edge=1024))
    rec = Recorder(lambda request: httpx.Response(200, json={"created": 1, "data": [{"b64_json": b64(png())}]}))
    ref = InputImage(png("navy", (2048, 1024)), "image/png", "a.png")
    mask = InputImage(png((0, 0, 0, 0), (2048, 1024), mode="RGBA"), "image/png", "mask.png")

    openai_images.generate(GenerationRequest(model=model, prompt="a fox", references=[ref], mask=mask), rec.client())

    files = {name: payload for name, filename, _, payload in multipart(rec.requests[0]) if filename}
    assert size_of(files["image"]) == size_of(files["mask"]) == (1024, 512)
    with Image.open(io.BytesIO(files["mask"])) as sent_mask:
        assert sent_mask.mode == "RGBA"


def test_gemini_refuses_an_oversized_request_before_sending():
    model = entry("gemini-3-pro-image")
    rec = Recorder(lambda request: pytest.fail("nothing may be sent"))
    refs = [InputImage(noise((2000, 2000)), "image/png", f"{i}.png") for i in range(2)]  # ~24 MB raw, 32 MB as base64

    with pytest.raises(ProviderError) as caught:
        gemini.generate(GenerationRequest(model=model, prompt="a fox", references=refs), rec.client())

    assert caught.value.kind == ErrorKind.BAD_REQUEST and not caught.value.retryable
    assert "over the 20 MB a request to gemini-3-pro-image may carry; it was not sent" in caught.value.message
    assert rec.requests == []


# --- through the app and the simulator -------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_run_sends_each_model_the_references_it_takes_and_the_ledger_says_so(auth_client, wire):  # noqa: F811
    original = png("maroon", (3000, 1500))
    response = auth_client.post("/", {**form_data("a fox", BOTH), "references": uploads(original)})
    assert response.status_code == 302, response.content.decode()[:600]
    run = Run.objects.latest("created_at")
    gens = wait_for_generations(run)
    assert all(g.status == Generation.Status.SUCCEEDED for g in gens), [g.error_message for g in gens]

    (to_gemini,) = [r for r in wire.requests if r.url.path.endswith(":generateContent")]
    parts = json.loads(to_gemini.content)["contents"][0]["parts"]
    (inline,) = [p["inlineData"]["data"] for p in parts if "inlineData" in p]
    assert size_of(base64.b64decode(inline)) == (2048, 1024)
    (to_openai,) = [r for r in wire.requests if r.url.path.endswith("/images/edits")]
    (image,) = [payload for name, filename, _, payload in multipart(to_openai) if name == "image"]
    assert size_of(image) == (3000, 1500)  # the original, for the model that takes it whole
    assert run.references.get().width == 3000  # the stored input is never changed

    page = auth_client.get(f"/runs/{run.pk}/").content.decode()
    assert "1, downscaled to 2048 px" in page
    assert "References downscaled to 2048 px for Nano Banana Pro; the other sides got them as uploaded." in page


@pytest.mark.django_db
def test_form_refuses_references_that_make_the_request_too_large(auth_client, gemini_limits):
    gemini_limits(max_request_mb=1)
    refs = uploads(noise((500, 500)), noise((500, 500)))  # ~1.5 MB, 2 MB as base64

    response = auth_client.post("/", {**form_data("a fox", BOTH), "references": refs})

    assert response.status_code == 400
    assert "Nano Banana Pro takes at most 1 MB per request, and these reference images come to 2.0 MB as sent." in (
        response.content.decode()
    )
    assert not Run.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_too_large_after_downscaling_fails_clearly_without_a_call(auth_client, wire, gemini_limits):  # noqa: F811
    gemini_limits(max_request_mb=1, reference_max_edge=400)
    refs = uploads(*(noise((600, 600)) for _ in range(4)))  # each downscaled to 400², ~0.5 MB each

    response = auth_client.post("/", {**form_data("a fox", BOTH), "references": refs})
    assert response.status_code == 302, response.content.decode()[:600]
    gens = wait_for_generations(Run.objects.latest("created_at"))

    side = next(g for g in gens if g.model_key == "gemini-3-pro-image")
    assert side.status == Generation.Status.FAILED
    assert side.error_kind == ErrorKind.BAD_REQUEST and side.attempts == 1
    assert "over the 1 MB a request to gemini-3-pro-image may carry; it was not sent" in side.error_message
    assert not [r for r in wire.requests if r.url.path.endswith(":generateContent")]
    assert next(g for g in gens if g.model_key == "gpt-image-2").status == Generation.Status.SUCCEEDED

"""The markup input: a transparent PNG overlay on the first reference that guides an edit,
taken by GPT Image 2.5 only, never together with a mask. Checked by the form like a mask,
sent as the multipart part `markup` on /images/edits to the models that take it, noted as
ignored by the others, and refused by the simulator for any other model id."""

import base64
import io
import zipfile

import httpx
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from compare.models import ApiToken, Generation, Run, TeamSettings
from tests.factories import form_data, png, wait_for_generations
from tests.test_gateways import wire  # noqa: F401 (the recording fixture)
from tests.test_provider_openai import multipart

MARKUP_MODELS = ["gpt-image-2.5-sunburst", "gpt-image-2"]
SIZE = (64, 48)


def overlay(size=SIZE, mode="RGBA") -> bytes:
    return png((255, 0, 0, 0) if mode == "RGBA" else "red", size, mode=mode)


def post(client, models, *, markup: bytes | None = None, mask: bytes | None = None, reference=True, **fields):
    data = form_data("make the sign say OPEN", models, **fields)
    if reference:
        data["references"] = [SimpleUploadedFile("ref.png", png("navy", SIZE), "image/png")]
    if markup is not None:
        data["markup"] = SimpleUploadedFile("markup.png", markup, "image/png")
    if mask is not None:
        data["mask"] = SimpleUploadedFile("mask.png", mask, "image/png")
    return client.post("/", data)


@pytest.fixture
def with_markup_model(enable_models, db):
    enable_models("gpt-image-2.5-sunburst")
    # It has no published price yet: under a daily limit it would be refused (compare/budget.py).
    TeamSettings.objects.update_or_create(pk=1, defaults={"daily_budget_usd": 0})


# --- the form --------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"markup": overlay(mode="RGB")},
            "The markup must be a PNG with transparency (drawn over the first reference).",
        ),
        (
            {"markup": overlay((32, 32))},
            "The markup is 32×32 but the first reference is 64×48; they must be the same size.",
        ),
        (
            {"markup": overlay(), "reference": False},
            "A markup applies to the first reference image: add a reference image too.",
        ),
        ({"markup": overlay(), "mask": overlay()}, "Use a mask or a markup, not both: a model takes one or the other."),
    ],
)
def test_form_checks_the_markup_like_a_mask(auth_client, with_markup_model, kwargs, message):
    response = post(auth_client, MARKUP_MODELS, **kwargs)

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_form_refuses_a_markup_no_chosen_model_takes(auth_client):
    response = post(auth_client, ["gpt-image-2", "gemini-3-pro-image"], markup=overlay())

    assert response.status_code == 400
    assert "None of the chosen models can take a markup." in response.content.decode()


@pytest.mark.django_db
def test_form_greys_out_markup_and_notes_who_ignores_it(auth_client, with_markup_model):
    without = auth_client.get("/runs/options", {"part": "options", "models": ["gpt-image-2", "gemini-3-pro-image"]})
    assert "None of the chosen models takes a markup." in without.content.decode()

    notes = auth_client.get("/runs/options", {"part": "summary", "models": MARKUP_MODELS, "has_markup": "1"})
    assert "GPT Image 2 ignores the markup overlay" in notes.content.decode()
    assert "GPT Image 2.5 Sunburst ignores" not in notes.content.decode()


# --- the wire --------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_markup_goes_as_a_multipart_part_to_the_model_that_takes_it(auth_client, with_markup_model, wire):  # noqa: F811
    markup = overlay()
    response = post(auth_client, MARKUP_MODELS, markup=markup)
    assert response.status_code == 302, response.content.decode()[:600]
    run = Run.objects.latest("created_at")
    gens = wait_for_generations(run)
    assert all(g.status == Generation.Status.SUCCEEDED for g in gens), [g.error_message for g in gens]

    edits = wire.requests
    by_model = {}
    for request in edits:
        parts = multipart(request)
        model = next(payload.decode() for name, _, _, payload in parts if name == "model")
        by_model[model] = parts
    takes = {name: (filename, ctype) for name, filename, ctype, _ in by_model["gpt-image-2.5-sunburst"]}
    assert takes["markup"] == ("markup-1.png", "image/png")
    (sent,) = [payload for name, _, _, payload in by_model["gpt-image-2.5-sunburst"] if name == "markup"]
    assert sent[:8] == b"\x89PNG\r\n\x1a\n"
    assert "markup" not in {name for name, *_ in by_model["gpt-image-2"]}

    page = auth_client.get(f"/runs/{run.pk}/").content.decode()
    assert "Only some sides saw the markup: GPT Image 2 cannot take one." in page
    # Kept with the run's inputs: on its page beside the references, and in its export.
    assert run.references.filter(kind="markup").count() == 1
    assert "Markup overlay 1" in page and "markup · " in page
    archive = zipfile.ZipFile(io.BytesIO(auth_client.get(f"/runs/{run.pk}/export.zip").content))
    assert any(name.startswith("inputs/markup") or "/markup." in name for name in archive.namelist()), (
        archive.namelist()
    )


def test_simulator_takes_markup_only_from_a_2_5_model(simulator):
    url = f"{simulator.url}/sim/openai/v1/images/edits"
    headers = {"Authorization": "Bearer simulated"}

    def send(model: str, markup: bytes, **extra):
        files = [("image", ("ref.png", png("navy", SIZE), "image/png")), ("markup", ("m.png", markup, "image/png"))]
        files += list(extra.items())
        return httpx.post(url, data={"model": model, "prompt": "a sign"}, files=files, headers=headers, timeout=30)

    refused = send("gpt-image-2", overlay())
    assert refused.status_code == 400
    assert refused.json()["error"] == {
        "message": "Unknown parameter: 'markup'.",
        "type": "invalid_request_error",
        "param": "markup",
        "code": "unknown_parameter",
    }
    assert send("gpt-image-2.5-sunburst", overlay()).status_code == 200
    opaque = send("gpt-image-2.5-sunburst", overlay(mode="RGB"))
    assert opaque.status_code == 400 and opaque.json()["error"]["param"] == "markup"
    with_mask = send("gpt-image-2.5-sunburst", overlay(), mask=("mask.png", overlay(), "image/png"))
    assert with_mask.status_code == 400 and "together with 'mask'" in with_mask.json()["error"]["message"]


@pytest.mark.django_db(transaction=True)
def test_the_api_takes_a_markup_as_base64_like_a_mask(client, user, with_markup_model, wire):  # noqa: F811
    _, token = ApiToken.issue(user, "script")
    body = {
        "prompt": "make the sign say OPEN",
        "models": MARKUP_MODELS,
        "references": [base64.b64encode(png("navy", SIZE)).decode()],
        "markup": base64.b64encode(overlay()).decode(),
    }
    response = client.post("/api/runs", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 201, response.content.decode()[:600]
    run = Run.objects.get(pk=response.json()["id"])
    assert run.references.filter(kind="markup").count() == 1
    wait_for_generations(run)
    sent = {
        next(p.decode() for n, _, _, p in multipart(r) if n == "model"): {n for n, *_ in multipart(r)}
        for r in wire.requests
    }
    assert "markup" in sent["gpt-image-2.5-sunburst"] and "markup" not in sent["gpt-image-2"]

    bad = client.post(
        "/api/runs",
        {**body, "markup": "not base64!"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["fields"] == {"markup": ["markup is not valid base64."]}

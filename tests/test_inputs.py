"""Reference images, masks and reuse: validated in the form, stored re-encoded,
and sent to each model the way its API takes them (through the simulator)."""

import io
import os

import pytest
from django.core.files.storage import FileSystemStorage, default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

from compare import images
from compare.models import Reference, Run
from compare.taskbackend import wait_idle
from tests.factories import BOTH, form_data, image_bytes, upload, wait_for_generations

pytestmark = pytest.mark.django_db(transaction=True)


def mask_png(size=(256, 256), hole=(0, 0, 128, 256)) -> SimpleUploadedFile:
    img = PILImage.new("RGBA", size, (0, 0, 0, 255))
    img.paste((0, 0, 0, 0), hole)  # alpha 0 = the area to edit
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return SimpleUploadedFile("mask.png", buf.getvalue(), content_type="image/png")


def post(client, models=BOTH, **files_and_fields):
    return client.post("/", form_data("make it a poster", models, **files_and_fields))


def test_references_are_stored_reencoded_and_reach_both_models(auth_client, simulator):
    exif = PILImage.Exif()
    exif[0x010F] = "SecretCam"  # camera make: metadata that must not be stored or sent on
    original = image_bytes((10, 120, 200), (300, 200), fmt="JPEG", exif=exif)
    photo = SimpleUploadedFile("photo.jpg", original, content_type="image/jpeg")
    response = post(auth_client, references=[photo, upload(color=(20, 200, 20), name="green.png")])
    assert response.status_code == 302, response.content.decode()[:500]
    run = Run.objects.get()
    refs = list(run.references.order_by("position"))
    assert [(r.name, r.width, r.height, r.format) for r in refs] == [
        ("photo.jpg", 300, 200, "jpeg"),
        ("green.png", 256, 256, "png"),
    ]
    stored = images.open_bytes(refs[0].file)
    assert b"SecretCam" not in stored and b"SecretCam" in original
    assert run.options["references"] == 2

    gpt, gemini = sorted(wait_for_generations(run), key=lambda g: g.position)
    assert gpt.status == gemini.status == "succeeded"
    # Gemini: two inline image parts, billed as image input tokens by the provider.
    assert gemini.params_sent["references"] == 2
    assert {"modality": "IMAGE", "tokenCount": 1120} in gemini.usage["promptTokensDetails"]
    # OpenAI: the edits endpoint, which reports the reference images as image input tokens.
    assert gpt.usage["input_tokens_details"]["image_tokens"] > 0
    page = auth_client.get(run.get_absolute_url()).content.decode()
    assert 'aria-label="Reference images"' in page and refs[0].thumbnail_url in page
    assert '<th scope="row">Reference images</th><td >2</td><td >2</td>' in page.replace("\n", "")


def test_the_mask_edits_only_the_transparent_area_on_gpt_image_2(auth_client, simulator):
    response = post(auth_client, references=[upload(color=(200, 30, 30))], mask=mask_png(), size="1024x1024")
    assert response.status_code == 302, response.content.decode()[:800]
    run = Run.objects.get()
    assert run.references.filter(kind="mask").count() == 1
    gpt, _gemini = sorted(wait_for_generations(run), key=lambda g: g.position)
    with PILImage.open(io.BytesIO(images.open_bytes(gpt.images.get().file))) as edited:
        out = edited.convert("RGB").resize((256, 256))
        # Outside the hole (the right half) the reference's red is kept: the mask was applied.
        assert out.getpixel((220, 128)) == (200, 30, 30)
    page = auth_client.get(run.get_absolute_url()).content.decode()
    assert "Only some sides used the mask: Nano Banana Pro cannot take one and edited freely." in page


@pytest.mark.parametrize(
    ("files", "models", "message"),
    [
        (
            {"references": [upload(name=f"r{i}.png") for i in range(15)]},
            BOTH,
            "Nano Banana Pro takes at most 14 reference images; you gave 15.",
        ),
        (
            {"references": [SimpleUploadedFile("notes.png", b"just text, not an image")]},
            BOTH,
            "notes.png: The file is not a readable image (or it is truncated).",
        ),
        ({"references": [upload(fmt="GIF", name="anim.gif")]}, BOTH, "anim.gif: GIF images are not supported"),
        ({"mask": mask_png()}, BOTH, "A mask applies to the first reference image: add a reference image too."),
        ({"references": [upload()], "mask": upload(name="flat.png")}, BOTH, "The mask must be a PNG with transparency"),
        (
            {"references": [upload()], "mask": upload(fmt="JPEG", name="m.jpg")},
            BOTH,
            "The mask must be a PNG with transparency",
        ),
        (
            {"references": [upload(size=(300, 300))], "mask": mask_png()},
            BOTH,
            "The mask is 256×256 but the first reference is 300×300; they must be the same size.",
        ),
    ],
)
def test_bad_references_and_masks_are_explained_and_nothing_is_stored(auth_client, files, models, message):
    response = post(auth_client, models=models, **files)
    assert response.status_code == 400
    assert message in response.content.decode().replace("&#x27;", "'")
    assert not Run.objects.exists() and not Reference.objects.exists()


def test_a_truncated_upload_is_refused(auth_client):
    whole = upload(size=(512, 512), color=(1, 2, 3)).read()
    cut = SimpleUploadedFile("cut.png", whole[: len(whole) // 2], content_type="image/png")
    response = post(auth_client, references=[cut])
    assert response.status_code == 400 and "cut.png: The file is not a readable image" in response.content.decode()


def test_an_earlier_result_can_be_reused_as_a_reference(auth_client, simulator):
    post(auth_client)
    first = Run.objects.get()
    gpt = sorted(wait_for_generations(first), key=lambda g: g.position)[0]
    image = gpt.images.get()
    form = auth_client.get(f"/?ref={image.sha256}").content.decode()
    assert f'name="reuse" value="{image.sha256}" checked' in form and image.thumbnail_url in form
    response = post(auth_client, reuse=[image.sha256])
    assert response.status_code == 302
    second = Run.objects.exclude(pk=first.pk).get()
    ref = second.references.get()
    assert ref.source_image == image and ref.sha256 == image.sha256
    gens = wait_for_generations(second)
    assert all(g.status == "succeeded" for g in gens)
    assert post(auth_client, reuse=["0" * 64]).status_code == 400


def test_a_mask_needs_a_model_that_takes_one(auth_client, enable_models):
    enable_models("gemini-nano-banana-2.1")
    response = post(
        auth_client, models=["gemini-3-pro-image", "gemini-nano-banana-2.1"], references=[upload()], mask=mask_png()
    )
    assert response.status_code == 400
    assert "None of the chosen models can take a mask." in response.content.decode()
    assert not Run.objects.exists()


def test_the_api_takes_references_as_base64_and_explains_bad_ones(client, user, simulator):
    import base64
    import json

    from compare.models import ApiToken

    _, token = ApiToken.issue(user, "script")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    encoded = base64.b64encode(upload(color=(5, 5, 250)).read()).decode()
    body = {"prompt": "sign", "models": BOTH, "references": [encoded, "data:image/png;base64," + encoded]}
    response = client.post("/api/runs", json.dumps(body), content_type="application/json", **headers)
    assert response.status_code == 201, response.content
    run = Run.objects.get()
    assert run.references.count() == 2 and run.options["references"] == 2
    wait_for_generations(run)
    bad = client.post(
        "/api/runs", json.dumps({**body, "references": ["not base64!!"]}), content_type="application/json", **headers
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["fields"]["references"] == ["references[0] is not valid base64."]
    not_image = base64.b64encode(b"hello").decode()
    bad = client.post(
        "/api/runs", json.dumps({**body, "references": [not_image]}), content_type="application/json", **headers
    )
    assert bad.status_code == 400 and "not a readable image" in bad.json()["error"]["fields"]["references"][0]
    assert Run.objects.count() == 1


@pytest.mark.parametrize(
    ("upload", "message"),
    [
        (upload(fmt="JPEG", name="photo.png"), "photo.png says it is PNG but is really a JPEG image"),
        (
            SimpleUploadedFile("shot.webp", upload(name="x.png").read(), content_type="image/webp"),
            "shot.webp says it is WebP but is really a PNG image",
        ),
        (
            SimpleUploadedFile("noext", upload(name="x.png").read(), content_type="image/jpeg"),
            "noext says it is JPEG but is really a PNG image",
        ),
        (
            SimpleUploadedFile("poster.svg", b"<svg onload=alert(1)></svg>", content_type="image/svg+xml"),
            "poster.svg: The file is not a readable image",
        ),
    ],
)
def test_a_misleading_name_or_type_is_refused(auth_client, upload, message):
    response = post(auth_client, references=[upload])
    assert response.status_code == 400 and message in response.content.decode()
    assert not Run.objects.exists() and not Reference.objects.exists()


def test_an_option_no_chosen_model_supports_is_an_error(client, user, enable_models):
    import json

    from compare.models import ApiToken

    enable_models("gemini-nano-banana-2.1")
    _, token = ApiToken.issue(user, "s")
    body = {
        "prompt": "x",
        "models": ["gemini-3-pro-image", "gemini-nano-banana-2.1"],
        "quality": "high",
        "background": "transparent",
    }
    response = client.post(
        "/api/runs", json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert fields["quality"] == ["None of the chosen models supports quality."]
    assert fields["background"] == ["None of the chosen models supports background."]
    assert not Run.objects.exists()


class RenamingStorage(FileSystemStorage):
    """A storage that never keeps the name it is asked for, as storages that add a prefix,
    a suffix or sanitise names do: only the name `save()` returns finds the file again."""

    def get_available_name(self, name, max_length=None):
        root, ext = os.path.splitext(name)
        return super().get_available_name(f"{root}-stored{ext}", max_length)


def test_files_are_found_on_a_storage_that_renames_them(auth_client, simulator, settings):
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": f"{__name__}.RenamingStorage"}}
    response = post(auth_client, references=[upload("ref.png", (20, 200, 20))])
    assert response.status_code == 302, response.content.decode()[:500]
    run = Run.objects.get()
    ref = run.references.get()
    gens = wait_for_generations(run)
    assert all(g.status == "succeeded" for g in gens)
    assert wait_idle(timeout=30)
    rows = [ref] + [image for g in gens for image in g.images.all()]
    assert len(rows) == 3
    # A reference's thumbnail is written at once; a result's on its first request (nobody
    # had the run open), below.
    for name in (ref.file, ref.thumbnail, *(row.file for row in rows[1:])):
        assert name.rsplit(".", 1)[0].endswith("-stored") and default_storage.exists(name), name
    # What a designer sees: every picture and thumbnail is served, none is missing.
    for url in [ref.url, ref.thumbnail_url] + [u for row in rows[1:] for u in (row.url, row.thumbnail_url)]:
        served = auth_client.get(url)
        assert served.status_code == 200, url
        assert b"".join(served.streaming_content if served.streaming else [served.content]), url
    assert images.open_bytes(ref.file)[:8] == b"\x89PNG\r\n\x1a\n"

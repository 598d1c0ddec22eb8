"""Exports: one run as a ZIP, the filtered history as CSV and JSON; blind runs leak nothing."""

import csv
import io
import json
import zipfile
from datetime import timedelta

import pytest
from django.utils import timezone
from PIL import Image as PILImage
from PIL import PngImagePlugin

from compare import images
from compare.metadata import strip_metadata
from compare.models import Criterion, Generation, Note, Rating, Reference, Run, Vote
from tests.factories import GPT, NANO, add_image, image_bytes, make_run, png, wait_for_generations, without_random_ids

pytestmark = pytest.mark.django_db

NEEDLES = [*GPT, *NANO, "openai", "gemini", "google", "nano banana"]
RED, SIZE = (200, 40, 40), (64, 48)  # the outputs' colour and size


def signed_pictures() -> dict[str, bytes]:
    """Outputs as providers send them: metadata that names the model (C2PA, XMP, EXIF)."""
    text = PngImagePlugin.PngInfo()
    text.add_text("Software", "GPT Image 2 by OpenAI")
    text.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>Nano Banana Pro (gemini-3-pro-image)</x:xmpmeta>")
    exif = PILImage.Exif()
    exif[0x0131] = "gpt-image-2-2026"  # Software
    return {
        "png": image_bytes(RED, SIZE, fmt="PNG", pnginfo=text),
        "jpeg": image_bytes(RED, SIZE, fmt="JPEG", exif=exif.tobytes(), comment=b"Google gemini-3-pro-image-preview"),
        "webp": image_bytes(
            RED, SIZE, fmt="WEBP", exif=exif.tobytes(), xmp=b"<x>openai gpt-image-2</x>", lossless=True
        ),
    }


def criterion() -> Criterion:
    # Not Criterion.objects.first(): a transactional test elsewhere may have flushed the migrated defaults.
    return Criterion.objects.get_or_create(name="Layout")[0]


def read_zip(client, run: Run) -> zipfile.ZipFile:
    response = client.get(f"/runs/{run.id}/export.zip")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert f"compare-{run.short_id}.zip" in response["Content-Disposition"]
    return zipfile.ZipFile(io.BytesIO(response.content))


def leaks(archive: zipfile.ZipFile) -> list[tuple[str, str]]:
    found = []
    for name in archive.namelist():
        data = (name.encode() + archive.read(name)).lower()
        found += [(name, n) for n in NEEDLES if n.lower().encode() in data]
    return found


def test_metadata_stripping_keeps_the_pixels():
    for fmt, data in signed_pictures().items():
        assert [n for n in NEEDLES if n.lower().encode() in data.lower()], f"{fmt} fixture carries no metadata"
        clean = strip_metadata(data, fmt)
        assert not [n for n in NEEDLES if n.lower().encode() in clean.lower()], fmt
        with PILImage.open(io.BytesIO(data)) as before, PILImage.open(io.BytesIO(clean)) as after:
            assert (after.format or "").lower() == fmt and after.tobytes() == before.tobytes()


def test_blind_zip_names_sides_only_until_the_viewer_votes(auth_client, user, other_user):
    run = make_run(other_user, "a blind poster", blind=True, tags=["poster"])
    signed = signed_pictures()
    add_image(run.generations.get(position=0), signed["png"])
    add_image(run.generations.get(position=1), signed["jpeg"])
    gen = run.generations.get(position=1)
    gen.attempt_log = [{"attempt": 1, "ok": False, "kind": "rate_limit", "error": "openai says slow down"}]
    gen.params_sent = {"model": "gemini-3-pro-image-preview"}
    gen.usage = {"promptTokenCount": 12}
    gen.save()
    Vote.objects.create(run=run, user=other_user, verdict=Vote.Verdict.BETTER, winner=run.generations.get(position=0))
    Note.objects.create(run=run, author=other_user, body="left is crisper", generation=gen)
    Rating.objects.create(generation=gen, user=other_user, criterion=criterion(), stars=2)

    archive = read_zip(auth_client, run)
    assert leaks(archive) == []
    manifest = json.loads(archive.read("run.json"))
    assert manifest["names_hidden"] is True and manifest["tags"] == ["poster"]
    assert [g["side"] for g in manifest["generations"]] == ["A", "B"]
    assert {"model_key", "model_label", "model_id", "cost", "usage", "params_sent", "position"}.isdisjoint(
        manifest["generations"][0]
    )
    assert manifest["votes"][0]["choice"] is None and manifest["ratings"] == []  # no one else's verdict
    assert manifest["notes"][0]["generation"] == "A"  # gen at position 1 is shown first, as side A
    for g in manifest["generations"]:
        for img in g["images"]:
            with PILImage.open(io.BytesIO(archive.read(img["file"]))) as decoded:
                decoded.load()
                assert (decoded.width, decoded.height) == (img["width"], img["height"]) == (64, 48)
            assert img["file"].startswith(f"images/{g['side']}-1.") and img["thumbnail"] in archive.namelist()

    Vote.objects.create(run=run, user=user, verdict=Vote.Verdict.BETTER, winner=run.generations.get(position=1))
    manifest = json.loads(read_zip(auth_client, run).read("run.json"))
    assert manifest["names_hidden"] is False
    assert [g["model_key"] for g in manifest["generations"]] == ["gemini-3-pro-image", "gpt-image-2"]
    assert manifest["generations"][0]["usage"] == {"promptTokenCount": 12}
    assert {v["winner"] for v in manifest["votes"]} == {"gpt-image-2", "gemini-3-pro-image"}


def test_blind_zip_has_no_times_sizes_or_formats_before_the_vote(auth_client, user, other_user):
    start = timezone.now() - timedelta(seconds=10)
    run = make_run(other_user, "a blind race", blind=True, status=["succeeded", "running"], started_at=start)
    gpt, nano = run.generations.order_by("position")
    add_image(gpt, image_bytes(RED, (65, 48), fmt="WEBP", lossless=True))
    Generation.objects.filter(pk=gpt.pk).update(latency_ms=6100, finished_at=start + timedelta(seconds=6.1), attempts=2)
    # While a side works the ZIP, like the page, shows no side's outcome.
    manifest = json.loads(read_zip(auth_client, run).read("run.json"))
    assert [(g["status"], g["images"]) for g in manifest["generations"]] == [("running", []), ("running", [])]

    add_image(nano, image_bytes((40, 40, 200), SIZE, fmt="JPEG"))
    Generation.objects.filter(pk=nano.pk).update(status="succeeded", latency_ms=4200, finished_at=timezone.now())
    archive = read_zip(auth_client, run)
    manifest = json.loads(archive.read("run.json"))
    text = archive.read("run.json").decode()
    words = without_random_ids(text)
    for giveaway in ["latency_ms", "6100", "4200", "timings", "attempt", "bytes", '"format": "webp"', "jpeg", "error"]:
        assert giveaway not in words, giveaway
    assert leaks(archive) == []
    for g in manifest["generations"]:
        (img,) = g["images"]
        assert img["file"] == f"images/{g['side']}-1.png" and img["format"] == "png"
        with PILImage.open(io.BytesIO(archive.read(img["file"]))) as decoded:
            assert (decoded.format, decoded.size) == ("PNG", (65, 48)) == ("PNG", (img["width"], img["height"]))
    assert sorted(n for n in archive.namelist() if n.startswith("images/")) == ["images/A-1.png", "images/B-1.png"]

    Vote.objects.create(run=run, user=user, verdict=Vote.Verdict.TIE)
    manifest = json.loads(read_zip(auth_client, run).read("run.json"))
    by_key = {g["model_key"]: g for g in manifest["generations"]}
    assert by_key["gpt-image-2"]["timings"]["latency_ms"] == 6100 and by_key["gpt-image-2"]["attempts"] == 2
    assert by_key["gpt-image-2"]["images"][0]["format"] == "webp" and by_key["gpt-image-2"]["images"][0]["width"] == 65


@pytest.mark.django_db(transaction=True)
def test_zip_of_a_simulated_run_has_every_file_and_the_record(auth_client, user, other_user, simulator):
    auth_client.post(
        "/",
        {
            "prompt": 'poster "EXPORT"',
            "models": [GPT[0], NANO[0]],
            "aspect_ratio": "1:1",
            "resolution": "1K",
            "tags": "poster",
        },
    )
    run = Run.objects.get()
    wait_for_generations(run)
    Reference.objects.create(run=run, name="mood.png", **images.store(image_bytes((10, 120, 200), SIZE)))
    Vote.objects.create(run=run, user=other_user, verdict=Vote.Verdict.BETTER, winner=run.generations.get(position=0))
    layout = criterion()
    Rating.objects.create(generation=run.generations.get(position=0), user=user, criterion=layout, stars=5)
    Note.objects.create(run=run, author=user, body="crisp type")

    archive = read_zip(auth_client, run)
    manifest = json.loads(archive.read("run.json"))
    assert manifest["prompt"] == 'poster "EXPORT"' and manifest["author"] == "dana" and manifest["options"]
    assert manifest["references"][0]["file"] == "references/reference-1.png"
    assert "references/reference-1.png" in archive.namelist()
    for g in manifest["generations"]:
        assert g["status"] == "succeeded" and g["attempts"] == 1 and g["params_sent"] and g["timings"]["latency_ms"]
        assert g["cost"]["estimated_usd"] is not None and g["model_id"]
        img = g["images"][0]
        assert img["file"] == f"images/{g['model_key']}-1.{img['format']}"
        data = archive.read(img["file"])
        assert images.sha256(data) == img["sha256"]
        with PILImage.open(io.BytesIO(data)) as decoded:
            decoded.load()
            assert (decoded.width, decoded.height) == (img["width"], img["height"])
        with PILImage.open(io.BytesIO(archive.read(img["thumbnail"]))) as thumb:
            assert thumb.format == "WEBP"
    assert manifest["votes"][0] | {"created_at": None, "updated_at": None} == {
        "user": "lee",
        "choice": "gen:0",
        "winner": GPT[0],
        "blind": False,
        "created_at": None,
        "updated_at": None,
    }
    assert manifest["ratings"][0]["criterion"] == layout.name and manifest["ratings"][0]["stars"] == 5
    assert manifest["notes"][0]["body"] == "crisp type" and manifest["notes"][0]["author"] == "dana"


def test_zip_of_an_unknown_run_is_404(auth_client):
    assert auth_client.get("/runs/00000000-0000-0000-0000-000000000000/export.zip").status_code == 404


def test_history_csv_and_json_follow_the_filters_and_hide_blind_runs(auth_client, user, other_user):
    shown = make_run(user, "=SUM(A1) fox", tags=["animals", "red"], cost_usd="0.0400")
    Vote.objects.create(
        run=shown, user=other_user, verdict=Vote.Verdict.BETTER, winner=shown.generations.get(position=1)
    )
    Note.objects.create(run=shown, author=user, body="n")
    hidden = make_run(other_user, "blind fox", blind=True)
    Vote.objects.create(
        run=hidden, user=other_user, verdict=Vote.Verdict.BETTER, winner=hidden.generations.get(position=0)
    )
    make_run(user, "a hen")

    response = auth_client.get("/runs/export.csv?q=fox&sort=oldest")
    assert response["Content-Type"].startswith("text/csv") and "attachment" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["prompt"] for r in rows] == ["'=SUM(A1) fox", "blind fox"]  # no formula, oldest first
    assert rows[0] | {"id": "", "url": "", "created_at": ""} == {
        "id": "",
        "url": "",
        "created_at": "",
        "author": "dana",
        "prompt": "'=SUM(A1) fox",
        "status": "done",
        "blind": "False",
        "tags": "animals red",
        "models": "gpt-image-2 gemini-3-pro-image",
        "votes_total": "1",
        "tally": "gpt-image-2=0 gemini-3-pro-image=1 tie=0 all_bad=0",
        "notes_count": "1",
        "total_cost_usd": "0.0800",
        "total_cost_at_most_usd": "",  # every attempt's cost is known
        "check_status": "",  # never checked (tests/test_checks_ui.py has checked runs)
        "checks": "",
    }
    assert rows[0]["url"] == f"http://testserver/runs/{shown.id}/"
    assert (rows[1]["models"], rows[1]["tally"], rows[1]["total_cost_usd"], rows[1]["votes_total"]) == ("", "", "", "1")
    assert not [n for n in NEEDLES if n.lower() in rows[1]["prompt"].lower() + json.dumps(rows[1]).lower()]

    body = auth_client.get("/runs/export.json?q=fox&sort=oldest").json()
    assert body["count"] == 2 and body["filters"] == {"q": "fox", "sort": "oldest"}
    first, blind_row = body["results"]
    assert first["prompt"] == "=SUM(A1) fox" and first["tags"] == ["animals", "red"]
    assert first["tally"] == {"gpt-image-2": 0, "gemini-3-pro-image": 1, "tie": 0, "all_bad": 0}
    assert first["total_cost_usd"] == "0.0800" and first["notes_count"] == 1 and first["status"] == "done"
    assert blind_row["models"] is None and blind_row["tally"] is None and blind_row["total_cost_usd"] is None
    assert blind_row["votes_total"] == 1 and blind_row["blind"] is True
    assert auth_client.get("/runs/export.json?tag=nope").json()["count"] == 0


def test_history_export_says_at_most_when_an_attempt_may_have_been_billed(auth_client, user):
    # One side stopped without usage after reaching the provider (a timeout): billed or not.
    run = make_run(user, "a timed-out fox", cost_usd="0.0400")
    Generation.objects.filter(run=run, position=1).update(cost_usd=None, cost_max_usd="0.0500")
    text = b"".join(auth_client.get("/runs/export.csv?q=timed-out").streaming_content).decode("utf-8-sig")
    (record,) = list(csv.DictReader(io.StringIO(text)))
    assert (record["total_cost_usd"], record["total_cost_at_most_usd"]) == ("0.0400", "0.0900")


def test_history_links_the_exports_with_the_current_filters(auth_client, user):
    make_run(user, "a fox", tags=["animals"])
    html = auth_client.get("/runs/?q=fox&tag=animals&page=1&model=").content.decode()
    assert 'href="/runs/export.csv?q=fox&amp;tag=animals"' in html
    assert 'href="/runs/export.json?q=fox&amp;tag=animals"' in html


# --- what is stored of a provider's output --------------------------------------------


def test_provider_metadata_is_stripped_from_stored_outputs():
    info = PngImagePlugin.PngInfo()
    info.add_text("c2pa", "Made by GPT Image 2")
    stored = images.store(png("red", (32, 32), pnginfo=info), strip=True)
    data = images.open_bytes(stored["file"])
    assert b"GPT Image 2" not in data and PILImage.open(io.BytesIO(data)).getpixel((1, 1)) == (255, 0, 0)

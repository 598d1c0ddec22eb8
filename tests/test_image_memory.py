"""Bounded image memory and CPU (compare/images.py): at most COMPARE_PIXEL_WORKERS images are
decoded or thumbnailed at once in a process, each stored image is decoded once, thumbnails
come after the generation is done or on the first request for them, and what users get is
what they got before (format, size, metadata stripped)."""

import base64
import binascii
import io
import json
import re
import tempfile
import threading
import time
import zlib
from contextlib import ExitStack
from html import unescape

import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFile, PngImagePlugin

from compare import images, live, tasks
from compare.metadata import strip_metadata
from compare.models import Image, Run
from compare.providers import _common
from compare.taskbackend import wait_idle
from tests.factories import add_image, form_data, make_run, png, submit_and_wait, wait_for_generations


class PixelWatch:
    """Counts, across threads, how many are decoding or resizing pixels at the same moment
    (Pillow's own methods wrapped), and how many decodes each thread did."""

    def __init__(self, monkeypatch, pause: float = 0.0):
        self.lock = threading.Lock()
        self.busy: set[int] = set()
        self.most = 0
        self.decodes = 0
        self.pause = pause
        for owner, name in [(ImageFile.ImageFile, "load"), (PILImage.Image, "reduce"), (PILImage.Image, "resize")]:
            monkeypatch.setattr(owner, name, self._wrap(getattr(owner, name), decode=name == "load"))

    def _wrap(self, real, decode: bool):
        watch = self

        def wrapped(img, *args, **kwargs):
            me = threading.get_ident()
            outer = me not in watch.busy
            with watch.lock:
                if decode and getattr(img, "tile", None):  # pixels still to decode, not a no-op load
                    watch.decodes += 1
                watch.busy.add(me)
                watch.most = max(watch.most, len(watch.busy))
            try:
                if watch.pause and outer:
                    time.sleep(watch.pause)  # widen the window in which holders could overlap
                return real(img, *args, **kwargs)
            finally:
                if outer:
                    with watch.lock:
                        watch.busy.discard(me)

        return wrapped


def _poster(width: int, height: int) -> PILImage.Image:
    img = PILImage.new("RGB", (width, height), (240, 230, 210))
    draw = ImageDraw.Draw(img)
    for i in range(0, width, 97):
        draw.rectangle([i, i % height, i + 60, (i % height) + 300], fill=(i % 255, 80, 160))
    return img


def _with_text_chunk(data: bytes, key: str, value: str) -> bytes:
    """The PNG `data` with a tEXt chunk before IEND: distinct bytes, the same pixels."""
    body = key.encode() + b"\0" + value.encode()
    chunk = len(body).to_bytes(4, "big") + b"tEXt" + body + zlib.crc32(b"tEXt" + body).to_bytes(4, "big")
    return data[:-12] + chunk + data[-12:]


@pytest.fixture(scope="module")
def poster_4k() -> bytes:
    out = io.BytesIO()
    _poster(3840, 2160).save(out, "PNG", compress_level=1)
    return out.getvalue()


def test_twenty_threads_storing_4k_images_decode_at_most_the_limit_at_once(monkeypatch, poster_4k):
    watch = PixelWatch(monkeypatch, pause=0.02)
    start = threading.Barrier(20)
    results: list[dict] = []
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        start.wait()
        try:
            stored = images.store(_with_text_chunk(poster_4k, "n", str(k)), thumbnails=False)
            images.write_thumbnails(stored)
            results.append(stored)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({r["sha256"] for r in results}) == 20 and all(r["width"] == 3840 for r in results)
    assert watch.decodes == 20
    assert 1 <= watch.most <= settings.COMPARE_PIXEL_WORKERS


def test_pixel_work_nests_deeper_than_the_limit_in_one_thread():
    with ExitStack() as stack:
        for _ in range(settings.COMPARE_PIXEL_WORKERS + 1):
            stack.enter_context(images.pixel_work())
        assert images.inspect(png("blue", (8, 8))).width == 8


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_storing_an_image_decodes_it_once_thumbnails_included(monkeypatch, fmt):
    out = io.BytesIO()
    _poster(2048, 1152).save(out, fmt)
    watch = PixelWatch(monkeypatch)
    stored = images.store(out.getvalue(), strip=True)
    assert watch.decodes == 1
    for size, edge in images.THUMB_SIZES.items():
        with default_storage.open(images.thumbnail_name(stored["sha256"], size), "rb") as handle:
            with PILImage.open(handle) as thumb:
                assert thumb.format == "WEBP" and thumb.size == (edge, round(edge * 1152 / 2048))


def test_what_is_stored_is_what_was_stored_before():
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "made by gpt-image-2")
    signed = png("green", (300, 200), pnginfo=info)
    stored = images.store(signed, strip=True)
    data = images.open_bytes(stored["file"])
    assert data == strip_metadata(signed, "png") and b"gpt-image-2" not in data
    assert (stored["format"], stored["width"], stored["height"], stored["bytes"]) == ("png", 300, 200, len(data))
    assert stored["file"] == f"images/{stored['sha256'][:2]}/{stored['sha256']}.png"
    with PILImage.open(io.BytesIO(images.open_bytes(stored["thumbnail"]))) as thumb:
        with PILImage.open(io.BytesIO(images.thumbnail_bytes(data))) as before:
            assert (thumb.format, thumb.size, thumb.mode) == (before.format, before.size, before.mode)
            assert "parameters" not in thumb.info

    transparent = png((0, 0, 0, 0), (64, 64), mode="RGBA")
    assert images.store(transparent)["has_alpha"] is True


def test_a_broken_image_is_refused_without_leaving_a_file(poster_4k):
    with pytest.raises(images.ImageRejected, match="truncated"):
        images.store(poster_4k[: len(poster_4k) // 2], strip=True)
    assert not default_storage.exists("images")


def test_deferred_thumbnails_are_written_after_storing():
    stored = images.store(png("red", (1000, 500)), thumbnails=False)
    assert default_storage.exists(stored["file"])
    assert not default_storage.exists(stored["thumbnail"])
    images.write_thumbnails(stored)
    assert default_storage.exists(stored["thumbnail"])
    assert default_storage.exists(images.thumbnail_name(stored["sha256"], "list"))
    assert stored.preview is None  # the reduced copy is let go


@pytest.mark.django_db
def test_a_missing_thumbnail_is_made_on_the_first_request(auth_client, user):
    gen = make_run(user, "p").generations.get(position=0)
    image = add_image(gen, png("orange", (900, 600)))
    for size in images.THUMB_SIZES:
        default_storage.delete(images.thumbnail_name(image.sha256, size))
    response = auth_client.get(image.thumbnail_url)
    assert response.status_code == 200 and response["Content-Type"] == "image/webp"
    with PILImage.open(io.BytesIO(b"".join(response.streaming_content))) as thumb:
        assert thumb.size == (480, 320)
    assert default_storage.exists(image.thumbnail)
    small = auth_client.get(image.thumbnail_url + "?size=list")
    with PILImage.open(io.BytesIO(b"".join(small.streaming_content))) as thumb:
        assert thumb.size == (240, 160)


@pytest.mark.django_db
def test_a_thumbnail_whose_original_is_gone_is_a_404_not_a_500(auth_client, user):
    gen = make_run(user, "p").generations.get(position=0)
    image = add_image(gen, png("orange", (90, 60)))
    default_storage.delete(image.thumbnail)
    default_storage.delete(image.file)
    assert auth_client.get(image.thumbnail_url).status_code == 404


@pytest.mark.django_db(transaction=True)
def _thumbnail_names(finals) -> list[str]:
    return [images.thumbnail_name(image.sha256, size) for image in finals for size in images.THUMB_SIZES]


def test_with_the_run_page_open_its_thumbnails_are_made_once_done(auth_client, simulator):
    # [[latency:2]]: time for the page to open and poll before the results arrive.
    response = auth_client.post("/", form_data("a red bicycle [[latency:2]]", n="2"))
    run = Run.objects.latest("created_at")
    page = auth_client.get(run.get_absolute_url()).content.decode()
    found = re.search(r'id="live-poll"[^>]*hx-get="([^"]+)"', page)
    assert response.status_code == 302 and found, "the running run's page polls"
    assert auth_client.get(unescape(found.group(1))).status_code in (200, 204)
    assert live.watched(run.pk) and run.generations.pending().count() == 2
    finals = Image.objects.filter(generation__in=wait_for_generations(run), is_partial=False)
    assert finals.count() == 4
    deadline = time.monotonic() + 30  # written just after the generation is marked done
    while not all(default_storage.exists(name) for name in _thumbnail_names(finals)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for image in finals:
        for size, edge in images.THUMB_SIZES.items():
            with PILImage.open(default_storage.open(images.thumbnail_name(image.sha256, size), "rb")) as thumb:
                assert thumb.format == "WEBP" and max(thumb.size) == min(edge, max(image.width, image.height))


@pytest.mark.django_db
def test_thumbnails_the_open_page_already_asked_for_are_not_made_again(user, monkeypatch):
    gen = make_run(user, "p").generations.get(position=0)
    stored = images.store(png("teal", (900, 600)), thumbnails=False)
    Image.objects.create(generation=gen, index=0, **stored)
    for size in images.THUMB_SIZES:  # the page's requests came first (files.image_thumbnail)
        images.ensure_thumbnail(stored["file"], stored["sha256"], size)
    made = []

    def write_thumbnails(fields):
        made.append(fields)
        return {}

    monkeypatch.setattr(images, "write_thumbnails", write_thumbnails)
    monkeypatch.setattr(tasks, "THUMBNAILS_AFTER", 0)
    tasks._write_thumbnails(gen, [stored])
    assert made == [] and stored.preview is None  # no second encoding; the reduced copy let go


@pytest.mark.django_db
def test_a_storage_that_cannot_answer_leaves_the_thumbnails_to_their_first_request(user, monkeypatch):
    gen = make_run(user, "p").generations.get(position=0)
    stored = images.store(png("navy", (300, 200)), thumbnails=False)

    def away(name):
        raise OSError("the bucket cannot be reached")

    monkeypatch.setattr(default_storage, "exists", away)
    monkeypatch.setattr(tasks, "THUMBNAILS_AFTER", 0)
    tasks._write_thumbnails(gen, [stored])  # no exception: the generation's success stands


def test_with_nobody_looking_a_thumbnail_is_made_on_its_first_request(auth_client, simulator, monkeypatch):
    watch = PixelWatch(monkeypatch)
    run, gens = submit_and_wait(auth_client, "a red bicycle")  # an API burst, a suite: no page open
    assert wait_idle(timeout=30) and not live.watched(run.pk)
    finals = list(Image.objects.filter(generation__in=gens, is_partial=False))
    assert {image.format for image in finals} == {"png"} and all(image.width >= 1024 for image in finals)
    assert not any(default_storage.exists(name) for name in _thumbnail_names(finals))  # no work for nobody
    assert watch.decodes == 0  # checked by their structure, not decoded: nobody looks yet
    for image in finals:
        served = auth_client.get(image.thumbnail_url)
        assert served.status_code == 200
        body = b"".join(served.streaming_content) if served.streaming else served.content
        with PILImage.open(io.BytesIO(body)) as thumb:
            assert thumb.format == "WEBP" and max(thumb.size) == min(
                images.THUMBNAIL_EDGE, max(image.width, image.height)
            )
    assert all(default_storage.exists(images.thumbnail_name(image.sha256)) for image in finals)
    assert watch.decodes == len(finals)  # each decoded once, for its thumbnails


def _flipped_in_pixels(data: bytes) -> bytes:
    """The PNG with one byte of its pixel data changed (its IDAT chunk's checksum then fails)."""
    at = data.index(b"IDAT") + 4 + 10
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


@pytest.mark.parametrize(
    "broken",
    [lambda data: data[: len(data) // 2], lambda data: data[:-12], _flipped_in_pixels],
    ids=["cut in half", "no end chunk", "a damaged pixel chunk"],
)
def test_a_png_stored_without_decoding_is_still_refused_when_broken(monkeypatch, broken):
    watch = PixelWatch(monkeypatch)
    data = png("teal", (400, 300))
    with pytest.raises(images.ImageRejected, match="not a readable image"):
        images.store(broken(data), strip=True, thumbnails=False, preview=False)
    assert watch.decodes == 0 and not default_storage.exists("images")


def test_a_png_stored_without_decoding_has_the_same_record(monkeypatch):
    watch = PixelWatch(monkeypatch)
    pictures = {
        "RGB": png("teal", (400, 300)),
        "RGBA": png((0, 0, 0, 0), (64, 48), mode="RGBA"),
        "P with a transparent colour": _palette_png(transparent=True),
        "P": _palette_png(transparent=False),
    }
    for label, data in pictures.items():
        checked = images.store(data, strip=True, thumbnails=False, preview=False)
        decoded = images.store(data, strip=True, thumbnails=False)
        assert dict(checked) == dict(decoded), label
        assert checked.preview is None
    assert watch.decodes == len(pictures)  # only the decoding stores decoded


def _palette_png(transparent: bool) -> bytes:
    picture = PILImage.new("P", (32, 32), 3)
    out = io.BytesIO()
    picture.save(out, "PNG", **({"transparency": 3} if transparent else {}))
    return out.getvalue()


# --- reply bodies read from disk (compare/providers/_common.py) ---------------------------------


def _bodies() -> list[bytes]:
    image = png("purple", (300, 300)) * 300  # well over BLOB_BYTES once in base64
    b64 = base64.b64encode(image).decode()
    return [
        json.dumps({"data": [{"b64_json": b64, "revised_prompt": 'a "quoted" \\ prompt é'}], "n": 1}).encode(),
        # Some encoders escape "/" as "\/"; some put a long text next to the image.
        json.dumps({"inlineData": {"data": b64}, "text": "é\n" * 50_000}).replace("/", "\\/").encode(),
        json.dumps({"list": [1, 2.5, None, True], "nested": {"deep": {"data": b64}}}, indent=2).encode(),
    ]


def _blobs(value) -> int:
    if isinstance(value, dict):
        return sum(_blobs(v) for v in value.values())
    if isinstance(value, list):
        return sum(_blobs(v) for v in value)
    return int(isinstance(value, _common.Blob))


def _decoded(value):
    if isinstance(value, dict):
        return {k: _decoded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decoded(v) for v in value]
    if isinstance(value, _common.Blob):
        return ("image", _common.decode_b64(value))
    return value


def _expected(value, blob_keys=("b64_json", "data")):
    if isinstance(value, dict):
        return {
            k: ("image", base64.b64decode(v)) if k in blob_keys and isinstance(v, str) else _expected(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_expected(v) for v in value]
    return value


@pytest.mark.parametrize("chunk", [7, 4096, 1024 * 1024])
def test_a_json_body_parses_as_json_does_with_images_left_on_disk(monkeypatch, chunk):
    monkeypatch.setattr(_common, "_CHUNK", chunk)
    for body in _bodies():
        with tempfile.TemporaryFile() as raw:
            raw.write(body)
            parsed = _common.load_json(raw)
            assert _blobs(parsed) == 1  # the image stayed on disk until decoded
            assert _decoded(parsed) == _expected(json.loads(body))


def test_a_json_body_that_is_not_json_or_not_base64_fails_as_before():
    for bad in [b'{"data": "unterminated', b"<html>502 Bad Gateway</html>", b'{"a": 1', b""]:
        with tempfile.TemporaryFile() as raw:
            raw.write(bad)
            with pytest.raises(ValueError):
                _common.load_json(raw)
    long_bad = json.dumps({"b64_json": "QUJD" * 40_000 + "Q"}).encode()
    with tempfile.TemporaryFile() as raw:
        raw.write(long_bad)
        value = _common.load_json(raw)["b64_json"]
        assert isinstance(value, _common.Blob)
        with pytest.raises(binascii.Error):
            _common.decode_b64(value)

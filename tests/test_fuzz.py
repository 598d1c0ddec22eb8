"""Bad input, generated: whatever the new-comparison form or the API is sent, the
answer is a redirect/201 or a 400 that says what is wrong, never a 5xx, and a
400 stores nothing. Hostile uploads are refused with a message and store nothing.

Providers are never called: the DummyBackend only records the tasks."""

import base64
import json
import struct
import uuid
import zlib

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from compare.forms import OPTION_FIELDS
from compare.models import ApiToken, Generation, Reference, Run
from tests.factories import DUMMY_TASKS, image_bytes, make_run, png

pytestmark = pytest.mark.django_db
MODELS = ["gpt-image-2", "gemini-3-pro-image"]
FUZZ = hsettings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(autouse=True)
def _no_provider_calls(settings):
    settings.TASKS = DUMMY_TASKS
    cache.clear()


def counts() -> tuple[int, int, int]:
    return Run.objects.count(), Generation.objects.count(), Reference.objects.count()


def stored_files(settings) -> list[str]:
    root = settings.MEDIA_ROOT
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


# --- strategies ---------------------------------------------------------------------------

# Text as people (and attackers) type it: any code point but surrogates, control
# characters and NULs included, now and then very long.
any_text = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(max_codepoint=0x1F), max_size=10),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=200),
    st.builds(lambda c, n: c * n, st.sampled_from(["x", "界", "😀", "\x00", " "]), st.integers(0, 40_000)),
)
model_keys = st.lists(
    st.one_of(st.sampled_from([*MODELS, "gpt-image-1.5", "nano-banana", "", " gpt-image-2", "GPT-IMAGE-2"]), any_text),
    max_size=5,
)
wxh = st.builds(
    lambda w, sep, h: f"{w}{sep}{h}",
    st.one_of(st.integers(-100, 100_000), st.sampled_from(["", "auto", "1e3", "0x10", "١٠٢٤"])),
    st.sampled_from(["x", "X", "×", "*", " x ", "", "xx"]),
    st.one_of(st.integers(-100, 100_000), st.sampled_from(["", "auto", "1024.5"])),
)
VALID = {
    "aspect_ratio": ["1:1", "16:9", "9:16", "4:3", "21:9", "auto"],
    "resolution": ["1K", "2K", "4K"],
    "quality": ["auto", "low", "medium", "high"],
    "output_format": ["png", "jpeg", "webp"],
    "background": ["auto", "opaque", "transparent"],
    "moderation": ["auto", "low"],
}


def option_value(name: str):
    numbers = st.integers(-(10**12), 10**12).map(str)
    if name == "size":
        return st.one_of(wxh, any_text)
    if name in ("n", "partial_images", "output_compression"):
        return st.one_of(st.integers(-3, 120).map(str), numbers, any_text, st.sampled_from(["1.5", "１", "+2"]))
    if name == "grounding":
        return st.sampled_from(["on", "off", "true", "", "0", "1"])
    return st.one_of(st.sampled_from(VALID.get(name, [""])), any_text)


form_data = st.fixed_dictionaries(
    {"prompt": st.one_of(st.sampled_from(["a red fox in snow", "海边的灯塔"]), any_text), "models": model_keys},
    optional={
        **{name: option_value(name) for name in OPTION_FIELDS},
        "blind": st.sampled_from(["on", "", "yes"]),
        "tags": st.one_of(st.sampled_from(["poster ui-mockup", "#zh, Poster", ""]), any_text),
        "parent": st.one_of(st.uuids().map(str), any_text),
        "reuse": st.lists(st.one_of(st.text("0123456789abcdef", min_size=64, max_size=64), any_text), max_size=3),
        "unknown_field": any_text,
    },
)


@FUZZ
@given(data=form_data)
def test_the_new_run_form_never_fails_on_any_input(auth_client, settings, data):
    before = counts()
    response = auth_client.post("/", data)
    event(f"status {response.status_code}")
    assert response.status_code in (302, 400), f"{response.status_code} for {data!r}"
    if response.status_code == 400:
        assert counts() == before, f"a 400 stored rows for {data!r}"
        assert 'role="alert"' in response.content.decode(), f"a 400 without a visible message for {data!r}"
    else:
        assert counts()[0] == before[0] + 1


@FUZZ
@given(
    data=st.fixed_dictionaries(
        {"prompt": st.just("a red fox"), "models": st.just(MODELS)},
        optional={
            name: st.one_of(st.sampled_from(VALID[name]), st.sampled_from(VALID[name]), option_value(name))
            if name in VALID
            else option_value(name)
            for name in OPTION_FIELDS
        },
    )
)
def test_the_new_run_form_with_valid_models_and_random_options(auth_client, data):
    """The options on their own, so invalid models do not hide every other problem."""
    before = counts()
    response = auth_client.post("/", data)
    event(f"status {response.status_code}")
    assert response.status_code in (302, 400), f"{response.status_code} for {data!r}"
    if response.status_code == 400:
        assert counts() == before and 'role="alert"' in response.content.decode(), data


# --- the JSON API ------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False), any_text
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12,
)
b64_strings = st.one_of(
    st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode()),
    st.binary(max_size=50).map(lambda b: "data:image/png;base64," + base64.b64encode(b).decode()),
    any_text,
)


def api_value(name: str):
    right_types: dict = {
        "prompt": st.one_of(st.just("a red fox"), any_text),
        "models": st.one_of(st.just(MODELS), model_keys),
        "references": st.lists(b64_strings, max_size=3),
        "mask": b64_strings,
        "reuse": st.lists(st.text("0123456789abcdef", min_size=64, max_size=64), max_size=2),
        "blind": st.booleans(),
        "grounding": st.booleans(),
        "n": st.integers(-5, 10),
        "partial_images": st.integers(-5, 10),
        "output_compression": st.integers(-5, 200),
        "parent": st.one_of(st.uuids().map(str), any_text),
    }
    right = right_types[name] if name in right_types else option_value(name)
    return st.one_of(right, right, json_values)  # the right type twice as often as anything at all


api_fields = ["prompt", "models", *OPTION_FIELDS, "references", "mask", "reuse", "blind", "tags", "parent"]
api_body = st.one_of(
    st.fixed_dictionaries({}, optional={name: api_value(name) for name in api_fields}),
    st.fixed_dictionaries(
        {"prompt": st.just("a red fox"), "models": st.just(MODELS)},
        optional={name: api_value(name) for name in api_fields[2:]},
    ),
    st.dictionaries(st.text(max_size=12), json_values, max_size=4),  # unknown fields
    json_values,  # not even an object
)


@pytest.fixture
def api(user):
    token = ApiToken.issue(user, "fuzz")[1]
    client = Client(raise_request_exception=False)

    def post(body: str):
        return client.post(
            "/api/runs", body, content_type="application/json", headers={"Authorization": f"Bearer {token}"}
        )

    return post


@FUZZ
@given(body=api_body)
def test_the_api_never_fails_on_any_json(api, body):
    before = counts()
    response = api(json.dumps(body))
    event(f"status {response.status_code}")
    assert response.status_code in (201, 400), f"{response.status_code} {response.content[:300]!r} for {body!r}"
    payload = response.json()
    if response.status_code == 400:
        assert counts() == before, f"a 400 stored rows for {body!r}"
        assert isinstance(payload["error"]["message"], str) and payload["error"]["message"], body
    else:
        assert counts()[0] == before[0] + 1 and payload["id"]


@FUZZ
@given(
    raw=st.one_of(
        st.binary(max_size=100),
        st.text(max_size=100).map(str.encode),
        st.sampled_from(
            [
                b"",
                b"{",
                b"[1,",
                b"\xff\xfe{}",
                b'{"prompt": "\\ud800"}',
                b"1e999999",
                b'{"n": 1e400}',
                b"[" * 500 + b"]" * 500,
            ]
        ),
    )
)
def test_the_api_never_fails_on_any_bytes(api, raw):
    before = counts()
    response = api(raw)
    assert response.status_code == 400, f"{response.status_code} for {raw[:80]!r}"
    assert response.json()["error"]["message"] and counts() == before


# --- hostile uploads ------------------------------------------------------------------------------


def png_bomb(width=20_000, height=20_000) -> bytes:
    """A valid 1-bit PNG of width×height all-black pixels: 50 MB of pixels in ~50 kB,
    written by hand so the test never holds the pixels in memory."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>'
HOSTILE = {
    "empty": (b"", "ref.png", "empty"),
    "random bytes": (bytes(range(256)) * 8, "ref.png", "not a readable image"),
    "truncated PNG": (png("red", (256, 256))[:200], "ref.png", "not a readable image"),
    "PNG header only": (png()[:33], "ref.png", "not a readable image"),
    "PNG bomb": (png_bomb(), "bomb.png", "too many pixels"),
    "SVG with script": (SVG, "evil.png", "not a readable image"),
    "SVG named svg": (SVG, "evil.svg", "not a readable image"),
    "GIF": (
        b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00"
        b"\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;",
        "anim.gif",
        "not supported",
    ),
    "HTML": (b"<!doctype html><script>alert(1)</script>", "page.png", "not a readable image"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_uploads_are_refused_with_a_message_and_nothing_is_stored(auth_client, settings, name):
    data, filename, message = HOSTILE[name]
    upload = SimpleUploadedFile(filename, data, "image/png")
    response = auth_client.post("/", {"prompt": "a red fox", "models": MODELS, "references": [upload]})
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html.lower() or message in html, html[html.find('role="alert"') - 200 :][:600]
    assert counts() == (0, 0, 0) and stored_files(settings) == []


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_uploads_through_the_api(api, settings, name):
    data, _, message = HOSTILE[name]
    response = api(
        json.dumps({"prompt": "a red fox", "models": MODELS, "references": [base64.b64encode(data).decode()]})
    )
    assert response.status_code == 400
    assert message in json.dumps(response.json()).lower()
    assert counts() == (0, 0, 0) and stored_files(settings) == []


def test_a_mask_that_is_not_an_image_is_refused(auth_client, settings):
    response = auth_client.post(
        "/",
        {
            "prompt": "a red fox",
            "models": MODELS,
            "references": [SimpleUploadedFile("ref.png", png(), "image/png")],
            "mask": SimpleUploadedFile("mask.png", SVG, "image/png"),
        },
    )
    assert response.status_code == 400 and "Mask:" in response.content.decode()
    assert counts() == (0, 0, 0) and stored_files(settings) == []


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_random_bytes_as_references_never_fail(auth_client, settings):
    """A quick sweep of byte soups that start like real formats."""
    prefixes = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF\x00\x00\x00\x00WEBP", b"GIF8", b"BM", b"II*\x00", b""]
    for index, prefix in enumerate(prefixes):
        soup = prefix + uuid.uuid4().bytes * (index + 1)
        response = auth_client.post(
            "/", {"prompt": "a fox", "models": MODELS, "references": [SimpleUploadedFile("x.png", soup, "image/png")]}
        )
        assert response.status_code == 400, prefix
    assert counts() == (0, 0, 0) and stored_files(settings) == []


def test_a_jpeg_named_png_is_refused_and_a_true_jpeg_is_served_as_one(auth_client, settings):
    """The name and the declared type must match the bytes; what is stored is served
    as what it really is."""
    mislabelled = SimpleUploadedFile("photo.png", image_bytes("blue", (32, 32), fmt="JPEG"), "image/png")
    response = auth_client.post("/", {"prompt": "a red fox", "models": MODELS, "references": [mislabelled]})
    assert (
        response.status_code == 400
        and "photo.png says it is PNG but is really a JPEG image" in response.content.decode()
    )
    assert counts() == (0, 0, 0) and stored_files(settings) == []
    upload = SimpleUploadedFile("photo.jpg", image_bytes("blue", (32, 32), fmt="JPEG"), "image/jpeg")
    response = auth_client.post("/", {"prompt": "a red fox", "models": MODELS, "references": [upload]})
    assert response.status_code == 302
    ref = Reference.objects.get()
    assert ref.format == "jpeg" and ref.file.endswith(".jpeg") and ref.name == "photo.jpg"
    served = auth_client.get(ref.url)
    assert served["Content-Type"] == "image/jpeg" and served["X-Content-Type-Options"] == "nosniff"
    assert b"".join(served.streaming_content)[:3] == b"\xff\xd8\xff"


def test_an_image_with_a_payload_after_its_end_is_stored_clean(auth_client):
    """Bytes after IEND (polyglots) do not survive the re-encoding."""
    upload = SimpleUploadedFile("ref.png", png() + b"<script>alert(1)</script>", "image/png")
    assert auth_client.post("/", {"prompt": "a fox", "models": MODELS, "references": [upload]}).status_code == 302
    served = b"".join(auth_client.get(Reference.objects.get().url).streaming_content)
    assert b"<script>" not in served and served.startswith(b"\x89PNG")


# --- regressions: each of these once was a 500 or a 400 that said nothing.


@pytest.mark.parametrize(
    "method,url", [("post", "/"), ("get", "/runs/options?part=summary"), ("get", "/runs/options?part=options")]
)
@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"aspect_ratio": "x"}, id="aspect-no-colon"),  # sizes.py:44 ValueError (unpack)
        pytest.param({"aspect_ratio": "1:"}, id="aspect-empty-part"),  # sizes.py:45 ValueError int('')
        pytest.param({"aspect_ratio": "1:0"}, id="aspect-zero-height"),  # sizes.py:45 ZeroDivisionError
        pytest.param({"aspect_ratio": "0:1"}, id="aspect-zero-width"),  # sizes.py:59 ZeroDivisionError
        pytest.param({"aspect_ratio": "-1:2"}, id="aspect-negative"),  # sizes.py:58 math domain error
        pytest.param({"resolution": "9K"}, id="resolution-unknown"),  # sizes.py:57 KeyError
        pytest.param({"partial_images": "x"}, id="partial-not-a-number"),  # forms.py:83 int('x')
        pytest.param({"partial_images": "1.5"}, id="partial-decimal"),  # forms.py:83 int('1.5')
    ],
)
def test_bad_option_values_are_a_400_not_a_500(user, method, url, bad):
    client = Client(raise_request_exception=False)
    client.force_login(user)
    response = getattr(client, method)(url, {"prompt": "a fox", "models": MODELS, **bad})
    assert response.status_code < 500, f"{method.upper()} {url} {bad} → {response.status_code}"
    if method == "post":
        assert response.status_code == 400 and 'role="alert"' in response.content.decode()
        assert counts() == (0, 0, 0)


def test_a_malformed_parent_is_explained(auth_client):
    response = auth_client.post("/", {"prompt": "a fox", "models": MODELS, "parent": "not-a-uuid"})
    assert response.status_code == 400 and counts() == (0, 0, 0)
    assert 'role="alert"' in response.content.decode()


def test_deeply_nested_json_is_a_400(api):
    response = api(b"[" * 100_000 + b"]" * 100_000)
    assert response.status_code == 400, response.status_code
    assert counts() == (0, 0, 0)


@pytest.mark.parametrize(
    "url", ["/runs/options?part=summary&reference_count=²", "/judge?skip=abc,%2F..", "/api/runs?page=²"]
)
def test_odd_numbers_and_ids_are_not_a_500(auth_client, url):
    assert auth_client.get(url).status_code < 500


def test_odd_star_values_and_token_ids_are_explained(auth_client, user):
    run = make_run(user)
    gen = run.generations.get(position=0)
    response = auth_client.post(f"/runs/{run.id}/generations/{gen.id}/rate", {"stars-1": "²"}, HTTP_HX_REQUEST="true")
    assert response.status_code in (200, 422)
    assert auth_client.post("/settings/tokens", {"revoke": "abc"}, follow=True).status_code == 200

"""The provider simulator: reply shapes, images, validation, faults, streaming, SDKs.

Most tests use Django's test client; the `live_server` ones go through a real
socket with httpx and the official openai / google-genai SDKs.
"""

import base64
import io
import json
import time

import httpx
import pytest
from PIL import Image, ImageFilter, ImageStat

from compare.simulator import faults, render
from tests.factories import png

OPENAI = "/sim/openai/v1"
GEMINI = "/sim/gemini/v1beta"
AUTH = {"HTTP_AUTHORIZATION": "Bearer test"}
GKEY = {"HTTP_X_GOOG_API_KEY": "test"}


@pytest.fixture(autouse=True)
def _fresh_counters():
    faults.reset_counters()
    yield
    faults.release_sleepers()


# --- helpers -----------------------------------------------------------------------------------


def decode(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def colour_count(image: Image.Image, limit: int) -> int:
    colours = image.convert("RGB").getcolors(limit)
    assert colours is not None, f"more than {limit} colours"
    return len(colours)


def oa_generate(client, headers=None, **body):
    body = {"model": "gpt-image-2", "prompt": 'A poster that says "Hello"', **body}
    return client.post(
        f"{OPENAI}/images/generations", json.dumps(body), content_type="application/json", **AUTH, **(headers or {})
    )


def gm_body(prompt='A fox holding a sign "Snow"', images=(), aspect=None, size=None, **extra):
    parts = [{"text": prompt}] + [
        {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(i).decode()}} for i in images
    ]
    config: dict[str, object] = {"responseModalities": ["TEXT", "IMAGE"]}
    image_config = {k: v for k, v in {"aspectRatio": aspect, "imageSize": size}.items() if v}
    if image_config:
        config["imageConfig"] = image_config
    return {"contents": [{"role": "user", "parts": parts}], "generationConfig": config, **extra}


def gm_generate(
    client, body=None, model="gemini-3-pro-image", method="generateContent", query="", headers=None, **kwargs
):
    return client.post(
        f"{GEMINI}/models/{model}:{method}{query}",
        json.dumps(body or gm_body(**kwargs)),
        content_type="application/json",
        **GKEY,
        **(headers or {}),
    )


def final_image(reply: dict) -> Image.Image:
    parts = reply["candidates"][0]["content"]["parts"]
    return decode([p for p in parts if "inlineData" in p and not p.get("thought")][-1]["inlineData"]["data"])


def sse_events(raw: bytes) -> list[tuple[str | None, str]]:
    events = []
    for block in raw.decode().replace("\r\n", "\n").split("\n\n"):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        events.append((name, "\n".join(data)))
    return events


def pixels(image: Image.Image):
    # Pillow 13 renamed getdata(); keep working on the older Pillow the project allows.
    return getattr(image, "get_flattened_data", image.getdata)()


def red_pixels(image: Image.Image, box) -> int:
    return sum(1 for r, g, b in pixels(image.convert("RGB").crop(box)) if r > 230 and g < 30 and b < 30)


def sharpness(image: Image.Image) -> float:
    return ImageStat.Stat(image.convert("L").filter(ImageFilter.FIND_EDGES)).mean[0]


# --- OpenAI: generations -------------------------------------------------------------------------


@pytest.mark.parametrize("quality, tokens", [("low", 200), ("medium", 1767), ("high", 7033), ("auto", 1767)])
def test_openai_generation_shape_and_usage(client, quality, tokens):
    reply = oa_generate(client, size="1024x1024", quality=quality)
    assert reply.status_code == 200
    body = reply.json()
    assert set(body) == {"created", "data", "background", "output_format", "quality", "size", "usage"}
    assert body["quality"] == ("medium" if quality == "auto" else quality)
    assert (body["background"], body["output_format"], body["size"]) == ("opaque", "png", "1024x1024")
    usage = body["usage"]
    assert usage["output_tokens"] == tokens == usage["output_tokens_details"]["image_tokens"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["input_tokens_details"] == {"text_tokens": usage["input_tokens"], "image_tokens": 0}
    image = decode(body["data"][0]["b64_json"])
    assert (image.format, image.size) == ("PNG", (1024, 1024))
    # $30 per million output tokens reproduces the published per-image price.
    assert round(tokens * 30 / 1e6, 3) == {"low": 0.006, "medium": 0.053, "high": 0.211, "auto": 0.053}[quality]


def test_openai_output_tokens_scale_with_size(client):
    wide = oa_generate(client, size="1536x1024", quality="high").json()["usage"]["output_tokens"]
    assert wide == 5500  # $0.165
    odd = oa_generate(client, size="1024x640", quality="low").json()
    assert odd["usage"]["output_tokens"] == round(200 * 1024 * 640 / 1024**2)
    assert decode(odd["data"][0]["b64_json"]).size == (1024, 640)


@pytest.mark.parametrize("fmt, pil", [("jpeg", "JPEG"), ("webp", "WEBP"), ("png", "PNG")])
def test_openai_formats_and_big_sizes(client, fmt, pil):
    extra = {"output_compression": 60} if fmt != "png" else {}
    start = time.monotonic()
    body = oa_generate(client, size="3840x2160", output_format=fmt, quality="low", **extra).json()
    assert time.monotonic() - start < 5
    image = decode(body["data"][0]["b64_json"])
    assert (image.format, image.size, body["output_format"]) == (pil, (3840, 2160), fmt)


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_openai_transparent_background(client, fmt):
    body = oa_generate(client, background="transparent", output_format=fmt, size="1024x1024").json()
    assert body["background"] == "transparent"
    alpha = decode(body["data"][0]["b64_json"]).convert("RGBA").getchannel("A")
    assert alpha.getpixel((2, 2)) == 0 and alpha.getpixel((512, 512)) == 255


def test_openai_n_images_differ_and_are_deterministic(client):
    first = [d["b64_json"] for d in oa_generate(client, n=3, quality="low").json()["data"]]
    again = [d["b64_json"] for d in oa_generate(client, n=3, quality="low").json()["data"]]
    assert len(set(first)) == 3 and first == again
    other_model = oa_generate(client, model="gpt-image-1.5", quality="low").json()["data"][0]["b64_json"]
    assert other_model != first[0]


@pytest.mark.parametrize(
    "body, status, param",
    [
        ({"model": None}, 400, "model"),
        ({"model": "dall-e-9"}, 404, "model"),
        ({"prompt": ""}, 400, "prompt"),
        ({"prompt": "x" * 32001}, 400, "prompt"),
        ({"n": 0}, 400, "n"),
        ({"n": 11}, 400, "n"),
        ({"size": "1000x1000"}, 400, "size"),
        ({"size": "4096x4096"}, 400, "size"),
        ({"size": "512x512"}, 400, "size"),
        ({"size": "3840x1024"}, 400, "size"),
        ({"size": "big"}, 400, "size"),
        ({"model": "gpt-image-1.5", "size": "2048x2048"}, 400, "size"),
        ({"quality": "hd"}, 400, "quality"),
        ({"background": "clear"}, 400, "background"),
        ({"output_format": "gif"}, 400, "output_format"),
        ({"background": "transparent", "output_format": "jpeg"}, 400, "background"),
        ({"output_compression": 50}, 400, "output_compression"),
        ({"partial_images": 4}, 400, "partial_images"),
        ({"colour": "red"}, 400, "colour"),
    ],
)
def test_openai_validation(client, body, status, param):
    reply = oa_generate(client, **body)
    assert reply.status_code == status
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]


def test_openai_bad_json_and_auth(client):
    reply = client.post(f"{OPENAI}/images/generations", "{nope", content_type="application/json", **AUTH)
    assert reply.status_code == 400 and reply.json()["error"]["type"] == "invalid_request_error"
    reply = client.post(f"{OPENAI}/images/generations", "{}", content_type="application/json")
    assert reply.status_code == 401 and "You didn't provide an API key" in reply.json()["error"]["message"]
    bad = client.post(
        f"{OPENAI}/images/generations", "{}", content_type="application/json", HTTP_AUTHORIZATION="Bearer invalid-x"
    )
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_api_key"
    reply = client.post(
        f"{OPENAI}/images/generations?key=abc",
        json.dumps({"model": "gpt-image-2", "prompt": "x", "quality": "low"}),
        content_type="application/json",
    )
    assert reply.status_code == 200


def test_openai_models(client):
    body = client.get(f"{OPENAI}/models", **AUTH).json()
    ids = {m["id"] for m in body["data"]}
    assert body["object"] == "list"
    assert {"gpt-image-2", "gpt-image-2-2026-04-21", "gpt-image-1.5", "gpt-image-1-mini", "chatgpt-image-latest"} <= ids
    assert all(set(m) == {"id", "object", "created", "owned_by"} for m in body["data"])
    assert client.get(f"{OPENAI}/models/gpt-image-2", **AUTH).json()["id"] == "gpt-image-2"
    assert client.get(f"{OPENAI}/nowhere", **AUTH).status_code == 404


# --- OpenAI: edits -------------------------------------------------------------------------------


def named(data: bytes | io.BytesIO, name: str) -> io.BytesIO:
    handle = data if isinstance(data, io.BytesIO) else io.BytesIO(data)
    handle.name = name  # the test client drops file parts without a filename
    return handle


def oa_edit(client, images, headers=None, **fields):
    payload = {"model": "gpt-image-2", "prompt": 'Make it say "Edited"', "quality": "low", **fields}
    handles = [named(b, f"in{i}.png") for i, b in enumerate(images)]
    if len(handles) > 1:
        payload["image[]"] = handles  # the SDK's form for several images
    else:
        payload["image"] = handles[0]
    if "mask" in payload:
        payload["mask"] = named(payload["mask"], "mask.png")
    return client.post(f"{OPENAI}/images/edits", payload, **AUTH, **(headers or {}))


def test_openai_edit_two_images_shows_both_references(client):
    reply = oa_edit(client, [png((255, 0, 0), (1024, 1024)), png((0, 0, 255), (1024, 1024))], size="1024x1024")
    assert reply.status_code == 200, reply.content
    body = reply.json()
    image = decode(body["data"][0]["b64_json"]).convert("RGB")
    strip = image.crop((0, 700, 1024, 1024))
    assert red_pixels(image, (0, 700, 1024, 1024)) > 500
    assert sum(1 for r, g, b in pixels(strip) if b > 230 and r < 30 and g < 30) > 500
    assert body["usage"]["input_tokens_details"]["image_tokens"] > 0


def test_openai_edit_auto_size_follows_first_image(client):
    reply = oa_edit(client, [png((0, 128, 0), (1500, 1000))])
    assert reply.json()["size"] == "1536x1024"


def test_openai_edit_mask_keeps_unmasked_area(client):
    mask = Image.new("RGBA", (1024, 1024), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 512, 1024))  # alpha 0 = edit the left half
    out = io.BytesIO()
    mask.save(out, "PNG")
    reply = oa_edit(client, [png((0, 200, 0), (1024, 1024))], size="1024x1024", mask=io.BytesIO(out.getvalue()))
    image = decode(reply.json()["data"][0]["b64_json"]).convert("RGB")
    assert image.getpixel((1000, 60)) == (0, 200, 0)
    assert image.getpixel((20, 500)) != (0, 200, 0)


def test_openai_edit_validation(client):
    wrong = oa_edit(client, [png((0, 0, 0), (1024, 1024))], mask=io.BytesIO(png((0, 0, 0, 0), (512, 512), mode="RGBA")))
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "mask"
    jpeg = io.BytesIO()
    Image.new("RGB", (1024, 1024)).save(jpeg, "JPEG")
    jpeg.seek(0)
    not_png = oa_edit(client, [png((0, 0, 0), (1024, 1024))], mask=jpeg)
    assert not_png.status_code == 400 and not_png.json()["error"]["param"] == "mask"
    none = client.post(f"{OPENAI}/images/edits", {"model": "gpt-image-2", "prompt": "x"}, **AUTH)
    assert none.status_code == 400 and none.json()["error"]["param"] == "image"
    garbage = oa_edit(client, [b"not an image"])
    assert garbage.status_code == 400 and garbage.json()["error"]["param"] == "image"
    fidelity = oa_edit(client, [png((0, 0, 0))], input_fidelity="high")
    assert fidelity.status_code == 400 and fidelity.json()["error"]["param"] == "input_fidelity"
    as_json = client.post(f"{OPENAI}/images/edits", "{}", content_type="application/json", **AUTH)
    assert as_json.status_code == 400


# --- OpenAI: streaming ---------------------------------------------------------------------------


def test_openai_stream_frames(client):
    reply = oa_generate(client, stream=True, partial_images=3, quality="low", n=2)
    assert reply["Content-Type"].startswith("text/event-stream")
    events = sse_events(b"".join(reply.streaming_content))
    assert events[-1] == (None, "[DONE]")
    payloads = [json.loads(data) for _, data in events[:-1]]
    assert [name for name, _ in events[:-1]] == [p["type"] for p in payloads]
    types = [p["type"] for p in payloads]
    one_image = ["image_generation.partial_image"] * 3 + ["image_generation.completed"]
    assert types == one_image * 2
    first = payloads[:4]
    assert [p["partial_image_index"] for p in first[:3]] == [0, 1, 2]
    assert all(
        set(p)
        == {"type", "b64_json", "partial_image_index", "background", "created_at", "output_format", "quality", "size"}
        for p in first[:3]
    )
    assert first[3]["usage"]["output_tokens"] == 200 + 3 * 100
    edges = [sharpness(decode(p["b64_json"])) for p in first]
    assert edges == sorted(edges) and edges[0] < edges[-1]  # previews sharpen, final is sharpest


def test_openai_edit_stream_types(client):
    reply = oa_edit(client, [png((10, 10, 10))], stream="true", partial_images="1")
    types = [name for name, _ in sse_events(b"".join(reply.streaming_content))]
    assert types == ["image_edit.partial_image", "image_edit.completed", None]


def test_openai_stream_error_event_after_a_preview(client):
    reply = oa_generate(client, stream=True, partial_images=2, quality="low", prompt='"x" [[fault:stream_error]]')
    events = sse_events(b"".join(reply.streaming_content))
    assert [name for name, _ in events] == ["image_generation.partial_image", "error"]  # no completed, no [DONE]
    error = json.loads(events[-1][1])
    assert error["type"] == "error" and error["error"]["code"] == "server_error" and error["error"]["message"]
    whole = oa_generate(client, quality="low", prompt='"x" [[fault:stream_error]]')
    assert whole.status_code == 500 and whole.json()["error"]["type"] == "server_error"


def test_openai_stream_without_partials(client):
    reply = oa_generate(client, stream=True, quality="low")
    types = [name for name, _ in sse_events(b"".join(reply.streaming_content))]
    assert types == ["image_generation.completed", None]


# --- Gemini --------------------------------------------------------------------------------------


def test_gemini_pro_reply_shape(client):
    reply = gm_generate(client, aspect="16:9", size="2K")
    assert reply.status_code == 200
    body = reply.json()
    candidate = body["candidates"][0]
    parts = candidate["content"]["parts"]
    assert candidate["content"]["role"] == "model" and candidate["finishReason"] == "STOP"
    assert parts[0]["thought"] is True and parts[0]["text"]
    assert parts[1]["thought"] is True and parts[1]["inlineData"]["mimeType"] == "image/png"
    assert "thought" not in parts[2] and parts[2]["thoughtSignature"]
    assert parts[3]["text"].startswith("Here is your image")
    final, draft = decode(parts[2]["inlineData"]["data"]), decode(parts[1]["inlineData"]["data"])
    assert (final.format, final.size) == ("PNG", (2752, 1536))
    # The draft is a visibly different, low-detail sketch.
    assert colour_count(draft, 1 << 20) < 200 < colour_count(final, 1 << 24)
    usage = body["usageMetadata"]
    assert usage["candidatesTokenCount"] == 1120 and usage["thoughtsTokenCount"] > 0
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + 1120 + usage["thoughtsTokenCount"]
    assert usage["promptTokensDetails"] == [{"modality": "TEXT", "tokenCount": usage["promptTokenCount"]}]
    assert body["modelVersion"] == "gemini-3-pro-image" and body["responseId"]


@pytest.mark.parametrize(
    "aspect, size, pixels, tokens",
    [
        ("1:1", "1K", (1024, 1024), 1120),
        ("1:1", "4K", (4096, 4096), 2000),
        ("9:16", "1K", (768, 1376), 1120),
        (None, None, (1024, 1024), 1120),
    ],
)
def test_gemini_sizes(client, aspect, size, pixels, tokens):
    body = gm_generate(client, aspect=aspect, size=size).json()
    assert final_image(body).size == pixels
    assert body["usageMetadata"]["candidatesTokenCount"] == tokens


def test_gemini_references_count_and_show(client):
    plain = gm_generate(client, aspect="1:1").json()
    with_ref = gm_generate(client, aspect="1:1", images=[png((255, 0, 0)), png((255, 0, 0))]).json()
    usage = with_ref["usageMetadata"]
    assert usage["promptTokenCount"] == plain["usageMetadata"]["promptTokenCount"] + 2 * 560
    assert {"modality": "IMAGE", "tokenCount": 1120} in usage["promptTokensDetails"]
    strip = (0, 768, 1024, 1024)
    assert red_pixels(final_image(with_ref), strip) > 1000
    assert red_pixels(final_image(plain), strip) < 50


def test_gemini_reference_sets_default_aspect(client):
    body = gm_generate(client, images=[png((0, 0, 0), (1600, 900))]).json()
    assert final_image(body).size == (1376, 768)


def test_gemini_snake_case_and_flash_models(client):
    body = {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "a cat"},
                    {"inline_data": {"mime_type": "image/png", "data": base64.b64encode(png((1, 2, 3))).decode()}},
                ],
            }
        ],
        "generation_config": {
            "response_modalities": ["IMAGE"],
            "image_config": {"aspect_ratio": "4:1", "image_size": "1K"},
        },
    }
    reply = gm_generate(client, body, model="gemini-nano-banana-2.1").json()
    parts = reply["candidates"][0]["content"]["parts"]
    # Google's own 4:1 size (compare/sizes.py); no thoughts unless asked, no text
    assert len(parts) == 1 and final_image(reply).size == (2064, 512)
    lite = gm_generate(client, model="gemini-3.1-flash-lite-image").json()
    assert [("text" in p, "inlineData" in p) for p in lite["candidates"][0]["content"]["parts"]] == [
        (False, True),
        (True, False),
    ]


def test_gemini_grounding(client):
    body = gm_generate(client, body=gm_body(tools=[{"googleSearch": {}}])).json()
    meta = body["candidates"][0]["groundingMetadata"]
    assert meta["webSearchQueries"] and meta["searchEntryPoint"]["renderedContent"]
    tagged = gm_generate(client, body=gm_body(prompt="<b>bold</b> fox", tools=[{"googleSearch": {}}])).json()
    rendered = tagged["candidates"][0]["groundingMetadata"]["searchEntryPoint"]["renderedContent"]
    assert "&lt;b&gt;bold&lt;/b&gt; fox</a>" in rendered  # the query is text in Google's HTML, not markup
    assert all(
        c["web"]["uri"].startswith("https://") and "example." in c["web"]["uri"] for c in meta["groundingChunks"]
    )
    assert "groundingMetadata" not in gm_generate(client).json()["candidates"][0]


@pytest.mark.parametrize(
    "model, body, status, code",
    [
        ("gemini-9-ultra-image", None, "NOT_FOUND", 404),
        ("gemini-3-pro-image-preview", None, "NOT_FOUND", 404),
        ("gemini-3-pro-image", gm_body(aspect="7:3"), "INVALID_ARGUMENT", 400),
        ("gemini-3-pro-image", gm_body(aspect="4:1"), "INVALID_ARGUMENT", 400),
        ("gemini-3-pro-image", gm_body(size="2k"), "INVALID_ARGUMENT", 400),
        ("gemini-3.1-flash-lite-image", gm_body(size="2K"), "INVALID_ARGUMENT", 400),
        ("gemini-3-pro-image", gm_body(images=[png((0, 0, 0), (8, 8))] * 15), "INVALID_ARGUMENT", 400),
        ("gemini-3-pro-image", {"contents": []}, "INVALID_ARGUMENT", 400),
        ("gemini-3-pro-image", {**gm_body(), "bogus": 1}, "INVALID_ARGUMENT", 400),
        (
            "gemini-3-pro-image",
            {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "AAAA"}}]}]},
            "INVALID_ARGUMENT",
            400,
        ),
    ],
)
def test_gemini_validation(client, model, body, status, code):
    reply = gm_generate(client, body, model=model)
    assert reply.status_code == code
    error = reply.json()["error"]
    assert error["status"] == status and error["code"] == code and error["message"]


def test_gemini_auth_and_models(client):
    reply = client.post(
        f"{GEMINI}/models/gemini-3-pro-image:generateContent", json.dumps(gm_body()), content_type="application/json"
    )
    # No key: Google's 403 PERMISSION_DENIED; a key that is not valid: 400 with reason API_KEY_INVALID.
    assert reply.status_code == 403 and reply.json()["error"]["status"] == "PERMISSION_DENIED"
    assert "unregistered callers" in reply.json()["error"]["message"]
    bad = client.post(
        f"{GEMINI}/models/gemini-3-pro-image:generateContent",
        json.dumps(gm_body()),
        content_type="application/json",
        HTTP_X_GOOG_API_KEY="invalid-key",
    )
    error = bad.json()["error"]
    assert (bad.status_code, error["status"]) == (400, "INVALID_ARGUMENT")
    assert {(d.get("reason"), d.get("domain")) for d in error["details"]} >= {("API_KEY_INVALID", "googleapis.com")}
    models = client.get(f"{GEMINI}/models?key=abc").json()["models"]
    names = {m["name"] for m in models}
    assert {"models/gemini-3-pro-image", "models/gemini-nano-banana-2.1", "models/gemini-3.1-flash-lite-image"} <= names
    assert not any(n.endswith("-preview") for n in names)
    assert all("generateContent" in m["supportedGenerationMethods"] for m in models)


def test_gemini_stream_sse(client):
    reply = gm_generate(client, method="streamGenerateContent", query="?alt=sse")
    assert reply["Content-Type"].startswith("text/event-stream")
    chunks = [json.loads(data) for _, data in sse_events(b"".join(reply.streaming_content))]
    assert len(chunks) == 4
    assert all("usageMetadata" not in c for c in chunks[:-1]) and chunks[-1]["usageMetadata"]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    finals = [p for c in chunks for p in c["candidates"][0]["content"]["parts"] if "thoughtSignature" in p]
    assert len(finals) == 1 and decode(finals[0]["inlineData"]["data"]).size == (1024, 1024)
    as_array = gm_generate(client, method="streamGenerateContent").json()
    assert isinstance(as_array, list) and as_array[-1]["candidates"][0]["finishReason"] == "STOP"


# --- faults --------------------------------------------------------------------------------------

OPENAI_FAULTS = [
    ("rate_limit", 429, "rate_limit_exceeded"),
    ("quota", 429, "insufficient_quota"),
    ("server_error", 500, None),
    ("overloaded", 503, None),
    ("refusal", 400, "moderation_blocked"),
    ("prompt_blocked", 400, "moderation_blocked"),
    ("auth", 401, "invalid_api_key"),
    ("no_key", 401, None),
]


@pytest.mark.parametrize("fault, status, code", OPENAI_FAULTS)
@pytest.mark.parametrize("how", ["header", "marker", "scoped"])
def test_openai_faults(client, fault, status, code, how):
    if how == "header":
        reply = oa_generate(client, headers={"HTTP_X_SIMULATOR_FAULT": fault})
    else:
        scope = "@openai" if how == "scoped" else ""
        reply = oa_generate(client, prompt=f'"Hi" [[fault:{fault}{scope}]]')
    assert reply.status_code == status
    assert reply.json()["error"]["code"] == code
    if fault == "rate_limit":
        assert reply["Retry-After"] == "1"
    if fault in {"refusal", "prompt_blocked"}:
        error = reply.json()["error"]
        assert error["type"] == "image_generation_user_error"
        assert error["message"].startswith("Your request was rejected by the safety system")
        stage = "output" if fault == "refusal" else "input"
        assert error["moderation_details"]["moderation_stage"] == stage
        assert error["safety_violations"] == error["moderation_details"]["categories"] != []


GEMINI_ERRORS = [
    ("rate_limit", 429, "RESOURCE_EXHAUSTED"),
    ("quota", 429, "RESOURCE_EXHAUSTED"),
    ("server_error", 500, "INTERNAL"),
    ("overloaded", 503, "UNAVAILABLE"),
    ("auth", 400, "INVALID_ARGUMENT"),
    ("no_key", 403, "PERMISSION_DENIED"),
]


@pytest.mark.parametrize("fault, status, google_status", GEMINI_ERRORS)
def test_gemini_error_faults(client, fault, status, google_status):
    reply = gm_generate(client, prompt=f"a fox [[fault:{fault}@gemini]]")
    assert reply.status_code == status
    error = reply.json()["error"]
    assert (error["code"], error["status"]) == (status, google_status)
    if fault in {"rate_limit", "quota"}:
        kinds = {d["@type"].rsplit(".", 1)[-1]: d for d in error["details"]}
        delay = kinds["RetryInfo"]["retryDelay"]
        quota_id = kinds["QuotaFailure"]["violations"][0]["quotaId"]
        assert (delay == "1s") == (fault == "rate_limit") and ("PerDay" in quota_id) == (fault == "quota")
        assert int(delay[:-1]) > 3600 or fault == "rate_limit"


@pytest.mark.parametrize("fault, finish", [("refusal", "IMAGE_SAFETY"), ("no_image", "NO_IMAGE")])
def test_gemini_no_image_faults(client, fault, finish):
    body = gm_generate(client, headers={"HTTP_X_SIMULATOR_FAULT": fault}).json()
    candidate = body["candidates"][0]
    assert candidate["content"] == {"role": "model"} and candidate["finishReason"] == finish
    assert candidate["finishMessage"] and body["usageMetadata"]["promptTokenCount"] > 0


def test_gemini_prompt_blocked_and_text_only(client):
    blocked = gm_generate(client, prompt="x [[fault:prompt_blocked]]").json()
    assert "candidates" not in blocked and blocked["promptFeedback"]["blockReason"] == "PROHIBITED_CONTENT"
    text = gm_generate(client, prompt="x [[fault:text_only]]").json()
    parts = text["candidates"][0]["content"]["parts"]
    assert [list(p) for p in parts] == [["text"]] and text["candidates"][0]["finishReason"] == "STOP"
    empty = oa_generate(client, prompt="x [[fault:text_only]]").json()
    assert empty["data"] == []


def test_fault_scope_applies_to_one_protocol(client):
    prompt = '"Both" [[fault:server_error@gemini]]'
    assert oa_generate(client, prompt=prompt, quality="low").status_code == 200
    assert gm_generate(client, prompt=prompt).status_code == 500


def test_counted_fault_then_success_and_markers_not_drawn(client):
    prompt = '"Retry me" [[fault:rate_limitx2]]'
    assert [oa_generate(client, prompt=prompt, quality="low").status_code for _ in range(3)] == [429, 429, 200]
    assert [gm_generate(client, prompt=prompt).status_code for _ in range(3)] == [429, 429, 200]
    # The third attempt's image is the one the prompt without markers gives.
    with_marker = oa_generate(client, prompt=prompt, quality="low").json()["data"][0]["b64_json"]
    without = oa_generate(client, prompt='"Retry me"', quality="low").json()["data"][0]["b64_json"]
    assert with_marker == without
    mixed = '"Mixed" [[fault:overloaded@openaix1]]'
    assert [oa_generate(client, prompt=mixed, quality="low").status_code for _ in range(2)] == [503, 200]


def test_malformed_and_cutoff(client):
    for reply in (
        oa_generate(client, prompt="x [[fault:malformed]]"),
        gm_generate(client, prompt="x [[fault:malformed]]"),
    ):
        assert reply.status_code == 200
        with pytest.raises(ValueError):
            json.loads(reply.content)
    cut = oa_generate(client, prompt="x [[fault:cutoff]]", stream=True, partial_images=3, quality="low")
    events = sse_events(b"".join(cut.streaming_content))
    assert [name for name, _ in events] == ["image_generation.partial_image"]
    gm_cut = gm_generate(client, prompt="x [[fault:cutoff]]")
    with pytest.raises(ValueError):
        json.loads(b"".join(gm_cut.streaming_content))
    gm_stream = gm_generate(client, prompt="x [[fault:cutoff]]", method="streamGenerateContent", query="?alt=sse")
    chunks = [json.loads(d) for _, d in sse_events(b"".join(gm_stream.streaming_content))]
    assert chunks and all("finishReason" not in c["candidates"][0] and "usageMetadata" not in c for c in chunks)


def test_timeout_fault_is_bounded(client):
    start = time.monotonic()
    reply = oa_generate(client, prompt="x [[fault:timeout:0.2]]")
    assert reply.status_code == 504 and 0.2 <= time.monotonic() - start < 5
    assert gm_generate(client, headers={"HTTP_X_SIMULATOR_FAULT": "timeout:0.1"}).status_code == 504


def test_unknown_fault_is_reported(client):
    assert oa_generate(client, prompt="x [[fault:gremlins]]").status_code == 400
    assert gm_generate(client, headers={"HTTP_X_SIMULATOR_FAULT": "gremlins"}).status_code == 400


def test_fault_parsing():
    parsed = faults.parse_faults("a [[fault:text_onlyx2@gemini]] b [[fault:timeout:30]]", "rate_limit@openai")
    assert [(f.name, f.protocol, f.count, f.seconds, f.source) for f in parsed] == [
        ("rate_limit", "openai", None, None, "header"),
        ("text_only", "gemini", 2, None, "prompt"),
        ("timeout", None, None, 30.0, "prompt"),
    ]
    assert faults.strip_markers('Say "hi" [[fault:quota@openai]] [[latency:2.5]] now') == 'Say "hi" now'
    assert faults.latency_override("openai", "x [[latency:2.5@gemini]]", None) is None
    assert faults.latency_override("gemini", "x [[latency:2.5@gemini]]", None) == 2.5
    assert faults.latency_override("openai", "x [[latency:2.5]]", "0.5") == 0.5


# --- latency -------------------------------------------------------------------------------------


def test_latency_from_registry_and_overrides(client, settings):
    settings.COMPARE_SIMULATOR_LATENCY = 0.05  # gpt-image-2 has simulated_latency 4.0 → 0.2 s
    start = time.monotonic()
    oa_generate(client, quality="low")
    assert time.monotonic() - start >= 0.2
    from compare.simulator.common import model_latency

    assert model_latency("gpt-image-1.5") == pytest.approx(3.0 * 0.05)
    settings.COMPARE_SIMULATOR_LATENCY = 0.0
    start = time.monotonic()
    gm_generate(client, prompt="x [[latency:0.3]]")
    oa_generate(client, quality="low", headers={"HTTP_X_SIMULATOR_LATENCY": "0.2"})
    assert time.monotonic() - start >= 0.5


def test_stream_spreads_latency(client):
    """Two previews and the image leave at a third, two thirds and all of the latency (0.5 s
    apart), not together at the end. The latency leaves room for drawing on a busy machine:
    a frame drawn late leaves late, and the next one then leaves closer behind it."""
    reply = oa_generate(
        client, stream=True, partial_images=2, quality="low", headers={"HTTP_X_SIMULATOR_LATENCY": "1.5"}
    )
    stamps = []
    for _ in reply.streaming_content:
        stamps.append(time.monotonic())
    assert stamps[1] - stamps[0] >= 0.25 and stamps[2] - stamps[1] >= 0.25


# --- rendering -----------------------------------------------------------------------------------


def test_headline_extraction():
    assert render.headline('A sign saying "OPEN" and “late”') == "OPEN\nlate"
    assert render.headline("海报上写着「你好世界」") == "你好世界"
    long = "a very long prompt without any quotes that goes on and on and on"
    assert render.headline(long).endswith("…") and len(render.headline(long)) <= 41


def test_cjk_text_is_drawn(tmp_path):
    seed = render.seed_bytes("x")
    blank = render.compose("", "m", seed, 1024, 1024)
    text = render.compose("「你好世界」", "m", seed, 1024, 1024)
    band = (100, 350, 924, 674)

    def white(image):
        return sum(1 for p in pixels(image.crop(band)) if min(p) > 245)

    assert white(text) > white(blank) + 2000


@pytest.mark.parametrize(
    "text",
    [
        "Poster 12: a loaf of fresh bread on a…",
        "FRESH BREAD",
        "OPEN\nlate night",
        "猫がピアノを弾いている絵、暖かい光",
        "A Supercalifragilisticexpialidocious sign",
    ],
)
def test_a_font_size_ruled_out_without_wrapping_never_fits(text):
    # The fit skips, with one measurement, the sizes at which the text cannot fit however it
    # is wrapped: none of them may be one at which the wrapped text does fit.
    ruled_out = 0
    for box_w, box_h in [(880, 563), (1321, 563), (3302, 1188), (258, 495)]:
        for size in range(10, 260, 3):
            font, line_h = render.load_font(size), size * 1.25
            if render._too_long(text, font, line_h, box_w, box_h):
                ruled_out += 1
                lines = render._wrap(text, font, box_w)
                fits = len(lines) * line_h <= box_h and all(font.getlength(line) <= box_w for line in lines)
                assert not fits, (text, size, box_w, box_h, lines)
    assert ruled_out > 20


def test_render_without_any_font(monkeypatch):
    monkeypatch.setattr(render, "font_path", lambda: None)
    render.load_font.cache_clear()
    try:
        data = render.render('"No font"', "m", render.seed_bytes("y"), 1024, 640, "jpeg")
        assert Image.open(io.BytesIO(data)).size == (1024, 640)
    finally:
        render.load_font.cache_clear()


def test_4k_png_renders_fast():
    start = time.monotonic()
    render.render('"Fast"', "m", render.seed_bytes("z"), 3840, 2160)
    assert time.monotonic() - start < 3


# --- over a real socket, with httpx and the official SDKs ----------------------------------------


def test_http_generation_over_socket(live_server):
    reply = httpx.post(
        f"{live_server.url}{OPENAI}/images/generations",
        headers={"Authorization": "Bearer x"},
        json={"model": "gpt-image-2", "prompt": '"Socket"', "quality": "low"},
        timeout=30,
    )
    assert reply.status_code == 200 and decode(reply.json()["data"][0]["b64_json"]).size == (1024, 1024)
    cut = httpx.post(
        f"{live_server.url}{GEMINI}/models/gemini-3-pro-image:generateContent?key=x",
        json=gm_body(prompt="x [[fault:cutoff]]"),
        timeout=30,
    )
    assert cut.status_code == 200
    with pytest.raises(ValueError):
        cut.json()


def test_http_timeout_fault(live_server):
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{live_server.url}{OPENAI}/images/generations",
            headers={"Authorization": "Bearer x"},
            json={"model": "gpt-image-2", "prompt": "x [[fault:timeout:30]]"},
            timeout=0.5,
        )


@pytest.fixture
def openai_client(live_server):
    """The official client; every reply it receives is validated with its models (tests/test_sdk_replies.py)."""
    openai = pytest.importorskip("openai")
    from tests.test_sdk_replies import Wire

    return openai.OpenAI(base_url=live_server.url + OPENAI, api_key="x", max_retries=0, http_client=Wire().client)


def test_openai_sdk_generate_and_edit(openai_client):
    result = openai_client.images.generate(model="gpt-image-2", prompt='"SDK"', size="1536x1024", quality="low")
    assert result.size == "1536x1024" and result.usage.output_tokens == 167
    assert decode(result.data[0].b64_json).size == (1536, 1024)
    edited = openai_client.images.edit(
        model="gpt-image-2",
        prompt='"Two refs"',
        quality="low",
        image=[("a.png", png((255, 0, 0)), "image/png"), ("b.png", png((0, 0, 255)), "image/png")],
    )
    assert edited.usage.input_tokens_details.image_tokens == 2 * 255
    assert decode(edited.data[0].b64_json).format == "PNG"
    assert {"gpt-image-2", "gpt-image-1.5"} <= {m.id for m in openai_client.models.list()}


def test_openai_sdk_stream(openai_client):
    events = list(
        openai_client.images.generate(
            model="gpt-image-2", prompt='"Stream"', quality="low", stream=True, partial_images=2
        )
    )
    assert [e.type for e in events] == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    assert [e.partial_image_index for e in events[:2]] == [0, 1]
    assert events[-1].usage.output_tokens == 400


def test_openai_sdk_errors(openai_client):
    import openai

    with pytest.raises(openai.RateLimitError):
        openai_client.images.generate(model="gpt-image-2", prompt="x [[fault:rate_limit]]")
    with pytest.raises(openai.BadRequestError) as refused:
        openai_client.images.generate(model="gpt-image-2", prompt="x [[fault:refusal@openai]]")
    assert refused.value.code == "moderation_blocked"


@pytest.fixture
def genai_client(live_server):
    genai = pytest.importorskip("google.genai")
    from google.genai import types

    from tests.test_sdk_replies import Wire

    options = types.HttpOptions(
        base_url=live_server.url + "/sim/gemini", api_version="v1beta", httpx_client=Wire().client
    )
    return genai.Client(api_key="x", http_options=options)


def test_genai_sdk_generate(genai_client):
    from google.genai import types

    response = genai_client.models.generate_content(
        model="gemini-3-pro-image",
        contents=['"Banana"', types.Part.from_bytes(data=png((255, 0, 0)), mime_type="image/png")],
        config=types.GenerateContentConfig(
            response_modalities=["TEXT", "IMAGE"],
            tools=[types.Tool(google_search=types.GoogleSearch())],
            image_config=types.ImageConfig(aspect_ratio="16:9", image_size="2K"),
        ),
    )
    candidate = response.candidates[0]
    assert candidate.finish_reason == types.FinishReason.STOP
    images = [p for p in response.parts if p.inline_data and not p.thought]
    assert len(images) == 1 and images[0].thought_signature
    assert Image.open(io.BytesIO(images[0].inline_data.data)).size == (2752, 1536)
    assert any(p.thought and p.inline_data for p in response.parts)
    usage = response.usage_metadata
    assert usage.candidates_token_count == 1120 and usage.prompt_token_count > 560 and usage.thoughts_token_count
    assert candidate.grounding_metadata.grounding_chunks[0].web.uri.startswith("https://")
    names = {m.name for m in genai_client.models.list()}
    assert "models/gemini-3-pro-image" in names


def test_genai_sdk_stream_and_errors(genai_client):
    from google.genai import errors, types

    chunks = list(genai_client.models.generate_content_stream(model="gemini-3-pro-image", contents='"Chunks"'))
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.total_token_count > 1120
    with pytest.raises(errors.ClientError) as limited:
        genai_client.models.generate_content(model="gemini-3-pro-image", contents="x [[fault:rate_limit@gemini]]")
    assert limited.value.code == 429 and limited.value.status == "RESOURCE_EXHAUSTED"
    with pytest.raises(errors.ServerError):
        genai_client.models.generate_content(model="gemini-3-pro-image", contents="x [[fault:overloaded]]")
    refused = genai_client.models.generate_content(model="gemini-3-pro-image", contents="x [[fault:refusal]]")
    assert refused.candidates[0].finish_reason == types.FinishReason.IMAGE_SAFETY and not refused.parts


def test_concurrent_requests_and_thread_safe_counter(live_server):
    from concurrent.futures import ThreadPoolExecutor

    url = f"{live_server.url}{OPENAI}/images/generations"

    def call(prompt):
        return httpx.post(
            url,
            headers={"Authorization": "Bearer x"},
            timeout=30,
            json={"model": "gpt-image-2", "prompt": prompt, "quality": "low"},
        ).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(call, ['"Busy" [[fault:server_errorx2]]'] * 6))
    assert sorted(statuses) == [200, 200, 200, 200, 500, 500]


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_the_fast_png_encoder_writes_a_valid_png_of_the_same_pixels(mode):
    """The simulator's own PNG writer (rows unfiltered, or 'Up' where a row repeats the one
    above; zlib-ng deflate): a file Pillow and zlib read back pixel for pixel, with valid
    chunk checksums; other modes go through Pillow."""
    import zlib

    picture = render.compose("Fast 'PNG' check", "gpt-image-2", render.seed_bytes("png", mode), 300, 200)
    picture = picture.convert(mode)
    data = render.png(picture)
    with Image.open(io.BytesIO(data)) as probe:
        probe.verify()  # every chunk's CRC
    with Image.open(io.BytesIO(data)) as back:
        assert back.format == "PNG" and back.mode == mode and back.size == (300, 200)
        assert back.tobytes() == picture.tobytes()
    if mode != "L":  # the hand-written file: one IDAT, rows led by filter type 0, or 2 (Up) and all zeros
        idat = data[data.index(b"IDAT") + 4 : data.index(b"IEND") - 8]
        raw = zlib.decompress(idat)
        stride = 1 + 300 * len(mode)
        rows = [raw[y * stride : (y + 1) * stride] for y in range(200)]
        pixels = picture.tobytes()
        assert len(raw) == 200 * stride and rows[0][0] == 0
        for y, row in enumerate(rows):
            same = (
                y > 0
                and pixels[y * (stride - 1) : (y + 1) * (stride - 1)]
                == pixels[(y - 1) * (stride - 1) : y * (stride - 1)]
            )
            assert row == (
                b"\2" + bytes(stride - 1) if same else b"\0" + pixels[y * (stride - 1) : (y + 1) * (stride - 1)]
            )
        assert any(row[0] == 2 for row in rows)  # the doubled background's repeated rows


def test_the_fast_png_encoder_never_copies_a_4k_picture_whole():
    """It reads the pixels in bands of about 512 KB: encoding a 3840×2160 picture (25 MB of
    pixels) allocates a few MB of Python objects at most (a whole copy made the simulator's
    peak memory with dozens of 4K pictures in flight pass 400 MB)."""
    import tracemalloc
    import zlib

    picture = render.compose("Big 'PNG'", "gpt-image-2", render.seed_bytes("big"), 3840, 2160)
    tracemalloc.start()
    try:
        data = render.png(picture)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * len(data) + 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB for a {len(data) / 1e6:.1f} MB file"
    idat = data[data.index(b"IDAT") + 4 : data.index(b"IEND") - 8]
    assert len(zlib.decompress(idat)) == 2160 * (1 + 3840 * 3)
    with Image.open(io.BytesIO(data)) as back:
        assert back.size == (3840, 2160) and back.tobytes() == picture.tobytes()


@pytest.mark.parametrize("size", [(1024, 1024), (1408, 768), (768, 1344), (7, 300)])
def test_the_draft_png_shows_the_draft_pixel_for_pixel(size):
    """Gemini Pro's thought sketch is written from its few distinct rows, repeats filtered
    'Up': the file decodes to exactly the blocky draft, with valid checksums."""
    import zlib

    seed = render.seed_bytes("draft", *size)
    data = render.draft_png(seed, *size)
    with Image.open(io.BytesIO(data)) as probe:
        probe.verify()
    with Image.open(io.BytesIO(data)) as back:
        assert back.format == "PNG" and back.mode == "RGB" and back.size == size
        assert back.tobytes() == render.draft(seed, *size).tobytes()
    raw = zlib.decompress(data[data.index(b"IDAT") + 4 : data.index(b"IEND") - 8])
    stride = 1 + size[0] * 3
    filters = [raw[y * stride] for y in range(size[1])]
    assert filters[0] == 0 and set(filters) == {0, 2} and filters.count(0) <= 12  # one plain row per block


def _drawn_directly(canvas: Image.Image, text: str, label: str, inset: int, safe: int) -> None:
    """The simulator's text as ImageDraw.text draws it, line by line, with no cache."""
    from PIL import ImageDraw

    width, height = canvas.size
    draw = ImageDraw.Draw(canvas)
    box_w, box_h = int((width - 2 * inset) * 0.86), int((height - 2 * inset) * 0.55)
    font, lines, line_h, size = render._fit_text(text, box_w, box_h)
    top = (height - len(lines) * line_h) / 2
    for i, line in enumerate(lines):
        xy = (width / 2, top + i * line_h + line_h / 2)
        draw.text(xy, line, render.INK, font, "mm", stroke_width=max(1, size // 14), stroke_fill=render.OUTLINE)
    small = max(10, min(width, height) // 36)
    pad = safe + max(4, small // 2)
    draw.text(
        (pad, pad),
        label,
        render.INK,
        render.load_font(small),
        stroke_width=max(1, small // 10),
        stroke_fill=render.OUTLINE,
    )


@pytest.mark.parametrize(
    "text,size,inset",
    [
        ("Poster 1 (burst): a loaf of fresh bread…", (1024, 1024), 0),
        ("SUMMER SALE — 50% off", (1536, 1024), 73),
        ("—", (1000, 999), 0),  # drawn wholly below its anchor, from a half-pixel start
        ("新品上市 カフェ 한국어 naïve café", (333, 777), 0),
    ],
)
def test_text_from_the_cache_of_drawn_lines_is_the_same_pixels(text, size, inset):
    """Each line is rasterised once and kept (a prompt goes to two models, a label is on every
    picture); what comes out of the cache is exactly what ImageDraw.text draws."""
    background = render.background(b"seed" * 10, *size)
    expected = background.copy()
    _drawn_directly(expected, text, "gpt-image-2 · simulated", inset, inset + inset // 3)
    for _ in range(2):  # drawn, then from the cache
        canvas = background.copy()
        render.draw_text(canvas, text, "gpt-image-2 · simulated", inset, inset + inset // 3)
        assert canvas.tobytes() == expected.tobytes()


def test_the_cache_of_drawn_lines_is_bounded_by_bytes(monkeypatch):
    monkeypatch.setattr(render, "TEXT_CACHE_BYTES", 400_000)
    monkeypatch.setattr(render, "_masks", type(render._masks)())
    monkeypatch.setattr(render, "_masks_bytes", 0)
    canvas = render.background(b"seed" * 10, 1024, 1024)
    for i in range(40):
        render.draw_text(canvas, f"Line number {i} of many", "label", 0, 0)
        held = sum(2 * outline.width * outline.height for _, _, outline, _ in render._masks.values())
        assert held == render._masks_bytes <= 400_000
    assert len(render._masks) > 1  # it does keep lines
    big = render.background(b"seed" * 10, 3840, 2160)
    render.draw_text(big, "A 4K headline", "label", 0, 0)  # a line over a quarter of the budget: not kept
    assert not any(key[0] == "A 4K headline" for key in render._masks)

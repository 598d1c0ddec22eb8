"""The OpenAI Images adapter, faked at the HTTP boundary (httpx.MockTransport)."""

import base64
import dataclasses
import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from email.policy import HTTP
from email.utils import format_datetime

import httpx
import pytest
from PIL import Image

from compare.providers import openai_images
from compare.providers._common import scrub
from compare.providers.base import ErrorKind, GenerationRequest, InputImage, ProviderError
from compare.registry import get_model
from tests.factories import Recorder, image_bytes, png

KEY = "sk-test-" + "Zq7" * 16
URL_GEN = "https://api.openai.com/v1/images/generations"
URL_EDIT = "https://api.openai.com/v1/images/edits"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def ok(body: dict) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(200, json=body)


def multipart(request: httpx.Request) -> list[tuple[str, str | None, str | None, bytes]]:
    """(name, filename, content type or None, payload) for every part, in order."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + request.content)
    assert message.is_multipart()
    parts = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        ctype = part["content-type"]
        payload = part.get_payload(decode=True)
        assert isinstance(name, str) and isinstance(payload, bytes), part
        parts.append((name, part.get_filename(), str(ctype) if ctype else None, payload))
    return parts


@pytest.fixture
def model(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return get_model("gpt-image-2")


def make_request(model, **kwargs) -> GenerationRequest:
    return GenerationRequest(model=model, prompt="a red fox in snow", **kwargs)


def images_response(*images: bytes, **extra) -> dict:
    return {
        "created": 1760000000,
        "data": [{"b64_json": b64(i)} for i in images],
        "background": "opaque",
        "output_format": "png",
        "quality": "low",
        "size": "1024x1024",
        "usage": {
            "input_tokens": 50,
            "input_tokens_details": {"text_tokens": 50, "image_tokens": 0},
            "output_tokens": 157,
            "total_tokens": 207,
        },
        **extra,
    }


# --- wire_params ------------------------------------------------------------


def test_wire_params_sends_defaults_explicitly(model):
    assert openai_images.wire_params(make_request(model)) == {
        "model": "gpt-image-2",
        "n": 1,
        "size": "1024x1024",
        "quality": "auto",
        "output_format": "png",
        "background": "auto",
        "moderation": "auto",
    }


def test_wire_params_compression_only_for_jpeg_and_webp(model):
    params = openai_images.wire_params(
        make_request(
            model,
            output_format="webp",
            output_compression=80,
            quality="low",
            background="opaque",
            moderation="low",
            aspect_ratio="16:9",
            resolution="2K",
            n=2,
        )
    )
    assert params == {
        "model": "gpt-image-2",
        "n": 2,
        "size": "2720x1536",
        "quality": "low",
        "output_format": "webp",
        "output_compression": 80,
        "background": "opaque",
        "moderation": "low",
    }
    png_params = openai_images.wire_params(make_request(model, output_format="png", output_compression=80))
    assert "output_compression" not in png_params


def test_wire_params_explicit_size_and_streaming_capped_at_three(model):
    params = openai_images.wire_params(make_request(model, size="2048x1152", partial_images=5))
    assert params["size"] == "2048x1152"
    assert params["stream"] is True and params["partial_images"] == 3


def test_wire_params_only_sends_what_the_model_supports(model):
    caps = dataclasses.replace(model.capabilities, qualities=(), output_formats=(), backgrounds=(), streaming=False)
    bare = dataclasses.replace(model, capabilities=caps)
    params = openai_images.wire_params(make_request(bare, quality="high", output_compression=50, partial_images=2))
    assert params == {"model": "gpt-image-2", "n": 1, "size": "1024x1024", "moderation": "auto"}
    assert "input_fidelity" not in openai_images.wire_params(make_request(model, references=[]))


# --- generations (JSON) -----------------------------------------------------


def test_generation_request_and_reply(model):
    image = png("blue")
    rec = Recorder(ok(images_response(image, output_format="webp", size="1536x1024")))
    req = make_request(model, aspect_ratio="3:2", quality="low", output_format="webp", output_compression=80)
    result = openai_images.generate(req, rec.client())

    [sent] = rec.requests
    assert sent.method == "POST" and str(sent.url) == URL_GEN
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert "x-goog-api-key" not in sent.headers
    assert sent.headers["content-type"] == "application/json"
    assert json.loads(sent.content) == {
        "model": "gpt-image-2",
        "prompt": "a red fox in snow",
        "n": 1,
        "size": "1536x1024",
        "quality": "low",
        "output_format": "webp",
        "output_compression": 80,
        "background": "auto",
        "moderation": "auto",
    }
    assert [i.data for i in result.images] == [image]
    assert result.images[0].mime_type == "image/webp"
    assert result.usage["total_tokens"] == 207
    assert result.echoed == {"size": "1536x1024", "quality": "low", "background": "opaque", "output_format": "webp"}
    assert result.sent == openai_images.wire_params(req)


def test_generation_several_images_and_mime_from_request_when_not_echoed(model):
    a, b = png("red"), png("green")
    rec = Recorder(ok({"created": 1, "data": [{"b64_json": b64(a)}, {"b64_json": b64(b)}]}))
    result = openai_images.generate(make_request(model, n=2, output_format="jpeg"), rec.client())
    assert [i.data for i in result.images] == [a, b]
    assert {i.mime_type for i in result.images} == {"image/jpeg"}
    assert result.usage == {} and result.echoed == {}


def test_gateway_auth_header(model):
    gateway = dataclasses.replace(model, auth="x-goog-api-key")
    rec = Recorder(ok(images_response(png())))
    openai_images.generate(make_request(gateway), rec.client())
    assert rec.requests[0].headers["x-goog-api-key"] == KEY
    assert "authorization" not in rec.requests[0].headers


# --- edits (multipart) ------------------------------------------------------


def test_edit_with_one_reference_sends_part_named_image(model):
    ref = png("yellow", (16, 16))
    rec = Recorder(ok(images_response(png())))
    req = make_request(model, references=[InputImage(ref, "image/png", "fox.png")], quality="high")
    openai_images.generate(req, rec.client())

    [sent] = rec.requests
    assert sent.method == "POST" and str(sent.url) == URL_EDIT
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")
    parts = multipart(sent)
    fields = {name: payload.decode() for name, filename, _, payload in parts if filename is None}
    assert fields == {
        "prompt": "a red fox in snow",
        "model": "gpt-image-2",
        "n": "1",
        "size": "1024x1024",
        "quality": "high",
        "output_format": "png",
        "background": "auto",
    }  # no `moderation`: the edits endpoint rejects it (it goes on generations only)
    files = [(name, filename, ctype, payload) for name, filename, ctype, payload in parts if filename is not None]
    assert files == [("image", "fox.png", "image/png", ref)]


def test_edit_sends_moderation_where_the_registry_says_edits_take_it(model):
    takes_it = dataclasses.replace(
        model, capabilities=dataclasses.replace(model.capabilities, moderation_on_edits=True)
    )
    rec = Recorder(ok(images_response(png())))
    ref = InputImage(png("yellow", (16, 16)), "image/png", "fox.png")
    openai_images.generate(make_request(takes_it, references=[ref], moderation="low"), rec.client())

    fields = {name: payload.decode() for name, filename, _, payload in multipart(rec.requests[0]) if not filename}
    assert fields["moderation"] == "low"


def test_edit_with_several_references_and_mask_keeps_order(model):
    refs = [
        InputImage(png("red", (10, 10)), "image/png", "a.png"),
        InputImage(image_bytes("green", (12, 10), fmt="JPEG"), "image/jpeg", "b.jpg"),
        InputImage(image_bytes("blue", (14, 10), fmt="WEBP"), "image/webp", "c.webp"),
    ]
    mask = InputImage(png((0, 0, 0, 0), (10, 10), mode="RGBA"), "image/png", "mask.png")
    rec = Recorder(ok(images_response(png())))
    openai_images.generate(make_request(model, references=refs, mask=mask), rec.client())

    parts = multipart(rec.requests[0])
    files = [(name, filename, ctype, payload) for name, filename, ctype, payload in parts if filename]
    assert files == [
        ("image[]", "a.png", "image/png", refs[0].data),
        ("image[]", "b.jpg", "image/jpeg", refs[1].data),
        ("image[]", "c.webp", "image/webp", refs[2].data),
        ("mask", "mask.png", "image/png", mask.data),
    ]
    # The fields come before the files; the image bytes survive the round trip.
    assert [name for name, *_ in parts][:2] == ["prompt", "model"]
    assert Image.open(io.BytesIO(files[3][3])).mode == "RGBA"


def test_mask_without_reference_is_a_bad_request(model):
    rec = Recorder(ok(images_response(png())))
    mask = InputImage(png(), "image/png", "mask.png")
    with pytest.raises(ProviderError) as info:
        openai_images.generate(make_request(model, mask=mask), rec.client())
    assert info.value.kind is ErrorKind.BAD_REQUEST
    assert rec.requests == []


# --- errors -----------------------------------------------------------------


def error(
    status: int,
    message: str,
    code: str | None = None,
    type_: str = "invalid_request_error",
    param: str | None = None,
    headers: dict | None = None,
):
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return lambda request: httpx.Response(status, json=body, headers=headers or {})


def run_error(model, reply, **kwargs) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        openai_images.generate(make_request(model, **kwargs), Recorder(reply).client())
    return info.value


@pytest.mark.parametrize(
    ("reply", "kind", "words"),
    [
        (
            error(
                400,
                "Your request was rejected by the safety system.",
                "moderation_blocked",
                "image_generation_user_error",
            ),
            ErrorKind.REFUSED,
            "Rejected by OpenAI's safety system: Your request",
        ),
        (
            error(400, "This request has been blocked by our content filters.", "content_policy_violation"),
            ErrorKind.REFUSED,
            "safety system",
        ),
        (
            error(400, "Invalid size '4096x4096'.", "invalid_value", param="size"),
            ErrorKind.BAD_REQUEST,
            "(400) (parameter: size): Invalid size '4096x4096'.",
        ),
        (error(422, "Unprocessable."), ErrorKind.BAD_REQUEST, "(422)"),
        (error(401, "Invalid authentication."), ErrorKind.AUTH, "API key (401)"),
        (
            error(403, "Project does not have access to model gpt-image-2.", type_="permission_error"),
            ErrorKind.AUTH,
            "not allowed to use gpt-image-2 (403)",
        ),
        (error(404, "The model does not exist."), ErrorKind.NOT_FOUND, "gpt-image-2 was not found"),
        (
            error(
                429,
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                "insufficient_quota",
            ),
            ErrorKind.QUOTA,
            "quota (429)",
        ),
        (error(500, "The server had an error."), ErrorKind.SERVER, "server error (500)"),
        (error(502, "Bad gateway."), ErrorKind.SERVER, "(502)"),
        (error(504, "Gateway timeout."), ErrorKind.SERVER, "(504)"),
        (error(503, "The engine is currently overloaded."), ErrorKind.OVERLOADED, "overloaded (503)"),
        (
            lambda r: httpx.Response(502, text="<html><body>nginx</body></html>"),
            ErrorKind.SERVER,
            "(502): no details given",
        ),
    ],
)
def test_http_errors_map_to_kinds(model, reply, kind, words):
    err = run_error(model, reply)
    assert err.kind is kind
    assert words in err.message
    assert err.retryable == (kind in {ErrorKind.SERVER, ErrorKind.OVERLOADED})


def test_insufficient_quota_is_not_retryable(model):
    err = run_error(model, error(429, "You exceeded your current quota.", "insufficient_quota", "insufficient_quota"))
    assert err.kind is ErrorKind.QUOTA and not err.retryable and err.retry_after is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"retry-after-ms": "1500", "retry-after": "9"}, 1.5), ({"retry-after": "20"}, 20.0), ({}, None)],
)
def test_rate_limit_retry_after(model, headers, expected):
    err = run_error(
        model,
        error(429, "Rate limit reached for images per minute.", "rate_limit_exceeded", "requests", headers=headers),
    )
    assert err.kind is ErrorKind.RATE_LIMIT and err.retryable and err.status == 429
    assert err.retry_after == expected
    assert err.message == "Rate limit reached for gpt-image-2 (429): Rate limit reached for images per minute."


def test_rate_limit_retry_after_as_http_date(model):
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    err = run_error(model, error(429, "Slow down.", headers={"retry-after": when}))
    assert err.retry_after is not None and 25 <= err.retry_after <= 30


def test_key_never_appears_in_error_messages(model):
    err = run_error(model, error(401, f"Incorrect API key provided: {KEY}. You can find your API key at …"))
    assert KEY not in err.message and KEY not in repr(err) and KEY not in str(err)
    assert "[redacted]" in err.message


def test_scrub_removes_key_shapes_but_keeps_words():
    text = (
        "sk-proj-abcDEF123456 AIzaSyA1b2C3d4E5f6G7h8 Bearer eyJhbGciOi.JIUzI1NiJ9.x "
        "?key=secret123&x=1 tok_" + "a1" * 25 + " GenerateRequestsPerDayPerProjectPerModel-FreeTier risk-assessment"
    )
    cleaned = scrub(text, "mysecretvalue")
    for secret in ("abcDEF123456", "AIzaSy", "eyJhbGciOi", "secret123", "a1a1a1"):
        assert secret not in cleaned
    assert "GenerateRequestsPerDayPerProjectPerModel-FreeTier" in cleaned and "risk-assessment" in cleaned
    assert scrub("pass mysecretvalue on", "mysecretvalue") == "pass [redacted] on"


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx.ReadTimeout("timed out"), ErrorKind.TIMEOUT),
        (httpx.ConnectError("connection refused"), ErrorKind.NETWORK),
    ],
)
def test_transport_errors(model, exc, kind):
    def reply(request):
        raise exc

    err = run_error(model, reply)
    assert err.kind is kind and err.retryable


@pytest.mark.parametrize(
    "reply",
    [
        lambda r: httpx.Response(200, text="upstream said hi"),
        ok({"created": 1, "data": []}),
        ok({"created": 1, "data": [{"url": "https://example.com/x.png"}]}),
        ok({"created": 1, "data": [{"b64_json": "not base64!!"}]}),
    ],
)
def test_malformed_success_replies(model, reply):
    err = run_error(model, reply)
    assert err.kind is ErrorKind.MALFORMED and err.retryable


# --- streaming --------------------------------------------------------------


def sse(event: str, payload: dict | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"event: {event}\ndata: {data}\n\n".encode()


def partial(index: int, image: bytes, prefix: str = "image_generation") -> bytes:
    return sse(
        f"{prefix}.partial_image",
        {
            "type": f"{prefix}.partial_image",
            "b64_json": b64(image),
            "partial_image_index": index,
            "background": "opaque",
            "created_at": 1,
            "output_format": "png",
            "quality": "low",
            "size": "1024x1024",
        },
    )


def completed(image: bytes, prefix: str = "image_generation", tokens: int = 100) -> bytes:
    return sse(
        f"{prefix}.completed",
        {
            "type": f"{prefix}.completed",
            "b64_json": b64(image),
            "background": "opaque",
            "created_at": 2,
            "output_format": "png",
            "quality": "low",
            "size": "1024x1024",
            "usage": {
                "input_tokens": 10,
                "input_tokens_details": {"text_tokens": 10, "image_tokens": 0},
                "output_tokens": tokens,
                "total_tokens": tokens + 10,
            },
        },
    )


def stream_reply(chunks: Callable[[], Iterator[bytes]]):
    return lambda request: httpx.Response(200, headers={"content-type": "text/event-stream"}, content=chunks())


def test_streaming_delivers_partials_in_order_then_the_final_image(model):
    previews = [png("#100"), png("#200"), png("#300")]
    final = png("#f00")
    seen: list[tuple[int, bytes, str]] = []

    def chunks():
        for i, preview in enumerate(previews):
            yield partial(i, preview)
            # The adapter reads incrementally: the preview is handed over before the next event is sent.
            assert len(seen) == i + 1
        yield completed(final)
        yield b"data: [DONE]\n\n"

    rec = Recorder(stream_reply(chunks))
    req = make_request(model, partial_images=3, on_partial=lambda i, data, mime: seen.append((i, data, mime)))
    result = openai_images.generate(req, rec.client())

    assert json.loads(rec.requests[0].content)["stream"] is True
    assert json.loads(rec.requests[0].content)["partial_images"] == 3
    assert seen == [(0, previews[0], "image/png"), (1, previews[1], "image/png"), (2, previews[2], "image/png")]
    assert [i.data for i in result.images] == [final]
    assert result.usage["total_tokens"] == 110
    assert result.echoed == {"size": "1024x1024", "quality": "low", "background": "opaque", "output_format": "png"}
    assert result.sent["stream"] is True


def test_streaming_edit_with_two_images(model):
    finals = [png("red"), png("blue")]
    seen = []

    def chunks():
        yield partial(0, png("gray"), "image_edit")
        yield completed(finals[0], "image_edit", tokens=100)
        yield completed(finals[1], "image_edit", tokens=120)

    rec = Recorder(stream_reply(chunks))
    req = make_request(
        model,
        n=2,
        partial_images=1,
        references=[InputImage(png(), "image/png", "r.png")],
        on_partial=lambda *args: seen.append(args),
    )
    result = openai_images.generate(req, rec.client())

    fields = {name: payload for name, filename, _, payload in multipart(rec.requests[0]) if not filename}
    assert fields["stream"] == b"true" and fields["partial_images"] == b"1" and fields["n"] == b"2"
    assert str(rec.requests[0].url) == URL_EDIT
    assert len(seen) == 1
    assert [i.data for i in result.images] == finals
    assert result.usage["output_tokens"] == 220 and result.usage["input_tokens_details"]["text_tokens"] == 20
    assert result.text == ""


def test_stream_without_completed_event_is_cut_off(model):
    seen = []
    rec = Recorder(stream_reply(lambda: iter([partial(0, png())])))
    err = run_error(model, rec.reply, partial_images=2, on_partial=lambda *a: seen.append(a))
    assert err.kind is ErrorKind.NETWORK and err.retryable
    assert "cut off" in err.message
    assert len(seen) == 1


def test_stream_dropped_mid_transfer_is_cut_off(model):
    def chunks():
        yield partial(0, png())
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")

    err = run_error(model, stream_reply(chunks), partial_images=1)
    assert err.kind is ErrorKind.NETWORK and "cut off" in err.message


def test_stream_that_stalls_is_a_timeout(model):
    def chunks():
        yield partial(0, png())
        raise httpx.ReadTimeout("read timed out")

    err = run_error(model, stream_reply(chunks), partial_images=1)
    assert err.kind is ErrorKind.TIMEOUT


def test_stream_refused_before_it_starts(model):
    err = run_error(model, error(400, "Rejected.", "moderation_blocked"), partial_images=2)
    assert err.kind is ErrorKind.REFUSED


def test_stream_rate_limited_before_it_starts(model):
    err = run_error(model, error(429, "Slow down.", headers={"retry-after": "7"}), partial_images=2)
    assert err.kind is ErrorKind.RATE_LIMIT and err.retry_after == 7.0


def test_stream_error_event_mid_stream(model):
    def chunks():
        yield partial(0, png())
        yield sse(
            "error",
            {
                "type": "error",
                "error": {
                    "message": "Output rejected by the safety system.",
                    "type": "image_generation_user_error",
                    "code": "moderation_blocked",
                },
            },
        )

    err = run_error(model, stream_reply(chunks), partial_images=1)
    assert err.kind is ErrorKind.REFUSED and "Output rejected" in err.message


def test_stream_with_fewer_images_than_asked_returns_them_with_a_note(model):
    rec = Recorder(stream_reply(lambda: iter([completed(png()), b"data: [DONE]\n\n"])))
    result = openai_images.generate(make_request(model, n=2, partial_images=1), rec.client())
    assert len(result.images) == 1
    assert "Only 1 of 2 images" in result.text


def test_streaming_is_not_used_without_partials(model):
    rec = Recorder(ok(images_response(png())))
    openai_images.generate(make_request(model, partial_images=0), rec.client())
    assert "stream" not in json.loads(rec.requests[0].content)

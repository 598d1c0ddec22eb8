"""The Gemini adapter, faked at the HTTP boundary (httpx.MockTransport)."""

import base64
import dataclasses
import json
import threading
from collections.abc import Callable

import httpx
import pytest

from compare.providers import gemini
from compare.providers.base import ErrorKind, GenerationRequest, InputImage, ProviderError
from compare.registry import get_model
from tests.factories import Recorder, image_bytes, png

KEY = "AIzaSyTest" + "k9X" * 10
URL = "https://generativelanguage.googleapis.com/v1beta/models/gemini-3-pro-image:generateContent"
USAGE = {
    "promptTokenCount": 12,
    "candidatesTokenCount": 1120,
    "thoughtsTokenCount": 200,
    "totalTokenCount": 1332,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12}],
    "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 1120}],
}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def ok(body: dict) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(200, json=body)


def reply_with(parts: list[dict], finish: str = "STOP", **candidate_extra) -> dict:
    return {
        "candidates": [
            {"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0, **candidate_extra}
        ],
        "usageMetadata": USAGE,
        "modelVersion": "gemini-3-pro-image",
        "responseId": "resp-1",
    }


def image_reply(image: bytes, mime: str = "image/png") -> dict:
    return reply_with([{"inlineData": {"mimeType": mime, "data": b64(image)}, "thoughtSignature": "c2ln"}])


@pytest.fixture
def model(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    return get_model("gemini-3-pro-image")


def make_request(model, **kwargs) -> GenerationRequest:
    return GenerationRequest(model=model, prompt="a red fox in snow", **kwargs)


def run_error(model, reply, **kwargs) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        gemini.generate(make_request(model, **kwargs), Recorder(reply).client())
    return info.value


# --- wire_params ------------------------------------------------------------


def test_wire_params(model):
    assert gemini.wire_params(make_request(model)) == {
        "generationConfig": {
            "responseModalities": ["TEXT", "IMAGE"],
            "imageConfig": {"aspectRatio": "1:1", "imageSize": "1K"},
        },
        "requests": 1,
        "references": 0,
    }
    refs = [InputImage(png(), "image/png")] * 2
    params = gemini.wire_params(
        make_request(
            model,
            aspect_ratio="16:9",
            resolution="4K",
            grounding=True,
            n=3,
            references=refs,
            quality="high",
            output_format="jpeg",
        )
    )
    assert params == {
        "generationConfig": {
            "responseModalities": ["TEXT", "IMAGE"],
            "imageConfig": {"aspectRatio": "16:9", "imageSize": "4K"},
        },
        "tools": [{"googleSearch": {}}],
        "requests": 3,
        "references": 2,
    }


def test_wire_params_explicit_size_auto_aspect_and_no_grounding_capability(model):
    assert gemini.wire_params(make_request(model, size="2048x1152"))["generationConfig"]["imageConfig"] == {
        "aspectRatio": "16:9",
        "imageSize": "2K",
    }
    assert gemini.wire_params(make_request(model, aspect_ratio="auto"))["generationConfig"]["imageConfig"] == {
        "imageSize": "1K"
    }
    plain = dataclasses.replace(
        model, capabilities=dataclasses.replace(model.capabilities, grounding=False, image_sizes=())
    )
    params = gemini.wire_params(make_request(plain, grounding=True))
    assert "tools" not in params
    assert params["generationConfig"]["imageConfig"] == {"aspectRatio": "1:1"}


# --- request and reply ------------------------------------------------------


def test_request_shape_and_reply(model):
    refs = [
        InputImage(png("green"), "image/png", "a.png"),
        InputImage(image_bytes("blue", fmt="JPEG"), "image/jpeg", "b.jpg"),
    ]
    final = png("red", (16, 9))
    rec = Recorder(ok(image_reply(final)))
    req = make_request(model, aspect_ratio="16:9", resolution="2K", references=refs)
    result = gemini.generate(req, rec.client())

    [sent] = rec.requests
    assert sent.method == "POST" and str(sent.url) == URL
    assert sent.headers["x-goog-api-key"] == KEY
    assert "authorization" not in sent.headers
    assert sent.headers["content-type"] == "application/json"
    assert json.loads(sent.content) == {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "a red fox in snow"},
                    {"inlineData": {"mimeType": "image/png", "data": b64(refs[0].data)}},
                    {"inlineData": {"mimeType": "image/jpeg", "data": b64(refs[1].data)}},
                ],
            }
        ],
        "generationConfig": {
            "responseModalities": ["TEXT", "IMAGE"],
            "imageConfig": {"aspectRatio": "16:9", "imageSize": "2K"},
        },
    }
    assert [i.data for i in result.images] == [final]
    assert result.images[0].mime_type == "image/png"
    assert result.usage == USAGE
    assert result.echoed == {
        "modelVersion": "gemini-3-pro-image",
        "imageConfig": {"aspectRatio": "16:9", "imageSize": "2K"},
    }
    assert result.sent == gemini.wire_params(req)
    assert result.grounding is None and result.text == ""


def test_bearer_auth_for_gateways(model):
    gateway = dataclasses.replace(model, auth="bearer")
    rec = Recorder(ok(image_reply(png())))
    gemini.generate(make_request(gateway), rec.client())
    assert rec.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert "x-goog-api-key" not in rec.requests[0].headers


def test_thought_images_are_skipped_and_the_last_real_image_wins(model):
    draft, thought_final, early, final = png("gray"), png("black"), png("white"), image_bytes("orange", fmt="JPEG")
    rec = Recorder(
        ok(
            reply_with(
                [
                    {"text": "Planning the composition…", "thought": True},
                    {"inlineData": {"mimeType": "image/png", "data": b64(draft)}, "thought": True},
                    {"inlineData": {"mimeType": "image/png", "data": b64(early)}},
                    {"text": "Here is your fox."},
                    {"inlineData": {"mimeType": "image/jpeg", "data": b64(final)}, "thoughtSignature": "c2ln"},
                    {"inlineData": {"mimeType": "image/png", "data": b64(thought_final)}, "thought": True},
                ]
            )
        )
    )
    result = gemini.generate(make_request(model), rec.client())
    assert [(i.data, i.mime_type) for i in result.images] == [(final, "image/jpeg")]
    assert result.text == "Here is your fox."


def test_grounding_with_search(model):
    grounding = {
        "webSearchQueries": ["weather Paris today"],
        "groundingChunks": [
            {"web": {"uri": "https://example.com/a", "title": "example.com"}},
            {"web": {"uri": "https://example.org/b", "title": "example.org"}},
        ],
        "groundingSupports": [],
        "searchEntryPoint": {"renderedContent": "<div></div>"},
    }
    rec = Recorder(
        ok(reply_with([{"inlineData": {"mimeType": "image/png", "data": b64(png())}}], groundingMetadata=grounding))
    )
    result = gemini.generate(make_request(model, grounding=True), rec.client())
    assert json.loads(rec.requests[0].content)["tools"] == [{"googleSearch": {}}]
    assert result.grounding == {
        "web_search_queries": ["weather Paris today"],
        "chunks": [
            {"title": "example.com", "uri": "https://example.com/a"},
            {"title": "example.org", "uri": "https://example.org/b"},
        ],
        "search_entry_points": ["<div></div>"],  # Google's search suggestions, kept to be shown
    }


def test_search_suggestions_are_shown_sandboxed_and_not_while_blind(auth_client, simulator):
    """The run page frames Google's search suggestions from a URL of their own, served under
    a sandboxing policy of its own; a blind viewer gets neither the frame nor the URL."""
    from compare.models import Run
    from tests.factories import BOTH, submit_and_wait

    run, (_, nano) = submit_and_wait(auth_client, '"Grounded" fox', BOTH, grounding="on")
    assert nano.params_sent["tools"] == [{"googleSearch": {}}]
    (entry,) = (nano.grounding or {})["search_entry_points"]
    assert '<a class="chip" href="https://www.google.com/search?q=' in entry
    url = f"/runs/{run.id}/generations/{nano.id}/search/0"
    page = auth_client.get(f"/runs/{run.id}/").content.decode()
    assert f'<iframe class="search-suggestions" src="{url}" sandbox="allow-popups' in page
    assert entry not in page  # never inlined into the page
    framed = auth_client.get(url)
    assert framed.status_code == 200 and entry in framed.content.decode()
    policy = framed["Content-Security-Policy"]
    assert policy.startswith("sandbox ") and "default-src 'none'" in policy and "script-src" not in policy
    assert "style-src 'unsafe-inline'" in policy and "img-src https: data:" in policy
    assert framed["X-Frame-Options"] == "SAMEORIGIN"
    assert auth_client.get(f"/runs/{run.id}/generations/{nano.id}/search/1").status_code == 404
    Run.objects.filter(pk=run.pk).update(blind=True)
    assert auth_client.get(url).status_code == 404
    assert "search-suggestions" not in auth_client.get(f"/runs/{run.id}/").content.decode()
    auth_client.logout()
    assert auth_client.get(url).status_code == 302  # to the login page


# --- no image (HTTP 200) ----------------------------------------------------


@pytest.mark.parametrize(
    "reason",
    [
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "PROHIBITED_CONTENT",
        "SAFETY",
        "NO_IMAGE",
        "IMAGE_OTHER",
        "RECITATION",
        "IMAGE_RECITATION",
        "BLOCKLIST",
        "SPII",
        "SOMETHING_NEW",
    ],
)
def test_finish_reason_without_image_is_refused(model, reason):
    body = {
        "candidates": [
            {
                "content": {"role": "model"},
                "finishReason": reason,
                "finishMessage": "Unable to show the generated image. Support code 123.",
                "index": 0,
            }
        ],
        "usageMetadata": {"promptTokenCount": 12, "thoughtsTokenCount": 300, "totalTokenCount": 312},
    }
    err = run_error(model, ok(body))
    assert err.kind is ErrorKind.REFUSED and not err.retryable
    assert reason in err.message and "Support code 123" in err.message
    assert err.usage == body["usageMetadata"]


def test_prompt_blocked(model):
    body = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {"promptTokenCount": 9}}
    err = run_error(model, ok(body))
    assert err.kind is ErrorKind.REFUSED
    assert err.message == "Gemini blocked the prompt (PROHIBITED_CONTENT: the prompt asks for prohibited content)."
    assert err.usage == {"promptTokenCount": 9}


def test_text_only_answer_is_refused_with_the_text(model):
    text = "I can't create images of real people in that situation. " * 20
    err = run_error(model, ok(reply_with([{"text": "thinking", "thought": True}, {"text": text}])))
    assert err.kind is ErrorKind.REFUSED
    assert err.message.startswith("Gemini answered with text instead of an image: “I can't create images")
    assert len(err.message) < 400 and "thinking" not in err.message
    assert err.usage == USAGE


@pytest.mark.parametrize(
    "body",
    [reply_with([]), {"candidates": []}, {"usageMetadata": USAGE}],
)
def test_no_image_and_no_reason_is_malformed(model, body):
    err = run_error(model, ok(body))
    assert err.kind is ErrorKind.MALFORMED and err.retryable


def test_body_that_is_not_json_is_malformed(model):
    err = run_error(model, lambda r: httpx.Response(200, text="<html>oops</html>"))
    assert err.kind is ErrorKind.MALFORMED


# --- HTTP errors ------------------------------------------------------------


def google_error(code: int, status: str, message: str, details: list | None = None, headers: dict | None = None):
    body = {"error": {"code": code, "message": message, "status": status, "details": details or []}}
    return lambda request: httpx.Response(code, json=body, headers=headers or {})


RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"


@pytest.mark.parametrize(
    ("reply", "kind", "words"),
    [
        (
            google_error(400, "INVALID_ARGUMENT", "Unsupported aspect ratio."),
            ErrorKind.BAD_REQUEST,
            "(400 INVALID_ARGUMENT): Unsupported aspect ratio.",
        ),
        (
            google_error(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                    }
                ],
            ),
            ErrorKind.AUTH,
            "API key not valid",
        ),
        (
            google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."),
            ErrorKind.AUTH,
            "(401 UNAUTHENTICATED)",
        ),
        (google_error(403, "PERMISSION_DENIED", "Permission denied."), ErrorKind.AUTH, "(403 PERMISSION_DENIED)"),
        (
            google_error(404, "NOT_FOUND", "models/gemini-3-pro-image is not found for API version v1beta."),
            ErrorKind.NOT_FOUND,
            "model not found or retired",
        ),
        (google_error(500, "INTERNAL", "An internal error has occurred."), ErrorKind.SERVER, "server error"),
        (
            google_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
            ErrorKind.OVERLOADED,
            "overloaded (503 UNAVAILABLE)",
        ),
        (
            google_error(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
            ErrorKind.TIMEOUT,
            "timed out",
        ),
        (lambda r: httpx.Response(502, text="<html>Bad Gateway</html>"), ErrorKind.SERVER, "(502): no details"),
    ],
)
def test_http_errors_map_to_kinds(model, reply, kind, words):
    err = run_error(model, reply)
    assert err.kind is kind
    assert words in err.message
    assert err.retryable == (kind in {ErrorKind.SERVER, ErrorKind.OVERLOADED, ErrorKind.TIMEOUT})


def test_rate_limit_uses_retry_info(model):
    details = [
        {
            "@type": QUOTA_FAILURE,
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/generate_requests_per_model",
                    "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                }
            ],
        },
        {"@type": RETRY_INFO, "retryDelay": "27s"},
    ]
    err = run_error(
        model,
        google_error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted.", details, headers={"retry-after": "99"}),
    )
    assert err.kind is ErrorKind.RATE_LIMIT and err.retryable and err.retry_after == 27.0
    assert err.message == (
        "Rate limit reached for gemini-3-pro-image (429 RESOURCE_EXHAUSTED): Resource has been exhausted."
    )


def test_rate_limit_falls_back_to_retry_after_header(model):
    err = run_error(model, google_error(429, "RESOURCE_EXHAUSTED", "Slow down.", headers={"retry-after": "12"}))
    assert err.kind is ErrorKind.RATE_LIMIT and err.retry_after == 12.0


def test_fractional_retry_delay(model):
    err = run_error(model, google_error(429, "RESOURCE_EXHAUSTED", "x", [{"@type": RETRY_INFO, "retryDelay": "1.5s"}]))
    assert err.retry_after == 1.5


@pytest.mark.parametrize(
    "details",
    [
        [
            {"@type": QUOTA_FAILURE, "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]},
            {"@type": RETRY_INFO, "retryDelay": "40s"},
        ],
        [{"@type": RETRY_INFO, "retryDelay": "52758s"}],
    ],
)
def test_daily_quota_is_not_retryable(model, details):
    err = run_error(model, google_error(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota.", details))
    assert err.kind is ErrorKind.QUOTA and not err.retryable
    assert "daily Gemini quota" in err.message


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx.ConnectTimeout("timed out"), ErrorKind.TIMEOUT),
        (httpx.ConnectError("name resolution failed"), ErrorKind.NETWORK),
    ],
)
def test_transport_errors(model, exc, kind):
    def reply(request):
        raise exc

    err = run_error(model, reply)
    assert err.kind is kind and err.retryable


def test_key_never_appears_in_messages(model):
    message = f"API key not valid: {KEY} (from https://generativelanguage.googleapis.com/v1beta?key={KEY})"
    err = run_error(model, google_error(400, "INVALID_ARGUMENT", message))
    assert KEY not in err.message and KEY not in repr(err)
    err = run_error(model, ok(reply_with([{"text": f"Your key is {KEY}"}])))
    assert KEY not in err.message


# --- several images: parallel requests --------------------------------------


def test_n_images_are_parallel_requests(model):
    images = [png("red"), png("green"), png("blue")]
    barrier = threading.Barrier(3, timeout=5)  # only passes if all three are in flight together
    counter = iter(range(3))
    lock = threading.Lock()

    def reply(request):
        with lock:
            i = next(counter)
        barrier.wait()
        return httpx.Response(200, json=image_reply(images[i]))

    rec = Recorder(reply)
    result = gemini.generate(make_request(model, n=3, grounding=True), rec.client())

    assert len(rec.requests) == 3
    bodies = [json.loads(r.content) for r in rec.requests]
    assert all(body == bodies[0] for body in bodies)
    assert bodies[0]["contents"][0]["parts"] == [{"text": "a red fox in snow"}]
    assert bodies[0]["tools"] == [{"googleSearch": {}}]
    assert all(str(r.url) == URL and r.headers["x-goog-api-key"] == KEY for r in rec.requests)
    assert sorted(i.data for i in result.images) == sorted(images)
    assert result.usage["totalTokenCount"] == 3 * 1332
    assert result.usage["candidatesTokensDetails"] == [{"modality": "IMAGE", "tokenCount": 3 * 1120}]
    assert result.sent["requests"] == 3
    assert "failed_requests" not in result.echoed


def test_some_requests_fail_returns_the_successes(model):
    good = png("red")
    replies = iter(
        [
            httpx.Response(200, json=image_reply(good)),
            httpx.Response(
                200,
                json={
                    "candidates": [{"content": {"role": "model"}, "finishReason": "IMAGE_SAFETY"}],
                    "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12},
                },
            ),
        ]
    )
    lock = threading.Lock()

    def reply(request):
        with lock:
            return next(replies)

    result = gemini.generate(make_request(model, n=2), Recorder(reply).client())
    assert [i.data for i in result.images] == [good]
    assert "1 of 2 requests to Gemini failed" in result.text and "IMAGE_SAFETY" in result.text
    assert result.echoed["failed_requests"][0]["kind"] == "refused"
    assert result.usage["totalTokenCount"] == 1332 + 12  # the refused request is billed too


def test_all_requests_fail_raises_with_summed_usage(model):
    body = {
        "candidates": [{"content": {"role": "model"}, "finishReason": "IMAGE_SAFETY"}],
        "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 20},
    }
    rec = Recorder(ok(body))
    with pytest.raises(ProviderError) as info:
        gemini.generate(make_request(model, n=2), rec.client())
    assert len(rec.requests) == 2
    assert info.value.kind is ErrorKind.REFUSED
    assert info.value.usage == {"promptTokenCount": 24, "totalTokenCount": 40}

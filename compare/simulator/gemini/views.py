"""The simulated Gemini API: models/{model}:generateContent, :streamGenerateContent, models list.

Replies follow Google's Gemini API reference: Pro thinks aloud (a thought text and
a blocky draft image, both marked thought), then the final image with a
thoughtSignature and a short text. "No image" outcomes are HTTP 200, as on the
real API; quota and overload errors carry Google's error details.

Keys, as Google answers them: a request without a key gets 403 PERMISSION_DENIED; a key
that is not valid gets 400 INVALID_ARGUMENT with reason API_KEY_INVALID. The simulator
takes any key except one starting with "invalid" (compare/simulator/common.py
`BAD_KEY_PREFIX`); the fault markers [[fault:auth]] (a bad key) and [[fault:no_key]]
show the same replies to an app that always sends a key. With Google Search grounding
asked, the reply carries `searchEntryPoint.renderedContent`, the HTML Google's terms
require to be shown with grounded results.
"""

import hashlib
import html
import json
import secrets
import threading

from compare.simulator import faults, render
from compare.simulator.common import (
    Pacer,
    b64,
    body_too_big,
    json_response,
    latency_for,
    model_label,
    raw_body,
    simulator_view,
    sse_response,
    truncated_response,
)
from compare.simulator.gemini.rules import ApiError, Request, known_models, parse, pixel_size, slug, usage
from compare.simulator.render import draft_png, misrender, seed_bytes

PROTOCOL = "gemini"
METHODS = ["generateContent", "countTokens", "streamGenerateContent", "batchGenerateContent"]
IMAGE_SAFETY_MESSAGE = (
    "Unable to show the generated image. The image was filtered out because it violated Google's Generative AI "
    "Prohibited Use policy. You will not be charged for blocked images. Try rephrasing the prompt. If you think "
    "this was an error, send feedback. Support codes: 29310472"
)


def error(message: str, code: int = 400, status: str = "INVALID_ARGUMENT", details=None):
    body = {"error": {"code": code, "message": message, "status": status}}
    if details:
        body["error"]["details"] = details
    return json_response(body, code)


def unauthorized(request, problem: str = "missing"):
    """As Google answers: no key is 403 PERMISSION_DENIED; a key that is not valid is
    400 INVALID_ARGUMENT with an ErrorInfo whose reason is API_KEY_INVALID (both plain
    HTTP errors, which google-genai raises as errors.ClientError)."""
    if problem == "invalid":
        return invalid_key()
    return error(
        "Method doesn't allow unregistered callers (callers without established identity). Please use "
        "API Key or other form of API consumer identity to call this API.",
        403,
        "PERMISSION_DENIED",
    )


def invalid_key():
    message = "API key not valid. Please pass a valid API key."
    return error(
        message,
        400,
        "INVALID_ARGUMENT",
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": message},
        ],
    )


def quota_error(model_id: str, per_day: bool):
    """429 RESOURCE_EXHAUSTED with QuotaFailure, Help and RetryInfo details, like the real API."""
    period = "PerDay" if per_day else "PerMinute"
    delay = "52758s" if per_day else "1s"
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/generate_requests_per_model"
                    + ("_per_day" if per_day else ""),
                    "quotaId": f"GenerateRequests{period}PerProjectPerModel",
                    "quotaDimensions": {"location": "global", "model": model_id},
                    "quotaValue": "250" if per_day else "20",
                }
            ],
        },
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [
                {
                    "description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                }
            ],
        },
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay},
    ]
    message = (
        "You exceeded your current quota, please check your plan and billing details. "
        if per_day
        else "Resource has been exhausted (e.g. check quota). "
    ) + f"Please retry in {delay}."
    return error(message, 429, "RESOURCE_EXHAUSTED", details)


# --- building replies ------------------------------------------------------------------------

_variations: dict[tuple[str, str], int] = {}
_variations_lock = threading.Lock()


def next_variation(prompt: str, model_id: str) -> int:
    """Gemini takes one candidate per request, so n images are n identical requests;
    like a sampling model, each repeat of the same prompt gets a different picture."""
    with _variations_lock:
        value = _variations.get((prompt, model_id), 0)
        _variations[(prompt, model_id)] = value + 1
        return value


class Reply:
    """The pieces of one answer, so the same content can go out whole or as SSE chunks."""

    def __init__(self, req: Request, model_id: str):
        self.req, self.model_id = req, model_id
        self.prompt = faults.strip_markers(req.prompt)
        self.seed = seed_bytes(self.prompt, model_id, next_variation(self.prompt, model_id))
        self.response_id = secrets.token_urlsafe(16)
        self.thoughts = (150 + self.seed[1] % 250) if req.show_thoughts else 0
        self._pictures: dict[str, bytes] = {}

    def draw(self) -> None:
        """Draw the pictures now (kept as PNG bytes; the base64 JSON is built when sent),
        so the latency can be slept after the drawing, not on top of it."""
        if self.req.want_image:
            self.picture()
            if self.req.show_thoughts:
                self.sketch()

    def sketch(self) -> bytes:
        if "sketch" not in self._pictures:
            w, h = pixel_size(self.req.aspect, "1K")
            with render.pixel_work():
                self._pictures["sketch"] = draft_png(self.seed, w, h)
        return self._pictures["sketch"]

    def picture(self) -> bytes:
        if "final" not in self._pictures:
            w, h = pixel_size(self.req.aspect, self.req.image_size)
            drawn = faults.strip_markers(misrender(self.req.prompt, PROTOCOL, self.model_id))
            self._pictures["final"] = render.image_bytes(
                drawn, model_label(self.model_id), self.seed, w, h, references=self.req.references
            )
        return self._pictures["final"]

    def envelope(self, candidate: dict | None, with_usage: bool, **usage_args) -> dict:
        body: dict[str, object] = {}
        if candidate is not None:
            body["candidates"] = [{"index": 0, **candidate}]
        if with_usage:
            body["usageMetadata"] = usage(self.req, thoughts=self.thoughts, **usage_args)
        body["modelVersion"] = self.model_id
        body["responseId"] = self.response_id
        return body

    def thought_parts(self) -> list[dict]:
        if not self.req.show_thoughts or not self.req.want_image:
            return []
        return [
            {
                "text": "**Composing the image**\n\nI'm planning the layout: a soft gradient backdrop, the key "
                f"text centred and legible, references kept in view. Request: {self.prompt[:80]}",
                "thought": True,
            },
            {
                "inlineData": {"mimeType": "image/png", "data": b64(self.sketch())},
                "thought": True,
            },
        ]

    def image_part(self) -> dict:
        signature = b64(hashlib.sha256(self.seed + b"signature").digest() * 3)
        return {
            "inlineData": {"mimeType": "image/png", "data": b64(self.picture())},
            "thoughtSignature": signature,
        }

    def text_part(self) -> dict:
        return {
            "text": f"Here is your image: {self.prompt[:120]}"
            if self.req.want_image
            else f"I'd picture it like this: {self.prompt[:200]}"
        }

    def grounding(self) -> dict:
        query = self.prompt[:80] or "image"
        chunks = [
            {"web": {"uri": f"https://example.com/{slug(query)}", "title": "example.com"}},
            {
                "web": {
                    "uri": f"https://reference.example.org/articles/{slug(query)}-{self.seed[2]}",
                    "title": "reference.example.org",
                }
            },
        ]
        meta = {
            "webSearchQueries": [query],
            "groundingChunks": chunks,
            "groundingSupports": [
                {"segment": {"startIndex": 0, "endIndex": min(len(query), 20)}, "groundingChunkIndices": [0, 1]}
            ],
            "searchEntryPoint": {
                "renderedContent": (
                    "<style>.container{display:flex;gap:8px}.chip{border:1px solid #ccc;border-radius:16px;"
                    'padding:4px 12px}</style><div class="container"><a class="chip" '
                    f'href="https://www.google.com/search?q={slug(query)}">{html.escape(query)}</a></div>'
                )
            },
        }
        if self.req.image_search:
            meta["imageSearchQueries"] = [query]
        return meta

    def chunks(self) -> list[dict]:
        """The answer as stream chunks; usage and finishReason travel in the last one."""
        parts = self.thought_parts()
        if self.req.want_image:
            parts.append(self.image_part())
        if self.req.want_text or not self.req.want_image:
            parts.append(self.text_part())
        out = [self.envelope({"content": {"role": "model", "parts": [p]}}, False) for p in parts[:-1]]
        last = {"content": {"role": "model", "parts": parts[-1:]}, "finishReason": "STOP"}
        if self.req.search:
            last["groundingMetadata"] = self.grounding()
        out.append(self.envelope(last, True, image=self.req.want_image))
        return out

    def whole(self) -> dict:
        chunks = self.chunks()
        body = chunks[-1]
        body["candidates"][0]["content"]["parts"] = [
            p for chunk in chunks for p in chunk["candidates"][0]["content"]["parts"]
        ]
        return body

    def no_image(self, fault: str) -> dict:
        """HTTP 200 answers without an image, as the real API gives them."""
        if fault == "prompt_blocked":
            return self.envelope(None, True, image=False, blocked_prompt=True) | {
                "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}
            }
        if fault == "text_only":
            text = {"text": "I can't create that image, but I can describe it: " + self.prompt[:160]}
            return self.envelope(
                {"content": {"role": "model", "parts": [text]}, "finishReason": "STOP"}, True, image=False
            )
        reason, message = (
            ("IMAGE_SAFETY", IMAGE_SAFETY_MESSAGE)
            if fault in {"refusal"}
            else ("NO_IMAGE", "The model did not produce an image for this request. Try rephrasing the prompt.")
        )
        return self.envelope(
            {"content": {"role": "model"}, "finishReason": reason, "finishMessage": message}, True, image=False
        )


def sse(chunks, pacer: Pacer | None):
    """One event per chunk, spread evenly over the latency (None: at once)."""
    for i, chunk in enumerate(chunks, 1):
        if pacer is not None:
            pacer.until(i / len(chunks))
        yield f"data: {json.dumps(chunk)}\r\n\r\n".encode()


def stream_reply(reply: Reply, pacer: Pacer | None, cutoff: bool, as_sse: bool):
    chunks = reply.chunks()
    if cutoff:
        # The connection drops before the final image: no finishReason, no usage.
        chunks = [c for c in chunks[:-1] if "thoughtSignature" not in c["candidates"][0]["content"]["parts"][0]]
        chunks = chunks[:1] or [
            reply.envelope({"content": {"role": "model", "parts": [{"text": "Generating your image"}]}}, False)
        ]
    if as_sse:
        return sse_response(sse(chunks, pacer))
    if cutoff:  # without alt=sse the API streams one JSON array
        return truncated_response(json.dumps(chunks).encode())
    if pacer is not None:
        pacer.until()
    return json_response(chunks)


def fault_reply(fault: faults.Fault, reply: Reply, pacer: Pacer, streaming: bool, as_sse: bool):
    name, model_id = fault.name, reply.model_id
    if name in {"auth", "no_key"}:
        return unauthorized(None, "invalid" if name == "auth" else "missing")
    if name in {"rate_limit", "quota"}:
        return quota_error(model_id, per_day=name == "quota")
    if name in {"server_error", "stream_error"}:  # Gemini replies here are not streamed by the app
        return error(
            "An internal error has occurred. Please retry or report in "
            "https://developers.generativeai.google/guide/troubleshooting",
            500,
            "INTERNAL",
        )
    if name == "overloaded":
        return error("The model is overloaded. Please try again later.", 503, "UNAVAILABLE")
    if name == "timeout":
        faults.sleep(faults.DEFAULT_TIMEOUT if fault.seconds is None else fault.seconds)
        return error("Deadline expired before operation could complete.", 504, "DEADLINE_EXCEEDED")
    pacer.until()  # the remaining faults come back after the model has worked on it
    if name == "malformed":
        text = (
            'data: {"candidates": [{"content": {"role": "model", "parts": [{"inlineData": {"mimeT\r\n\r\n'
            if streaming and as_sse
            else '{"candidates": [{"content": {"role": "model", "parts": [{"inlineDa'
        )
        response = json_response({}, 200)
        response.content = text.encode()
        if streaming and as_sse:
            response["Content-Type"] = "text/event-stream"
        return response
    if name == "cutoff":
        if streaming:
            return stream_reply(reply, None, True, as_sse)
        return truncated_response(json.dumps(reply.whole()).encode())
    body = reply.no_image(name)
    if streaming and as_sse:
        return sse_response(sse([body], None))
    return json_response([body] if streaming else body)


# --- views -----------------------------------------------------------------------------------


@simulator_view(unauthorized)
def model_action(request, version: str, model_id: str, method: str):
    if method not in {"generateContent", "streamGenerateContent"}:
        return error(f"Method {method} is not simulated.", 404, "NOT_FOUND")
    if request.method != "POST":
        return error(f"Method not allowed: {request.method}.", 405, "METHOD_NOT_ALLOWED")
    if body_too_big(request):
        return error("Request payload size exceeds the limit.", 400)
    try:
        body = json.loads(raw_body(request) or b"null")
    except (ValueError, UnicodeDecodeError):
        return error("Invalid JSON payload received. Unexpected token.")
    if not isinstance(body, dict):
        return error("Invalid JSON payload received. Expected an object.")
    try:
        req = parse(body, model_id)
    except ApiError as exc:
        return error(exc.message, exc.code, exc.status)
    try:
        fault = faults.select_fault(PROTOCOL, req.prompt, request.headers.get("X-Simulator-Fault"))
    except faults.UnknownFault as exc:
        return error(str(exc))
    streaming = method == "streamGenerateContent"
    as_sse = request.GET.get("alt") == "sse"
    pacer = Pacer(request, latency_for(request, PROTOCOL, model_id, req.prompt))
    reply = Reply(req, model_id)
    if fault is not None:
        return fault_reply(fault, reply, pacer, streaming, as_sse)
    if streaming:
        return stream_reply(reply, pacer, False, as_sse)
    reply.draw()  # drawn first: only the rest of the latency is slept
    pacer.until()
    return json_response(reply.whole())


def model_object(spec) -> dict:
    return {
        "name": f"models/{spec.model_id}",
        "version": "3.0",
        "displayName": spec.display_name,
        "description": f"{spec.display_name} image generation and editing (simulated).",
        "inputTokenLimit": 65536,
        "outputTokenLimit": 32768,
        "supportedGenerationMethods": METHODS,
        "thinking": spec.thinks,
    }


@simulator_view(unauthorized)
def models(request, version: str):
    return json_response({"models": [model_object(s) for s in known_models().values()]})


@simulator_view(unauthorized)
def model_detail(request, version: str, model_id: str):
    spec = known_models().get(model_id)
    if spec is None:
        return error(f"models/{model_id} is not found for API version {version}.", 404, "NOT_FOUND")
    return json_response(model_object(spec))


@simulator_view(unauthorized)
def not_found(request, rest: str = ""):
    return error(f"The requested URL {request.path} was not found on this server.", 404, "NOT_FOUND")

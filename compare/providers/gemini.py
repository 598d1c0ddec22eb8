"""Adapter for Gemini's native image models (`gemini` protocol, generateContent).

Gemini returns one image per request, so n images are n requests sent in
parallel. Not streamed: the image arrives whole in one chunk anyway, so
streaming would only add failure modes. No retries here.
"""

import base64
import binascii
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from compare import sizes
from compare.providers._common import (
    auth_headers,
    check_request_size,
    decode_b64,
    error_body_text,
    fit_inputs,
    input_bytes,
    load_json,
    merge_usage,
    parse_retry_after,
    post_to_file,
    refusal,
    scrub,
    transport_error,
)
from compare.providers.base import (
    MAY_BE_BILLED,
    ErrorKind,
    GenerationRequest,
    GenerationResult,
    OutputImage,
    ProviderError,
)
from compare.redact import shorten
from compare.registry import Model

VENDOR = "Gemini"
# Why a candidate carries no image, in the designer's words.
FINISH_REASONS = {
    "IMAGE_SAFETY": "Google's safety filters blocked the image",
    "IMAGE_PROHIBITED_CONTENT": "the image would show prohibited content",
    "PROHIBITED_CONTENT": "the request touches prohibited content",
    "SAFETY": "Google's safety filters blocked the answer",
    "NO_IMAGE": "the model did not produce an image",
    "IMAGE_OTHER": "the image was withheld without a specific reason",
    "OTHER": "the answer was withheld without a specific reason",
    "RECITATION": "the result was too close to existing material",
    "IMAGE_RECITATION": "the image was too close to existing material",
    "BLOCKLIST": "the prompt contains blocked terms",
    "SPII": "the answer would reveal sensitive personal information",
    "MAX_TOKENS": "the answer hit the output token limit",
}
BLOCK_REASONS = {
    "SAFETY": "Google's safety filters blocked the prompt",
    "PROHIBITED_CONTENT": "the prompt asks for prohibited content",
    "BLOCKLIST": "the prompt contains blocked terms",
    "IMAGE_SAFETY": "a reference image was blocked by the safety filters",
    "JAILBREAK": "the prompt was taken for an attempt to bypass safety rules",
    "OTHER": "the prompt was blocked without a specific reason",
}
# Block and finish reasons that are a safety refusal (the others: recitation, no image, …).
SAFETY_REASONS = {
    "SAFETY",
    "IMAGE_SAFETY",
    "PROHIBITED_CONTENT",
    "IMAGE_PROHIBITED_CONTENT",
    "BLOCKLIST",
    "JAILBREAK",
    "SPII",
}
# Google's harm categories in the plain words a refusal is shown with (`_common.refusal`).
HARM_WORDS = {
    "HARM_CATEGORY_HARASSMENT": "harassment",
    "HARM_CATEGORY_HATE_SPEECH": "hate",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT": "sexual",
    "HARM_CATEGORY_DANGEROUS_CONTENT": "dangerous content",
    "HARM_CATEGORY_CIVIC_INTEGRITY": "civic integrity",
}
KEY_REASONS = {"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED"}
DAILY_QUOTA_DELAY = 3600.0  # a retryDelay this long means a daily quota, not a burst limit
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
_UNREGISTERED = "unregistered callers"  # in Google's 403 for a request that carried no key


def wire_params(request: GenerationRequest) -> dict[str, Any]:
    """The generation settings sent with every request, plus how many requests
    (`requests`) and reference images (`references`) make up the generation."""
    caps = request.model.capabilities
    image_config = sizes.gemini_config(
        request.aspect_ratio, request.resolution, request.size, request.model.capabilities
    )
    if not caps.image_sizes:  # e.g. 2.5 Flash Image has one fixed size
        image_config.pop("imageSize", None)
    config: dict[str, Any] = {"responseModalities": ["TEXT", "IMAGE"]}
    if image_config:
        config["imageConfig"] = image_config
    params: dict[str, Any] = {"generationConfig": config}
    if request.grounding and caps.grounding:
        params["tools"] = [{"googleSearch": {}}]
    params["requests"] = request.n
    params["references"] = len(request.references)
    return params


def request_body(request: GenerationRequest, params: dict[str, Any]) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"text": request.prompt}]
    parts.extend(
        {"inlineData": {"mimeType": ref.mime_type, "data": base64.b64encode(ref.data).decode("ascii")}}
        for ref in request.references
    )
    body: dict[str, Any] = {
        "contents": [{"role": "user", "parts": parts}],
        "generationConfig": params["generationConfig"],
    }
    if "tools" in params:
        body["tools"] = params["tools"]
    return body


@dataclass
class _Reply:
    image: OutputImage
    text: str
    usage: dict
    grounding: dict | None
    model_version: str | None
    finish_reason: str


def generate(request: GenerationRequest, client: httpx.Client) -> GenerationResult:
    """n requests in parallel; returns what succeeded, raises only if all failed."""
    model = request.model
    fit_inputs(request)
    params = wire_params(request)
    body = request_body(request, params)
    check_request_size(model, input_bytes(request.references, base64_encoded=True) + len(request.prompt.encode()))
    count = max(1, request.n)
    if count == 1:
        outcomes: list[_Reply | ProviderError] = [_attempt(client, model, body, request.http_timeout())]
    else:
        with ThreadPoolExecutor(max_workers=count, thread_name_prefix="gemini") as pool:
            futures = [pool.submit(_attempt, client, model, body, request.http_timeout()) for _ in range(count)]
            outcomes = [future.result() for future in futures]

    replies = [o for o in outcomes if isinstance(o, _Reply)]
    failures = [o for o in outcomes if isinstance(o, ProviderError)]
    # Refused requests are billed too, so their usage counts.
    usage: dict = {}
    for outcome in outcomes:
        usage = merge_usage(usage, outcome.usage)
    # A request that stopped without usage after reaching Gemini (a timeout) may be billed
    # too: its share of the estimate counts as unknown (compare/budget.py).
    unknown = sum(1 for f in failures if f.kind in MAY_BE_BILLED and not f.usage)
    unknown_share = unknown / count if unknown else None
    if not replies:
        first = failures[0]
        first.usage, first.unknown_share = usage, unknown_share
        raise first

    texts = [r.text for r in replies if r.text]
    if failures:
        reasons = "; ".join(dict.fromkeys(f.message for f in failures))
        texts.append(f"{len(failures)} of {count} requests to Gemini failed: {reasons}")
    echoed: dict[str, Any] = {"imageConfig": params["generationConfig"].get("imageConfig", {})}
    versions = [r.model_version for r in replies if r.model_version]
    if versions:
        echoed["modelVersion"] = versions[0]
    if failures:
        echoed["failed_requests"] = [{"kind": f.kind.value, "message": f.message} for f in failures]
    return GenerationResult(
        images=[r.image for r in replies],
        usage=usage,
        sent=params,
        echoed=echoed,
        text="\n\n".join(texts),
        grounding=_merge_grounding([r.grounding for r in replies if r.grounding]),
        unknown_share=unknown_share,
    )


def _attempt(client: httpx.Client, model: Model, body: dict[str, Any], timeout) -> "_Reply | ProviderError":
    try:
        return _call(client, model, body, timeout)
    except ProviderError as exc:
        return exc


def _call(client: httpx.Client, model: Model, body: dict[str, Any], timeout) -> _Reply:
    url = f"{model.endpoint_base()}/models/{model.model_id}:generateContent"
    try:
        # The body goes to a spooled file, its base64 image stays there until decoded.
        response, raw = post_to_file(client, url, json=body, headers=auth_headers(model), timeout=timeout)
    except httpx.TransportError as exc:
        raise transport_error(exc, VENDOR, model) from None
    if raw is None:
        raise http_error(response, model)
    with raw:
        try:
            data = load_json(raw)
        except ValueError:
            data = None
    if not isinstance(data, dict):
        raise ProviderError(
            ErrorKind.MALFORMED,
            f"Gemini answered {model.model_id} with something that is not JSON.",
            status=response.status_code,
        )
    return parse_reply(data, model)


def parse_reply(data: dict[str, Any], model: Model) -> _Reply:
    usage = data.get("usageMetadata") or {}
    candidates = data.get("candidates") or []
    if not candidates:
        feedback = data.get("promptFeedback") or {}
        reason = feedback.get("blockReason")
        if reason:
            why = BLOCK_REASONS.get(reason, "the prompt was blocked")
            detail = f" {feedback['blockReasonMessage']}" if feedback.get("blockReasonMessage") else ""
            raise ProviderError(
                ErrorKind.REFUSED,
                scrub(f"Gemini blocked the prompt ({reason}: {why}).{detail}", model.api_key),
                usage=usage,
                echoed=_refusal("input", reason, feedback.get("safetyRatings")),
            )
        raise ProviderError(ErrorKind.MALFORMED, "Gemini answered without any result or reason.", usage=usage)

    candidate = candidates[0]
    parts = (candidate.get("content") or {}).get("parts") or []
    image_part: dict | None = None
    texts: list[str] = []
    for part in parts:
        if not isinstance(part, dict) or part.get("thought"):
            continue  # thinking drafts are never results
        inline = part.get("inlineData") or part.get("inline_data")
        if isinstance(inline, dict) and inline.get("data"):
            mime = inline.get("mimeType") or inline.get("mime_type") or "image/png"
            if mime.startswith("image/"):
                image_part = inline  # the last one wins: earlier ones can be drafts
        elif isinstance(part.get("text"), str) and part["text"].strip():
            texts.append(part["text"].strip())
    text = scrub("\n".join(texts), model.api_key)
    finish = str(candidate.get("finishReason") or "")
    if image_part is None:
        error = _no_image(finish, candidate.get("finishMessage"), text, usage, model)
        error.echoed = _refusal("output", finish, candidate.get("safetyRatings"))
        raise error
    try:
        image_bytes = decode_b64(image_part["data"])
    except (binascii.Error, TypeError, ValueError):
        raise ProviderError(ErrorKind.MALFORMED, "Gemini sent image data that is not valid base64.") from None
    return _Reply(
        image=OutputImage(image_bytes, image_part.get("mimeType") or image_part.get("mime_type") or "image/png"),
        text=text,
        usage=usage,
        grounding=_grounding(candidate.get("groundingMetadata")),
        model_version=data.get("modelVersion"),
        finish_reason=finish,
    )


def _refusal(stage: str, reason: str, ratings: Any) -> dict:
    """A safety block's where and why for the row (blind-safe, as for OpenAI's refusals):
    the categories Google marked blocked, else those rated HIGH; {} when not a safety block."""
    if reason not in SAFETY_REASONS:
        return {}
    rated = [r for r in ratings if isinstance(r, dict)] if isinstance(ratings, list) else []
    flagged = [r for r in rated if r.get("blocked")] or [r for r in rated if r.get("probability") == "HIGH"]
    found = [HARM_WORDS[c] for r in flagged if (c := r.get("category")) in HARM_WORDS]
    return {"refusal": refusal(stage, found, reason=reason)}


def _no_image(finish: str, finish_message: Any, text: str, usage: dict, model: Model) -> ProviderError:
    said = f" The model said: “{shorten(text, 200)}”" if text else ""
    if finish and finish != "STOP":
        why = FINISH_REASONS.get(finish, "no reason given")
        extra = f" {finish_message}" if finish_message else ""
        message = f"Gemini returned no image ({finish}: {why}).{extra}{said}"
        return ProviderError(ErrorKind.REFUSED, scrub(message, model.api_key), usage=usage)
    if text:
        return ProviderError(
            ErrorKind.REFUSED, f"Gemini answered with text instead of an image: “{shorten(text, 300)}”", usage=usage
        )
    # A plain STOP with nothing in it explains nothing; it may well work next time.
    return ProviderError(ErrorKind.MALFORMED, "Gemini finished without an image and gave no reason.", usage=usage)


def _grounding(meta: Any) -> dict | None:
    if not isinstance(meta, dict):
        return None
    chunks = []
    for chunk in meta.get("groundingChunks") or []:
        source = (chunk.get("web") or chunk.get("image") or {}) if isinstance(chunk, dict) else {}
        # Only web links: a javascript: or data: URI must never become a link on our page.
        if str(source.get("uri", "")).startswith(("https://", "http://")):
            chunks.append({"title": source.get("title") or "", "uri": source["uri"]})
    result: dict[str, Any] = {"web_search_queries": list(meta.get("webSearchQueries") or []), "chunks": chunks}
    if meta.get("imageSearchQueries"):
        result["image_search_queries"] = list(meta["imageSearchQueries"])
    # Google's terms require its search suggestions (HTML and CSS) to be shown with grounded
    # results: kept as sent, only ever served sandboxed (compare/views/files.py `search_suggestions`).
    entry = meta.get("searchEntryPoint")
    rendered = entry.get("renderedContent") if isinstance(entry, dict) else None
    if isinstance(rendered, str) and rendered.strip():
        result["search_entry_points"] = [rendered]
    return result


def _merge_grounding(items: list[dict]) -> dict | None:
    if not items:
        return None
    if len(items) == 1:
        return items[0]
    merged: dict[str, Any] = {}
    for item in items:
        for key, values in item.items():
            seen = merged.setdefault(key, [])
            seen.extend(v for v in values if v not in seen)
    return merged


def http_error(response: httpx.Response, model: Model) -> ProviderError:
    """Turn a Google API error reply into a ProviderError with a plain-language message."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, list) and body:  # some Google front ends wrap the error in a list
        body = body[0]
    err = body.get("error") if isinstance(body, dict) else None
    err = err if isinstance(err, dict) else {}
    details = [d for d in err.get("details") or [] if isinstance(d, dict)]
    status = response.status_code
    message = scrub(str(err.get("message") or error_body_text(response) or "no details given"), model.api_key)
    tag = f"({status} {err['status']})" if err.get("status") else f"({status})"
    name = model.model_id

    def fail(kind: ErrorKind, text: str, retry_after: float | None = None) -> ProviderError:
        return ProviderError(kind, text, status=status, retry_after=retry_after)

    if status == 429:
        delay = _retry_delay(details)
        retry_after = delay if delay is not None else parse_retry_after(response.headers)
        if _daily_quota(details) or (retry_after is not None and retry_after > DAILY_QUOTA_DELAY):
            return fail(ErrorKind.QUOTA, f"The daily Gemini quota for {name} is used up {tag}: {message}")
        return fail(ErrorKind.RATE_LIMIT, f"Rate limit reached for {name} {tag}: {message}", retry_after)
    if status == 400 and _error_reasons(details) & KEY_REASONS:
        return fail(ErrorKind.AUTH, f"Gemini says the API key for {name} is not valid {tag}: {message}")
    if status == 403 and _UNREGISTERED in message:  # Google's words for a request without a key
        return fail(ErrorKind.AUTH, f"No API key reached Gemini for {name} {tag}: {message}")
    if status in (401, 403):
        return fail(ErrorKind.AUTH, f"Gemini did not accept the API key for {name} {tag}: {message}")
    if status == 404:
        return fail(ErrorKind.NOT_FOUND, f"{name} was not found at Gemini {tag}: model not found or retired. {message}")
    if status in (408, 504):
        return fail(ErrorKind.TIMEOUT, f"Gemini timed out on the request for {name} {tag}: {message}")
    if status == 503:
        return fail(ErrorKind.OVERLOADED, f"Gemini is overloaded {tag}: {message}", parse_retry_after(response.headers))
    if status >= 500:
        retry_after = parse_retry_after(response.headers)
        return fail(ErrorKind.SERVER, f"Gemini had a server error {tag}: {message}", retry_after)
    return fail(ErrorKind.BAD_REQUEST, f"Gemini rejected the request for {name} {tag}: {message}")


def _detail_type(detail: dict) -> str:
    return str(detail.get("@type", "")).rsplit("/", 1)[-1]


def _retry_delay(details: list[dict]) -> float | None:
    for detail in details:
        if _detail_type(detail) == "google.rpc.RetryInfo":
            match = _DURATION.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def _daily_quota(details: list[dict]) -> bool:
    for detail in details:
        if _detail_type(detail) != "google.rpc.QuotaFailure":
            continue
        for violation in detail.get("violations") or []:
            names = f"{violation.get('quotaId', '')} {violation.get('quotaMetric', '')}".lower().replace("_", "")
            if "perday" in names:
                return True
    return False


def _error_reasons(details: list[dict]) -> set[str]:
    return {str(d.get("reason")) for d in details if _detail_type(d) == "google.rpc.ErrorInfo"}

"""Adapter for the OpenAI Images API (`openai-images` protocol).

No references → POST /images/generations (JSON). References → POST /images/edits
(multipart). With partial previews requested and supported, the same endpoints
answer as server-sent events. No retries here: the task retries on ProviderError.
"""

import binascii
import json
import re
from typing import IO, Any

import httpx

from compare import sizes
from compare.providers._common import (
    auth_headers,
    check_request_size,
    decode_b64,
    error_body_text,
    fit_inputs,
    input_bytes,
    iter_sse,
    load_json,
    merge_usage,
    mime_for_format,
    parse_retry_after,
    post_to_file,
    refusal,
    scrub,
    transport_error,
)
from compare.providers.base import (
    ErrorKind,
    GenerationRequest,
    GenerationResult,
    OutputImage,
    ProviderError,
)
from compare.registry import Model

VENDOR = "OpenAI"
REFUSAL_CODES = {"moderation_blocked", "content_policy_violation"}
# Error types of an error event inside a stream that mean the request itself was wrong.
STREAM_BAD_REQUEST_TYPES = {"invalid_request_error", "image_generation_user_error"}
MAX_PARTIAL_IMAGES = 3  # the API's upper bound
ECHOED_FIELDS = ("size", "quality", "background", "output_format")


def _streams(request: GenerationRequest) -> bool:
    return request.partial_images > 0 and request.model.capabilities.streaming


def wire_params(request: GenerationRequest) -> dict[str, Any]:
    """Everything sent besides the prompt and the image files.

    Defaults such as "auto" are always sent explicitly, so the record of what was
    asked for does not depend on the provider's current defaults.
    """
    model = request.model
    caps = model.capabilities
    params: dict[str, Any] = {
        "model": model.model_id,  # always: older SDKs/servers default to dall-e-2
        "n": request.n,
        "size": sizes.openai_size(request.aspect_ratio, request.resolution, request.size, caps),
    }
    if caps.qualities:
        # A quality the model lacks (xhigh/max outside 2.5) is left to it, as the notes say.
        params["quality"] = request.quality if caps.supports("quality", request.quality) else "auto"
    if caps.output_formats:
        params["output_format"] = request.output_format
        if request.output_compression is not None and request.output_format in ("jpeg", "webp"):
            params["output_compression"] = request.output_compression
    if caps.backgrounds:
        params["background"] = request.background
    # The edits endpoint rejects `moderation` for models not documented to take it there.
    if caps.sends_moderation(edit=bool(request.references)):
        params["moderation"] = request.moderation
    # input_fidelity is deliberately never sent: gpt-image-2 rejects it.
    if _streams(request):
        params["stream"] = True
        params["partial_images"] = min(request.partial_images, MAX_PARTIAL_IMAGES)
    return params


def generate(request: GenerationRequest, client: httpx.Client) -> GenerationResult:
    model = request.model
    params = wire_params(request)
    base = model.endpoint_base()
    headers = auth_headers(model)
    if request.references:
        fit_inputs(request)
        sent_images = [*request.references, request.mask, request.markup]
        check_request_size(model, input_bytes(sent_images, base64_encoded=False) + len(request.prompt.encode()))
        url = f"{base}/images/edits"
        send: dict[str, Any] = {"data": _form_fields(request.prompt, params), "files": _files(request)}
    else:
        if request.mask is not None and model.capabilities.mask:
            raise ProviderError(ErrorKind.BAD_REQUEST, "A mask needs a reference image to apply to.")
        url = f"{base}/images/generations"
        send = {"json": {**params, "prompt": request.prompt}}

    if params.get("stream"):
        return _generate_streaming(client, url, headers, send, request, params)
    try:
        # The body goes to a spooled file, its base64 images stay there until decoded.
        response, body = post_to_file(client, url, headers=headers, timeout=request.http_timeout(), **send)
    except httpx.TransportError as exc:
        raise transport_error(exc, VENDOR, model) from None
    if body is None:
        raise http_error(response, model)
    with body:
        return _parse_response(response, body, model, params)


def _form_fields(prompt: str, params: dict[str, Any]) -> dict[str, str]:
    fields = {"prompt": prompt}
    for key, value in params.items():
        fields[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return fields


def _files(request: GenerationRequest) -> list[tuple[str, tuple[str, bytes, str]]]:
    # One image goes as `image`; several as repeated `image[]`, the order kept.
    name = "image" if len(request.references) == 1 else "image[]"
    files = [(name, (ref.filename, ref.data, ref.mime_type)) for ref in request.references]
    if request.mask is not None and request.model.capabilities.mask:
        files.append(("mask", (request.mask.filename, request.mask.data, request.mask.mime_type)))
    elif request.markup is not None and request.model.capabilities.markup:  # never together with a mask
        files.append(("markup", (request.markup.filename, request.markup.data, request.markup.mime_type)))
    return files


def _decode(b64: Any, model: Model) -> bytes:
    try:
        return decode_b64(b64)
    except (binascii.Error, TypeError, ValueError):
        raise ProviderError(
            ErrorKind.MALFORMED, f"OpenAI sent image data for {model.model_id} that is not valid base64."
        ) from None


def _parse_response(response: httpx.Response, raw: IO[bytes], model: Model, params: dict[str, Any]) -> GenerationResult:
    try:
        body = load_json(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ProviderError(
            ErrorKind.MALFORMED,
            f"OpenAI answered {model.model_id} with something that is not JSON.",
            status=response.status_code,
        )
    mime = mime_for_format(body.get("output_format") or params.get("output_format"))
    data = body.get("data")
    items = [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []
    images = [OutputImage(_decode(item["b64_json"], model), mime) for item in items if item.get("b64_json")]
    if not images:
        raise ProviderError(
            ErrorKind.MALFORMED, f"OpenAI answered {model.model_id} without any image.", status=response.status_code
        )
    revised = [item["revised_prompt"] for item in items if item.get("revised_prompt")]
    return GenerationResult(
        images=images,
        usage=body.get("usage") or {},
        sent=params,
        echoed={key: body[key] for key in ECHOED_FIELDS if key in body},
        text="\n".join(revised),
    )


def _generate_streaming(
    client: httpx.Client,
    url: str,
    headers: dict[str, str],
    send: dict[str, Any],
    request: GenerationRequest,
    params: dict[str, Any],
) -> GenerationResult:
    """Read the SSE reply as it arrives so previews reach the page before the final image.

    Exceptions raised by `request.on_partial` propagate: the caller owns that callback.
    """
    model = request.model
    fallback_mime = mime_for_format(params.get("output_format"))
    images: list[OutputImage] = []
    usage: dict = {}
    echoed: dict = {}
    started = False
    previews = 0
    failed: ProviderError | None = None
    try:
        with client.stream("POST", url, headers=headers, timeout=request.http_timeout(), **send) as response:
            if not response.is_success:
                response.read()
                raise http_error(response, model)
            started = True
            for event, data in iter_sse(response.iter_lines()):
                if data.strip() == "[DONE]":
                    break
                try:
                    payload = json.loads(data)
                except ValueError:
                    raise ProviderError(
                        ErrorKind.MALFORMED, f"OpenAI's stream for {model.model_id} contained an unreadable event."
                    ) from None
                if not isinstance(payload, dict):
                    continue
                kind = str(payload.get("type") or event)
                if kind == "error" or isinstance(payload.get("error"), dict):
                    failed = _error_from(None, payload.get("error") or payload, "", None, model)
                    break
                mime = mime_for_format(payload.get("output_format"), fallback_mime)
                if kind.endswith(".partial_image") and payload.get("b64_json"):
                    index = payload.get("partial_image_index")
                    index = index if isinstance(index, int) else previews
                    previews += 1
                    if request.on_partial is not None:
                        request.on_partial(index, _decode(payload["b64_json"], model), mime)
                elif kind.endswith(".completed") and payload.get("b64_json"):
                    images.append(OutputImage(_decode(payload["b64_json"], model), mime))
                    # Assumes one completed event per image, each with that image's usage.
                    usage = merge_usage(usage, payload.get("usage") or {})
                    echoed.update({key: payload[key] for key in ECHOED_FIELDS if key in payload})
                # Other event types are ignored, so new ones do not break old code.
    except httpx.TransportError as exc:
        if started and not isinstance(exc, httpx.TimeoutException):
            raise _cut_off(model, exc) from None
        raise transport_error(exc, VENDOR, model) from None
    # An error event after the stream started: the images that completed are kept (and
    # billed, by their usage); the ones it stopped may have been billed too (compare/budget.py).
    unknown_share = max(0, request.n - len(images)) / max(1, request.n) if failed is not None else None
    if failed is not None and not images:
        failed.usage, failed.unknown_share = usage, unknown_share
        raise failed
    if not images:
        raise _cut_off(model)
    text = ""
    if len(images) < request.n:
        why = f"reported an error: {failed.message}" if failed is not None else "ended"
        text = f"Only {len(images)} of {request.n} images arrived before OpenAI's stream {why}."
    return GenerationResult(
        images=images, usage=usage, sent=params, echoed=echoed, text=text, unknown_share=unknown_share
    )


def _cut_off(model: Model, exc: Exception | None = None) -> ProviderError:
    why = f" ({type(exc).__name__})" if exc is not None else ""
    return ProviderError(
        ErrorKind.NETWORK,
        f"The stream from OpenAI for {model.model_id} was cut off before the final image arrived{why}.",
    )


_CATEGORY = re.compile(r"^[a-z][a-z0-9 /_-]{0,39}$")


def _categories(value: Any) -> list[str]:
    """Category names as the provider spells them, anything else dropped."""
    items = value if isinstance(value, list) else []
    return [v for v in items if isinstance(v, str) and _CATEGORY.match(v)]


def moderation(err: dict) -> dict:
    """Where and why the safety system refused: `moderation_details` {moderation_stage:
    input|output, categories} (its shape is UNCONFIRMED: seen only in client fixtures)
    and `safety_violations` (a list, seen from gpt-image-2 through a relay); worded by
    `_common.refusal`, the same for every provider."""
    details = err.get("moderation_details")
    details = details if isinstance(details, dict) else {}
    stage = details.get("moderation_stage")
    stage = stage if stage in ("input", "output") else ""
    categories, violations = _categories(details.get("categories")), _categories(err.get("safety_violations"))
    found = list(dict.fromkeys(categories + violations))
    return refusal(stage, found, categories=categories, safety_violations=violations)


def http_error(response: httpx.Response, model: Model) -> ProviderError:
    """Turn an HTTP error reply into a ProviderError with a plain-language message."""
    try:
        body = response.json()
    except ValueError:
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    return _error_from(
        response.status_code,
        err if isinstance(err, dict) else {},
        error_body_text(response),
        parse_retry_after(response.headers),
        model,
    )


def _error_from(status: int | None, err: dict, fallback: str, retry_after: float | None, model: Model) -> ProviderError:
    """Classify by HTTP status; `status` is None for an error event inside a stream."""
    message = scrub(str(err.get("message") or fallback or "no details given"), model.api_key)
    code = str(err.get("code") or "")
    err_type = str(err.get("type") or "")
    name = model.model_id
    tag = f" ({status})" if status else ""

    def fail(kind: ErrorKind, text: str, *, retry: bool = False) -> ProviderError:
        return ProviderError(kind, text, status=status, retry_after=retry_after if retry else None)

    if code in REFUSAL_CODES or err_type in REFUSAL_CODES:
        said = moderation(err)
        where = f" at the {said['stage']} stage" if said.get("stage") else ""
        why = f" ({', '.join(said['found'])})" if said.get("found") else ""
        return ProviderError(
            ErrorKind.REFUSED,
            f"Rejected by OpenAI's safety system{where}{why}: {message}",
            status=status,
            echoed={"refusal": said},
        )
    if "insufficient_quota" in (code, err_type):
        return fail(ErrorKind.QUOTA, f"The OpenAI account is out of credit or over its quota{tag}: {message}")
    if status is None:  # an error event in the middle of a stream: its code says what happened
        which = f" ({code or err_type})" if code or err_type else ""
        text = f"OpenAI's stream for {name} ended with an error{which}: {message}"
        if "rate_limit_exceeded" in (code, err_type):
            return fail(ErrorKind.RATE_LIMIT, text)
        if err_type in STREAM_BAD_REQUEST_TYPES:
            return fail(ErrorKind.BAD_REQUEST, text)
        return fail(ErrorKind.SERVER, text)
    if status in (400, 422):
        param = f" (parameter: {err['param']})" if err.get("param") else ""
        return fail(ErrorKind.BAD_REQUEST, f"OpenAI rejected the request for {name}{tag}{param}: {message}")
    if status == 401:
        return fail(ErrorKind.AUTH, f"OpenAI did not accept the API key{tag}: {message}")
    if status == 403:
        return fail(ErrorKind.AUTH, f"The API key is not allowed to use {name}{tag}: {message}")
    if status == 404:
        return fail(ErrorKind.NOT_FOUND, f"{name} was not found at OpenAI{tag}; the model id may be retired: {message}")
    if status == 408:
        return fail(ErrorKind.TIMEOUT, f"OpenAI timed out on the request for {name}{tag}: {message}", retry=True)
    if status == 429:
        return fail(ErrorKind.RATE_LIMIT, f"Rate limit reached for {name}{tag}: {message}", retry=True)
    if status == 503:
        return fail(ErrorKind.OVERLOADED, f"OpenAI is overloaded{tag}: {message}", retry=True)
    if status >= 500 or status == 409:
        return fail(ErrorKind.SERVER, f"OpenAI had a server error{tag}: {message}", retry=True)
    return fail(ErrorKind.BAD_REQUEST, f"OpenAI answered {name} with an unexpected status{tag}: {message}")

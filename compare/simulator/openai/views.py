"""The simulated OpenAI Images API: /v1/images/generations, /v1/images/edits, /v1/models.

Replies follow OpenAI's Images API reference field by field, so the official SDK and
our adapter parse them exactly as they would parse OpenAI's.
"""

import json
import time
from typing import Any

from django.http.multipartparser import MultiPartParserError

from compare.simulator import faults, render
from compare.simulator.common import (
    Pacer,
    b64,
    body_too_big,
    json_response,
    latency_for,
    model_label,
    raw_body,
    request_id,
    simulator_view,
    sse_response,
    truncated_response,
)
from compare.simulator.openai.rules import (
    MODELS,
    ApiError,
    Params,
    known_models,
    stream_usage,
    usage,
    validate,
    validate_images,
    validate_markup,
)
from compare.simulator.render import blurred, compose, encode, misrender, seed_bytes

PROTOCOL = "openai"


def error(message: str, status: int = 400, *, type_="invalid_request_error", param=None, code=None, headers=None):
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return json_response(body, status, {"x-request-id": request_id(), **(headers or {})})


def api_error(exc: ApiError):
    return error(exc.message, exc.status, type_=exc.type, param=exc.param, code=exc.code)


def unauthorized(request, problem: str = "missing"):
    """401 as OpenAI gives it: no key, or (problem "invalid") a key it does not know."""
    if problem == "invalid":
        return error(
            "Incorrect API key provided: invalid**. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            401,
            code="invalid_api_key",
        )
    return error(
        "You didn't provide an API key. You need to provide your API key in an Authorization header "
        "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        401,
    )


# Where and why the safety system stopped a request: `refusal` at the output stage (the
# picture was made, then withheld), `prompt_blocked` at the input stage. safety_violations
# is seen from gpt-image-2 through a relay; moderation_details only in client fixtures, so
# its exact shape is UNCONFIRMED.
MODERATION = {
    "refusal": {"moderation_stage": "output", "categories": ["violence"]},
    "prompt_blocked": {"moderation_stage": "input", "categories": ["illicit"]},
}


def refusal_error(fault: str) -> dict:
    details = MODERATION[fault]
    return {
        "message": "Your request was rejected by the safety system. If you believe this is an error, contact "
        f"us at help.openai.com and include the request ID {request_id()}.",
        "type": "image_generation_user_error",
        "param": None,
        "code": "moderation_blocked",
        "moderation_details": details,
        "safety_violations": list(details["categories"]),
    }


STREAM_ERROR = {
    "message": "The server had an error while processing your request. Sorry about that!",
    "type": "server_error",
    "param": None,
    "code": "server_error",
}


# --- fault replies ---------------------------------------------------------------------------


def fault_reply(fault: faults.Fault, params: Params, edit: bool):
    """The reply for an injected fault, or None when the fault only shows while streaming."""
    name = fault.name
    if name in {"auth", "no_key"}:
        return unauthorized(None, "invalid" if name == "auth" else "missing")
    if name == "stream_error" and not params.stream:
        return json_response({"error": STREAM_ERROR}, 500, {"x-request-id": request_id()})
    if name == "rate_limit":
        return error(
            f"Rate limit reached for {params.model} in organization org-simulator on images per minute "
            "(IPM): Limit 5, Used 5, Requested 1. Please try again in 1s.",
            429,
            type_="requests",
            code="rate_limit_exceeded",
            headers={
                "Retry-After": "1",
                "retry-after-ms": "1000",
                "x-ratelimit-limit-requests": "5",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": "1s",
            },
        )
    if name == "quota":
        return error(
            "You exceeded your current quota, please check your plan and billing details. For more "
            "information on this error, read the docs: "
            "https://platform.openai.com/docs/guides/error-codes/api-errors.",
            429,
            type_="insufficient_quota",
            code="insufficient_quota",
        )
    if name == "server_error":
        return error(
            "The server had an error while processing your request. Sorry about that!", 500, type_="server_error"
        )
    if name == "overloaded":
        return error("The engine is currently overloaded, please try again later.", 503, type_="server_error")
    if name == "timeout":
        faults.sleep(faults.DEFAULT_TIMEOUT if fault.seconds is None else fault.seconds)
        return error("Gateway timeout.", 504, type_="server_error")
    if name in {"refusal", "prompt_blocked"}:
        return json_response({"error": refusal_error(name)}, 400, {"x-request-id": request_id()})
    if name in {"text_only", "no_image"}:
        if params.stream:
            return sse_response(iter([b"data: [DONE]\n\n"]))
        return json_response({"created": int(time.time()), "data": [], **echo(params), "usage": usage(params, 0)})
    if name == "malformed":
        if params.stream:
            return sse_response(
                iter(
                    [
                        f"event: {kind(edit)}.partial_image\n"
                        'data: {"type": "image_generation.partial_image", "b64_json": "iVBOR\n\n'.encode()
                    ]
                )
            )
        return json_response_raw(f'{{"created": {int(time.time())}, "data": [{{"b64_json": "iVBORw0KGgoAAAANSU')
    return None  # cutoff and stream_error: handled by the reply builders


def json_response_raw(text: str):
    response = json_response({}, 200)
    response.content = text.encode()
    return response


# --- success replies -------------------------------------------------------------------------


def kind(edit: bool) -> str:
    return "image_edit" if edit else "image_generation"


def echo(params: Params) -> dict:
    """The settings the 'model' actually used, as the real API reports them. A gateway serving
    Gemini (gateway mode) does not know them, so it reports none."""
    if params.gateway_size:
        return {}
    width, height = params.resolved_size()
    return {
        "background": params.resolved_background(),
        "output_format": params.output_format,
        "quality": params.resolved_quality(),
        "size": f"{width}x{height}",
    }


def _drawing(params: Params, index: int) -> dict[str, Any]:
    """What determines output `index`'s picture, as keyword arguments of render.compose."""
    width, height = params.resolved_size()
    return {
        "prompt": faults.strip_markers(misrender(params.prompt, PROTOCOL, params.model)),
        "label": model_label(params.model),
        "seed": seed_bytes(faults.strip_markers(params.prompt), params.model, index),
        "width": width,
        "height": height,
        "transparent": params.resolved_background() == "transparent",
        "references": params.images,
        "edit_base": params.images[0] if params.images else None,
        "mask": params.mask,
    }


def picture(params: Params, index: int):
    """The final image for output `index` as a Pillow image."""
    return compose(**_drawing(params, index))


def picture_bytes(params: Params, index: int) -> bytes:
    """Output `index` encoded as asked, from the simulator's cache of rendered bytes if drawn lately."""
    return render.image_bytes(
        **_drawing(params, index), fmt=params.output_format, compression=params.output_compression
    )


def encoded(params: Params, image) -> str:
    return b64(encode(image, params.output_format, params.output_compression))


def reply(params: Params, pacer: Pacer, cutoff: bool):
    """Draw first, then wait out the rest of the latency (holding the encoded bytes only:
    the base64 JSON, a third larger, is built once the wait is over)."""
    pictures = [picture_bytes(params, i) for i in range(params.n)]
    pacer.until()
    data = [{"b64_json": b64(picture)} for picture in pictures]
    body = {"created": int(time.time()), "data": data, **echo(params), "usage": usage(params, params.n)}
    if cutoff:
        return truncated_response(json.dumps(body).encode())
    return json_response(body, headers={"x-request-id": request_id()})


def frame(event: dict) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def stream_frames(params: Params, pacer: Pacer, edit: bool, cutoff: bool, broken: bool = False):
    """Previews (blurriest first) then one completed event per image, then [DONE], spread
    evenly over the latency (each event leaves at its share of it, drawing included).
    `cutoff`: the connection drops after the first preview; `broken`: an error event
    follows the first preview (`event: error`, the error object under "error", which the
    openai SDK raises as APIError) and the stream ends."""
    partials = params.partial_images
    steps = params.n * (partials + 1)
    step = 0
    stops = cutoff or broken
    for index in range(params.n):
        with render.pixel_work():
            final = picture(params, index)
        for p in range(partials if not stops else max(1, partials)):
            divisor = 8 * 2 ** (max(partials, 1) - 1 - p)
            with render.pixel_work():
                preview = encoded(params, blurred(final, divisor))
            step += 1
            pacer.until(step / steps)
            yield frame(
                {
                    "type": f"{kind(edit)}.partial_image",
                    "b64_json": preview,
                    "partial_image_index": p,
                    "created_at": int(time.time()),
                    **echo(params),
                }
            )
            if broken:
                yield frame({"type": "error", "error": STREAM_ERROR})
            if stops:
                return  # no completed event, no [DONE]
        with render.pixel_work():
            completed = encoded(params, final)
        step += 1
        pacer.until(step / steps)
        yield frame(
            {
                "type": f"{kind(edit)}.completed",
                "b64_json": completed,
                "created_at": int(time.time()),
                **echo(params),
                "usage": stream_usage(usage(params, 1, partials)),
            }
        )
    yield b"data: [DONE]\n\n"


def generate(request, params: Params, edit: bool):
    """Shared tail of generations and edits: faults, latency, then the images."""
    try:
        fault = faults.select_fault(PROTOCOL, params.prompt, request.headers.get("X-Simulator-Fault"))
    except faults.UnknownFault as exc:
        return error(str(exc), 400, param="prompt", code="simulator_unknown_fault")
    pacer = Pacer(request, latency_for(request, PROTOCOL, params.model, params.prompt))
    cutoff = fault is not None and fault.name == "cutoff"
    broken = fault is not None and fault.name == "stream_error" and params.stream
    if fault is not None and not cutoff and not broken:
        if fault.name in {"refusal", "prompt_blocked", "text_only", "no_image", "malformed"}:
            pacer.until()  # these come back after the model has worked on it
        return fault_reply(fault, params, edit)
    if params.stream:
        return sse_response(stream_frames(params, pacer, edit, cutoff, broken))
    return reply(params, pacer, cutoff)


# --- views -----------------------------------------------------------------------------------


def method_not_allowed(request):
    return error(f"Invalid method for URL ({request.method} {request.path}).", 405)


@simulator_view(unauthorized)
def generations(request):
    if request.method != "POST":
        return method_not_allowed(request)
    if body_too_big(request):
        return error("Request body too large.", 413)
    try:
        data = json.loads(raw_body(request) or b"null")
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        return error(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
            "your HTTP library correctly. The OpenAI API expects a JSON payload.)",
            400,
        )
    try:
        params = validate(data)
    except ApiError as exc:
        return api_error(exc)
    return generate(request, params, edit=False)


@simulator_view(unauthorized)
def edits(request):
    if request.method != "POST":
        return method_not_allowed(request)
    if not request.content_type.startswith("multipart/form-data"):
        return error(f"Invalid Content-Type header ({request.content_type}), expected multipart/form-data.", 400)
    try:
        fields = {key: request.POST.get(key) for key in request.POST}
        files = {key: request.FILES.getlist(key) for key in request.FILES}
    except MultiPartParserError as exc:
        return error(f"Could not parse multipart form: {exc}", 400)
    try:
        params = validate({**fields, **files}, edit=True)
        images = files.get("image", []) + files.get("image[]", [])
        masks = files.get("mask", [])
        validate_images(params, images, masks[0] if masks else None)
        if markups := files.get("markup", []):
            validate_markup(params, markups[0], bool(masks))
    except ApiError as exc:
        return api_error(exc)
    return generate(request, params, edit=True)


def model_object(model_id: str) -> dict:
    return {"id": model_id, "object": "model", "created": MODELS.get(model_id, 1776729600), "owned_by": "system"}


@simulator_view(unauthorized)
def models(request):
    return json_response({"object": "list", "data": [model_object(m) for m in sorted(known_models())]})


@simulator_view(unauthorized)
def model_detail(request, model_id: str):
    if model_id not in known_models():
        return error(f"The model '{model_id}' does not exist", 404, param="model", code="model_not_found")
    return json_response(model_object(model_id))


@simulator_view(unauthorized)
def not_found(request, rest: str = ""):
    return error(f"Invalid URL ({request.method} {request.path}).", 404)

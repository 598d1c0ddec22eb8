"""Gateway mode: the OpenAI Images endpoints answering for a Gemini model.

OpenAI-compatible gateways (LiteLLM's proxy, for one) serve Gemini image models on
/v1/images/generations and /v1/images/edits: the request names a Gemini id
(`"model": "gemini-3-pro-image"`, `"size": "2048x2048"`, `"quality": "pro"`), the gateway
reads the WxH as an aspect ratio and a size class, and the reply is Images-API shaped
(`data[].b64_json`) with a Gemini-sized image. The size class is read by the rule of
compare/sizes.py, so a `sizes = "gemini-wxh"` entry (which sends Gemini's own pixel sizes)
gets back exactly the size it sent. Such gateways do not stream images: a
request with `stream` is refused. compare/simulator/openai/rules.py hands a request here
when its model is a Gemini id.
"""

import math

from compare.simulator.gemini import rules as gemini_rules
from compare.simulator.openai.rules import ApiError, Params, _choice, _integer, usage_shape
from compare.sizes import gemini_size_class, parse_wxh

QUALITIES = {"auto", "low", "medium", "high", "pro"}


def spec_for(model: str) -> gemini_rules.ModelSpec | None:
    """The Gemini model a gateway would route this id to, if it is one."""
    return gemini_rules.known_models().get(model)


def image_config(size: str, spec: gemini_rules.ModelSpec) -> tuple[str, str]:
    """(aspectRatio, imageSize) for an Images-API `size`: the nearest aspect the model has,
    and the size class of the size (compare/sizes.py `gemini_size_class`, the rule the app sends
    by; the largest the model has, if it has fewer)."""
    parsed = parse_wxh(size) if size not in ("", "auto") else None
    if parsed is None:
        return "1:1", spec.image_sizes[0]
    aspect = gemini_rules.nearest_aspect(spec, *parsed)
    wanted = gemini_size_class(*parsed, aspect)
    image_size = wanted if wanted in spec.image_sizes else spec.image_sizes[-1]
    return aspect, image_size


def validate(data: dict, model: str, spec: gemini_rules.ModelSpec) -> Params:
    """The fields of an Images-API request for a Gemini model, read as a gateway reads them:
    the output format and background are Gemini's own (PNG, opaque), moderation is dropped."""
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ApiError("Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter")
    if data.get("stream") in (True, "true", "True", "1"):
        raise ApiError(
            f"Streaming is not supported for {model} through this gateway.", "stream", "unsupported_parameter"
        )
    params = Params(model=model, prompt=prompt)
    params.n = _integer(data.get("n"), "n", 1, 4, 1)
    params.quality = _choice(data.get("quality"), "quality", QUALITIES, "auto")
    aspect, image_size = image_config(str(data.get("size") or "auto"), spec)
    width, height = gemini_rules.pixel_size(aspect, image_size)
    params.size = f"{width}x{height}"
    params.gateway_size = image_size
    return params


def usage(params: Params, images_out: int) -> dict:
    """Gemini's token counts, reported in the Images API's usage shape."""
    text = max(1, math.ceil(len(params.prompt) / 4))
    image_in = gemini_rules.REFERENCE_TOKENS * len(params.images)
    out = images_out * gemini_rules.IMAGE_TOKENS[params.gateway_size]
    return usage_shape(text, image_in, out)

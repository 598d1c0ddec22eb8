"""What the OpenAI Images API accepts, and what it bills, as its API reference describes them.

Validation is as strict as the real API where the docs are clear, so that an
adapter bug shows up against the simulator and not first in production.
"""

import math
from dataclasses import dataclass, field
from datetime import date

from compare import registry
from compare.simulator.common import RETIRED_IDS, registry_model_ids
from compare.sizes import openai_size_problem, parse_wxh

# Model ids the simulator answers for (plus any openai-images id in the registry).
MODELS = {
    "gpt-image-2": 1776729600,
    "gpt-image-2-2026-04-21": 1776729600,
    "gpt-image-1.5": 1763596800,
    "gpt-image-1-mini": 1759968000,
    "chatgpt-image-latest": 1776729600,
    "gpt-image-2.5-sunburst": 1788825600,
    "gpt-image-2.5-sunburst-2026-09-08": 1788825600,
    "gpt-image-2.5-flare": 1788825600,
    "gpt-image-2.5-flare-2026-09-08": 1788825600,
}
CLASSIC_SIZES = {"1024x1024", "1536x1024", "1024x1536"}
QUALITIES = {"low", "medium", "high", "auto"}
EXTRA_QUALITIES = {"xhigh", "max"}
BACKGROUNDS = {"transparent", "opaque", "auto"}
FORMATS = {"png", "jpeg", "webp"}
MODERATIONS = {"auto", "low"}
MAX_PROMPT = 32000
MAX_IMAGES = 16
GENERATION_FIELDS = {
    "model",
    "prompt",
    "n",
    "size",
    "quality",
    "background",
    "output_format",
    "output_compression",
    "moderation",
    "stream",
    "partial_images",
    "user",
    "safety_identifier",
    "response_format",
    "style",
}
EDIT_FIELDS = (GENERATION_FIELDS - {"style"}) | {"input_fidelity", "image", "image[]", "mask", "markup"}
# Edits reject `moderation` ("Unknown parameter", as reported against the real endpoint) for every
# model not documented to take it there: none is today.
MODERATION_ON_EDITS: set[str] = set()


def takes_markup(model: str) -> bool:
    """`markup`, a transparent PNG overlay on the first image, is GPT Image 2.5 only."""
    return model.startswith("gpt-image-2.5")


# Published per-image output prices of gpt-image-2 (OpenAI's pricing page), at $30/M output tokens.
OUTPUT_PER_MTOK = 30.0
PRICE_TABLE = {
    "1024x1024": (0.006, 0.053, 0.211),
    "1536x1024": (0.005, 0.041, 0.165),
    "1024x1536": (0.005, 0.041, 0.165),
    "2048x2048": (0.012, 0.107, 0.428),
    "2048x1152": (0.005, 0.042, 0.170),
    "3840x2160": (0.011, 0.100, 0.400),
}
QUALITY_INDEX = {"low": 0, "medium": 1, "high": 2}
PARTIAL_IMAGE_TOKENS = 100  # each streamed preview is billed as extra output tokens


@dataclass(frozen=True)
class ModelRules:
    """What one real model id takes where the models differ (the API reference's words)."""

    any_size: bool  # any valid WIDTHxHEIGHT; else only CLASSIC_SIZES and "auto"
    qualities: frozenset[str] = frozenset(QUALITIES)
    shutdown: date | None = None  # from this day the id answers 404 and leaves the model list


_2_5 = ModelRules(any_size=True, qualities=frozenset(QUALITIES | EXTRA_QUALITIES))
_CLASSIC = ModelRules(any_size=False)
_SHUT_DOWN = ModelRules(any_size=False, shutdown=date(2026, 12, 1))
# The one table of per-model rules: arbitrary sizes for gpt-image-2 and 2.5 only (2.6 is not
# documented with them), xhigh/max for 2.5 only, and OpenAI's announced 2026-12-01 shutdowns.
# An id not listed here (a gateway's own) follows the gpt-image-2 rules if it starts like one.
MODEL_RULES = {
    "gpt-image-2": ModelRules(any_size=True),
    "gpt-image-2-2026-04-21": ModelRules(any_size=True),
    "gpt-image-2.5-sunburst": _2_5,
    "gpt-image-2.5-sunburst-2026-09-08": _2_5,
    "gpt-image-2.5-flare": _2_5,
    "gpt-image-2.5-flare-2026-09-08": _2_5,
    "gpt-image-2.6-sunburst": _CLASSIC,
    "gpt-image-2.6-flare": _CLASSIC,
    "gpt-image-1.5": _SHUT_DOWN,
    "gpt-image-1-mini": _SHUT_DOWN,
    "chatgpt-image-latest": _SHUT_DOWN,
}


def rules_for(model: str) -> ModelRules:
    return MODEL_RULES.get(model) or ModelRules(any_size=model.startswith("gpt-image-2"))


class ApiError(Exception):
    def __init__(
        self,
        message: str,
        param: str | None = None,
        code: str | None = None,
        status: int = 400,
        type_: str = "invalid_request_error",
    ):
        super().__init__(message)
        self.message, self.param, self.code, self.status, self.type = message, param, code, status, type_


@dataclass
class Params:
    model: str
    prompt: str
    n: int = 1
    size: str = "auto"
    quality: str = "auto"
    background: str = "auto"
    output_format: str = "png"
    output_compression: int | None = None
    stream: bool = False
    partial_images: int = 0
    images: list = field(default_factory=list)  # decoded Pillow images (edits)
    mask: object = None
    markup: object = None
    # Gateway mode (compare/simulator/openai/gateway.py): the Gemini image size answered, else "".
    gateway_size: str = ""

    def resolved_quality(self) -> str:
        return "medium" if self.quality == "auto" else self.quality

    def resolved_background(self) -> str:
        return "opaque" if self.background == "auto" else self.background

    def resolved_size(self) -> tuple[int, int]:
        explicit = parse_wxh(self.size) if self.size != "auto" else None
        if explicit is not None:  # validate() has checked it
            return explicit
        if not self.images:
            return 1024, 1024
        # Like the real API, 'auto' picks the classic size nearest the first image's shape.
        w, h = self.images[0].size
        return (1536, 1024) if w / h > 1.2 else (1024, 1536) if h / w > 1.2 else (1024, 1024)


def known_models() -> set[str]:
    today = registry.today()
    shut = {m for m, r in MODEL_RULES.items() if r.shutdown is not None and today >= r.shutdown}
    return (set(MODELS) | registry_model_ids("openai-images")) - RETIRED_IDS - shut


def flexible_sizes(model: str) -> bool:
    """gpt-image-2 and 2.5 take any valid WxH; the other GPT image models only the classic three."""
    return rules_for(model).any_size


def _integer(raw, name: str, low: int, high: int, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
        if isinstance(raw, float) and raw != value:
            raise ValueError
    except (TypeError, ValueError):
        raise ApiError(
            f"Invalid type for '{name}': expected an integer, but got {raw!r}.", name, "invalid_type"
        ) from None
    if not low <= value <= high:
        below = value < low
        raise ApiError(
            f"Invalid '{name}': integer {'below minimum' if below else 'above maximum'} value. "
            f"Expected a value {'>=' if below else '<='} {low if below else high}, but got {value} "
            "instead.",
            name,
            "integer_below_min_value" if below else "integer_above_max_value",
        )
    return value


def _boolean(raw, name: str) -> bool:
    if raw in (None, "", False, "false", "False", "0"):
        return False
    if raw in (True, "true", "True", "1"):
        return True
    raise ApiError(f"Invalid type for '{name}': expected a boolean, but got {raw!r}.", name, "invalid_type")


def _choice(raw, name: str, allowed: set[str], default: str) -> str:
    if raw is None or raw == "":
        return default
    if raw not in allowed:
        options = ", ".join(f"'{v}'" for v in sorted(allowed))
        raise ApiError(f"Invalid value: '{raw}'. Supported values are: {options}.", name, "invalid_value")
    return raw


def _size(raw, model: str) -> str:
    if raw in (None, "", "auto"):
        return "auto"
    parsed = parse_wxh(str(raw)) if isinstance(raw, str) and "x" in raw else None
    if parsed is None or (not flexible_sizes(model) and raw not in CLASSIC_SIZES):
        allowed = "'1024x1024', '1024x1536', '1536x1024', and 'auto'"
        raise ApiError(f"Invalid value: '{raw}'. Supported values are: {allowed}.", "size", "invalid_value")
    problem = openai_size_problem(*parsed)
    if problem:
        raise ApiError(f"Invalid size '{raw}'. {problem}", "size", "invalid_value")
    return f"{parsed[0]}x{parsed[1]}"


def validate(data: dict, edit: bool = False) -> Params:
    """Check one request's fields (JSON values or multipart strings) like the real API does."""
    allowed = EDIT_FIELDS if edit else GENERATION_FIELDS
    model = data.get("model")
    if edit and model not in MODERATION_ON_EDITS:
        allowed = allowed - {"moderation"}
    if edit and not takes_markup(str(model)):
        allowed = allowed - {"markup"}
    for name in data:
        if name not in allowed:
            raise ApiError(f"Unknown parameter: '{name}'.", name, "unknown_parameter")
    if not model:
        raise ApiError("Missing required parameter: 'model'.", "model", "missing_required_parameter")
    from compare.simulator.openai import gateway

    if (spec := gateway.spec_for(str(model))) is not None:
        return gateway.validate(data, str(model), spec)
    if model not in known_models():
        raise ApiError(
            f"The model '{model}' does not exist or you do not have access to it.",
            "model",
            "model_not_found",
            status=404,
        )
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ApiError("Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter")
    if len(prompt) > MAX_PROMPT:
        raise ApiError(
            f"Invalid 'prompt': string too long. Expected a string with maximum length {MAX_PROMPT}, "
            f"but got a string with length {len(prompt)} instead.",
            "prompt",
            "string_above_max_length",
        )
    if data.get("response_format") not in (None, "", "b64_json"):
        raise ApiError("Unknown parameter: 'response_format'.", "response_format", "unknown_parameter")
    if data.get("style") not in (None, ""):
        raise ApiError("Unknown parameter: 'style'.", "style", "unknown_parameter")
    params = Params(model=model, prompt=prompt)
    params.n = _integer(data.get("n"), "n", 1, 10, 1)
    params.size = _size(data.get("size"), model)
    params.quality = _choice(data.get("quality"), "quality", set(rules_for(model).qualities), "auto")
    params.background = _choice(data.get("background"), "background", BACKGROUNDS, "auto")
    params.output_format = _choice(data.get("output_format"), "output_format", FORMATS, "png")
    _choice(data.get("moderation"), "moderation", MODERATIONS, "auto")
    if params.background == "transparent" and params.output_format == "jpeg":
        raise ApiError(
            "Transparent background is not supported for output format 'jpeg'. Use 'png' or 'webp'.",
            "background",
            "invalid_value",
        )
    if data.get("output_compression") not in (None, ""):
        params.output_compression = _integer(data["output_compression"], "output_compression", 0, 100, 100)
        if params.output_format == "png" and params.output_compression < 100:
            raise ApiError(
                "Compression less than 100 is not supported for PNG output format.",
                "output_compression",
                "invalid_value",
            )
    params.stream = _boolean(data.get("stream"), "stream")
    params.partial_images = _integer(data.get("partial_images"), "partial_images", 0, 3, 0)
    if edit and data.get("input_fidelity") not in (None, ""):
        _choice(data["input_fidelity"], "input_fidelity", {"high", "low"}, "low")
        if flexible_sizes(model):  # the edits endpoint: omit it for gpt-image-2
            raise ApiError(
                f"input_fidelity is not supported for model '{model}'.", "input_fidelity", "unsupported_parameter"
            )
    return params


def validate_images(params: Params, images: list, mask) -> None:
    """Edits: 1–16 readable images; the optional mask a PNG the size of the first image."""
    from compare.simulator.common import decode_image

    if not images:
        raise ApiError("Missing required parameter: 'image'.", "image", "missing_required_parameter")
    if len(images) > MAX_IMAGES:
        raise ApiError(
            f"Invalid 'image': too many images. Expected at most {MAX_IMAGES}, got {len(images)}.",
            "image",
            "invalid_value",
        )
    for upload in images:
        image = decode_image(upload.read())
        if image is None or image.format not in {"PNG", "JPEG", "WEBP"}:
            raise ApiError(
                f"Invalid image file or mode for image '{upload.name}', please check your image file.",
                "image",
                "invalid_image_format",
            )
        params.images.append(image)
    if mask is not None:
        decoded = decode_image(mask.read())
        if decoded is None or decoded.format != "PNG":
            raise ApiError("Invalid mask image: it must be a PNG file.", "mask", "invalid_image_format")
        if decoded.size != params.images[0].size:
            raise ApiError(
                "Invalid mask image: the mask must be the same size as the image "
                f"({params.images[0].size[0]}x{params.images[0].size[1]}), got "
                f"{decoded.size[0]}x{decoded.size[1]}.",
                "mask",
                "invalid_mask_size",
            )
        params.mask = decoded


def validate_markup(params: Params, markup, has_mask: bool) -> None:
    """Edits with `markup` (a 2.5 model: validate() checked): a PNG with transparency the
    size of the first image, never together with a mask."""
    from compare.simulator.common import decode_image

    if has_mask:
        raise ApiError("'markup' cannot be used together with 'mask'.", "markup", "invalid_value")
    decoded = decode_image(markup.read())
    if decoded is None or decoded.format != "PNG" or "A" not in decoded.getbands():
        raise ApiError(
            "Invalid markup image: it must be a PNG file with an alpha channel.", "markup", "invalid_image_format"
        )
    if params.images and decoded.size != params.images[0].size:
        raise ApiError(
            "Invalid markup image: the markup must be the same size as the image "
            f"({params.images[0].size[0]}x{params.images[0].size[1]}), got {decoded.size[0]}x{decoded.size[1]}.",
            "markup",
            "invalid_image_size",
        )
    params.markup = decoded


def output_tokens(width: int, height: int, quality: str) -> int:
    """Tokens whose price at $30/M equals the published per-image price; other sizes scale by pixels."""
    index = QUALITY_INDEX.get(quality, 1)
    price = PRICE_TABLE.get(f"{width}x{height}")
    if price:
        return round(price[index] / OUTPUT_PER_MTOK * 1_000_000)
    base = round(PRICE_TABLE["1024x1024"][index] / OUTPUT_PER_MTOK * 1_000_000)
    return max(1, round(base * width * height / (1024 * 1024)))


def image_input_tokens(image) -> int:
    """Vision-style tiling estimate: 85 + 170 per 512-px tile after scaling to fit 2048 / short side 768."""
    w, h = image.size
    scale = min(1.0, 2048 / max(w, h))
    w, h = w * scale, h * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    return 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)


def stream_usage(found: dict) -> dict:
    """A stream's completed event reports usage without `output_tokens_details` (the SDK's
    ImageGenCompletedEvent / ImageEditCompletedEvent usage types have no such field)."""
    return {key: value for key, value in found.items() if key != "output_tokens_details"}


def usage(params: Params, images_out: int, partials: int = 0) -> dict:
    if params.gateway_size:
        from compare.simulator.openai import gateway

        return gateway.usage(params, images_out)
    text = max(1, math.ceil(len(params.prompt) / 4))
    image_in = sum(image_input_tokens(i) for i in params.images)
    width, height = params.resolved_size()
    out = images_out * output_tokens(width, height, params.resolved_quality()) + partials * PARTIAL_IMAGE_TOKENS
    return usage_shape(text, image_in, out)


def usage_shape(text: int, image_in: int, out: int) -> dict:
    """Token counts in the Images API reply's `usage` shape."""
    return {
        "input_tokens": text + image_in,
        "input_tokens_details": {"text_tokens": text, "image_tokens": image_in},
        "output_tokens": out,
        "output_tokens_details": {"image_tokens": out, "text_tokens": 0},
        "total_tokens": text + image_in + out,
    }

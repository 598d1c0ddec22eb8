"""What the Gemini generateContent API accepts for image models (Google's Gemini API reference).

The request is read the way Google's protobuf-JSON parser reads it: camelCase
or snake_case keys, unknown field names rejected.
"""

import math
import re
from dataclasses import dataclass, field

from PIL import Image as PILImage

from compare.registry import COMMON_ASPECTS
from compare.simulator.common import RETIRED_IDS, b64decode, configured_models, decode_image
from compare.sizes import gemini_pixels

EXTRA_ASPECTS = ["1:4", "4:1", "1:8", "8:1"]
MAX_REFERENCES = 14


@dataclass(frozen=True)
class ModelSpec:
    model_id: str
    display_name: str
    aspects: tuple[str, ...] = tuple(COMMON_ASPECTS)
    image_sizes: tuple[str, ...] = ("1K", "2K", "4K")
    always_thinks: bool = False  # Pro shows a thought and a draft image on every call
    thinks: bool = False  # may show thoughts when thinkingConfig.includeThoughts is true
    grounding: bool = True


BUILTIN = {
    "gemini-3-pro-image": ModelSpec("gemini-3-pro-image", "Nano Banana Pro", always_thinks=True, thinks=True),
    "gemini-nano-banana-2.1": ModelSpec(
        "gemini-nano-banana-2.1", "Nano Banana 2.1", aspects=tuple(COMMON_ASPECTS + EXTRA_ASPECTS), thinks=True
    ),
    "gemini-3.1-flash-lite-image": ModelSpec(
        "gemini-3.1-flash-lite-image", "Nano Banana 2 Lite", image_sizes=("1K",), grounding=False
    ),
}

IMAGE_TOKENS = {"1K": 1120, "2K": 1120, "4K": 2000}
REFERENCE_TOKENS = 560

TOP_FIELDS = {
    "contents",
    "generationConfig",
    "tools",
    "toolConfig",
    "safetySettings",
    "systemInstruction",
    "cachedContent",
    "model",
}
GENERATION_FIELDS = {
    "responseModalities",
    "imageConfig",
    "thinkingConfig",
    "candidateCount",
    "temperature",
    "topP",
    "topK",
    "seed",
    "maxOutputTokens",
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "mediaResolution",
    "enableEnhancedCivicAnswers",
}
IMAGE_CONFIG_FIELDS = {"aspectRatio", "imageSize"}


class ApiError(Exception):
    def __init__(self, message: str, code: int = 400, status: str = "INVALID_ARGUMENT"):
        super().__init__(message)
        self.message, self.code, self.status = message, code, status


@dataclass
class Request:
    spec: ModelSpec
    prompt: str  # the text of the last user turn, markers included
    references: list = field(default_factory=list)  # Pillow images, or None for fileData parts
    aspect: str = "1:1"
    image_size: str = "1K"
    want_text: bool = True
    want_image: bool = True
    include_thoughts: bool = False
    search: bool = False
    image_search: bool = False

    @property
    def show_thoughts(self) -> bool:
        return self.spec.always_thinks or (self.spec.thinks and self.include_thoughts)


def known_models() -> dict[str, ModelSpec]:
    """Built-in ids plus every gemini id in the registry (with the registry's capabilities)."""
    specs = dict(BUILTIN)
    for model in configured_models():
        if model.protocol == "gemini" and model.model_id not in specs and model.model_id not in RETIRED_IDS:
            caps = model.capabilities
            specs[model.model_id] = ModelSpec(
                model.model_id,
                model.label,
                tuple(caps.aspect_ratios),
                tuple(caps.image_sizes),
                grounding=caps.grounding,
            )
    return specs


def camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def normalise(value):
    """snake_case keys → camelCase, recursively (the real parser accepts both)."""
    if isinstance(value, dict):
        return {camel(k): normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def _unknown(fields: dict, known: set[str], where: str) -> None:
    for name in fields:
        if name not in known:
            at = f" at '{where}'" if where else ""
            raise ApiError(f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.')


def pixel_size(aspect: str, image_size: str) -> tuple[int, int]:
    """Gemini's own pixel sizes: the one table and rule in compare/sizes.py."""
    return gemini_pixels(aspect, image_size)


def nearest_aspect(spec: ModelSpec, width: int, height: int) -> str:
    return min(
        spec.aspects, key=lambda a: abs(math.log((int(a.split(":")[0]) / int(a.split(":")[1])) / (width / height)))
    )


def _parts(body: dict) -> tuple[list[dict], list[dict]]:
    """(all parts, parts of the last user turn)."""
    contents = body.get("contents")
    if isinstance(contents, dict):  # a lone Content is accepted as a list of one
        contents = [contents]
    if not isinstance(contents, list) or not contents:
        raise ApiError("* GenerateContentRequest.contents: contents is not specified\n")
    all_parts, last_user = [], []
    for content in contents:
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list) or not parts:
            raise ApiError("* GenerateContentRequest.contents.parts: contents.parts must not be empty.\n")
        all_parts.extend(parts)
        if content.get("role", "user") == "user":
            last_user = parts
    return all_parts, last_user


def _references(parts: list[dict], spec: ModelSpec) -> list:
    images = [
        p for p in parts if isinstance(p, dict) and ("inlineData" in p or "fileData" in p) and not p.get("thought")
    ]
    if len(images) > MAX_REFERENCES:
        raise ApiError(
            f"The request has {len(images)} input images; models/{spec.model_id} accepts at most {MAX_REFERENCES}."
        )
    references: list[PILImage.Image | None] = []
    for part in images:
        if "fileData" in part:
            references.append(None)
            continue
        inline = part["inlineData"] or {}
        raw = b64decode(inline.get("data", "")) if isinstance(inline, dict) else None
        image = decode_image(raw) if raw else None
        if image is None:
            raise ApiError(
                "Unable to process input image. Please retry or report in "
                "https://developers.generativeai.google/guide/troubleshooting"
            )
        references.append(image)
    return references


def _image_config(req: Request, config: dict, spec: ModelSpec) -> None:
    _unknown(config, IMAGE_CONFIG_FIELDS, "generation_config.image_config")
    aspect, size = config.get("aspectRatio"), config.get("imageSize")
    if aspect is not None:
        if aspect not in spec.aspects:
            raise ApiError(
                f"* GenerateContentRequest.generation_config.image_config.aspect_ratio: "
                f"unsupported aspect ratio {aspect!r} for models/{spec.model_id}. Supported: "
                f"{', '.join(spec.aspects)}.\n"
            )
        req.aspect = aspect
    if size is not None:
        if size not in spec.image_sizes:
            raise ApiError(
                f"* GenerateContentRequest.generation_config.image_config.image_size: "
                f"unsupported image size {size!r} for models/{spec.model_id}. Supported: "
                f"{', '.join(spec.image_sizes)}.\n"
            )
        req.image_size = size


def _generation_config(req: Request, config: dict, spec: ModelSpec) -> None:
    if not isinstance(config, dict):
        raise ApiError("Invalid JSON payload received. 'generation_config' must be an object.")
    _unknown(config, GENERATION_FIELDS, "generation_config")
    modalities = config.get("responseModalities")
    if modalities:
        upper = {str(m).upper() for m in modalities}
        if upper - {"TEXT", "IMAGE"}:
            raise ApiError(
                f"The requested combination of response modalities ({', '.join(sorted(upper))}) "
                f"is not supported by models/{spec.model_id}."
            )
        req.want_text, req.want_image = "TEXT" in upper, "IMAGE" in upper
    count = config.get("candidateCount")
    if count not in (None, 1):
        raise ApiError(f"Multiple candidates is not enabled for models/{spec.model_id}.")
    req.include_thoughts = bool((config.get("thinkingConfig") or {}).get("includeThoughts"))
    _image_config(req, config.get("imageConfig") or {}, spec)


def _tools(req: Request, tools, spec: ModelSpec) -> None:
    for tool in tools or []:
        search = tool.get("googleSearch") if isinstance(tool, dict) else None
        if search is None:
            continue
        if not spec.grounding:
            raise ApiError(f"Search as tool is not enabled for models/{spec.model_id}")
        req.search = True
        req.image_search = "imageSearch" in ((search or {}).get("searchTypes") or {})


def parse(body: dict, model_id: str) -> Request:
    spec = known_models().get(model_id)
    if spec is None:
        raise ApiError(
            f"models/{model_id} is not found for API version v1beta, or is not supported for "
            "generateContent. Call ListModels to see the list of available models and their "
            "supported methods.",
            404,
            "NOT_FOUND",
        )
    body = normalise(body)
    _unknown(body, TOP_FIELDS, "")
    all_parts, user_parts = _parts(body)
    prompt = "\n".join(
        p["text"] for p in user_parts if isinstance(p, dict) and isinstance(p.get("text"), str) and not p.get("thought")
    )
    req = Request(spec=spec, prompt=prompt, references=_references(all_parts, spec))
    if req.references and req.references[0] is not None:
        req.aspect = nearest_aspect(spec, *req.references[0].size)  # Gemini follows the input's shape
    _generation_config(req, body.get("generationConfig") or {}, spec)
    _tools(req, body.get("tools"), spec)
    return req


def usage(req: Request, image: bool = True, thoughts: int = 0, blocked_prompt: bool = False) -> dict:
    text = max(1, math.ceil(len(req.prompt) / 4))
    image_in = REFERENCE_TOKENS * len(req.references)
    prompt_details = [{"modality": "TEXT", "tokenCount": text}]
    if image_in:
        prompt_details.append({"modality": "IMAGE", "tokenCount": image_in})
    result: dict[str, object] = {"promptTokenCount": text + image_in}
    candidates = IMAGE_TOKENS[req.image_size] if image else 0
    if not blocked_prompt:
        result["candidatesTokenCount"] = candidates
    result["totalTokenCount"] = text + image_in + candidates + thoughts
    result["promptTokensDetails"] = prompt_details
    if candidates:
        result["candidatesTokensDetails"] = [{"modality": "IMAGE", "tokenCount": candidates}]
    if thoughts:
        result["thoughtsTokenCount"] = thoughts
    return result


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48] or "image"

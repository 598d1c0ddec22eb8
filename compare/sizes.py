"""One canonical size choice (aspect ratio + resolution, or explicit WxH),
mapped onto each model's own parameters, by its registry sizes mode:

- wxh (gpt-image-2, 2.5): any WIDTHxHEIGHT whose edges are multiples of 16, ratio ≤ 3:1,
  long edge ≤ 3840 and 655,360–8,294,400 pixels;
- fixed (gpt-image-1.5, 1-mini, chatgpt-image-latest, 2.6): only the listed sizes and
  "auto", so a choice becomes the nearest listed size (the real API answers 400 otherwise);
- aspect (Gemini): aspectRatio + imageSize, snapped to what the model lists;
- gemini-wxh (an OpenAI-compatible gateway serving Gemini): the WIDTHxHEIGHT of Gemini's own
  size table for that aspectRatio + imageSize, which the gateway reads back with the same rule
  (`gemini_size_class`), so the image delivered is the size sent.

`size_change` says in words when a model gets something other than what was chosen; the
form's notes (compare/options.py) and the fairness ledger (compare/judging/fairness.py) use it.
"""

import math
import re

MIN_PIXELS = 655_360
MAX_PIXELS = 8_294_400
MAX_EDGE = 3840
MAX_RATIO = 3.0
# Target pixel counts for the canonical resolutions.
RESOLUTION_PIXELS = {"1K": 1024 * 1024, "2K": 2048 * 2048, "4K": MAX_PIXELS}
# The three sizes every GPT image model accepts (and gpt-image-2 renders fastest).
CLASSIC_SIZES = {"1:1": "1024x1024", "3:2": "1536x1024", "2:3": "1024x1536"}
# Gemini's documented pixel sizes at 1K per aspect ratio (Google's image-generation
# table); 2K and 4K are exact multiples (`GEMINI_SIZE_FACTOR`). The specification check
# (compare/checks/spec.py) and the simulator (compare/simulator/gemini/rules.py) both read
# them here. The four long ratios of the 14-ratio models (Nano Banana 2 and 2.1) come from
# the same table and match the sizes those models return: about a megapixel with edges that
# are multiples of 16 (512×2064 holds 1.06 MP, not exactly 1024²).
GEMINI_SIZES_1K = {
    "1:1": (1024, 1024),
    "2:3": (848, 1264),
    "3:2": (1264, 848),
    "3:4": (896, 1200),
    "4:3": (1200, 896),
    "4:5": (928, 1152),
    "5:4": (1152, 928),
    "9:16": (768, 1376),
    "16:9": (1376, 768),
    "21:9": (1584, 672),
    "1:4": (512, 2064),
    "4:1": (2064, 512),
    "1:8": (352, 2928),
    "8:1": (2928, 352),
}
GEMINI_SIZE_FACTOR = {"1K": 1, "2K": 2, "4K": 4}
# A WxH is read as the smallest size class whose own long edge (at the nearest aspect) is at
# least 1/GEMINI_CLASS_REACH of the asked one: Gemini's table sizes map back to their own class
# (8:1 at 1K is 2928 px long), 1536×864 is 1K, 2048×2048 is 2K and 3840×2160 is 4K.
GEMINI_CLASS_REACH = 1.25
GEMINI_SIZE_MODES = {"aspect", "gemini-wxh"}
WXH = re.compile(r"^\s*(\d{2,5})\s*[xX×]\s*(\d{2,5})\s*$")


def parse_wxh(value: str) -> tuple[int, int] | None:
    match = WXH.match(value or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def openai_size_problem(width: int, height: int) -> str | None:
    """Why gpt-image-2 would reject this size, in words a designer understands; None if valid."""
    if width % 16 or height % 16:
        return f"{width}×{height}: both edges must be multiples of 16."
    if max(width, height) > MAX_EDGE:
        return f"{width}×{height}: the long edge may be at most {MAX_EDGE} pixels."
    if max(width, height) / min(width, height) > MAX_RATIO:
        return f"{width}×{height}: the ratio may be at most 3:1."
    pixels = width * height
    if pixels < MIN_PIXELS:
        return f"{width}×{height}: at least {MIN_PIXELS:,} pixels are needed (e.g. 1024×640)."
    if pixels > MAX_PIXELS:
        return f"{width}×{height}: at most {MAX_PIXELS:,} pixels are allowed (e.g. 3840×2160)."
    return None


def _ratio(aspect: str) -> float:
    w, h = aspect.split(":")
    return int(w) / int(h)


def openai_size(aspect: str, resolution: str, explicit: str | None = None, caps=None) -> str:
    """The `size` field for the OpenAI Images API. With the model's capabilities, a
    model with a fixed list of sizes gets the nearest of them (see `fixed_size`)."""
    if caps is not None and caps.sizes == "fixed":
        return fixed_size(caps.fixed_sizes, aspect, explicit)
    if caps is not None and caps.sizes == "gemini-wxh":
        config = gemini_config(aspect, resolution, explicit, caps)
        if "aspectRatio" not in config:
            return "auto"
        return "{}x{}".format(*gemini_pixels(config["aspectRatio"], config["imageSize"]))
    if explicit:
        return explicit.lower().replace("×", "x").replace(" ", "")
    if aspect == "auto":
        return "auto"
    if resolution == "1K" and aspect in CLASSIC_SIZES:
        return CLASSIC_SIZES[aspect]
    # 1:4, 1:8 and their landscape twins are beyond the API's 3:1: take 3:1 instead.
    ratio = min(max(_ratio(aspect), 1 / MAX_RATIO), MAX_RATIO)
    target = RESOLUTION_PIXELS[resolution]
    width = math.sqrt(target * ratio)
    height = width / ratio
    long_edge = max(width, height)
    if long_edge > MAX_EDGE:
        width, height = width * MAX_EDGE / long_edge, height * MAX_EDGE / long_edge
    w, h = int(width // 16 * 16), int(height // 16 * 16)
    while w * h > MAX_PIXELS or max(w, h) > MAX_RATIO * min(w, h):
        w, h = (w - 16, h) if w >= h else (w, h - 16)
    return f"{w}x{h}"


def fixed_size(allowed: tuple[str, ...], aspect: str, explicit: str | None = None) -> str:
    """The listed size nearest in shape to the choice (an explicit WxH, else the aspect
    ratio); "auto" stays "auto". A model with a fixed list renders about one megapixel
    whatever the resolution asked, so only the shape decides."""
    parsed = parse_wxh(explicit) if explicit else None
    if parsed is None and aspect == "auto":
        return "auto"
    wanted = parsed[0] / parsed[1] if parsed else _ratio(aspect)
    if parsed and f"{parsed[0]}x{parsed[1]}" in allowed:
        return f"{parsed[0]}x{parsed[1]}"

    def distance(size: str) -> float:
        w, h = parse_wxh(size) or (1, 1)
        return abs(math.log((w / h) / wanted))

    return min(allowed, key=distance)


def takes_aspect(caps, aspect: str) -> bool:
    """Whether the model renders this aspect ratio as such (else it snaps: `size_change`)."""
    if aspect == "auto":
        return True
    if caps.sizes in GEMINI_SIZE_MODES:
        return aspect in caps.aspect_ratios
    if caps.sizes == "fixed":
        return any(abs(_ratio(aspect) - w / h) < 0.01 for w, h in filter(None, map(parse_wxh, caps.fixed_sizes)))
    return 1 / MAX_RATIO <= _ratio(aspect) <= MAX_RATIO


def _asked(aspect: str, resolution: str, explicit: str | None) -> str:
    return explicit.replace("x", "×") if explicit else f"{aspect} at {resolution}"


def size_change(caps, aspect: str, resolution: str, explicit: str | None = None) -> tuple[str, str] | None:
    """(what was chosen, what this model gets instead) in words, e.g. ("16:9 at 2K",
    "1536×1024"), or None when it gets what was chosen. The one place that decides
    whether a size was adapted; `size_note` and the fairness ledger word it."""
    explicit = explicit or None
    asked = _asked(aspect, resolution, explicit)
    if caps.sizes in GEMINI_SIZE_MODES:
        cfg = gemini_config(aspect, resolution, explicit, caps)
        given = f"{cfg.get('aspectRatio', 'auto')} at {cfg['imageSize']}"
        if caps.sizes == "gemini-wxh" and "aspectRatio" in cfg:
            given += " ({}×{})".format(*gemini_pixels(cfg["aspectRatio"], cfg["imageSize"]))
        elif caps.sizes == "gemini-wxh" and cfg["imageSize"] != "1K":
            return asked, "auto at the gateway's own size"  # a size "auto" carries no size class
        if explicit or cfg["imageSize"] != resolution or cfg.get("aspectRatio", "auto") != aspect:
            return asked, given
        return None
    sent = openai_size(aspect, resolution, explicit, caps)
    wanted = openai_size(aspect, resolution, explicit)  # what the any-size (gpt-image-2) rules give
    beyond_3_to_1 = aspect != "auto" and not explicit and not 1 / MAX_RATIO <= _ratio(aspect) <= MAX_RATIO
    if (caps.sizes == "fixed" and sent != wanted) or beyond_3_to_1:
        return asked, sent.replace("x", "×")
    return None


def size_note(model, aspect: str, resolution: str, explicit: str | None = None) -> str | None:
    """The form's sentence for `size_change`, naming the model and why."""
    change = size_change(model.capabilities, aspect, resolution, explicit)
    if change is None:
        return None
    asked, given = change
    caps = model.capabilities
    if caps.sizes == "fixed":
        listed = ", ".join(s.replace("x", "×") for s in caps.fixed_sizes)
        return f"{model.label} takes only {listed} (or auto): {asked} becomes {given}."
    if caps.sizes in GEMINI_SIZE_MODES and explicit:
        return f"{model.label} takes an aspect ratio and size class, not pixels: {asked} becomes {given}."
    if caps.sizes in GEMINI_SIZE_MODES:
        return f"{model.label} cannot do {asked}; it gets {given}."
    return f"{model.label} takes shapes up to 3:1: {asked} becomes {given}."


def gemini_config(aspect: str, resolution: str, explicit: str | None = None, caps=None) -> dict:
    """The `imageConfig` for Gemini. An explicit WxH becomes its nearest aspect and
    size class; with the model's capabilities, both snap to what the model offers."""
    from compare.registry import ALL_ASPECTS, IMAGE_SIZES

    aspects = list(caps.aspect_ratios) if caps and caps.aspect_ratios else ALL_ASPECTS
    image_sizes = list(caps.image_sizes) if caps and caps.image_sizes else IMAGE_SIZES
    if explicit:
        parsed = parse_wxh(explicit)
        if parsed:
            aspect = nearest_aspect(aspects, *parsed)
            resolution = gemini_size_class(*parsed, aspect)
    if aspect != "auto" and aspect not in aspects:
        aspect = min(aspects, key=lambda a: abs(math.log(_ratio(a) / _ratio(aspect))))
    if resolution not in image_sizes:
        # The largest size the model has that does not exceed the request, else its smallest.
        order = IMAGE_SIZES.index(resolution) if resolution in IMAGE_SIZES else 0
        fitting = [s for s in image_sizes if s in IMAGE_SIZES and IMAGE_SIZES.index(s) <= order]
        resolution = fitting[-1] if fitting else image_sizes[0]
    config = {"imageSize": resolution}
    if aspect != "auto":
        config = {"aspectRatio": aspect, **config}
    return config


def nearest_aspect(aspects, width: int, height: int) -> str:
    """The listed aspect ratio nearest in shape to width × height."""
    return min(aspects, key=lambda a: abs(math.log(_ratio(a) / (width / height))))


def gemini_pixels(aspect: str, image_size: str) -> tuple[int, int]:
    """The pixel size Gemini draws for this aspect ratio and size class (its documented table;
    an aspect outside it gets about a megapixel per 1K, edges on multiples of 8)."""
    factor = GEMINI_SIZE_FACTOR[image_size]
    if aspect in GEMINI_SIZES_1K:
        w, h = GEMINI_SIZES_1K[aspect]
    else:
        side = math.sqrt(1024 * 1024 * _ratio(aspect))
        w, h = round(side / 8) * 8, round(side / _ratio(aspect) / 8) * 8
    return w * factor, h * factor


def gemini_size_class(width: int, height: int, aspect: str) -> str:
    """The Gemini size class ("1K", "2K", "4K") a WIDTHxHEIGHT asks for, at `aspect` (the
    ratio it snaps to): the one rule for an explicit size sent to Gemini (`gemini_config`) and
    for a gateway reading a `size` (compare/simulator/openai/gateway.py). See GEMINI_CLASS_REACH."""
    long_edge = max(width, height)
    for image_size in ("1K", "2K"):
        if long_edge <= GEMINI_CLASS_REACH * max(gemini_pixels(aspect, image_size)):
            return image_size
    return "4K"

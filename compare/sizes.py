"""One canonical size choice (aspect ratio + resolution, or explicit WxH),
mapped onto each protocol's own parameters.

gpt-image-2 takes any WIDTHxHEIGHT whose edges are multiples of 16, ratio ≤ 3:1,
long edge ≤ 3840 and 655,360–8,294,400 pixels. Gemini takes aspectRatio + imageSize.
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
# Gemini's documented pixel sizes at 1K per aspect ratio; 2K and 4K are exact multiples
# (`GEMINI_SIZE_FACTOR`). The specification check (compare/checks/spec.py) and the
# simulator (compare/simulator/gemini/rules.py) both read them here.
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
}
GEMINI_SIZE_FACTOR = {"1K": 1, "2K": 2, "4K": 4}
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


def openai_size(aspect: str, resolution: str, explicit: str | None = None) -> str:
    """The `size` field for the OpenAI Images API."""
    if explicit:
        return explicit.lower().replace("×", "x").replace(" ", "")
    if aspect == "auto":
        return "auto"
    if resolution == "1K" and aspect in CLASSIC_SIZES:
        return CLASSIC_SIZES[aspect]
    ratio = _ratio(aspect)
    target = RESOLUTION_PIXELS[resolution]
    width = math.sqrt(target * ratio)
    height = width / ratio
    long_edge = max(width, height)
    if long_edge > MAX_EDGE:
        width, height = width * MAX_EDGE / long_edge, height * MAX_EDGE / long_edge
    w, h = int(width // 16 * 16), int(height // 16 * 16)
    while w * h > MAX_PIXELS:
        w, h = (w - 16, h) if w >= h else (w, h - 16)
    return f"{w}x{h}"


def gemini_config(aspect: str, resolution: str, explicit: str | None = None, caps=None) -> dict:
    """The `imageConfig` for Gemini. An explicit WxH becomes its nearest aspect and
    size class; with the model's capabilities, both snap to what the model offers."""
    from compare.registry import ALL_ASPECTS, IMAGE_SIZES

    aspects = list(caps.aspect_ratios) if caps and caps.aspect_ratios else ALL_ASPECTS
    image_sizes = list(caps.image_sizes) if caps and caps.image_sizes else IMAGE_SIZES
    if explicit:
        parsed = parse_wxh(explicit)
        if parsed:
            w, h = parsed
            aspect = min(aspects, key=lambda a: abs(math.log(_ratio(a) / (w / h))))
            long_edge = max(w, h)
            resolution = "1K" if long_edge <= 1536 else "2K" if long_edge <= 2560 else "4K"
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

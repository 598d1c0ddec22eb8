"""The specification check: did the model deliver what was asked for?

What was asked is read from the parameters sent on the wire (`Generation.params_sent`,
written by the adapters in compare/providers/ from compare/sizes.py), so the check
judges each model against its own request:

- size: gpt-image-2 and the other OpenAI image models get an explicit `size` ("1536x1024",
  edges already multiples of 16: compare/sizes.py `openai_size`) and deliver exactly
  that; Gemini gets `aspectRatio` + `imageSize` and delivers the pixel size of its
  documented table (`sizes.GEMINI_SIZES_1K` × 1, 2 or 4). An edge may differ by `SIZE_SLACK` pixels
  or 1 %, whichever is more (rounding). Nothing is checked when the model chose
  ("auto", or no aspect ratio sent).
- aspect: the delivered width / height within `ASPECT_TOLERANCE` of the ratio asked.
- format: png / jpeg / webp, when an `output_format` was sent.
- transparency: when a transparent background was asked for, the image must have an
  alpha channel *and* some fully transparent pixels.
- count: final images delivered against the number asked (`n`, or Gemini's one
  request per image).

Each result is a "spec item" of the schema in compare/checks/__init__.py.
"""

import math
from dataclasses import dataclass
from typing import Any

from PIL import Image

from compare import sizes

SIZE_SLACK = 16  # pixels per edge
ASPECT_TOLERANCE = 0.03  # relative


@dataclass(frozen=True)
class Asked:
    """What the request asked for, as far as it said (None: the model decides)."""

    size: tuple[int, int] | None = None
    aspect: tuple[str, float] | None = None  # ("16:9", 1.777…)
    format: str | None = None
    transparent: bool = False
    count: int = 1


def _ratio(label: str) -> float | None:
    try:
        w, h = (float(x) for x in label.split(":"))
        return w / h if w > 0 and h > 0 else None
    except ValueError:
        return None


def _aspect_label(width: int, height: int) -> str:
    """ "3:2" for 1536×1024; "2:3" for 848×1264 (Gemini's own 2:3); "1.771:1" when the reduced
    ratio is no simple one (1360×768)."""
    if width <= 0 or height <= 0:
        return "?"
    for label in sizes.GEMINI_SIZES_1K:
        if any(sizes.gemini_pixels(label, size) == (width, height) for size in sizes.GEMINI_SIZE_FACTOR):
            return label
    d = math.gcd(width, height)
    if max(width, height) // d <= 21:
        return f"{width // d}:{height // d}"
    return f"{width / height:.3f}:1"


def _gemini_pixels(aspect: str, image_size: str | None) -> tuple[int, int] | None:
    """What Gemini draws (compare/sizes.py `gemini_pixels`), or None for values it would refuse."""
    if (image_size or "1K") not in sizes.GEMINI_SIZE_FACTOR or _ratio(aspect) is None:
        return None
    return sizes.gemini_pixels(aspect, image_size or "1K")


def asked_for(sent: dict[str, Any], options: dict[str, Any]) -> Asked:
    """What a generation asked for, from its wire parameters (and its options for the count)."""
    sent = sent or {}
    size = aspect = None
    if isinstance(sent.get("size"), str) and "x" in sent["size"]:
        try:
            w, h = (int(x) for x in sent["size"].lower().split("x"))
            size, aspect = (w, h), (_aspect_label(w, h), w / h)
        except ValueError:
            pass
    config = (sent.get("generationConfig") or {}).get("imageConfig") or {}
    if isinstance(config.get("aspectRatio"), str):
        label = config["aspectRatio"]
        ratio = _ratio(label)
        if ratio is not None:
            aspect = (label, ratio)
            size = _gemini_pixels(label, config.get("imageSize"))
    fmt = sent.get("output_format")
    count = sent.get("n", sent.get("requests", options.get("n", 1)))
    try:
        count = max(1, int(count))
    except (TypeError, ValueError):
        count = 1
    return Asked(
        size=size,
        aspect=aspect,
        format=str(fmt).lower().replace("jpg", "jpeg") if fmt else None,
        transparent=sent.get("background") == "transparent",
        count=count,
    )


def wire_guess(model: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The size, format, background and count parameters the adapters would send for
    these options (compare/sizes.py), for a generation without recorded `params_sent`."""
    if model is None:
        return {}
    aspect, resolution = options.get("aspect_ratio", "1:1"), options.get("resolution", "1K")
    explicit = options.get("size") or None
    n = options.get("n", 1)
    caps = model.capabilities
    if model.protocol == "gemini":
        config = sizes.gemini_config(aspect, resolution, explicit, caps)
        if not caps.image_sizes:
            config.pop("imageSize", None)
        return {"generationConfig": {"imageConfig": config}, "requests": n}
    sent: dict[str, Any] = {"n": n, "size": sizes.openai_size(aspect, resolution, explicit, caps)}
    if caps.output_formats:
        sent["output_format"] = options.get("output_format", "png")
    if caps.backgrounds:
        sent["background"] = options.get("background", "auto")
    return sent


def _item(name: str, expected: str, actual: str, passed: bool) -> dict[str, Any]:
    return {"name": name, "expected": expected, "actual": actual, "passed": bool(passed)}


def _near(actual: int, expected: int) -> bool:
    return abs(actual - expected) <= max(SIZE_SLACK, expected / 100)


def has_transparency(image: Image.Image) -> tuple[bool, bool]:
    """(has an alpha channel, has some fully transparent pixel)."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if "A" not in image.getbands():
        return False, False
    low, _high = image.getchannel("A").getextrema()
    return True, low == 0


def check_image(asked: Asked, image: Image.Image, fmt: str) -> list[dict[str, Any]]:
    """The spec items of one delivered image (decoded) stored in format `fmt`."""
    width, height = image.size
    items = []
    if asked.size:
        ew, eh = asked.size
        items.append(_item("size", f"{ew}×{eh}", f"{width}×{height}", _near(width, ew) and _near(height, eh)))
    if asked.aspect:
        label, ratio = asked.aspect
        delivered = width / height if height else 0.0
        ok = ratio > 0 and abs(delivered / ratio - 1) <= ASPECT_TOLERANCE
        items.append(_item("aspect", label, _aspect_label(width, height), ok))
    if asked.format:
        items.append(_item("format", asked.format, fmt, fmt == asked.format))
    if asked.transparent:
        alpha, clear = has_transparency(image)
        found = "transparent pixels" if clear else "alpha channel, nothing transparent" if alpha else "no alpha channel"
        items.append(_item("transparency", "transparent pixels", found, clear))
    return items


def check_count(asked: Asked, delivered: int) -> dict[str, Any]:
    return _item("count", str(asked.count), str(delivered), delivered >= asked.count)

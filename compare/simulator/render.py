"""Deterministic placeholder images for the simulator, drawn with Pillow.

Designers compare simulated results side by side, so each picture must say
at a glance what it is: the prompt's quoted text drawn large, the model in a
corner, a trace of every reference image, and colours that differ between
models and between the n images of one request. Everything derives from a
hash, so the same request always gives the same bytes.

Speed matters more than beauty (a 4K PNG must not stall a test run): the
background and shapes are drawn on a tiny canvas and scaled up, and PNGs are written
unfiltered at zlib-ng's fastest level (`png`).

Wrong text on purpose, to prove the automatic text check (compare/checks/) catches it:
prompt markers that change the text drawn, never drawn themselves (`misrender`):

    [[swap:钜>巨]]                 draw 巨 wherever the prompt says 钜 (any string > any string)
    [[drop:Dashboard]]             leave this word (or any string) out
    [[swap@gpt-image-2:钜>巨]]     only for this model id, or protocol (@openai, @gemini)

Several markers combine; they apply in order. The text check's expected strings are
read from the prompt without them (compare/checks/textcheck.py `expected_strings`).
"""

import colorsys
import hashlib
import io
import math
import re
import struct
import threading
import zlib
from collections import OrderedDict
from functools import cache, lru_cache
from pathlib import Path

from django.conf import settings
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from compare.images import pixel_work

try:  # zlib-ng: the same deflate stream, two to three times faster at level 1
    from zlib_ng.zlib_ng import compressobj
except ImportError:  # pragma: no cover - a platform without its wheel
    from zlib import compressobj  # type: ignore[assignment]
from compare.text import QUOTED

# Pillow cannot guess a font that covers CJK, so look for one we know does.
FONT_DIRS = [Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts"]
FONT_PATTERNS = [
    "NotoSansCJK-Bold.ttc",
    "NotoSansCJK*-Bold.*",
    "NotoSansCJK*.tt?",
    "NotoSerifCJK*.tt?",
    "wqy-zenhei.ttc",
    "wqy-microhei.ttc",
    "DroidSansFallback*.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans.ttf",
]
# [[swap:A>B]], [[drop:WORD]], each optionally scoped: [[swap@MODEL-OR-PROTOCOL:A>B]].
MISRENDER = re.compile(
    r"\[\[\s*(?P<op>swap|drop)\s*(?:@\s*(?P<scope>[^:\]\s]+)\s*)?:(?P<arg>[^\]]*)\]\]", re.IGNORECASE
)
SMALL = 160  # long edge of the low-resolution canvas for background and shapes
# FreeType faces are not safe to share between threads, and the app renders from a
# thread pool: text drawing (a small part of the work) takes turns.
_text_lock = threading.Lock()


@cache
def font_path() -> str | None:
    for pattern in FONT_PATTERNS:
        for folder in FONT_DIRS:
            if folder.is_dir():
                found = sorted(folder.rglob(pattern))
                if found:
                    return str(found[0])
    return None


@cache
def load_font(size: int):
    """A font at this pixel size; never raises (a missing font must not fail a request)."""
    path = font_path()
    if path:
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            pass
    try:
        return ImageFont.load_default(size=size)
    except (OSError, TypeError, ImportError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def misrender(prompt: str, protocol: str, model_id: str) -> str:
    """The prompt with its [[swap:…]] and [[drop:…]] markers applied (those scoped to
    this model id or protocol, or unscoped) and all of them removed."""
    edits = []
    for match in MISRENDER.finditer(prompt or ""):
        scope = (match.group("scope") or "").lower()
        if scope and scope not in (protocol.lower(), model_id.lower()):
            continue
        edits.append((match.group("op").lower(), match.group("arg")))
    text = MISRENDER.sub(" ", prompt or "")
    for op, arg in edits:
        if op == "swap" and ">" in arg:
            old, new = (part.strip() for part in arg.split(">", 1))
            if old:
                text = text.replace(old, new)
        elif op == "drop" and arg.strip():
            text = text.replace(arg.strip(), "")
            # A dropped word leaves no doubled space (quoted text is stripped when drawn).
            text = re.sub(r"[ \t]{2,}", " ", text)
    return text


def headline(prompt: str) -> str:
    """What to draw large: the quoted text, else the start of the prompt."""
    quoted = [next(g for g in m.groups() if g) for m in QUOTED.finditer(prompt)]
    quoted = [q.strip() for q in quoted if q.strip()]
    if quoted:
        return "\n".join(quoted)
    text = " ".join(prompt.split())
    if len(text) <= 40:
        return text
    cut = text[:40].rsplit(" ", 1)[0] if " " in text[:40] else text[:40]
    return cut + "…"


def seed_bytes(*parts) -> bytes:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()


def _palette(seed: bytes) -> list[tuple[int, int, int]]:
    # Pastel-to-mid tones around one hue with a complementary accent: pleasant, never muddy.
    hue = seed[0] / 255
    specs = [(0.0, 0.45, 0.96), (0.09, 0.55, 0.86), (-0.08, 0.5, 0.72), (0.5, 0.35, 0.9)]
    colours = []
    for shift, sat, val in specs:
        r, g, b = colorsys.hsv_to_rgb((hue + shift) % 1.0, sat, val)
        colours.append((int(r * 255), int(g * 255), int(b * 255)))
    return colours


def _small_size(width: int, height: int) -> tuple[int, int]:
    scale = SMALL / max(width, height)
    return max(2, round(width * scale)), max(2, round(height * scale))


def background(seed: bytes, width: int, height: int) -> Image.Image:
    """A soft four-corner gradient with a few translucent shapes, as RGB."""
    colours = _palette(seed)
    corners = Image.new("RGB", (2, 2))
    corners.putdata(colours)
    sw, sh = _small_size(width, height)
    small = corners.resize((sw, sh), Image.Resampling.BICUBIC).convert("RGBA")
    overlay = Image.new("RGBA", (sw, sh), (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for i in range(6):
        b = seed[4 + i * 4 : 8 + i * 4]
        cx, cy = b[0] / 255 * sw, b[1] / 255 * sh
        radius = (0.08 + b[2] / 255 * 0.25) * max(sw, sh)
        tint = (255, 255, 255) if b[3] % 2 else colours[3]
        box = [cx - radius, cy - radius, cx + radius, cy + radius]
        if b[3] % 3 == 0:
            draw.rounded_rectangle(box, radius=radius / 3, fill=(*tint, 70))
        else:
            draw.ellipse(box, fill=(*tint, 80))
    # Blurring the tiny canvas turns aliased shapes into soft bokeh once scaled up.
    small = Image.alpha_composite(small, overlay).convert("RGB").filter(ImageFilter.GaussianBlur(1.5))
    # Bilinear: the blurred canvas has no edge that bicubic would keep sharper, at 2/3 of its
    # time; to half the size, then doubled: neighbours differ by a level or two at most, a
    # step no eye sees, and the background takes half the time it took at full size.
    half = small.resize(((width + 1) // 2, (height + 1) // 2), Image.Resampling.BILINEAR)
    return half.resize((width, height), Image.Resampling.NEAREST)


def _cover(image: Image.Image, width: int, height: int) -> Image.Image:
    return ImageOps.fit(image.convert("RGB"), (width, height), Image.Resampling.BILINEAR)


def apply_edit_base(canvas: Image.Image, base: Image.Image, mask: Image.Image | None) -> Image.Image:
    """Edits keep the first input image: outside the mask untouched, inside (alpha 0) regenerated."""
    base = _cover(base, *canvas.size)
    if mask is None:
        return Image.blend(base, canvas, 0.55)
    alpha = _cover(mask.convert("RGBA").getchannel("A").convert("RGB"), *canvas.size).convert("L")
    keep = alpha.point(lambda a: 255 if a > 0 else 0)
    return Image.composite(base, canvas, keep)


def paste_references(canvas: Image.Image, references: list[Image.Image | None], safe: int = 0) -> None:
    """Thumbnails of the reference images in a strip along the bottom edge."""
    if not references:
        return
    width, height = canvas.size
    margin = max(4, min(width, height) // 40)
    room = width - 2 * safe - margin
    thumb = max(16, min(min(width, height) // 6, room // len(references) - margin))
    x, y = safe + margin, height - safe - margin - thumb
    draw = ImageDraw.Draw(canvas)
    border = max(1, thumb // 32)
    for ref in references:
        if x + thumb > width - safe:
            break
        draw.rectangle([x - border, y - border, x + thumb + border - 1, y + thumb + border - 1], fill="white")
        if ref is None:  # e.g. a Gemini fileData reference we cannot fetch
            draw.rectangle([x, y, x + thumb - 1, y + thumb - 1], fill=(128, 128, 128))
        else:
            canvas.paste(_cover(ref, thumb, thumb), (x, y))
        x += thumb + margin


def _wrap(text: str, font, max_width: float) -> list[str]:
    """Greedy word wrap; a word wider than a line (or CJK without spaces) breaks per character."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for token in re.findall(r"\S+|\s+", paragraph):
            if token.isspace():
                line += " " if line else ""
                continue
            if font.getlength(line + token) <= max_width:
                line += token
                continue
            if line.strip():
                lines.append(line.strip())
                line = ""
            if font.getlength(token) <= max_width:
                line = token
                continue
            for char in token:
                if line and font.getlength(line + char) > max_width:
                    lines.append(line)
                    line = ""
                line += char
        if line.strip():
            lines.append(line.strip())
    return lines or [""]


def _unbreakable(text: str) -> list[str]:
    """Words that must not be broken over lines: those without CJK (which wraps per character)."""
    return [w for w in text.split() if all(ord(c) < 0x2E80 for c in w)]


def _too_long(text: str, font, line_h: float, box_w: int, box_h: int) -> bool:
    """Whether `text` certainly overflows the box at this font, however it is wrapped: its
    length on one line, less the spaces that line breaks drop, is more than the box's lines
    hold (with 2 % to spare for kerning). One measurement instead of a wrap per size: the
    sizes the ladder tries first are all too large, and wrapping at each took most of a
    picture's text work."""
    lines = int(box_h // line_h)
    flat = " ".join(text.split())
    room = lines * box_w + min(max(lines - 1, 0), flat.count(" ")) * font.getlength(" ")
    return lines < 1 or font.getlength(flat) > room * 1.02


@lru_cache(maxsize=256)
def _fit_text(text: str, box_w: int, box_h: int):
    """The largest font size (down a geometric ladder) at which the wrapped text fits the
    box with no word broken over two lines (so OCR reads the words the prompt gave).
    Remembered: a prompt sent to two models at one size is fitted once."""
    size = max(10, int(min(box_h / 2.2, box_w / 5)))
    words = _unbreakable(text)
    while True:
        font = load_font(size)
        line_h = size * 1.25
        # Ruled out before wrapping (a wrap measures every word again, a word too wide for a
        # line character by character): a word wider than the box, or text too long for it.
        if size > 10 and (any(font.getlength(w) > box_w for w in words) or _too_long(text, font, line_h, box_w, box_h)):
            size = max(10, int(size * 0.85))
            continue
        lines = tuple(_wrap(text, font, box_w))
        fits = len(lines) * line_h <= box_h and all(font.getlength(ln) <= box_w for ln in lines)
        if fits or size <= 10:
            return font, lines, line_h, size
        size = max(10, int(size * 0.85))


INK = (255, 255, 255)
OUTLINE = (30, 30, 40)
# Outlined lines of text already rasterised, as masks: drawing a line (FreeType, twice: the
# outline, then the letters) was most of the simulator's work per picture, and every
# prompt is drawn once per model, its label once per picture. Bounded by bytes; a line
# larger than a quarter of the budget (a 4K headline's) is drawn directly each time.
TEXT_CACHE_BYTES = 8 << 20
_masks: OrderedDict[tuple, tuple[int, int, Image.Image, Image.Image]] = OrderedDict()
_masks_bytes = 0


def _line_masks(line: str, size: int, stroke: int, anchor: str, start: tuple[float, float]):
    """The outline's and the letters' masks of one line, and where the drawing point is in
    them: what ImageDraw.text draws, with the same sub-pixel start, in tiles of their own."""
    font = load_font(size)
    left, top, right, bottom = font.getbbox(line, anchor=anchor, stroke_width=stroke)
    # The drawing point at whole, non-negative coordinates: its fraction is then the start's.
    ox, oy = max(0, 2 - math.floor(left)), max(0, 2 - math.floor(top))
    tile = (math.ceil(right) + ox + 2, math.ceil(bottom) + oy + 2)
    at = (ox + start[0], oy + start[1])
    outline, letters = Image.new("L", tile, 0), Image.new("L", tile, 0)
    ImageDraw.Draw(outline).text(at, line, font=font, anchor=anchor, fill=255, stroke_width=stroke, stroke_fill=255)
    ImageDraw.Draw(letters).text(at, line, font=font, anchor=anchor, fill=255)
    return ox, oy, outline, letters


def _outlined(canvas: Image.Image, xy: tuple[float, float], line: str, size: int, stroke: int, anchor: str) -> None:
    """ImageDraw.text(xy, line, INK, outlined in OUTLINE): the same pixels, from the cache
    of masks when this line was drawn before at this size and sub-pixel start. The caller
    holds `_text_lock`."""
    global _masks_bytes
    font = load_font(size)
    if not isinstance(font, ImageFont.FreeTypeFont):  # Pillow's bitmap font: no cache
        ImageDraw.Draw(canvas).text(xy, line, INK, font, anchor, stroke_width=stroke, stroke_fill=OUTLINE)
        return
    start = (math.modf(xy[0])[0], math.modf(xy[1])[0])
    key = (line, size, stroke, anchor, start)
    found = _masks.get(key)
    if found is None:
        found = _line_masks(line, size, stroke, anchor, start)
        weight = 2 * found[2].width * found[2].height
        if weight <= TEXT_CACHE_BYTES // 4:
            _masks[key] = found
            _masks_bytes += weight
            while _masks_bytes > TEXT_CACHE_BYTES:
                _, (_, _, dropped, _) = _masks.popitem(last=False)
                _masks_bytes -= 2 * dropped.width * dropped.height
    else:
        _masks.move_to_end(key)
    ox, oy, outline, letters = found
    corner = (int(xy[0]) - ox, int(xy[1]) - oy)
    canvas.paste(OUTLINE, corner, outline)
    canvas.paste(INK, corner, letters)


def draw_text(canvas: Image.Image, text: str, label: str, inset: int, safe: int) -> None:
    width, height = canvas.size
    box_w = int((width - 2 * inset) * 0.86)
    box_h = int((height - 2 * inset) * 0.55)
    _font, lines, line_h, size = _fit_text(text, box_w, box_h)
    stroke = max(1, size // 14)
    top = (height - len(lines) * line_h) / 2
    for i, line in enumerate(lines):
        _outlined(canvas, (width / 2, top + i * line_h + line_h / 2), line, size, stroke, "mm")
    small = max(10, min(width, height) // 36)
    pad = safe + max(4, small // 2)
    _outlined(canvas, (pad, pad), label, small, max(1, small // 10), "la")


def transparent_surround(canvas: Image.Image, inset: int) -> Image.Image:
    """RGBA: the picture inside a rounded card, fully transparent around it."""
    width, height = canvas.size
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).rounded_rectangle(
        [inset, inset, width - inset - 1, height - inset - 1], radius=inset, fill=255
    )
    rgba = canvas.convert("RGBA")
    rgba.putalpha(mask)
    return rgba


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


PNG_COLOUR_TYPES = {"RGB": (3, 2), "RGBA": (4, 6)}  # mode: (bytes per pixel, PNG colour type)


def png(image: Image.Image) -> bytes:
    """A PNG of an RGB or RGBA picture, its rows unfiltered (or 'Up' where a row repeats the
    one above) and deflated by zlib-ng at its fastest level: a third of the time Pillow's
    encoder takes (it tries every row filter), larger by about half. The simulator draws
    each picture it sends, and in a burst its encoding was the largest part of the work.
    Other modes go through Pillow."""
    if image.mode not in PNG_COLOUR_TYPES:
        out = io.BytesIO()
        image.save(out, "PNG", compress_level=1)
        return out.getvalue()
    width, height = image.size
    depth, colour = PNG_COLOUR_TYPES[image.mode]
    stride = width * depth
    # In bands of about 512 KB of pixels: a 4K picture's rows are never copied whole (a copy
    # of 50 MB per picture being encoded took the simulator's peak from 311 MB to 588 MB), and
    # each band's buffers stay under the heap's 1 MB threshold (compare/images.py), so the
    # next band and the next picture reuse their memory.
    band = max(1, (1 << 19) // stride)
    packer = compressobj(1)
    parts = []
    # A row equal to the one above (the background is drawn at half size and doubled) is
    # written filtered 'Up': all zeros, which deflate passes over fast and packs small.
    same = b"\2" + bytes(stride)
    above = b""
    for top in range(0, height, band):
        pixels = image.crop((0, top, width, min(height, top + band))).tobytes()
        rows = []
        for y in range(0, len(pixels), stride):
            row = pixels[y : y + stride]
            rows.append(same if row == above else b"\0" + row)  # else filter type 0: the row as it is
            above = row
        parts.append(packer.compress(b"".join(rows)))
    parts.append(packer.flush())
    return _png_file(width, height, colour, b"".join(parts))


def _png_file(width: int, height: int, colour: int, deflated: bytes) -> bytes:
    """A PNG file around its deflated rows (8 bits per channel, no interlacing)."""
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", deflated) + _chunk(b"IEND", b"")


def encode(image: Image.Image, fmt: str, compression: int | None = None) -> bytes:
    if fmt == "png":
        return png(image)
    out = io.BytesIO()
    if fmt == "webp":
        image.save(out, "WEBP", quality=100 if compression is None else compression, method=0)
    else:
        quality = 95 if compression is None else max(1, min(95, compression))
        image.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def compose(
    prompt: str,
    label: str,
    seed: bytes,
    width: int,
    height: int,
    *,
    transparent=False,
    references=(),
    edit_base=None,
    mask=None,
) -> Image.Image:
    """The final picture as a Pillow image (RGB, or RGBA when transparent)."""
    canvas = background(seed, width, height)
    if edit_base is not None:
        canvas = apply_edit_base(canvas, edit_base, mask)
    inset = max(8, min(width, height) // 14) if transparent else 0
    # Keep corner content clear of the transparent card's rounded corners.
    safe = inset + inset // 3
    paste_references(canvas, list(references), safe)
    with _text_lock:
        draw_text(canvas, headline(prompt), label, inset, safe)
    return transparent_surround(canvas, inset) if transparent else canvas


def blurred(image: Image.Image, divisor: int) -> Image.Image:
    """A preview: downscale and upscale again, the larger the divisor the blurrier."""
    width, height = image.size
    small = image.resize((max(1, width // divisor), max(1, height // divisor)), Image.Resampling.BOX)
    return small.resize((width, height), Image.Resampling.BILINEAR)


def _sketch(seed: bytes, width: int, height: int) -> Image.Image:
    """A Gemini 'thought' image at its own tiny size: the washed-out background, no text."""
    scale = 12 / max(width, height)
    sketch = background(seed, max(2, round(width * scale)), max(2, round(height * scale)))
    return Image.blend(sketch, ImageOps.grayscale(sketch).convert("RGB"), 0.6)


def draft(seed: bytes, width: int, height: int) -> Image.Image:
    """A Gemini 'thought' image: a blocky, washed-out sketch of the background, no text."""
    return _sketch(seed, width, height).resize((width, height), Image.Resampling.NEAREST)


def draft_png(seed: bytes, width: int, height: int) -> bytes:
    """`draft` as a PNG, written from its few distinct rows: a row equal to the one above
    is filtered 'Up' (all zeros), so the picture is never built or read out whole. Pro
    sends one with every image, and encoding the full picture was a sixth of the simulator's work."""
    sketch = _sketch(seed, width, height)
    rows = sketch.resize((width, sketch.height), Image.Resampling.NEAREST).tobytes()
    stride = width * 3
    distinct = [b"\0" + rows[y : y + stride] for y in range(0, len(rows), stride)]
    # Which sketch row each output row shows, by the same nearest-neighbour rule as `draft`.
    index = Image.frombytes("L", (1, sketch.height), bytes(range(sketch.height)))
    source = index.resize((1, height), Image.Resampling.NEAREST).tobytes()
    same = b"\2" + bytes(stride)
    packer = compressobj(1)
    parts = []
    for top in range(0, height, 256):
        band = source[top : top + 256]
        lines = [same if y + top and row == source[y + top - 1] else distinct[row] for y, row in enumerate(band)]
        parts.append(packer.compress(b"".join(lines)))
    parts.append(packer.flush())
    return _png_file(width, height, PNG_COLOUR_TYPES["RGB"][1], b"".join(parts))


def render(
    prompt: str,
    label: str,
    seed: bytes,
    width: int,
    height: int,
    fmt: str = "png",
    compression: int | None = None,
    **options,
) -> bytes:
    return encode(compose(prompt, label, seed, width, height, **options), fmt, compression)


# --- the cache of rendered bytes ----------------------------------------------------------
# Drawing and encoding are CPU work: they take turns under the process-wide pixel-work limit
# of compare/images.py (`pixel_work`, about one per core), however many requests wait on
# their latency at once. In the app's own process the simulator and the app share it.


def fingerprint(image: Image.Image | None) -> str:
    """What a reference, edit base or mask contributes to the picture: its pixels."""
    if image is None:
        return "-"
    return hashlib.sha256(f"{image.mode}{image.size}".encode() + image.tobytes()).hexdigest()


class RenderCache:
    """Rendered bytes of recent requests, least recently used first out, bounded by
    the total of their sizes (COMPARE_SIMULATOR_CACHE_MB). Identical requests arriving
    together render once: the others wait for the first (one flight per key)."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._flights: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self.size = 0
        self.renders = 0  # pictures drawn (cache misses): the tests count them
        self.hits = 0

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.size = self.renders = self.hits = 0

    def _get(self, key: str) -> bytes | None:
        data = self._items.get(key)
        if data is not None:
            self._items.move_to_end(key)
            self.hits += 1
        return data

    def get_or_render(self, key: str, draw) -> bytes:
        while True:
            with self._lock:
                data = self._get(key)
                if data is not None:
                    return data
                flight = self._flights.get(key)
                if flight is None:
                    flight = self._flights[key] = threading.Event()
                    break
            flight.wait(60)  # another request draws this picture right now
        try:
            data = draw()
            with self._lock:
                self.renders += 1
                self._put(key, data)
            return data
        finally:
            with self._lock:
                self._flights.pop(key, None)
            flight.set()

    def _put(self, key: str, data: bytes) -> None:
        limit = settings.COMPARE_SIMULATOR_CACHE_MB * 1024 * 1024
        if len(data) > limit:
            return
        self._items[key] = data
        self.size += len(data)
        while self.size > limit:
            _, dropped = self._items.popitem(last=False)
            self.size -= len(dropped)


CACHE = RenderCache()


def image_bytes(
    prompt: str,
    label: str,
    seed: bytes,
    width: int,
    height: int,
    fmt: str = "png",
    compression: int | None = None,
    *,
    transparent: bool = False,
    references=(),
    edit_base: Image.Image | None = None,
    mask: Image.Image | None = None,
) -> bytes:
    """The encoded picture, from the cache when this exact picture was drawn lately (the
    key holds everything that determines it), else drawn under the pixel-work limit."""
    key = hashlib.sha256(
        "\x1f".join(
            [
                prompt,
                label,
                seed.hex(),
                f"{width}x{height}",
                fmt,
                str(compression),
                str(transparent),
                ",".join(fingerprint(ref) for ref in references),
                fingerprint(edit_base),
                fingerprint(mask),
            ]
        ).encode()
    ).hexdigest()

    def draw() -> bytes:
        with pixel_work():
            picture = compose(
                prompt,
                label,
                seed,
                width,
                height,
                transparent=transparent,
                references=references,
                edit_base=edit_base,
                mask=mask,
            )
            return encode(picture, fmt, compression)

    return CACHE.get_or_render(key, draw)

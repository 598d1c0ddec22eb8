"""Reading the text in an image: RapidOCR (the `rapidocr-onnxruntime` package).

It runs PP-OCRv4 detection and recognition models that ship inside the wheel, on
onnxruntime's CPU provider: nothing is downloaded at run time. What it reads, as
measured on the simulator's images (tests/test_checks.py, tests/bench/test_ocr_bench.py):

- Chinese and English: yes, including rare characters such as 钜 (an engine that
  cannot represent 钜 could never tell it from a wrong 巨). Its recogniser knows 6,625
  characters (`charset()`): simplified and many traditional Chinese characters (體, 樂,
  臺), Latin letters, digits and punctuation.
- Japanese: only what it shares with simplified Chinese (東京の夜 yes); kana other
  than の and Japanese-only kanji forms are not in its character set (さくら, カタカナ,
  評 and 発 cannot be read).
- Korean Hangul, Cyrillic, Arabic, Hebrew, Thai: no. Accented Latin letters in part
  (é, ü yes; ï, ö, ñ, ç no).

A string with characters the engine cannot output is not scored (it could only ever
fail): the check says which characters and leaves it out (compare/checks/runner.py).

The engine is loaded lazily, once per process, and at most one image is read at a
time per process (a lock): the checks run in the task workers, never on a request.
If it cannot be imported or loaded, `engine_status()` says why in a plain sentence
and the rest of the app runs on.
"""

import logging
import threading
import unicodedata
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from PIL import Image

logger = logging.getLogger(__name__)

PACKAGE = "rapidocr-onnxruntime"

_lock = threading.Lock()
_engine: Any = None
_failure: str | None = None


@dataclass(frozen=True)
class Span:
    """One line or word the engine found: its text, box (left, top, right, bottom) and confidence 0…1."""

    text: str
    box: tuple[int, int, int, int]
    confidence: float


def _load() -> Any:
    """The engine, loaded on first use (caller holds `_lock`); raises RuntimeError with the reason."""
    global _engine, _failure
    if _engine is not None:
        return _engine
    if _failure is not None:
        raise RuntimeError(_failure)
    try:
        from rapidocr_onnxruntime import RapidOCR  # type: ignore[import-untyped]

        _engine = RapidOCR()
    except Exception as exc:  # ImportError, a missing model file, an onnxruntime that will not start
        logger.warning("The OCR engine could not be loaded", exc_info=True)
        why = (
            f"{PACKAGE} could not be imported: {exc}"
            if isinstance(exc, ImportError)
            else f"{type(exc).__name__}: {exc}"
        )
        _failure = f"The text check is unavailable: the OCR engine could not be loaded ({why})."
        raise RuntimeError(_failure) from exc
    return _engine


def engine_name() -> str:
    try:
        return f"{PACKAGE} {metadata.version(PACKAGE)}"
    except metadata.PackageNotFoundError:
        return PACKAGE


def engine_status() -> tuple[bool, str, str]:
    """(available, name with version, why not): loads the engine if it is not loaded yet."""
    with _lock:
        try:
            _load()
        except RuntimeError as exc:
            return False, engine_name(), str(exc)
    return True, engine_name(), ""


_charset: frozenset[str] | None = None


def charset() -> frozenset[str]:
    """Every character the recogniser can output (empty when unknown: then nothing is
    ruled out). A string with a character outside it can never be read back, so the
    text check leaves it out and says so instead of failing the image."""
    global _charset
    with _lock:
        if _charset is None:
            engine = _load()
            characters = getattr(getattr(getattr(engine, "text_rec", None), "postprocess_op", None), "character", None)
            _charset = frozenset(str(c) for c in characters or [] if str(c).strip())
        return _charset


def unreadable(text: str, characters: frozenset[str]) -> list[str]:
    """The characters of `text` (NFKC, whitespace ignored) the engine cannot output, in order, once each."""
    if not characters:
        return []
    missing: list[str] = []
    for char in unicodedata.normalize("NFKC", text):
        if char.isspace() or unicodedata.category(char) == "Cf" or char in missing:
            continue
        if not {char, char.upper(), char.lower(), char.casefold()} & characters:
            missing.append(char)
    return missing


def reset() -> None:
    """Forget the loaded engine and any load failure (tests)."""
    global _engine, _failure, _charset
    with _lock:
        _engine, _failure, _charset = None, None, None


def _flatten(image: Image.Image) -> Image.Image:
    """RGB for the engine; transparent parts become white."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _reading_order(spans: list[Span]) -> list[Span]:
    """Top to bottom, and left to right within a line (boxes whose vertical centres lie
    within half a line height of the line's first box)."""
    lines: list[list[Span]] = []
    for span in sorted(spans, key=lambda s: (s.box[1], s.box[0])):
        centre = (span.box[1] + span.box[3]) / 2
        if lines:
            first = lines[-1][0]
            first_centre, height = (first.box[1] + first.box[3]) / 2, first.box[3] - first.box[1]
            if abs(centre - first_centre) <= height / 2:
                lines[-1].append(span)
                continue
        lines.append([span])
    return [span for line in lines for span in _without_overlaps(sorted(line, key=lambda s: s.box[0]))]


def _without_overlaps(line: list[Span]) -> list[Span]:
    """The spans of one line, left to right, with characters read twice removed: the
    detector sometimes finds two boxes that overlap by a character or so ("Analytics D"
    and "Dashboard"); the end of the first is dropped when it repeats the start of the
    second and the boxes overlap by about that many characters."""
    kept: list[Span] = []
    for span in line:
        if kept and span.text:
            left = kept[-1]
            overlap = left.box[2] - span.box[0]
            char_width = max(1.0, (span.box[2] - span.box[0]) / len(span.text))
            most = min(len(left.text), len(span.text) - 1, round(overlap / char_width) + 1) if overlap > 0 else 0
            for k in range(most, 0, -1):
                if overlap >= char_width / 2 and left.text.endswith(span.text[:k]):
                    kept[-1] = Span(left.text[:-k].rstrip(), left.box, left.confidence)
                    break
        kept.append(span)
    return [span for span in kept if span.text]


def read(image: Image.Image) -> list[Span]:
    """The text spans of an image in reading order. Raises RuntimeError when the engine is unavailable."""
    rgb = _flatten(image)
    with _lock:
        engine = _load()
        result, _elapsed = engine(rgb)
    spans = []
    for points, text, confidence in result or []:
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        box = (int(min(xs)), int(min(ys)), int(max(xs)), int(max(ys)))
        if str(text).strip():
            spans.append(Span(str(text), box, float(confidence)))
    return _reading_order(spans)

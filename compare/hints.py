"""Routing hint: which of the chosen models is likely stronger for this prompt.

A hint for the designer on the new-comparison form, never a restriction: the
form still sends the prompt to every chosen model. The strengths come from what
is publicly said of the two flagships (the vendors' model pages): gpt-image-2 for
precise UI/layout work, transparent backgrounds, mask edits and streamed
previews; Nano Banana Pro (and the Gemini image models generally) for 4K,
long or non-Latin text, many reference images, factual infographics with
Search grounding and character consistency.

Signals are data (the tables below); the code only scores and phrases them.
Weights: an option the designer set on purpose (4K, transparent, references)
outweighs a keyword guessed from the prompt.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

from compare.registry import Capabilities, Model
from compare.text import QUOTED

GPT = "openai-images"
GEMINI = "gemini"

# Every family compare knows, so a new protocol in the registry simply gets no hints.
FAMILIES = (GPT, GEMINI)


@dataclass(frozen=True)
class Signal:
    favours: str | None  # protocol family; None = recognised but neutral (kept so nobody "adds" it later)
    reason: str  # the phrase shown to the designer
    weight: int = 1
    # The representative model must be able to do it, else it is no strength of that model.
    requires: Callable[[Capabilities], bool] | None = None


# --- prompt keywords -----------------------------------------------------------------------
# Precision over recall: a wrong hint is worse than none, so ambiguous words
# ("table" as furniture, "app" alone) need a qualifier.
KEYWORDS: list[tuple[re.Pattern[str], Signal]] = [
    (
        re.compile(
            r"\b(ui|ux|dashboards?|app screens?|mobile app|web ?app|wireframes?|landing pages?|"
            r"buttons?|settings (page|screen)|user interface|(website|web site|app) mockups?|"
            r"mockups? of (a|an|the|our) (website|web site|app|web ?page))\b",
            re.I,
        ),
        Signal(GPT, "UI/dashboard work"),
    ),
    (re.compile(r"\b(logos?|icons?|favicons?|app icons?|wordmarks?)\b", re.I), Signal(GPT, "logo/icon work")),
    (
        re.compile(
            r"\b(infographics?|charts?|diagrams?|data|statistics|timelines?|maps?|"
            r"data tables?|tables? of|comparison tables?)\b",
            re.I,
        ),
        Signal(GEMINI, "infographic/data content"),
    ),
    (
        re.compile(
            r"\b(same (character|person|face)|consistent (characters?|faces?)|"
            r"character (sheet|consistency))\b",
            re.I,
        ),
        Signal(GEMINI, "character consistency"),
    ),
    # Both flagships do product photography well: no hint either way.
    (re.compile(r"\b(product (shot|photo|photography)|packshot|studio photo)\b", re.I), Signal(None, "product shot")),
]

# --- scripts -------------------------------------------------------------------------------
# (name shown, code point ranges). Gemini renders long and non-Latin text more reliably.
SCRIPTS: list[tuple[str, tuple[tuple[int, int], ...]]] = [
    (
        "Chinese/Japanese text",
        ((0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0xFF66, 0xFF9F)),
    ),
    ("Korean text", ((0x1100, 0x11FF), (0x3130, 0x318F), (0xAC00, 0xD7AF))),
    ("Arabic text", ((0x0600, 0x06FF), (0x0750, 0x077F), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF))),
    ("Hebrew text", ((0x0590, 0x05FF),)),
    ("Devanagari text", ((0x0900, 0x097F),)),
    ("Bengali text", ((0x0980, 0x09FF),)),
    ("Tamil text", ((0x0B80, 0x0BFF),)),
    ("Thai text", ((0x0E00, 0x0E7F),)),
    ("Greek text", ((0x0370, 0x03FF),)),
    ("Cyrillic text", ((0x0400, 0x04FF),)),
]
SCRIPT_WEIGHT = 2

LONG_QUOTED_CHARS = 40

# --- options -------------------------------------------------------------------------------
FOUR_K = Signal(GEMINI, "4K output", 2, lambda c: "4K" in c.image_sizes)
LONG_EDGE_4K = 2560  # above this gpt-image-2 calls the size "experimental" (OpenAI's image guide)
MANY_REFERENCES = 3  # 2.5 Flash Image and GPT models do best with ≤3; Gemini 3 takes 14
TRANSPARENT = Signal(GPT, "transparent background", 2, lambda c: "transparent" in c.backgrounds)
MASK = Signal(GPT, "mask edit", 2, lambda c: c.mask)
STREAMING = Signal(GPT, "streaming previews", 1, lambda c: c.streaming)
GROUNDING = Signal(GEMINI, "Google Search grounding", 2, lambda c: c.grounding)
LONG_TEXT = Signal(GEMINI, "long quoted text", 1)


def _references(count: int) -> Signal:
    return Signal(GEMINI, f"{count} reference images", 2, lambda c: c.max_references >= count)


def _truthy(value: object) -> bool:
    return str(value).strip().lower() in {"1", "true", "on", "yes", "transparent"}


def _number(value: object) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        return 0


def _long_edge(size: object) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*[x×]\s*(\d+)\s*", str(size or ""))
    return max(int(match.group(1)), int(match.group(2))) if match else 0


def signals(prompt: str, options: dict, reference_count: int = 0) -> list[Signal]:
    """Every signal found in the prompt and options, in the order they are phrased."""
    found: list[Signal] = []
    if options.get("resolution") == "4K" or _long_edge(options.get("size")) > LONG_EDGE_4K:
        found.append(FOUR_K)
    if reference_count > MANY_REFERENCES:
        found.append(_references(reference_count))
    if options.get("background") == "transparent":
        found.append(TRANSPARENT)
    if _truthy(options.get("mask")):
        found.append(MASK)
    if _number(options.get("partial_images")) > 0:
        found.append(STREAMING)
    if _truthy(options.get("grounding")):
        found.append(GROUNDING)
    codepoints = {ord(ch) for ch in prompt if ord(ch) > 0x036F}  # skip ASCII and Latin accents fast
    for name, ranges in SCRIPTS:
        if any(lo <= cp <= hi for cp in codepoints for lo, hi in ranges):
            found.append(Signal(GEMINI, name, SCRIPT_WEIGHT))
    quoted = sum(len(next(g for g in m.groups() if g)) for m in QUOTED.finditer(prompt))
    if quoted > LONG_QUOTED_CHARS:
        found.append(LONG_TEXT)
    found.extend(signal for pattern, signal in KEYWORDS if pattern.search(prompt))
    return found


def hints(prompt: str, options: dict, models: list[Model], reference_count: int = 0) -> list[str]:
    """0..1 plain-English sentences saying which chosen model is likely stronger and why."""
    # One representative per family: the first chosen model of it, in the designer's order.
    representative: dict[str, Model] = {}
    for model in models:
        if model.protocol in FAMILIES:
            representative.setdefault(model.protocol, model)
    if len(representative) < 2:
        return []  # nothing to choose between
    reasons: dict[str, list[str]] = {family: [] for family in representative}
    score: dict[str, int] = dict.fromkeys(representative, 0)
    for signal in signals(prompt, options, reference_count):
        favoured = representative.get(signal.favours) if signal.favours else None
        if favoured is None or (signal.requires and not signal.requires(favoured.capabilities)):
            continue
        if signal.reason not in reasons[favoured.protocol]:
            reasons[favoured.protocol].append(signal.reason)
            score[favoured.protocol] += signal.weight
    sides = [family for family in representative if reasons[family]]
    if not sides:
        return []
    if len(sides) == 1:
        family = sides[0]
        return [f"{representative[family].label} is likely stronger here: {', '.join(reasons[family])}."]
    first, second = sides
    if score[first] == score[second]:
        parts = "; ".join(f"{representative[f].label} for {', '.join(reasons[f])}" for f in sides)
        return [f"Each has a strength here: {parts}."]
    leader, other = (first, second) if score[first] > score[second] else (second, first)
    return [
        f"{representative[leader].label} is likely stronger here: {', '.join(reasons[leader])}; "
        f"{representative[other].label} for {', '.join(reasons[other])}."
    ]

"""Run the automatic checks of one generation (compare/checks/__init__.py has the schema).

`check_generation(generation_id)` is called by the `check` task of compare/tasks.py,
enqueued on commit once a generation has succeeded, so a check never delays showing
the image; that task then applies the fallback rule. It reads each final image once (compare/images.py)
for both checks: the specification (compare/checks/spec.py) and, when there are
expected strings, the text read back by OCR (compare/checks/ocr.py,
compare/checks/textcheck.py). The expected strings are the suite case's
expectations when the run is a suite case-sample, else the prompt's quoted strings.

It writes `checks` and `check_status` in one UPDATE, only while the generation is
still the succeeded one it checked (not retried or deleted meanwhile), then tells
open run pages (compare/live.py). It never raises: a crash becomes check_status
"unavailable" with the reason, and the traceback goes to the log.
"""

import io
import logging
import time
import uuid
from contextlib import nullcontext
from typing import Any

from django.conf import settings
from django.db import router
from PIL import Image as PILImage

from compare import images, live
from compare.checks import ocr, spec, spec_items, text_failed, text_items, textcheck
from compare.models import Generation, Image
from compare.precompiled import Precompiled, attach, prep_of

logger = logging.getLogger(__name__)
# Longer expected strings are not scored: a paragraph is not a headline, and matching
# costs grow with its length times the text read.
MAX_EXPECTED_CHARS = 300


def _expectations(gen: Generation) -> list[str]:
    run = gen.run
    if run.suite_run_id is None or run.suite_case is None or run.suite_run is None:
        return []
    cases = run.suite_run.cases or []
    if not (0 <= run.suite_case < len(cases)) or not isinstance(cases[run.suite_case], dict):
        return []
    found = cases[run.suite_case].get("expectations") or []
    return [str(e) for e in found] if isinstance(found, list) else []


def _readable(expected: list[str]) -> tuple[list[str], str]:
    """The strings the text check can score, and a sentence naming those it cannot:
    characters the OCR engine cannot output, or longer than MAX_EXPECTED_CHARS."""
    characters = ocr.charset()
    readable, unreadable, too_long = [], [], []
    for text in expected:
        missing = ocr.unreadable(text, characters)
        if missing:
            unreadable.append(f"“{text}” ({' '.join(missing)})")
        elif len(textcheck.normalise(text)) > MAX_EXPECTED_CHARS:
            too_long.append(f"“{text[:40]}…”")
        else:
            readable.append(text)
    reasons = []
    if unreadable:
        named = ", ".join(unreadable)
        reasons.append(f"Not checked: the OCR engine cannot read the characters in brackets of {named}.")
    if too_long:
        reasons.append(f"Not checked (longer than {MAX_EXPECTED_CHARS} characters): {', '.join(too_long)}.")
    return readable, " ".join(reasons)


def status_of(checks: dict[str, Any], text_expected: bool) -> str:
    """failed if any item failed; unavailable if none did but expected text could not be read; else passed."""
    if any(not item.get("passed") for item in spec_items(checks) + text_items(checks)):
        return Generation.CheckStatus.FAILED
    if text_expected and checks.get("text_unavailable"):
        return Generation.CheckStatus.UNAVAILABLE
    return Generation.CheckStatus.PASSED


def reads_pixels(gen: Generation) -> bool:
    """Whether checking `gen` (its run loaded) decodes its images: text is expected (OCR), or
    a transparent background was asked for. The other checks (size, format, count) read
    headers only and take a few milliseconds (compare/tasks.py runs those at once)."""
    if textcheck.expected_strings(gen.run.prompt, _expectations(gen)):
        return True
    options = {**gen.run.options, **gen.option_overrides}
    return spec.asked_for(gen.params_sent or spec.wire_guess(gen.model, options), options).transparent


def compute(gen: Generation) -> tuple[dict[str, Any], bool]:
    """The `checks` object of a generation (its run and final images loaded), and
    whether any text was expected."""
    started = time.monotonic()
    max_cer = float(settings.COMPARE_TEXT_CHECK_MAX_CER)
    wanted = textcheck.expected_strings(gen.run.prompt, _expectations(gen))
    expected = wanted
    options = {**gen.run.options, **gen.option_overrides}
    asked = spec.asked_for(gen.params_sent or spec.wire_guess(gen.model, options), options)
    finals = gen.final_images()
    checks: dict[str, Any] = {"engine": "", "text_unavailable": "", "max_cer": max_cer, "seconds": 0.0}
    read_text = False
    if wanted:
        available, name, reason = ocr.engine_status()
        checks["engine"] = name if available else ""
        checks["text_unavailable"] = reason
        if available:
            expected, checks["text_unavailable"] = _readable(wanted)
        read_text = available and bool(expected)
    results = []
    # Pillow reads only the header until the pixels are used: size and format need no decode,
    # only the OCR and a transparency check do, and only they take a pixel slot (compare/images.py).
    needs_pixels = read_text or asked.transparent
    for img in sorted(finals, key=lambda i: i.index):
        slot = images.pixel_work() if needs_pixels else nullcontext()
        with slot, PILImage.open(io.BytesIO(images.open_bytes(img.file))) as picture:
            result: dict[str, Any] = {
                "index": img.index,
                "text": [],
                "spec": spec.check_image(asked, picture, img.format),
            }
            if read_text:
                try:
                    spans = ocr.read(picture)
                except Exception as exc:
                    logger.warning("OCR failed on image %s of generation %s", img.index, gen.pk, exc_info=True)
                    failed = f"The text check failed on image {img.index + 1} ({type(exc).__name__}: {exc})."
                    checks["text_unavailable"] = " ".join(filter(None, [checks["text_unavailable"], failed]))
                    read_text = False
                else:
                    result["text"] = textcheck.check_text(expected, [s.text for s in spans], max_cer)
        results.append(result)
    checks["spec"] = [spec.check_count(asked, len(finals))]
    checks["images"] = results
    checks["text_failed"] = text_failed(checks)
    checks["text_checked"] = any(image["text"] for image in results)
    checks["seconds"] = round(time.monotonic() - started, 3)
    return checks, bool(wanted)


def _write(gen: Generation, status: str, checks: dict[str, Any]) -> bool:
    written = Generation.objects.filter(
        pk=gen.pk, status=Generation.Status.SUCCEEDED, finished_at=gen.finished_at
    ).update(check_status=status, checks=checks)
    if written:
        live.changed(gen.run_id)
    return bool(written)


# Every generation that succeeds is checked: its row, run (and suite run) and images are
# read with statements compiled once (compare/precompiled.py).
_STAND_IN = uuid.UUID("00000000-0000-4000-8000-0000000c4ec0")
_GENERATION = Precompiled(
    lambda pk: Generation.objects.select_related("run", "run__suite_run").filter(
        pk=pk, status=Generation.Status.SUCCEEDED
    ),
    [(_STAND_IN, prep_of(Generation, "id"))],
)
_IMAGES = Precompiled(lambda pk: Image.objects.filter(generation_id=pk), [(_STAND_IN, prep_of(Image, "generation"))])


def _succeeded(generation_id) -> Generation | None:
    """The generation with its run, suite run and images, if it has succeeded."""
    alias = router.db_for_read(Generation)
    pk = uuid.UUID(str(generation_id))
    gen = _GENERATION.first(alias, pk)
    if gen is not None:
        attach(gen, "images", _IMAGES.objects(alias, pk))
    return gen


def check_generation(generation_id: str) -> str:
    """Check a succeeded generation's final images; return the check status written ("" if none)."""
    try:
        gen = _succeeded(generation_id)
    except Exception:
        logger.exception("Could not load generation %s for its checks", generation_id)
        return ""
    if gen is None:
        return ""
    try:
        checks, text_expected = compute(gen)
        status = status_of(checks, text_expected)
    except Exception as exc:
        logger.exception("The checks of generation %s crashed", generation_id)
        status = Generation.CheckStatus.UNAVAILABLE
        checks = {
            "engine": "",
            "text_unavailable": f"The checks could not run ({type(exc).__name__}: {exc}).",
            "max_cer": float(settings.COMPARE_TEXT_CHECK_MAX_CER),
            "seconds": 0.0,
            "spec": [],
            "images": [],
        }
    try:
        return status if _write(gen, status, checks) else ""
    except Exception:
        logger.exception("Could not store the checks of generation %s", generation_id)
        return ""

"""Automatic checks of each generation, run after its images are stored (never
before the image is shown): text rendering read back by OCR, and the
specification (pixel size, aspect, format, transparency, number of images).

The outcome lands on the Generation row: `check_status` (CheckStatus: "" not
checked, pending, passed, failed, unavailable) and `checks`, a JSON object:

    {
      "engine": "rapidocr-onnxruntime 1.4.4",   # "" when no OCR ran
      "text_unavailable": "",                   # why the text check (or part of it: strings with characters
                                                # the engine cannot read are left out and named) could not run
      "max_cer": 0.0,                           # the rule used: a string passes when its CER <= max_cer
      "seconds": 0.62,                          # time spent checking
      "text_failed": false,                     # any expected string misread (`text_failed` below)
      "text_checked": true,                     # any expected string read back at all
                                                # (both stored for the history filter and the scorecard)
      "spec": [ <spec item>, ... ],             # generation-level: the number of images
      "images": [                               # one per final image, by Image.index
        {"index": 0, "text": [ <text item>, ... ], "spec": [ <spec item>, ... ]}
      ]
    }

    text item: {"expected": "新春钜惠 全场 8 折", "read": "新春巨惠 全场8折", "cer": 0.125,
                "passed": false,
                "diff": [["equal", "新春", "新春"], ["replace", "钜", "巨"], ["equal", "惠全场8折", "惠全场8折"]]}
        `read` is what the OCR read where the string matched best (the spans it covers,
        joined by spaces); `cer` the edit distance over the normalised expected length,
        rounded to 3 decimals (compare/checks/textcheck.py).
        `diff` compares the normalised strings (whitespace removed, case folded, full-width
        forms to half-width); ops are "equal", "replace", "delete" (expected, not read) and
        "insert" (read, not expected).
    spec item: {"name": "size" | "aspect" | "format" | "transparency" | "count",
                "expected": "1024×1024", "actual": "1024×1024", "passed": true}

`check_status` is "failed" when any item failed, "unavailable" when none failed but
the text check could not run for expected strings, "passed" otherwise.
"""

from typing import Any


def dicts(value: Any) -> list[dict]:
    """The dicts of a stored list (anything else: none)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def images_of(checks: Any) -> list[dict]:
    """The per-image results of a stored `checks` (anything else: none), in image order.
    These three readers are the one walk over the schema above, tolerant of rows written
    by older versions: the pane, the exports, suites and the status all read through them."""
    found = dicts(checks.get("images")) if isinstance(checks, dict) else []
    return sorted(found, key=lambda image: image.get("index") or 0)


def text_items(checks: Any) -> list[dict]:
    """Every text item of every image."""
    return [item for image in images_of(checks) for item in dicts(image.get("text"))]


def spec_items(checks: Any) -> list[dict]:
    """The generation's specification items, then every image's."""
    own = dicts(checks.get("spec")) if isinstance(checks, dict) else []
    return own + [item for image in images_of(checks) for item in dicts(image.get("spec"))]


def text_failed(checks: object) -> bool:
    """Whether any expected string of any image was misread: the "text check failed" of
    the history filter and of the fallback rule (compare/tasks.py `on_checks_failed`)."""
    return any(item.get("passed") is False for item in text_items(checks))

"""The automatic checks as people read them: the badges and details of a run page's pane,
the one-line summary of the CSV export, and the `checks` object as a viewer may see it
(API, JSON and ZIP exports). The object itself is specified in compare/checks/__init__.py.

Blind-safe: nothing here names a model. While a run's names are hidden from the viewer,
the specification items keep only their verdict (pixel size and format tell the models
apart, so the pane hides them too) and the time the check took is left out.
"""

from dataclasses import dataclass, field
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from compare.checks import dicts, images_of, spec_items, text_items
from compare.models import CheckStatus, Generation

SPEC_LABELS = {
    "size": "Size",
    "aspect": "Aspect",
    "format": "Format",
    "transparency": "Transparency",
    "count": "Images",
}
HIDDEN_SPEC_NOTE = "Sizes and formats appear once you vote: they tell the models apart."


@dataclass
class Badge:
    text: str
    kind: str  # pass, fail, unavailable, pending: a class; the text says it in words
    title: str = ""


@dataclass
class TextRow:
    expected: str
    read: str
    cer: float | None
    passed: bool
    diff: SafeString

    @property
    def cer_percent(self) -> str:
        return "" if self.cer is None else percent(self.cer)


@dataclass
class SpecRow:
    name: str
    expected: str
    actual: str
    passed: bool


@dataclass
class ImageReport:
    number: int  # 1-based, as the pane counts images
    text: list[TextRow] = field(default_factory=list)
    spec: list[SpecRow] = field(default_factory=list)


@dataclass
class CheckReport:
    status: str
    badges: list[Badge]
    images: list[ImageReport]
    spec: list[SpecRow]  # about the whole generation: the number of images
    unavailable: str  # why the text check could not run, if it could not
    engine: str
    rule: str
    seconds: float | None
    hidden: bool

    @property
    def has_details(self) -> bool:
        return bool(self.unavailable or self.spec or any(i.text or i.spec for i in self.images))


def percent(value: float) -> str:
    return f"{value * 100:.1f} %"


def diff_html(ops: Any, read: str) -> SafeString:
    """What was read, with the misread characters marked: a replacement shows the expected
    character struck out and what was read instead (钜→巨), a missing part struck out, an
    extra part underlined; each also in words for screen readers."""
    parts: list[SafeString] = []
    for op in ops if isinstance(ops, list) else []:
        if not (isinstance(op, list | tuple) and len(op) == 3):
            continue
        kind, expected, got = op[0], str(op[1] or ""), str(op[2] or "")
        if kind == "equal":
            parts.append(format_html("{}", got))
        elif kind == "replace":
            parts.append(
                format_html(
                    '<mark class="misread"><span class="visually-hidden">expected </span><del>{}</del>'
                    '<span aria-hidden="true">→</span><span class="visually-hidden"> but read </span><ins>{}</ins></mark>',
                    expected,
                    got,
                )
            )
        elif kind == "delete":
            parts.append(
                format_html(
                    '<mark class="missing"><span class="visually-hidden">missing </span><del>{}</del></mark>', expected
                )
            )
        elif kind == "insert":
            parts.append(
                format_html('<mark class="extra"><span class="visually-hidden">extra </span><ins>{}</ins></mark>', got)
            )
    if not parts:
        return format_html("{}", read or "nothing")
    return format_html_join("", "{}", ((p,) for p in parts))


def _text_row(item: dict) -> TextRow:
    cer = item.get("cer")
    return TextRow(
        expected=str(item.get("expected") or ""),
        read=str(item.get("read") or ""),
        cer=float(cer) if isinstance(cer, int | float) else None,
        passed=item.get("passed") is True,
        diff=diff_html(item.get("diff"), str(item.get("read") or "")),
    )


def _spec_row(item: dict, hidden: bool) -> SpecRow:
    name = str(item.get("name") or "")
    return SpecRow(
        name=SPEC_LABELS.get(name, name.capitalize()),
        expected="" if hidden else str(item.get("expected") or ""),
        actual="" if hidden else str(item.get("actual") or ""),
        passed=item.get("passed") is True,
    )


def rule(checks: dict) -> str:
    max_cer = checks.get("max_cer")
    if isinstance(max_cer, int | float) and max_cer > 0:
        return f"A string passes when its character error rate is at most {percent(max_cer)}."
    return "A string passes only when it is read exactly (spaces, case and full-width forms aside)."


def badges(status: str, checks: dict) -> list[Badge]:
    if status == CheckStatus.PENDING:
        return [Badge("Checking text…", "pending", "The automatic checks run once the image is stored.")]
    if not status:
        return []
    found: list[Badge] = []
    texts = text_items(checks)
    reason = str(checks.get("text_unavailable") or "")
    if reason and not texts:
        found.append(Badge("Text check unavailable", "unavailable", reason))
    elif texts:
        failed = [t for t in texts if t.get("passed") is not True]
        if failed:
            found.append(
                Badge(
                    f"Text ✗ {len(failed)} of {len(texts)}",
                    "fail",
                    f"{len(failed)} of {len(texts)} expected strings were misread or missing.",
                )
            )
        else:
            many = f"All {len(texts)} expected strings were" if len(texts) > 1 else "The expected string was"
            found.append(Badge("Text ✓", "pass", f"{many} read correctly."))
    spec = spec_items(checks)
    failed_names = list(dict.fromkeys(str(s.get("name") or "") for s in spec if s.get("passed") is not True))
    if failed_names:
        words = ", ".join(name for name in failed_names if name)
        found.append(Badge(f"Spec ✗ {words}".strip(), "fail", f"Not as asked: {words or 'the specification'}."))
    elif spec:
        found.append(Badge("Spec ✓", "pass", "Size, format and the number of images are as asked."))
    if not found and status == CheckStatus.UNAVAILABLE:
        found.append(Badge("Checks unavailable", "unavailable", reason or "The checks could not run."))
    return found


def report(gen: Generation, hidden: bool = False) -> CheckReport | None:
    """The pane's view of `gen`'s checks; None when it has none (never checked)."""
    status = gen.check_status
    if not status:
        return None
    checks = gen.checks if isinstance(gen.checks, dict) else {}
    images = [
        ImageReport(
            number=(index if isinstance(index := image.get("index"), int) else n) + 1,
            text=[_text_row(t) for t in dicts(image.get("text"))],
            spec=[_spec_row(s, hidden) for s in dicts(image.get("spec"))],
        )
        for n, image in enumerate(images_of(checks))
    ]
    spec = [_spec_row(s, hidden) for s in dicts(checks.get("spec"))]
    if len(images) == 1:  # one image: the number of images goes on its line of the specification
        images[0].spec += spec
        spec = []
    seconds = checks.get("seconds")
    return CheckReport(
        status=status,
        badges=badges(status, checks),
        images=images,
        spec=spec,
        unavailable=str(checks.get("text_unavailable") or ""),
        engine=str(checks.get("engine") or ""),
        rule=rule(checks),
        seconds=None if hidden or not isinstance(seconds, int | float) else float(seconds),
        hidden=hidden,
    )


def summary(status: str, checks: Any) -> str:
    """One line for a spreadsheet: "text 1/2, CER 12.5 %; spec ok" (strings read correctly
    of those expected, the worst character error rate; the specification, or what failed)."""
    if not status:
        return ""
    if status == CheckStatus.PENDING:
        return "checking"
    checks = checks if isinstance(checks, dict) else {}
    parts = []
    texts = text_items(checks)
    if texts:
        good = sum(1 for t in texts if t.get("passed") is True)
        rates = [t["cer"] for t in texts if isinstance(t.get("cer"), int | float)]
        parts.append(f"text {good}/{len(texts)}" + (f", CER {percent(max(rates))}" if rates else ""))
    elif checks.get("text_unavailable"):
        parts.append("text unavailable")
    spec = spec_items(checks)
    if spec:
        failed = list(dict.fromkeys(str(s.get("name") or "") for s in spec if s.get("passed") is not True))
        parts.append("spec ok" if not failed else "spec failed: " + ", ".join(failed))
    return "; ".join(parts) or status


def for_viewer(checks: Any, hidden: bool) -> dict:
    """The `checks` object for an export or the API: whole, or while the names are hidden,
    with each specification item's expected and actual values and the time taken left out."""
    checks = checks if isinstance(checks, dict) else {}
    if not hidden:
        return checks

    def verdicts(items: Any) -> list[dict]:
        return [
            {"name": s.get("name"), "expected": None, "actual": None, "passed": s.get("passed")} for s in dicts(items)
        ]

    shown = {k: v for k, v in checks.items() if k not in ("seconds", "spec", "images")}
    shown["spec"] = verdicts(checks.get("spec"))
    shown["images"] = [
        {"index": image.get("index"), "text": dicts(image.get("text")), "spec": verdicts(image.get("spec"))}
        for image in images_of(checks)
    ]
    return shown


def fallback_reason(gen: Generation) -> str:
    """Why a fallback side ran, in words ("" for a side that is not a fallback)."""
    original = gen.fallback_of
    if original is None:
        return ""
    if original.status == Generation.Status.SUCCEEDED and original.check_status == CheckStatus.FAILED:
        return "its text check failed"
    return "it failed"


RUN_OUTCOMES = {
    CheckStatus.FAILED: "checks failed",
    CheckStatus.UNAVAILABLE: "check unavailable",
    CheckStatus.PENDING: "checking",
    CheckStatus.PASSED: "checks passed",
}


def run_outcome(sides: list[Generation]) -> tuple[str, str, str]:
    """A run's checks in one badge for the history: (status, words, what each side got),
    the worst outcome first (failed, unavailable, checking, passed); ("", "", "") when no
    side was checked or a side still works while the names are hidden (`withheld`)."""
    checked = [g for g in sides if g.check_status and not getattr(g, "withheld", False)]
    if not checked:
        return "", "", ""
    status = next(s for s in RUN_OUTCOMES if any(g.check_status == s for g in checked))
    detail = "; ".join(
        f"{g.display_name}: {', '.join(b.text for b in badges(g.check_status, g.checks if isinstance(g.checks, dict) else {}))}"
        for g in checked
    )
    return status, RUN_OUTCOMES[status], detail

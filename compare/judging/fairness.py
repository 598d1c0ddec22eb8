"""The fairness ledger: what each side of a run was really given and delivered,
and plain warnings where the sides did not get equivalent conditions."""

from dataclasses import dataclass

from compare import sizes
from compare.checks.report import fallback_reason
from compare.models import Generation, Reference, Run

NOT_TAKEN = "—"
PIXEL_RATIO_WARNING = 1.5


@dataclass
class LedgerRow:
    label: str
    values: list[str]

    @property
    def differs(self) -> bool:
        return len(set(self.values)) > 1


def _size_sent(gen: Generation) -> str:
    sent = gen.params_sent or {}
    if "size" in sent:
        return str(sent["size"]).replace("x", "×")
    config = (sent.get("generationConfig") or {}).get("imageConfig") or {}
    if config:
        return " · ".join(v for v in (config.get("aspectRatio", "auto"), config.get("imageSize")) if v)
    return NOT_TAKEN


def _size_asked(gen: Generation, run: Run) -> str:
    """The size sent, and what was chosen when the model's own sizes changed it
    (a fixed list, 3:1 at most, or aspect classes: compare/sizes.py `size_change`)."""
    sent, model, options = _size_sent(gen), gen.model, run.options
    if model is None or sent == NOT_TAKEN:
        return sent
    change = sizes.size_change(
        model.capabilities,
        options.get("aspect_ratio") or "1:1",
        options.get("resolution") or "1K",
        options.get("size") or None,
    )
    return f"{sent} (nearest to {change[0]})" if change else sent


def _delivered(gen: Generation) -> str:
    images = gen.final_images()
    if not images:
        return NOT_TAKEN
    sizes = sorted({f"{img.width}×{img.height}" for img in images})
    return ", ".join(sizes)


def _option(gen: Generation, name: str) -> str:
    sent = gen.params_sent or {}
    if name in sent:
        return str(sent[name])
    return "model decides" if gen.params_sent else NOT_TAKEN


def _echoed(gen: Generation) -> str:
    echoed = {k: v for k, v in (gen.params_echoed or {}).items() if isinstance(v, str | int | float)}
    return ", ".join(f"{k} {v}" for k, v in sorted(echoed.items())) or NOT_TAKEN


def _takes(gen: Generation, option: str, value: object = None) -> bool:
    """Whether this side's model honours the option (False if it left the registry)."""
    model = gen.model
    return model is not None and model.capabilities.supports(option, value)


def _grounding(gen: Generation, run: Run) -> str:
    if not run.options.get("grounding"):
        return "off"
    return "on" if _takes(gen, "grounding", True) else "not available"


def _references(gen: Generation, refs: list[Reference]) -> str:
    count = sum(1 for r in refs if r.kind == Reference.Kind.REFERENCE)
    model = gen.model
    if count and model and not model.capabilities.supports("references", count):
        return f"{model.capabilities.max_references} of {count}"
    edge = _downscaled_to(gen, refs)
    return f"{count}, downscaled to {edge} px" if edge else str(count)


def _downscaled_to(gen: Generation, refs: list[Reference]) -> int | None:
    """The edge this side's references were sent downscaled to (the model's `reference_max_edge`,
    applied in compare/providers/_common.py `fit_inputs`), if any of them was longer."""
    edge = gen.model.capabilities.reference_max_edge if gen.model else 0
    if edge and any(max(r.width, r.height) > edge for r in refs if r.kind == Reference.Kind.REFERENCE):
        return edge
    return None


def _markup(gen: Generation, run: Run) -> str:
    if not run.options.get("markup"):
        return "none"
    return "applied" if _takes(gen, "markup", True) else "cannot take one"


def _mask(gen: Generation, refs: list[Reference]) -> str:
    if not any(r.kind == Reference.Kind.MASK for r in refs):
        return "none"
    return "applied" if _takes(gen, "mask", True) else "cannot take one"


def ledger(run: Run, generations: list[Generation]) -> list[LedgerRow]:
    refs = list(run.references.all())
    rows = [
        ("Size asked", lambda g: _size_asked(g, run)),
        ("Pixels delivered", _delivered),
        ("Quality", lambda g: _option(g, "quality")),
        ("Output format", lambda g: _option(g, "output_format")),
        ("Background", lambda g: _option(g, "background")),
        ("Reference images", lambda g: _references(g, refs)),
        ("Mask", lambda g: _mask(g, refs)),
        ("Markup", lambda g: _markup(g, run)),
        ("Search grounding", lambda g: _grounding(g, run)),
        ("Images", lambda g: f"{len(g.final_images())} of {run.options.get('n', 1)}"),
        ("Echoed by provider", _echoed),
        ("Answered by", lambda g: "simulator" if g.simulated else "provider"),
    ]
    if any(g.fallback_of_id for g in generations):
        rows.append(("Fallback", _fallback))
    return [LedgerRow(label, [fn(g) for g in generations]) for label, fn in rows]


def _fallback(gen: Generation) -> str:
    """Why a fallback side ran: its original failed, or its text check did (compare/tasks.py)."""
    original = gen.fallback_of
    if original is None:
        return NOT_TAKEN
    name = getattr(original, "display_name", original.model_label)
    return f"for {name}: {fallback_reason(gen)}"


def _downscale_warnings(known: list[Generation], refs: list[Reference]) -> list[str]:
    """One sentence per edge, e.g. 'References downscaled to 2048 px for Nano Banana Pro; …'."""
    by_edge: dict[int, list[str]] = {}
    for gen in known:
        if edge := _downscaled_to(gen, refs):
            by_edge.setdefault(edge, []).append(gen.model_label)
    found = []
    for edge, labels in sorted(by_edge.items()):
        others = len(labels) < len(known)
        found.append(
            f"References downscaled to {edge} px for {', '.join(labels)}"
            + ("; the other sides got them as uploaded." if others else ".")
        )
    return found


def _megapixels(gen: Generation) -> float | None:
    images = gen.final_images()
    return images[0].width * images[0].height / 1e6 if images else None


def warnings(run: Run, generations: list[Generation]) -> list[str]:
    """Where one side had an advantage or a handicap the viewer should know about."""
    found: list[str] = []
    sized = [(g, mp) for g in generations if (mp := _megapixels(g))]
    if len(sized) > 1:
        small, large = min(sized, key=lambda x: x[1]), max(sized, key=lambda x: x[1])
        if large[1] / small[1] >= PIXEL_RATIO_WARNING:
            found.append(
                f"{large[0].model_label} delivered {large[1]:.1f} MP but {small[0].model_label} {small[1]:.1f} MP: "
                "compare detail at the same zoom, not fill-the-pane."
            )
    known = [g for g in generations if g.model]
    refs = list(run.references.all())
    if any(r.kind == Reference.Kind.MASK for r in refs):
        without = [g.model_label for g in known if not _takes(g, "mask", True)]
        if without:
            found.append(f"Only some sides used the mask: {', '.join(without)} cannot take one and edited freely.")
    if run.options.get("markup"):
        without = [g.model_label for g in known if not _takes(g, "markup", True)]
        if without:
            found.append(f"Only some sides saw the markup: {', '.join(without)} cannot take one.")
    found.extend(_downscale_warnings(known, refs))
    if run.options.get("grounding"):
        without = [g.model_label for g in known if not _takes(g, "grounding", True)]
        if without:
            found.append(f"Google Search grounding helped only some sides; {', '.join(without)} had none.")
    checks = [
        ("quality", "Quality “{v}” applied only to"),
        ("background", "The {v} background applied only to"),
        ("output_format", "The {v} format applied only to"),
    ]
    for option, sentence in checks:
        value = run.options.get(option)
        took = [g.model_label for g in known if value is not None and _takes(g, option, value)]
        if took and len(took) < len(known):
            found.append(sentence.format(v=value) + f" {', '.join(took)}; the others chose their own.")
    counts = {len(g.final_images()) for g in generations if g.status == Generation.Status.SUCCEEDED}
    if len(counts) > 1:
        found.append("The sides delivered different numbers of images.")
    if len({g.simulated for g in generations}) > 1:
        found.append("Some sides were answered by the simulator, others by the real provider.")
    return found

"""Any two images of the history on one compare stage: `/compare/?a=<sha256>&b=<sha256>`.

With one image or none picked, the page offers the most recent results to pick from.
Images of a run whose names are still hidden from this viewer (blind, not yet judged:
`compare/judging/blind.py`) are left out: their pixel size alone could name the model."""

import re
from dataclasses import dataclass
from urllib.parse import urlencode
from uuid import UUID

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from compare.judging import blind
from compare.models import Generation, Image, Run

SHA256 = re.compile(r"[0-9a-f]{64}")
PICKS = 36  # recent results offered for picking


@dataclass
class PairImage:
    image: Image
    run: Run
    name: str  # the side's name as this viewer may see it


def _names(runs: list[Run], user, arena: bool) -> dict[UUID, str]:
    """generation id → display name, for the runs whose names this viewer may see."""
    names: dict[UUID, str] = {}
    for run in runs:
        generations, hidden = blind.prepare(run, user, arena=arena)
        if not hidden:
            names.update({gen.pk: gen.display_name for gen in generations})
    return names


def _runs(images: list[Image]) -> list[Run]:
    ids = {img.generation.run_id for img in images}
    return list(Run.objects.filter(pk__in=ids).prefetch_related("generations", "votes"))


def _find(sha: str) -> Image | None:
    if not SHA256.fullmatch(sha):
        return None
    return (
        Image.objects.filter(sha256=sha, is_partial=False, generation__status=Generation.Status.SUCCEEDED)
        .select_related("generation")
        .order_by("created_at")
        .first()
    )


@require_GET
def compare_images(request: HttpRequest) -> HttpResponse:
    arena = request.GET.get("arena") == "1"
    picked: dict[str, Image] = {}
    problems = []
    for key in ("a", "b"):
        sha = request.GET.get(key, "").strip().lower()
        if not sha:
            continue
        image = _find(sha)
        if image is None:
            problems.append(f"There is no finished image “{sha[:16]}” to show as {key.upper()}; pick another below.")
        else:
            picked[key] = image
    recent = list(
        Image.objects.filter(is_partial=False, generation__status=Generation.Status.SUCCEEDED)
        .exclude(sha256__in=[img.sha256 for img in picked.values()])
        .select_related("generation")
        .order_by("-created_at")[:PICKS]
    )
    runs = _runs([*picked.values(), *recent])
    by_id = {run.pk: run for run in runs}
    names = _names(runs, request.user, arena)
    for key, image in list(picked.items()):
        if image.generation_id not in names:
            del picked[key]
            problems.append(f"Image {key.upper()} belongs to a blind comparison you have not judged yet.")
    recent = [image for image in recent if image.generation_id in names]

    def side(image: Image) -> PairImage:
        return PairImage(image, by_id[image.generation.run_id], names[image.generation_id])

    sides = {key: side(image) for key, image in picked.items()}
    # Picking fills the empty slot, or replaces B once both are set.
    slot = "a" if "a" not in picked else "b"
    extra = {"arena": "1"} if arena else {}

    def link(**shas: str) -> str:
        return "?" + urlencode({**shas, **extra})

    base = {k: img.sha256 for k, img in picked.items()}
    picks = [(side(image), link(**{**base, slot: image.sha256})) for image in recent]
    context = {
        "sides": [(key.upper(), sides[key]) for key in ("a", "b") if key in sides],
        "missing": [key.upper() for key in ("a", "b") if key not in sides],
        "slot": slot.upper(),
        "picks": picks,
        "swap_link": link(a=base["b"], b=base["a"]) if len(base) == 2 else "",
        "problems": problems,
        "arena": arena,
    }
    return render(request, "pair.html", context, status=404 if problems else 200)

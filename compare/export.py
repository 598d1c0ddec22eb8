"""Downloads: one run as a ZIP (its files plus run.json), the history as CSV or JSON.

A blind run whose names are hidden from the downloader is exported as its run
page shows it: sides A, B, … and nothing that tells the models apart — no model
key, label, id, position, price, usage, provider parameters, provider messages
or model text, no latency, timings or attempts, no other people's verdicts, and
instead of the original files their display copies: PNGs at the run's common
size, without metadata (compare/judging/blind_images.py; providers sign outputs
with C2PA/XMP/EXIF that names the model, and format and pixel size tell models
apart too). While a side still works, no side has images or a final status."""

import csv
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Iterable, Iterator
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from django.utils import timezone

from compare import budget
from compare.checks import report
from compare.history import HistoryRow
from compare.images import ensure_thumbnail, open_bytes
from compare.judging import blind, blind_images
from compare.models import Generation, Image, Rating, Reference, Run

FORMAT = "compare-run/1"
CSV_COLUMNS = [
    "id",
    "url",
    "created_at",
    "author",
    "prompt",
    "status",
    "blind",
    "tags",
    "models",
    "votes_total",
    "tally",
    "notes_count",
    "total_cost_usd",
    "total_cost_at_most_usd",
    "check_status",
    "checks",
]


def _time(value) -> str | None:
    return value.isoformat() if value else None


def _money(value) -> str | None:
    return None if value is None else str(value)


# --- one run as a ZIP ------------------------------------------------------------


def run_for_export(run_id, user) -> Run:
    ratings = Prefetch("generations__ratings", queryset=Rating.objects.select_related("user", "criterion"))
    runs = (
        Run.objects.for_viewer(user)
        .select_related("author", "parent")
        .prefetch_related("generations__images", ratings, "votes__user", "notes__author", "references", "tags")
    )
    return get_object_or_404(runs, pk=run_id)


def _file_stems(sides: list[Generation], hidden: bool) -> dict:
    """File-name stem per generation: its side letter while hidden, else its model key."""
    if hidden:
        return {g.id: blind.side_letter(g) for g in sides}
    keys = [g.model_key for g in sides]
    stems = {g.id: g.model_key if keys.count(g.model_key) == 1 else f"{g.model_key}-{g.position + 1}" for g in sides}
    return {gid: re.sub(r"[^A-Za-z0-9._-]+", "_", stem) for gid, stem in stems.items()}


def _add_display_copy(archive: zipfile.ZipFile, image: Image, stem: str, size: tuple[int, int]) -> dict[str, Any]:
    """A hidden side's image: its display copy, with only what every side shares."""
    record: dict[str, Any] = {"file": None, "thumbnail": None, "width": size[0], "height": size[1]}
    try:
        data, thumb = blind_images.display_bytes(image, size), blind_images.display_thumbnail(image, size)
    except FileNotFoundError:
        return {**record, "missing": True}
    record.update(
        file=f"images/{stem}.{blind_images.FORMAT}",
        thumbnail=f"thumbnails/{stem}.webp",
        format=blind_images.FORMAT,
        has_alpha=image.has_alpha,
        sha256=hashlib.sha256(data).hexdigest(),
    )
    archive.writestr(record["file"], data, compress_type=zipfile.ZIP_STORED)
    archive.writestr(record["thumbnail"], thumb, compress_type=zipfile.ZIP_STORED)
    return record


def _add_image(archive: zipfile.ZipFile, image: Image, stem: str) -> dict[str, Any]:
    """An image with the names shown: the original file, as stored."""
    record: dict[str, Any] = {
        "file": None,
        "thumbnail": None,
        "width": image.width,
        "height": image.height,
        "format": image.format,
        "has_alpha": image.has_alpha,
        "sha256": image.sha256,
    }
    try:
        # The thumbnail is written just after "done", or made here when it is not there yet.
        data, thumb = open_bytes(image.file), open_bytes(ensure_thumbnail(image.file, image.sha256))
    except FileNotFoundError:
        return {**record, "missing": True}  # a lost file must not make the whole export fail
    record.update(
        file=f"images/{stem}.{image.format}",
        thumbnail=f"thumbnails/{stem}.webp",
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    # Image formats are compressed already; deflating them again only costs time.
    archive.writestr(record["file"], data, compress_type=zipfile.ZIP_STORED)
    archive.writestr(record["thumbnail"], thumb, compress_type=zipfile.ZIP_STORED)
    return record


def _hidden_generation(
    archive: zipfile.ZipFile, gen: Generation, stem: str, frame: tuple[int, int] | None
) -> dict[str, Any]:
    """A side whose names are hidden: its letter, its outcome once every side is done,
    and its images as display copies. No times, attempts or error kinds: the page
    shows none of them either (a side's latency or failure mode tells models apart)."""
    images = []
    if not gen.withheld and frame is not None and gen.status == Generation.Status.SUCCEEDED:
        images = [
            _add_display_copy(archive, img, f"{stem}-{n}", blind_images.display_size(img, frame))
            for n, img in enumerate(gen.final_images(), start=1)
        ]
    return {
        "side": blind.side_letter(gen) if gen.run.blind else None,
        "simulated": gen.simulated,
        "status": Generation.Status.RUNNING.value if gen.withheld else gen.status,
        "images": images,
        "check_status": "" if gen.withheld else gen.check_status,
        "checks": None if gen.withheld else report.for_viewer(gen.checks, hidden=True),
    }


def _cost(gen: Generation) -> dict[str, Any]:
    """The estimate (its high end: what the budget reserved), what the providers' usage reports
    over every attempt, and the bounds (compare/budget.py `charge`): they differ when an attempt
    stopped without usage and may have been billed."""
    charge = budget.charge(gen)
    checked = gen.model.pricing.prices_checked if gen.model else None
    return {
        "estimated_usd": _money(gen.estimated_cost_usd),
        "actual_usd": _money(gen.cost_usd),
        "at_least_usd": _money(charge.at_least),
        "at_most_usd": _money(charge.at_most),
        "prices_checked": checked.isoformat() if checked else None,
    }


def _generation(archive: zipfile.ZipFile, gen: Generation, stem: str) -> dict[str, Any]:
    failed = bool(gen.error_kind or gen.error_message)
    images = [_add_image(archive, img, f"{stem}-{n}") for n, img in enumerate(gen.final_images(), start=1)]
    return {
        "model_key": gen.model_key,
        "model_label": gen.model_label,
        "model_id": gen.model_id,
        "position": gen.position,
        "side": blind.side_letter(gen) if gen.run.blind else None,
        "simulated": gen.simulated,
        "status": gen.status,
        "attempts": gen.attempts,
        "timings": {
            "queued_at": _time(gen.queued_at),
            "started_at": _time(gen.started_at),
            "finished_at": _time(gen.finished_at),
            "latency_ms": gen.latency_ms,
        },
        "images": images,
        "attempt_log": gen.attempt_log,
        "cost": _cost(gen),
        "usage": gen.usage,
        "params_sent": gen.params_sent,
        "params_echoed": gen.params_echoed,
        "error": {"kind": gen.error_kind, "message": gen.error_message} if failed else None,
        "text": gen.text,
        "grounding": gen.grounding,
        # The automatic checks (schema in compare/checks/__init__.py).
        "check_status": gen.check_status,
        "checks": gen.checks,
    }


def _add_reference(archive: zipfile.ZipFile, ref: Reference) -> dict[str, Any]:
    stem = ref.kind if ref.kind != Reference.Kind.REFERENCE else f"reference-{ref.position + 1}"
    record = {
        "kind": ref.kind,
        "position": ref.position,
        "name": ref.name,
        "width": ref.width,
        "height": ref.height,
        "format": ref.format,
        "sha256": ref.sha256,
        "file": None,
    }
    try:
        data = open_bytes(ref.file)
    except FileNotFoundError:
        return {**record, "missing": True}
    record["file"] = name = f"references/{stem}.{ref.format}"
    archive.writestr(name, data, compress_type=zipfile.ZIP_STORED)
    return record


def _judging(run: Run, sides: list[Generation], stems: dict, hidden: bool, user) -> dict[str, list]:
    """Votes, ratings and notes. While hidden the run page shows no tally and no
    one else's ratings, so neither does the export."""
    by_id: dict[Any, Generation] = {g.id: g for g in sides}
    votes = [
        {
            "user": v.user.get_username(),
            "choice": None if hidden else blind.wire_value(v.verdict, by_id.get(v.winner_id)),
            "winner": None if hidden else stems.get(v.winner_id),
            "blind": v.blind,
            "created_at": _time(v.created_at),
            "updated_at": _time(v.updated_at),
        }
        for v in run.votes.all()
    ]
    ratings = [
        {
            "user": r.user.get_username(),
            "generation": stems[g.id],
            "criterion": r.criterion.name,
            "stars": r.stars,
            "updated_at": _time(r.updated_at),
        }
        for g in sides
        for r in g.ratings.all()
        if not hidden or r.user_id == user.id
    ]
    notes = [
        {
            "author": n.author.get_username(),
            "body": n.body,
            "created_at": _time(n.created_at),
            "updated_at": _time(n.updated_at),
            "generation": stems.get(n.generation_id),
        }
        for n in run.notes.all()
    ]
    return {"votes": votes, "ratings": ratings, "notes": notes}


def run_zip(run: Run, user, url: str) -> bytes:
    """The ZIP of `run` as `user` may see it. Built in memory: a run is a few images."""
    sides, hidden = blind.prepare(run, user)
    stems = _file_stems(sides, hidden)
    frame = blind_images.frame(
        img for g in sides if g.status == Generation.Status.SUCCEEDED for img in g.final_images()
    )

    def generation(archive: zipfile.ZipFile, gen: Generation) -> dict[str, Any]:
        if hidden:
            return _hidden_generation(archive, gen, stems[gen.id], frame)
        return _generation(archive, gen, stems[gen.id])

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        manifest = {
            "format": FORMAT,
            "id": str(run.id),
            "url": url,
            "prompt": run.prompt,
            "options": run.options,
            "created_at": _time(run.created_at),
            "author": run.author.get_username(),
            "tags": [t.name for t in run.tags.all()],
            "parent_id": str(run.parent_id) if run.parent_id else None,
            "blind": run.blind,
            "names_hidden": hidden,
            "exported_at": _time(timezone.now()),
            "references": [_add_reference(archive, ref) for ref in run.references.all()],
            "generations": [generation(archive, gen) for gen in sides],
            **_judging(run, sides, stems, hidden, user),
        }
        archive.writestr("run.json", json.dumps(manifest, indent=2, ensure_ascii=False, cls=DjangoJSONEncoder))
    return buffer.getvalue()


# --- the history as CSV / JSON ---------------------------------------------------


def _tally_by_key(row: HistoryRow) -> dict[str, int]:
    """{model key: votes it won, "tie": n, "all_bad": n}; a model shown twice sums its sides."""
    tally: dict[str, int] = {}
    for choice, n in blind.tally(row.run, row.sides):
        key = choice.winner.model_key if choice.winner else choice.verdict.value
        tally[key] = tally.get(key, 0) + n
    return tally


def _checks_by_side(row: HistoryRow) -> list[dict[str, Any]]:
    """Each side's automatic checks: by model key, or by side letter while the names are
    hidden (then without sizes and formats); nothing while a side still works."""
    return [
        {
            "model": None if row.hidden else g.model_key,
            "side": blind.side_letter(g) if row.run.blind else None,
            "check_status": "" if g.withheld else g.check_status,
            "summary": "" if g.withheld else report.summary(g.check_status, g.checks),
            "checks": None if g.withheld else report.for_viewer(g.checks, row.hidden),
        }
        for g in row.sides
    ]


def history_record(row: HistoryRow, url: str) -> dict[str, Any]:
    """One run of the history export; models, tally and cost stay hidden like on the page."""
    run = row.run
    return {
        "id": str(run.id),
        "url": url,
        "created_at": _time(run.created_at),
        "author": run.author.get_username(),
        "prompt": run.prompt,
        "status": row.status,
        "blind": run.blind,
        "tags": [t.name for t in run.tags.all()],
        "models": None if row.hidden else [g.model_key for g in row.sides],
        "votes_total": row.votes,
        "tally": None if row.hidden else _tally_by_key(row),
        "notes_count": row.notes,
        "total_cost_usd": _money(row.cost),
        # Set when some attempt may have been billed without saying so: the cost is then at
        # least total_cost_usd and at most this.
        "total_cost_at_most_usd": _money(row.cost_max),
        "checks": _checks_by_side(row),
    }


class _Echo:
    def write(self, value: str) -> str:
        return value


def _cell(value: Any) -> Any:
    """Spreadsheets run cells starting with = + - @ as formulas; a prompt must stay text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _flat_checks(sides: list[dict[str, Any]]) -> dict[str, str]:
    """Two cells: "gpt-image-2=passed, gemini-3-pro-image=failed" and, side by side,
    "gpt-image-2: text 1/1, CER 0.0 %; spec ok | …" (side letters while the names are hidden)."""
    named = [(s["model"] or (f"side {s['side']}" if s["side"] else "side"), s) for s in sides if s["check_status"]]
    return {
        "check_status": ", ".join(f"{name}={s['check_status']}" for name, s in named),
        "checks": " | ".join(f"{name}: {s['summary']}" for name, s in named),
    }


def csv_lines(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    # The BOM makes Excel read UTF-8 (CJK prompts) instead of the local code page.
    yield "\ufeff" + writer.writerow(CSV_COLUMNS)
    for record in records:
        flat = {
            **record,
            "tags": " ".join(record["tags"]),
            "models": " ".join(record["models"]) if record["models"] is not None else "",
            "tally": " ".join(f"{k}={n}" for k, n in record["tally"].items()) if record["tally"] is not None else "",
            "total_cost_usd": record["total_cost_usd"] or "",
            "total_cost_at_most_usd": record["total_cost_at_most_usd"] or "",
            **_flat_checks(record["checks"]),
        }
        yield writer.writerow([_cell(flat[column]) for column in CSV_COLUMNS])

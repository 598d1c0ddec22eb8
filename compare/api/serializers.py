"""Runs, generations and images as the JSON the API answers.

Conventions: money is a decimal *string* such as "0.0530" (or null when unknown),
so no precision is lost in a float; times are ISO 8601 with a UTC offset, or null;
every URL is absolute, and image URLs point at the login-protected image views.
A blind run names no model, and shows nothing that tells the models apart, until
the token's user has voted on it: no position, model id, price, parameters, latency,
times or attempts per side, no side's outcome while another still works, and its
images as display copies (PNG at one common size, addressed by side letter; see
compare/judging/blind_images.py) instead of the originals.
"""

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import router
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse

from compare import budget, limits, run_query
from compare.checks import report
from compare.judging import blind
from compare.judging.blind_images import BlindImage
from compare.models import Generation, Image, Run
from compare.precompiled import attach, attach_grouped

# Prices, parameters, provider messages and per-side times would tell the models of a blind run apart.
HIDDEN_WHILE_BLIND = (
    "position",
    "model_id",
    "estimated_cost_usd",
    "cost_usd",
    "cost",
    "params_sent",
    "latency_ms",
    "started_at",
    "finished_at",
    "attempts",
)


def runs_queryset(user) -> QuerySet[Run]:
    """Runs as `user` may see them, with everything the bodies below read, in a fixed
    number of queries (names hidden, tally, status: RunQuerySet.for_viewer)."""
    return (
        Run.objects.for_viewer(user)
        .select_related("author")
        .prefetch_related("generations__images", "tags")
        .order_by("-created_at", "-id")
    )


def run_for_viewer(user, run_id: uuid.UUID) -> Run | None:
    """The run `run_id` as `runs_queryset(user)` would give it (annotations, author, sides
    with their images, tags), or None when there is none: four of the run page's statements
    compiled once (compare/run_query.py), so an API client polling a run while it works (the
    command line's wait, a script) costs the server a few milliseconds per poll, not the tens
    that building the same queries again each time costs."""
    alias = router.db_for_read(Run)
    run = run_query.RUNS[False].first(alias, run_id, user.pk)
    if run is None:
        return None
    sides = run_query.SIDES.objects(alias, run_id)
    attach_grouped(sides, "images", run_query.IMAGES.objects(alias, run_id), "generation_id")
    attach(run, "generations", sides)
    attach(run, "tags", run_query.TAGS.objects(alias, run_id))
    return run


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def run_urls(request: HttpRequest, run: Run) -> dict[str, str]:
    return {
        "url": request.build_absolute_uri(run.get_absolute_url()),
        "api_url": request.build_absolute_uri(reverse("api_run_detail", args=[run.id])),
    }


def generation_summary(gen: Generation, hidden: bool = False) -> dict[str, Any]:
    """`gen` as set up by `blind.prepare`: while it is `withheld` (names hidden, another
    side still working) its status says only that the run is still running."""
    return {
        "id": str(gen.id),
        "side": blind.side_letter(gen) if gen.run.blind else None,
        "model": None if hidden else gen.model_key,
        "label": blind.label(gen, hidden),
        "status": Generation.Status.RUNNING.value if getattr(gen, "withheld", False) else gen.status,
        "simulated": gen.simulated,
        # Why it has not started yet (its model's limits: compare/limits.py), or "": no model name while hidden.
        "waiting_for": limits.waiting_text(gen, hidden),
        # The automatic checks: "", pending, passed, failed or unavailable (compare/checks/__init__.py).
        "check_status": "" if getattr(gen, "withheld", False) else gen.check_status,
    }


def image(request: HttpRequest, img: Image | BlindImage) -> dict[str, Any]:
    """An image; a display copy (names hidden) has no file size: `bytes` is null."""
    return {
        "url": request.build_absolute_uri(img.url),
        "thumbnail_url": request.build_absolute_uri(img.thumbnail_url),
        "width": img.width,
        "height": img.height,
        "format": img.format,
        "bytes": img.bytes,
    }


def _money_fields(gen: Generation) -> dict[str, Any]:
    """The estimate as a range (the provider may pick the quality), what the generation cost
    at least and at most (compare/budget.py `charge`: an attempt that stopped without usage
    may have been billed) and the day its prices were checked."""
    model = gen.model
    span = gen.estimate_range()  # None when today's prices no longer give what was stored
    charge = budget.charge(gen)
    checked = model.pricing.prices_checked if model else None
    return {
        "cost": {
            "kind": charge.kind,  # spent | estimate | maybe | none
            "at_least_usd": _money(charge.at_least),
            "at_most_usd": _money(charge.at_most),
            "estimate_low_usd": _money(span.low) if span else None,
            "estimate_high_usd": _money(span.high) if span else None,
            "prices_checked": checked.isoformat() if checked else None,
        }
    }


def generation_detail(request: HttpRequest, gen: Generation, hidden: bool = False) -> dict[str, Any]:
    failed = bool(gen.error_kind or gen.error_message)
    detail = {
        **generation_summary(gen, hidden),
        "position": gen.position,
        "model_id": gen.model_id,
        "attempts": gen.attempts,
        "started_at": _time(gen.started_at),
        "finished_at": _time(gen.finished_at),
        "latency_ms": gen.latency_ms,
        "estimated_cost_usd": _money(gen.estimated_cost_usd),
        **_money_fields(gen),
        "cost_usd": _money(gen.cost_usd),
        "error": {"kind": gen.error_kind, "message": gen.error_message} if failed else None,
        "params_sent": gen.params_sent,
        # Streamed previews are superseded by the final images; only those are listed
        # (display copies while hidden: `blind.prepare` sets `shown_images`).
        "images": [image(request, img) for img in gen.final_images()],
        "checks": None if getattr(gen, "withheld", False) else report.for_viewer(gen.checks, hidden),
    }
    if hidden:
        detail.update(dict.fromkeys(HIDDEN_WHILE_BLIND))
        detail["images"] = [image(request, img) for img in gen.shown_images]
        # The status says failed or refused; how (rate limits, overload, quota) differs by provider.
        detail["error"] = None
    return detail


def created(request: HttpRequest, run: Run) -> dict[str, Any]:
    """The answer to `POST /api/runs`."""
    generations, hidden = blind.prepare(run, request.user)
    return {
        "id": str(run.id),
        **run_urls(request, run),
        "status": run.status,
        "generations": [generation_summary(g, hidden) for g in generations],
    }


def run_summary(request: HttpRequest, run: Run) -> dict[str, Any]:
    """A run in the list: no options, no per-generation detail."""
    generations, hidden = blind.prepare(run, request.user)
    return {
        "id": str(run.id),
        **run_urls(request, run),
        "prompt": run.prompt,
        "author": run.author.get_username(),
        "created_at": _time(run.created_at),
        "status": run.status,
        "blind": run.blind,
        "generations": [generation_summary(g, hidden) for g in generations],
        "votes_total": run.votes_total,
        "notes_count": run.notes_total,
    }


def run_detail(request: HttpRequest, run: Run) -> dict[str, Any]:
    generations, hidden = blind.prepare(run, request.user)
    tally = {blind.wire_value(choice.verdict, choice.winner): n for choice, n in blind.tally(run, generations)}
    return {
        "id": str(run.id),
        **run_urls(request, run),
        "prompt": run.prompt,
        "options": run.options,
        "author": run.author.get_username(),
        "created_at": _time(run.created_at),
        "status": run.status,
        "blind": run.blind,
        "tags": [t.name for t in run.tags.all()],
        "generations": [generation_detail(request, g, hidden) for g in generations],
        # The tally would reveal the sides' positions before this user has voted.
        "votes": {"tally": None if hidden else tally, "total": run.votes_total},
        "notes_count": run.notes_total,
    }

"""The status page: is every registry model still offered, and how is this instance set up?

Login is required by LoginRequiredMiddleware, like every page. The last check is
kept in Django's cache so opening the page does not ask the providers each time;
"Run the check" asks again (POST, then redirect so a reload does not re-post).
"""

from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from compare import limits
from compare.modelcheck import ModelStatus, check_models

CACHE_KEY = "compare:model-check"
CACHE_SECONDS = 60 * 60  # model ids die over weeks; an hour-old answer is still useful


def _run_check() -> tuple[list[ModelStatus], datetime]:
    rows, checked_at = check_models(), timezone.now()
    # Plain dicts, so any cache backend (pickle or not) can hold them.
    cache.set(CACHE_KEY, {"rows": [row.as_dict() for row in rows], "checked_at": checked_at}, CACHE_SECONDS)
    return rows, checked_at


def _last_check() -> tuple[list[ModelStatus], datetime]:
    cached = cache.get(CACHE_KEY)
    if cached:
        try:
            return [ModelStatus(**row) for row in cached["rows"]], cached["checked_at"]
        except (KeyError, TypeError):
            pass  # written by an older version of ModelStatus: check again
    return _run_check()


def _runtime() -> list[tuple[str, str]]:
    """Facts an admin needs when something looks wrong; never credentials or URLs with passwords."""
    simulator = settings.COMPARE_SIMULATOR_URL if settings.COMPARE_SIMULATOR_ENABLED else ""
    return [
        ("Profile", getattr(settings, "PROFILE", "embedded")),
        ("Task backend", str(settings.TASKS["default"]["BACKEND"])),
        ("Simulator", f"on, at {simulator}" if simulator else "off"),
        ("Database", connection.vendor),
        ("Model registry", settings.COMPARE_MODELS_FILE.name),
    ]


@require_http_methods(["GET", "POST"])
def status(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        _run_check()
        return redirect("status")
    rows, checked_at = _last_check()
    return render(
        request,
        "status.html",
        {
            "rows": rows,
            "checked_at": checked_at,
            "failing": sum(row.failing for row in rows),
            "runtime": _runtime(),
            # Each model's provider limits and what uses them now (read fresh: it changes by the second).
            "limits": limits.usage(),
        },
    )

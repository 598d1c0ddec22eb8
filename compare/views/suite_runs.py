"""The suite run page (progress bar, results grid, verdicts, chart), its one live poll,
"Cancel the rest", and the comparison of two suite runs. The numbers come from
compare/suites/results.py; this module only picks what to draw."""

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from compare import charts
from compare.parsing import parse_uuid
from compare.suites import results
from compare.suites.models import SuiteRun
from compare.views.base import AuthenticatedRequest

EARLIER = 20  # runs offered under "compare with…"


def _suite_run(suite_run_id) -> SuiteRun:
    return get_object_or_404(SuiteRun.objects.select_related("author", "suite"), pk=suite_run_id)


def _chart(summary: results.Summary) -> str:
    """Success rate per case and model with its 95 % interval (compare/charts.py); the table has the same numbers."""
    rows = [
        charts.ChartRow(cell.label, rate.rate, rate.low, rate.high, group=case.title)
        for case in summary.cases
        for cell in case.cells
        if (rate := cell.counted).n and rate.rate is not None and rate.low is not None and rate.high is not None
    ]
    return charts.dot_whisker(
        rows,
        title="Success rate per case and model",
        caption="dots: the rate; whiskers: 95 % Wilson intervals",
        value_name="Success rate",
    )


def _earlier(suite_run: SuiteRun) -> list[SuiteRun]:
    """Other runs of the same suite (or, when it was deleted, of the same name), newest first."""
    same = SuiteRun.objects.exclude(pk=suite_run.pk)
    same = same.filter(suite=suite_run.suite) if suite_run.suite_id else same.filter(suite_name=suite_run.suite_name)
    return list(same.select_related("author")[:EARLIER])


def _context(suite_run: SuiteRun, stamp: results.Stamp | None) -> dict:
    """The progress bar and the grid, with the token they were drawn under (read before them:
    a part is at worst drawn once more, never left stale)."""
    summary = results.summarize(suite_run)
    return {
        "suite_run": suite_run,
        "progress": results.progress(suite_run),
        "summary": summary,
        "chart": _chart(summary),
        "stamp": stamp.token if stamp else "",
    }


@require_GET
def suite_run_detail(request: AuthenticatedRequest, suite_run_id) -> HttpResponse:
    suite_run = _suite_run(suite_run_id)
    context = _context(suite_run, results.stamp(suite_run.pk))
    context["earlier"] = _earlier(suite_run)
    return render(request, "suite_run.html", context)


@require_GET
def suite_run_fragment(request: AuthenticatedRequest, suite_run_id, name: str) -> HttpResponse:
    """The page's one poll (`name` "updates"), every second while the run is unfinished,
    carrying the token of what the page shows (`since`). 204 while the token still holds:
    one aggregate query (`results.stamp`), nothing drawn. Otherwise the progress bar (the
    poll's own element, with the new token) and the grid out of band; 286, which stops
    htmx's polling, with the last of them, once every generation is finished and checked."""
    if name != "updates":
        raise Http404("No such part.")
    stamp = results.stamp(suite_run_id)
    if stamp is None:
        raise Http404("No such suite run.")
    if request.GET.get("since") == stamp.token:
        return HttpResponse(status=204)
    context = _context(_suite_run(suite_run_id), stamp)
    response = render(request, "suite_run.html#updates", {**context, "oob": True})
    if context["progress"].finished:
        response.status_code = 286
    return response


@require_POST
def suite_run_cancel(request: AuthenticatedRequest, suite_run_id) -> HttpResponse:
    from compare.suites.dispatch import cancel_suite_run

    suite_run = _suite_run(suite_run_id)
    count = cancel_suite_run(suite_run)
    if count:
        messages.info(request, f"Cancelled {count} generation{'s' if count != 1 else ''} that had not finished.")
    else:
        messages.info(request, "Nothing left to cancel: every generation had finished.")
    return redirect(suite_run)


@require_GET
def suite_run_compare(request: AuthenticatedRequest) -> HttpResponse:
    """Two suite runs side by side: ?a=<id>&b=<id> (A the earlier, B the later)."""
    raw_a, raw_b = request.GET.get("a", ""), request.GET.get("b", "")
    id_a, id_b = parse_uuid(raw_a), parse_uuid(raw_b)
    errors = []
    if (raw_a and id_a is None) or (raw_b and id_b is None):
        errors.append("That is not a suite run id: pick the two runs from the lists below.")
    elif not raw_a or not raw_b:
        errors.append("Pick two suite runs to compare.")
    runs = {r.pk: r for r in SuiteRun.objects.filter(pk__in=[i for i in (id_a, id_b) if i])}
    if not errors and (id_a not in runs or id_b not in runs):
        errors.append("One of these suite runs does not exist (any more).")
    elif not errors and id_a == id_b:
        errors.append("That is the same suite run twice: pick two different runs.")
    context: dict = {
        "errors": errors,
        "choices": list(SuiteRun.objects.select_related("author")[:100]),
        "a_id": id_a,
        "b_id": id_b,
    }
    if errors:
        return render(request, "suite_compare.html", context, status=400 if raw_a or raw_b else 200)
    assert id_a is not None and id_b is not None  # no errors: both were read
    context["comparison"] = results.compare(runs[id_a], runs[id_b])
    return render(request, "suite_compare.html", context)

"""The history page (search, filters, sort; htmx swaps the results) and the
downloads: the filtered history as CSV or JSON, one run as a ZIP."""

from collections.abc import Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from compare import export
from compare.history import (
    HistoryFilters,
    HistoryRow,
    activity,
    filtered,
    filters_html,
    paginate,
    row,
    row_html,
    with_rows,
)
from compare.views.base import AuthenticatedRequest

# Rows fetched per database round trip while an export streams.
EXPORT_CHUNK = 200
# The query parameters that say which page, not which runs.
PAGING = ("page", "after", "before")
# Rows whose thumbnails load at once; the others are fetched as they scroll into view.
EAGER_ROWS = 4


def _shared_query(request: HttpRequest) -> QueryDict:
    """The query string without the empty fields a form submits: the URL people share."""
    query = QueryDict(mutable=True)
    for key, values in request.GET.lists():
        if kept := [v for v in values if v]:
            query.setlist(key, kept)
    return query


@require_GET
def history(request: AuthenticatedRequest) -> HttpResponse:
    form = HistoryFilters(request.GET)
    page = paginate(form, request.user, request.GET, settings.COMPARE_RUNS_PER_PAGE)
    query = _shared_query(request)
    # A back-button cache miss asks for the whole page, with the HX headers set.
    partial = request.htmx and not request.htmx.history_restore_request
    context = {
        "form": form,
        "page": page,
        "row_html": row_html([row(run, request.user) for run in page.runs], EAGER_ROWS),
        "filters_html": "" if partial else filters_html(form, request.GET),
        "query": query,
        "filtering": any(key not in PAGING for key in query),
    }
    response = render(request, "history.html#results" if partial else "history.html", context)
    if partial:
        response["HX-Push-Url"] = request.path + (f"?{query.urlencode()}" if query else "")
    # The same URL answers with a fragment or a page: caches must keep them apart.
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_GET
def history_chart(request: AuthenticatedRequest) -> HttpResponse:
    """The runs-and-spend chart above the first page of the list, for the same filters. The
    page asks for it once drawn (htmx, on load): its aggregate over every matching run is the
    page's slowest query, and the list need not wait for it."""
    form = HistoryFilters(request.GET)
    return render(request, "history.html#chart", {"activity": activity(form, request.user)})


def _export_rows(request: HttpRequest, form: HistoryFilters) -> Iterator[tuple[HistoryRow, str]]:
    runs = with_rows(filtered(form, request.user)).prefetch_related("tags")
    for run in runs.iterator(chunk_size=EXPORT_CHUNK):
        yield row(run, request.user), request.build_absolute_uri(run.get_absolute_url())


def _filename(ext: str) -> str:
    return f"compare-history-{timezone.localdate():%Y%m%d}.{ext}"


@require_GET
def history_csv(request: HttpRequest) -> StreamingHttpResponse:
    records = (export.history_record(r, url) for r, url in _export_rows(request, HistoryFilters(request.GET)))
    response = StreamingHttpResponse(export.csv_lines(records), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{_filename("csv")}"'
    return response


@require_GET
def history_json(request: HttpRequest) -> JsonResponse:
    form = HistoryFilters(request.GET)
    results = [export.history_record(r, url) for r, url in _export_rows(request, form)]
    filters = {name: value for name, value in request.GET.items() if name in form.fields and value}
    errors = {name: [str(e) for e in errs] for name, errs in form.errors.items()} or None
    body = {"filters": filters, "errors": errors, "count": len(results), "results": results}
    response = JsonResponse(body, json_dumps_params={"ensure_ascii": False})
    response["Content-Disposition"] = f'attachment; filename="{_filename("json")}"'
    return response


@require_GET
def run_zip(request: HttpRequest, run_id) -> HttpResponse:
    run = export.run_for_export(run_id, request.user)
    data = export.run_zip(run, request.user, request.build_absolute_uri(run.get_absolute_url()))
    response = HttpResponse(data, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="compare-{run.short_id}.zip"'
    return response

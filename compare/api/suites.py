"""The suite endpoints of the JSON API (token auth and error bodies as in compare/api/views.py):

- `GET /api/suites`: every suite with its version and number of cases;
- `GET /api/suites/<id>/runs`: its suite runs, newest first;
  `POST /api/suites/<id>/runs` with `{"models": ["gpt-image-2", "gemini-3-pro-image"], "samples": 5}`
  (samples 1–20, default 1) starts one (compare/suites/dispatch.py): 201 with its id, URLs
  and progress; 400 for a bad body, model or sample count (`fields` names it), 429 when it
  would pass the daily spending limit;
- `GET /api/suite-runs/<id>`: progress and results (compare/suites/results.py, the same
  numbers as the suite run page);
- `POST /api/suite-runs/<id>/cancel`: cancels what has not started or finished;
- `GET /api/suite-runs/<id>/compare/<other id>`: the change per case and model from the
  first run to the other, flagged where the 95 % intervals do not overlap.

Suite runs are not blind: their bodies name the models, as the suite run page does.
"""

from typing import Any

from django.db.models import Count
from django.http import HttpRequest, JsonResponse
from django.urls import reverse

from compare.api.errors import ApiError
from compare.api.schema import describe, read_object
from compare.api.views import api_view
from compare.parsing import parse_uuid, parse_whole_number
from compare.suites import dispatch, results
from compare.suites.models import Suite, SuiteRun

START_FIELDS = {"models", "samples"}
RUNS_LISTED = 50


def _url(request: HttpRequest, name: str, *args: Any) -> str:
    return request.build_absolute_uri(reverse(name, args=args))


def _time(value) -> str | None:
    return value.isoformat() if value else None


def _suite(suite_id: str) -> Suite:
    pk = parse_whole_number(suite_id, minimum=1, maximum=2**63 - 1)
    suite = Suite.objects.filter(pk=pk).first() if pk else None
    if suite is None:
        raise ApiError(404, f"No suite with id {suite_id!r}.")
    return suite


def _suite_run(suite_run_id: str) -> SuiteRun:
    pk = parse_uuid(suite_run_id)
    if pk is None:
        raise ApiError(404, f"No suite run with id {suite_run_id!r}: suite run ids are UUIDs.")
    suite_run = SuiteRun.objects.select_related("author").filter(pk=pk).first()
    if suite_run is None:
        raise ApiError(404, f"No suite run with id {pk}.")
    return suite_run


def suite_body(request: HttpRequest, suite: Suite, cases: int) -> dict[str, Any]:
    return {
        "id": suite.pk,
        "name": suite.name,
        "description": suite.description,
        "version": suite.version,
        "builtin": suite.builtin,
        "cases": cases,
        "url": request.build_absolute_uri(suite.get_absolute_url()),
        "runs_url": _url(request, "api_suite_runs", suite.pk),
    }


def suite_run_urls(request: HttpRequest, suite_run: SuiteRun) -> dict[str, str]:
    return {
        "url": request.build_absolute_uri(suite_run.get_absolute_url()),
        "api_url": _url(request, "api_suite_run_detail", suite_run.pk),
        "cancel_url": _url(request, "api_suite_run_cancel", suite_run.pk),
    }


def suite_run_summary(request: HttpRequest, suite_run: SuiteRun) -> dict[str, Any]:
    """A suite run without its results: what it ran, who started it and when."""
    return {
        "id": str(suite_run.pk),
        **suite_run_urls(request, suite_run),
        "suite": {"id": suite_run.suite_id, "name": suite_run.suite_name, "version": suite_run.suite_version},
        "models": suite_run.model_keys,
        "samples": suite_run.samples,
        "cases": len(suite_run.cases),
        "author": suite_run.author.get_username(),
        "created_at": _time(suite_run.created_at),
        "cancelled_at": _time(suite_run.cancelled_at),
        "estimated_cost_usd": None if suite_run.estimated_cost_usd is None else str(suite_run.estimated_cost_usd),
    }


@api_view(["GET"])
def suites(request: HttpRequest) -> JsonResponse:
    rows = Suite.objects.annotate(case_count=Count("cases")).order_by("name")
    return JsonResponse({"results": [suite_body(request, s, s.case_count) for s in rows]})


@api_view(["GET", "POST"])
def suite_runs(request: HttpRequest, suite_id: str) -> JsonResponse:
    suite = _suite(suite_id)
    if request.method == "POST":
        return _start(request, suite)
    rows = suite.suite_runs.select_related("author")[:RUNS_LISTED]
    return JsonResponse(
        {
            "suite": suite_body(request, suite, suite.cases.count()),
            "results": [suite_run_summary(request, r) for r in rows],
        }
    )


def _start_arguments(request: HttpRequest) -> tuple[list[str], int]:
    body = read_object(request)
    unknown = sorted(set(body) - START_FIELDS)
    if unknown:
        raise ApiError(
            400,
            f"Unknown field{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}. Known fields: models, samples.",
            {name: ["Unknown field."] for name in unknown},
        )
    models: Any = body.get("models")
    samples: Any = body.get("samples", 1)
    problems = {}
    if not isinstance(models, list) or not all(isinstance(k, str) for k in models):
        problems["models"] = [f'Must be a list of model keys, e.g. ["gpt-image-2"], not {describe(models)}.']
    if not isinstance(samples, int) or isinstance(samples, bool):
        problems["samples"] = [
            f"Must be an integer from {dispatch.MIN_SAMPLES} to {dispatch.MAX_SAMPLES}, not {describe(samples)}."
        ]
    if problems:
        raise ApiError(400, f"Wrong type for {', '.join(problems)}.", problems)
    return models, samples


def _start(request: HttpRequest, suite: Suite) -> JsonResponse:
    models, samples = _start_arguments(request)
    try:
        suite_run = dispatch.start_suite_run(suite, request.user, models, samples)
    except dispatch.SuiteRunRefused as exc:
        if exc.over_limit:
            raise ApiError(429, exc.message) from None
        raise ApiError(400, exc.message, {exc.field: [exc.message]} if exc.field else None) from None
    body = {**suite_run_summary(request, suite_run), "progress": results.progress(suite_run).as_dict()}
    response = JsonResponse(body, status=201)
    response["Location"] = body["api_url"]
    return response


@api_view(["GET"])
def suite_run_detail(request: HttpRequest, suite_run_id: str) -> JsonResponse:
    suite_run = _suite_run(suite_run_id)
    return JsonResponse(
        {
            **suite_run_summary(request, suite_run),
            "progress": results.progress(suite_run).as_dict(),
            "results": results.summarize(suite_run).as_dict(),
        }
    )


@api_view(["POST"])
def suite_run_cancel(request: HttpRequest, suite_run_id: str) -> JsonResponse:
    suite_run = _suite_run(suite_run_id)
    cancelled = dispatch.cancel_suite_run(suite_run)
    return JsonResponse(
        {
            **suite_run_summary(request, suite_run),
            "cancelled": cancelled,
            "progress": results.progress(suite_run).as_dict(),
        }
    )


@api_view(["GET"])
def suite_run_compare(request: HttpRequest, suite_run_id: str, other_id: str) -> JsonResponse:
    a, b = _suite_run(suite_run_id), _suite_run(other_id)
    return JsonResponse(
        {
            "a": suite_run_summary(request, a),
            "b": suite_run_summary(request, b),
            "comparison": results.compare(a, b).as_dict(),
        }
    )

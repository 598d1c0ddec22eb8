"""The API's endpoints: `GET|POST /api/runs`, `GET /api/runs/<id>`, and a JSON 404
for any other path under /api/. Each view reads the request, raises ApiError for
what is wrong with it (compare/api/errors.py turns that into JSON), and answers
a body from compare/api/serializers.py.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.paginator import Paginator
from django.http import HttpRequest, JsonResponse
from django.urls import reverse

from compare.api import schema, serializers
from compare.api.auth import authenticate
from compare.api.errors import ApiError, View, json_errors
from compare.budget import BudgetExceeded
from compare.parsing import parse_uuid, parse_whole_number
from compare.runs import create_run

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100


def api_view(methods: list[str]) -> Callable[[View], View]:
    """Method check, then token authentication; failures in JSON (`json_errors`)."""
    allowed = [*methods, "HEAD"] if "GET" in methods else methods

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
            if request.method not in allowed:
                raise ApiError(
                    405,
                    f"Use {' or '.join(methods)} here, not {request.method}.",
                    headers={"Allow": ", ".join(allowed)},
                )
            request.user = authenticate(request)
            return view(request, *args, **kwargs)

        return json_errors(wrapper)

    return decorator


@api_view(["GET", "POST"])
def runs(request: HttpRequest) -> JsonResponse:
    if request.method == "POST":
        return _create_run(request)
    return _list_runs(request)


def _create_run(request: HttpRequest) -> JsonResponse:
    form = schema.run_form(request)
    try:
        run = create_run(request.user, **form.run_fields())
    except BudgetExceeded as exc:
        raise ApiError(429, str(exc)) from None
    # Re-read: with a synchronous task backend the generations may already be done. The
    # answer names no votes, notes or images: the viewer's blind rule is all it needs.
    read = serializers.run_for_viewer(request.user, run.pk)
    if read is None:  # deleted the moment it was made
        raise ApiError(404, "The run was deleted right after it was made.")
    body = serializers.created(request, read)
    response = JsonResponse(body, status=201)
    response["Location"] = body["api_url"]
    return response


def _pagination(request: HttpRequest) -> tuple[int, int]:
    """`page` and `per_page` from the query string; one 400 naming each bad one."""
    values: dict[str, int] = {}
    problems: dict[str, list[str]] = {}
    for name, default, maximum in (("page", 1, None), ("per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)):
        raw = request.GET.get(name, "")
        number = parse_whole_number(raw, minimum=1) if raw else default
        if number is None:
            problems[name] = [f"{name} must be a whole number of at least 1, not {raw!r}."]
        elif maximum is not None and number > maximum:
            problems[name] = [f"{name} may be at most {maximum}, not {raw}."]
        else:
            values[name] = number
    if problems:
        raise ApiError(400, " ".join(message for messages in problems.values() for message in messages), problems)
    return values["page"], values["per_page"]


def _list_runs(request: HttpRequest) -> JsonResponse:
    page_number, per_page = _pagination(request)
    paginator = Paginator(serializers.runs_queryset(request.user), per_page)
    if page_number > paginator.num_pages:
        message = f"page {page_number} is past the last page ({paginator.num_pages})."
        raise ApiError(400, message, {"page": [message]})
    page = paginator.page(page_number)

    def link(number: int) -> str:
        return request.build_absolute_uri(f"{reverse('api_runs')}?page={number}&per_page={per_page}")

    return JsonResponse(
        {
            "results": [serializers.run_summary(request, run) for run in page.object_list],
            "page": page.number,
            "pages": paginator.num_pages,
            "count": paginator.count,
            "next": link(page.next_page_number()) if page.has_next() else None,
            "previous": link(page.previous_page_number()) if page.has_previous() else None,
        }
    )


@api_view(["GET"])
def run_detail(request: HttpRequest, run_id: str) -> JsonResponse:
    # The route is <str:run_id>, so a malformed id is answered here, in JSON.
    pk = parse_uuid(run_id)
    if pk is None:
        raise ApiError(404, f"No run with id {run_id!r}: run ids are UUIDs.")
    run = serializers.run_for_viewer(request.user, pk)
    if run is None:
        raise ApiError(404, f"No run with id {pk}.")
    return JsonResponse(serializers.run_detail(request, run))


@json_errors
def not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    """For the catch-all `api/<path:rest>` route: unknown API paths answer in JSON too."""
    raise ApiError(
        404,
        f"No API endpoint at {request.path}. Endpoints: /api/runs, /api/runs/<id>, /api/suites, "
        "/api/suites/<id>/runs, /api/suite-runs/<id>, /api/suite-runs/<id>/cancel.",
    )

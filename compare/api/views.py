"""The JSON API: create a comparison, read one, list them.

Authentication is a per-user token only (`Authorization: Bearer cmp_…`), never
the session cookie: these views are CSRF-exempt, and accepting the cookie would
let any web page post runs on a logged-in user's behalf.

Every error is JSON: {"error": {"message": "...", "fields": {"name": ["..."]}}}
with `fields` present only for per-field problems.

Conventions of the bodies:
- money (estimated_cost_usd, cost_usd) is a decimal *string* such as "0.0530",
  or null when unknown, so no precision is lost in a float;
- times are ISO 8601 strings with a UTC offset, or null;
- every URL is absolute. Image URLs point at the login-protected image views.
"""

import base64
import binascii
import json
import logging
import uuid
from collections.abc import Callable
from decimal import Decimal
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.utils.datastructures import MultiValueDict
from django.views.decorators.csrf import csrf_exempt

from compare.budget import BudgetExceeded
from compare.forms import RunForm
from compare.judging import blind
from compare.models import ApiToken, Generation, Image, Run
from compare.runs import create_run

logger = logging.getLogger(__name__)

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
# The JSON type each field of RunForm must have; the form then checks the values.
FIELD_TYPES: dict[str, str] = {
    "prompt": "a string",
    "models": "a list of strings",
    "aspect_ratio": "a string",
    "resolution": "a string",
    "size": "a string",
    "quality": "a string",
    "output_format": "a string",
    "background": "a string",
    "output_compression": "an integer",
    "moderation": "a string",
    "n": "an integer",
    "partial_images": "an integer",
    "grounding": "a boolean",
    "references": "a list of base64 strings",
    "mask": "a base64 string",
    "reuse": "a list of strings",
    "blind": "a boolean",
    "fallback_model": "a string",
    "fallback_quality": "a string",
    "regenerate": "a boolean",
    "tags": "a string",
    "parent": "a string",
}
# `reuse` (sha256 of earlier output images) is read from the data, not a form field.
assert set(FIELD_TYPES) == set(RunForm.base_fields) | {"reuse"}, "the API must accept exactly the form's fields"

View = Callable[..., JsonResponse]


def error(status: int, message: str, fields: dict[str, list[str]] | None = None, **headers: str) -> JsonResponse:
    body: dict[str, Any] = {"message": message}
    if fields:
        body["fields"] = fields
    response = JsonResponse({"error": body}, status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def bearer_token(request: HttpRequest) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if there is one."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def api_view(methods: list[str]) -> Callable[[View], View]:
    """Method check, Bearer token authentication and JSON-only failures for one view."""

    allowed = [*methods, "HEAD"] if "GET" in methods else methods

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
            if request.method not in allowed:
                return error(405, f"Use {' or '.join(methods)} here, not {request.method}.", Allow=", ".join(allowed))
            token = bearer_token(request)
            if not token:
                return error(401, "Send an API token: 'Authorization: Bearer <token>'.", WWW_Authenticate="Bearer")
            user = ApiToken.authenticate(token)
            if user is None:
                return error(
                    401,
                    "The API token is invalid or has been revoked.",
                    WWW_Authenticate='Bearer error="invalid_token"',
                )
            request.user = user
            try:
                return view(request, *args, **kwargs)
            except Exception:
                # Clients parse JSON; an HTML 500 page would only confuse them.
                logger.exception("API view %s crashed", view.__name__)
                return error(500, "Internal error; the details are in the server log.")

        return login_not_required(csrf_exempt(wrapper))

    return decorator


# --- reading the request ---------------------------------------------------------


def _type_problem(name: str, value: Any) -> str | None:
    """A message when `value` does not have the JSON type of field `name`."""
    expected = FIELD_TYPES[name]
    if value is None and name not in ("prompt", "models"):
        return None  # null means "use the default"
    ok = {
        "a string": isinstance(value, str),
        "a list of strings": isinstance(value, list) and all(isinstance(v, str) for v in value),
        "a list of base64 strings": isinstance(value, list) and all(isinstance(v, str) for v in value),
        "a base64 string": isinstance(value, str),
        # bool is a subclass of int in Python; true is not a number of images.
        "an integer": isinstance(value, int) and not isinstance(value, bool),
        "a boolean": isinstance(value, bool),
    }[expected]
    if ok:
        return None
    if name == "models":
        return 'Must be a list of model keys, e.g. ["gpt-image-2", "gemini-3-pro-image"].'
    return f"Must be {expected}, not {_json_type(value)}."


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _read_body(request: HttpRequest) -> dict | JsonResponse:
    try:
        raw = request.body
    except RequestDataTooBig:
        return error(413, "The request body is too large.")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return error(400, f"The body is not valid JSON: {exc}.")
    except RecursionError:
        return error(400, "The body is nested too deeply to be a comparison.")
    if not isinstance(body, dict):
        return error(400, f"The body must be a JSON object, not {_json_type(body)}.")
    return body


def _form_from_body(body: dict) -> RunForm | JsonResponse:
    unknown = sorted(set(body) - set(FIELD_TYPES))
    if unknown:
        return error(
            400,
            f"Unknown field{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}. "
            f"Known fields: {', '.join(FIELD_TYPES)}.",
            {name: ["Unknown field."] for name in unknown},
        )
    problems = {name: [msg] for name, value in body.items() if (msg := _type_problem(name, value))}
    if problems:
        return error(400, f"Wrong type for {', '.join(problems)}.", problems)
    # The form reads a missing checkbox as False and a missing field as its default.
    data = {name: value for name, value in body.items() if value is not None and name not in FILE_FIELDS}
    files = _decode_files(body)
    if isinstance(files, JsonResponse):
        return files
    return RunForm(data, files)


FILE_FIELDS = ("references", "mask")


def _decode(value: str, label: str) -> SimpleUploadedFile | str:
    """A base64 string (or a data: URL) as an uploaded file; a message if it is not base64."""
    payload = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return f"{label} is not valid base64."
    return SimpleUploadedFile(label, data)


def _decode_files(body: dict) -> MultiValueDict | JsonResponse:
    files, problems = MultiValueDict(), {}
    for index, value in enumerate(body.get("references") or []):
        decoded = _decode(value, f"references[{index}]")
        if isinstance(decoded, str):
            problems.setdefault("references", []).append(decoded)
        else:
            files.appendlist("references", decoded)
    if body.get("mask"):
        decoded = _decode(body["mask"], "mask")
        if isinstance(decoded, str):
            problems["mask"] = [decoded]
        else:
            files["mask"] = decoded
    if problems:
        return error(400, "Some images could not be decoded.", problems)
    return files


# --- writing the response --------------------------------------------------------


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _time(value) -> str | None:
    return value.isoformat() if value else None


def _run_urls(request: HttpRequest, run: Run) -> dict[str, str]:
    return {
        "url": request.build_absolute_uri(run.get_absolute_url()),
        "api_url": request.build_absolute_uri(reverse("api_run_detail", args=[run.id])),
    }


def _generation_summary(gen: Generation, hidden: bool = False) -> dict[str, Any]:
    side = blind.side_letter(gen) if gen.run.blind else None
    return {
        "id": str(gen.id),
        "side": side,
        # A blind run names no model until the token's user has voted on it.
        "model": None if hidden else gen.model_key,
        "label": blind.label(gen, hidden),
        "status": gen.status,
        "simulated": gen.simulated,
    }


def _image(request: HttpRequest, image: Image) -> dict[str, Any]:
    return {
        "url": request.build_absolute_uri(image.url),
        "thumbnail_url": request.build_absolute_uri(image.thumbnail_url),
        "width": image.width,
        "height": image.height,
        "format": image.format,
        "bytes": image.bytes,
    }


HIDDEN_WHILE_BLIND = ("position", "model_id", "estimated_cost_usd", "cost_usd", "params_sent")


def _generation_detail(request: HttpRequest, gen: Generation, hidden: bool = False) -> dict[str, Any]:
    failed = bool(gen.error_kind or gen.error_message)
    detail = {
        **_generation_summary(gen, hidden),
        "position": gen.position,
        "model_id": gen.model_id,
        "attempts": gen.attempts,
        "started_at": _time(gen.started_at),
        "finished_at": _time(gen.finished_at),
        "latency_ms": gen.latency_ms,
        "estimated_cost_usd": _money(gen.estimated_cost_usd),
        "cost_usd": _money(gen.cost_usd),
        "error": {"kind": gen.error_kind, "message": gen.error_message} if failed else None,
        "params_sent": gen.params_sent,
        # Streamed previews are superseded by the final images; only those are listed.
        "images": [_image(request, img) for img in gen.final_images()],
    }
    if hidden:
        # Prices, parameters and provider messages would tell the models apart.
        detail.update(dict.fromkeys(HIDDEN_WHILE_BLIND))
        detail["error"] = {"kind": gen.error_kind, "message": None} if failed else None
    return detail


def _run_summary(request: HttpRequest, run: Run) -> dict[str, Any]:
    hidden = blind.names_hidden(run, request.user)
    return {
        "id": str(run.id),
        **_run_urls(request, run),
        "prompt": run.prompt,
        "author": run.author.get_username(),
        "created_at": _time(run.created_at),
        "status": run.status,
        "blind": run.blind,
        "generations": [_generation_summary(g, hidden) for g in run.ordered_generations()],
        "votes_total": len(run.votes.all()),
        "notes_count": run.notes_count,
    }


def _run_detail(request: HttpRequest, run: Run) -> dict[str, Any]:
    hidden = blind.names_hidden(run, request.user)
    generations = run.ordered_generations()
    tally = {choice: 0 for choice, _ in blind.vote_choices(run, generations, hidden=False)}
    for vote in run.votes.all():
        tally[vote.choice] = tally.get(vote.choice, 0) + 1
    return {
        "id": str(run.id),
        **_run_urls(request, run),
        "prompt": run.prompt,
        "options": run.options,
        "author": run.author.get_username(),
        "created_at": _time(run.created_at),
        "status": run.status,
        "blind": run.blind,
        "tags": [t.name for t in run.tags.all()],
        "generations": [_generation_detail(request, g, hidden) for g in generations],
        # The tally would reveal the sides' positions before this user has voted.
        "votes": {"tally": None if hidden else tally, "total": sum(tally.values())},
        "notes_count": run.notes_count,
    }


def _runs_queryset():
    return (
        Run.objects.select_related("author")
        .prefetch_related("generations__images", "votes", "tags")
        .annotate(notes_count=Count("notes", distinct=True))
        .order_by("-created_at", "-id")
    )


# --- views ----------------------------------------------------------------------


def _positive_int(request: HttpRequest, name: str, default: int, maximum: int | None = None) -> int | str:
    """The query parameter as an int, or a message saying what is wrong with it."""
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        return f"{name} must be a whole number of at least 1, not {raw!r}."
    if maximum is not None and int(raw) > maximum:
        return f"{name} may be at most {maximum}, not {raw}."
    return int(raw)


def _list_runs(request: HttpRequest) -> JsonResponse:
    page_number = _positive_int(request, "page", 1)
    per_page = _positive_int(request, "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)
    problems = {
        name: [value] for name, value in (("page", page_number), ("per_page", per_page)) if isinstance(value, str)
    }
    if problems:
        return error(400, " ".join(m for msgs in problems.values() for m in msgs), problems)
    paginator = Paginator(_runs_queryset(), per_page)
    if page_number > paginator.num_pages:
        message = f"page {page_number} is past the last page ({paginator.num_pages})."
        return error(400, message, {"page": [message]})
    page = paginator.page(page_number)

    def link(number: int) -> str:
        return request.build_absolute_uri(f"{reverse('api_runs')}?page={number}&per_page={per_page}")

    return JsonResponse(
        {
            "results": [_run_summary(request, run) for run in page.object_list],
            "page": page.number,
            "pages": paginator.num_pages,
            "count": paginator.count,
            "next": link(page.next_page_number()) if page.has_next() else None,
            "previous": link(page.previous_page_number()) if page.has_previous() else None,
        }
    )


def _create_run(request: HttpRequest) -> JsonResponse:
    body = _read_body(request)
    if isinstance(body, JsonResponse):
        return body
    form = _form_from_body(body)
    if isinstance(form, JsonResponse):
        return form
    if not form.is_valid():
        fields = {name: list(messages) for name, messages in form.errors.items()}
        return error(400, f"The comparison is not valid: check {', '.join(fields)}.", fields)
    try:
        created = create_run(request.user, **form.run_fields())
    except BudgetExceeded as exc:
        return error(429, str(exc))
    # Re-read: with a synchronous task backend the generations may already be done.
    run = Run.objects.prefetch_related("generations").get(pk=created.pk)
    hidden = blind.names_hidden(run, request.user)
    urls = _run_urls(request, run)
    body = {
        "id": str(run.id),
        **urls,
        "status": run.status,
        "generations": [_generation_summary(g, hidden) for g in run.ordered_generations()],
    }
    response = JsonResponse(body, status=201)
    response["Location"] = urls["api_url"]
    return response


@api_view(["GET", "POST"])
def runs(request: HttpRequest) -> JsonResponse:
    if request.method == "POST":
        return _create_run(request)
    return _list_runs(request)


@api_view(["GET"])
def run_detail(request: HttpRequest, run_id: uuid.UUID | str) -> JsonResponse:
    # Accepts a str too, so the route may use <str:run_id> and answer bad ids in JSON.
    try:
        run_id = run_id if isinstance(run_id, uuid.UUID) else uuid.UUID(run_id)
    except ValueError:
        return error(404, f"No run with id {run_id!r}: run ids are UUIDs.")
    run = _runs_queryset().filter(pk=run_id).first()
    if run is None:
        return error(404, f"No run with id {run_id}.")
    return JsonResponse(_run_detail(request, run))


@login_not_required
@csrf_exempt
def not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    """For a catch-all `api/<path:rest>` route: unknown API paths answer in JSON too."""
    return error(404, f"No API endpoint at {request.path}. Endpoints: /api/runs and /api/runs/<id>.")

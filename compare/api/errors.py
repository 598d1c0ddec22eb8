"""The API's one error type, and the one place it becomes a JSON response.

Views and the helpers they call `raise ApiError(status, message, fields)`; the
`json_errors` decorator (which every API view wears, through `api_view`) answers
{"error": {"message": "...", "fields": {"name": ["..."]}}} with that status, and
any other exception as a JSON 500: clients parse JSON, an HTML page would only
confuse them.
"""

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

logger = logging.getLogger(__name__)

View = Callable[..., JsonResponse]


class ApiError(Exception):
    """A failure to report to the client: an HTTP status, one sentence, and (for
    per-field problems) the messages of each field; `headers` go on the response."""

    def __init__(
        self,
        status: int,
        message: str,
        fields: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields or {}
        self.headers = headers or {}


def _as_json(exc: ApiError) -> JsonResponse:
    body: dict[str, Any] = {"message": exc.message}
    if exc.fields:
        body["fields"] = exc.fields
    response = JsonResponse({"error": body}, status=exc.status)
    for name, value in exc.headers.items():
        response[name] = value
    return response


def json_errors(view: View) -> View:
    """Every failure of `view` answered in JSON. The view is CSRF-exempt and needs
    no session login: callers authenticate with a token (see `api_view`), or need
    none at all (the catch-all 404)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        try:
            return view(request, *args, **kwargs)
        except ApiError as exc:
            return _as_json(exc)
        except Exception:
            logger.exception("API view %s crashed", view.__name__)
            return _as_json(ApiError(500, "Internal error; the details are in the server log."))

    return login_not_required(csrf_exempt(wrapper))

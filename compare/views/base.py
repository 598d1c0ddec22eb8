"""Request types for the views: what the middleware guarantees, spelled out for mypy.

At run time every request is a plain `HttpRequest`; these classes only tell the type
checker which attributes `compare/settings.py`'s MIDDLEWARE has set by the time a view runs.
"""

from django.contrib.auth.models import User
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    """Any request: HtmxMiddleware has set `request.htmx`."""

    htmx: HtmxDetails


class AuthenticatedRequest(HtmxHttpRequest):
    """A request LoginRequiredMiddleware let through (every view not marked
    `login_not_required`): `request.user` is a real, logged-in User."""

    user: User

"""Login throttling: django-axes, configured by the AXES_* settings in compare/settings.py.

After COMPARE_LOGIN_MAX_FAILURES failed passwords for one username from one address,
further attempts are refused (HTTP 429, Retry-After) without the password being
looked at, until COMPARE_LOGIN_LOCKOUT_MINUTES have passed since the last counted
failure; a successful login clears the count, and refused attempts do not extend
the lock. django-axes keeps the counts in the database (AccessAttempt rows), so
every web process and machine shares them, and keeps an audit trail in the admin
(access attempts, access logs). Its backend comes first in AUTHENTICATION_BACKENDS,
so the admin's login is held to the same limit as ours. To lift a lock: delete the
access attempt in the admin, or `manage.py axes_reset` (everyone) /
`axes_reset_username NAME` (the name as typed, lower-cased).

This module holds compare's side of it: which username a failure counts against,
the backend, and the page a locked-out attempt gets. The client's address comes
from compare/proxies.py.
"""

import math
from datetime import timedelta
from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_cool_off, get_failure_limit
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone


def username_key(request: HttpRequest | None, credentials: dict[str, Any] | None) -> str:
    """The name a failure counts against: as typed, trimmed and case-folded, so that
    "DANA " is no way around a lock on "dana"."""
    raw = (credentials or {}).get("username")
    if raw is None and request is not None:
        raw = request.POST.get("username")
    return str(raw or "").replace("\x00", "").strip().casefold()[:255]


class LoginThrottleBackend(AxesStandaloneBackend):
    """django-axes' check, first in AUTHENTICATION_BACKENDS: a locked-out username and
    address is refused before any backend looks at the password.

    Every login page passes the request; a call without one (the test client's
    `login()`, a script) has no address to count against and is left to the next
    backend instead of raising.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)


def lockout_message(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return f"Too many failed attempts; try again in {minutes} minute{'s' if minutes != 1 else ''}."


def seconds_locked(request: HttpRequest, credentials: dict[str, Any] | None = None) -> int:
    """How long this username and address stay locked: until enough of their counted
    failures are older than the cool-off for the total to drop below the limit."""
    cool_off = get_cool_off(request) or timedelta(0)
    limit = get_failure_limit(request, credentials)
    now = timezone.now()
    wait = 0
    for attempts in AxesDatabaseHandler().get_user_attempts(request, credentials):
        counted = 0
        for attempt_time, failures in attempts.order_by("-attempt_time").values_list(
            "attempt_time", "failures_since_start"
        ):
            counted += failures
            if counted >= limit:
                wait = max(wait, math.ceil((attempt_time + cool_off - now).total_seconds()))
                break
    return max(1, wait if wait else math.ceil(cool_off.total_seconds()))


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict[str, Any] | None = None
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the login page saying how long to wait, HTTP 429."""
    if original_response is not None and getattr(request, "axes_failures_since_start", None) is not None:
        # This attempt's own password was checked, failed and was the one that reached the
        # limit: it is answered like any wrong password. The lock refuses the next one.
        return original_response
    wait = seconds_locked(request, credentials)
    typed = request.POST.get("username", "")
    context = {
        "form": AuthenticationForm(request, initial={"username": typed}),
        "lockout": lockout_message(wait),
        "next": request.POST.get("next") or request.GET.get("next", ""),
    }
    response = render(request, "login.html", context, status=429)
    response["Retry-After"] = str(wait)
    return response

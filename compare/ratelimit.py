"""Login throttling: after too many failed passwords for one username from one
address, further attempts are refused (HTTP 429) without checking the password.

Counters live in Django's cache under a hash of (username, client address): a
fixed window that opens at the first failure and lasts
COMPARE_LOGIN_LOCKOUT_MINUTES. While it holds COMPARE_LOGIN_MAX_FAILURES failures
the pair is locked; a successful login clears it. Refused attempts do not extend
the lock, so the wait shown is the real one.

The embedded profile's per-process LocMem cache is enough for the single waitress
process. Several web processes need a shared cache (REDIS_URL, see settings).

The client address is REMOTE_ADDR, or behind a reverse proxy listed in
COMPARE_TRUSTED_PROXIES the address that proxy put in X-Forwarded-For. Without
that setting every client shares the proxy's address: the limit then holds per
username only (other users are still unaffected).
"""

import hashlib
import math
import time

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.forms.forms import NON_FIELD_ERRORS
from django.http import HttpRequest, HttpResponse

THROTTLED = "throttled"


def _limit() -> int:
    return getattr(settings, "COMPARE_LOGIN_MAX_FAILURES", 5)


def _window() -> int:
    return 60 * getattr(settings, "COMPARE_LOGIN_LOCKOUT_MINUTES", 15)


def client_ip(request: HttpRequest | None) -> str:
    """The client's address: REMOTE_ADDR, or, when that is one of
    COMPARE_TRUSTED_PROXIES, the nearest X-Forwarded-For hop that is not a trusted
    proxy (the left-hand entries are whatever the client chose to send)."""
    if request is None:
        return ""
    remote = request.META.get("REMOTE_ADDR") or ""
    trusted = set(getattr(settings, "COMPARE_TRUSTED_PROXIES", ()))
    if remote not in trusted:
        return remote
    hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if hop not in trusted:
            return hop[:64]
    return remote


def _keys(username: str, ip: str) -> tuple[str, str]:
    # Hashed: usernames may hold spaces or non-ASCII, which memcached-style keys refuse.
    digest = hashlib.sha256(f"{username.strip().casefold()}\x00{ip}".encode()).hexdigest()
    return f"compare:login-failures:{digest}", f"compare:login-window:{digest}"


def seconds_locked(username: str, ip: str) -> int:
    """How long this username+address is still locked out (0 = not locked)."""
    count_key, start_key = _keys(username, ip)
    if (cache.get(count_key) or 0) < _limit():
        return 0
    started = cache.get(start_key)
    if started is None:
        return 0
    return max(1, math.ceil(started + _window() - time.time()))


def record_failure(username: str, ip: str) -> int:
    """Count one failed attempt; the number of failures in the current window."""
    count_key, start_key = _keys(username, ip)
    window = _window()
    cache.add(start_key, time.time(), window)
    cache.add(count_key, 0, window)
    try:
        return cache.incr(count_key)  # atomic in LocMem and Redis
    except ValueError:  # expired between add() and incr()
        cache.set(count_key, 1, window)
        cache.set(start_key, time.time(), window)
        return 1


def reset(username: str, ip: str) -> None:
    cache.delete_many(list(_keys(username, ip)))


def lockout_message(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return f"Too many failed attempts; try again in {minutes} minute{'s' if minutes != 1 else ''}."


class ThrottledFormMixin:
    """For an AuthenticationForm: refuse a locked username+address before the
    password is looked at, count failures, and clear the count on success."""

    def clean(self):
        username = str(self.cleaned_data.get("username") or self.data.get("username") or "")
        ip = client_ip(self.request)
        wait = seconds_locked(username, ip)
        if wait:
            self.retry_after = wait
            raise forms.ValidationError(lockout_message(wait), code=THROTTLED)
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            record_failure(username, ip)
            raise
        if getattr(self, "user_cache", None) is not None:
            reset(username, ip)
        return cleaned

    @property
    def throttled(self) -> bool:
        return any(e.code == THROTTLED for e in self.errors.as_data().get(NON_FIELD_ERRORS, []))


class ThrottledAuthenticationForm(ThrottledFormMixin, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(ThrottledFormMixin, AdminAuthenticationForm):
    pass


class ThrottledLoginView(LoginView):
    """The app's login page; a locked-out attempt answers 429 with Retry-After."""

    authentication_form = ThrottledAuthenticationForm
    template_name = "login.html"
    redirect_authenticated_user = True

    def form_invalid(self, form) -> HttpResponse:
        response = super().form_invalid(form)
        if form.throttled:
            response.status_code = 429
            response["Retry-After"] = str(form.retry_after)
        return response


login_view = ThrottledLoginView.as_view()

# The admin has its own login form: without this it would be a way around the limit.
admin.site.login_form = ThrottledAdminAuthenticationForm

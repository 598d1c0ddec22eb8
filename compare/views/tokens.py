"""The API tokens page: issue and revoke the current user's tokens."""

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from compare.models import ApiToken
from compare.parsing import parse_whole_number
from compare.views.base import AuthenticatedRequest


@require_http_methods(["GET", "POST"])
def tokens(request: AuthenticatedRequest) -> HttpResponse:
    """Issue and revoke the current user's API tokens. A new token is shown once."""
    new_token = None
    if request.method == "POST":
        if "revoke" in request.POST:
            token_id = parse_whole_number(request.POST.get("revoke"), minimum=1)
            revoked = 0
            if token_id is not None:
                live = request.user.api_tokens.filter(pk=token_id, revoked_at__isnull=True)
                revoked = live.update(revoked_at=timezone.now())
            messages.success(request, "Token revoked.") if revoked else messages.error(request, "No such token.")
            return redirect("tokens")
        name = (request.POST.get("name") or "").strip()[:100] or "API token"
        _, new_token = ApiToken.issue(request.user, name)
    rows = request.user.api_tokens.order_by("-created_at")
    return render(request, "tokens.html", {"tokens": rows, "new_token": new_token})

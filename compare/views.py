"""Pages and their htmx fragments. Every view fits on a screen; the template
`page.html#fragment` renders the same markup for htmx and for full pages."""

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import redirect_to_login
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from compare import blind, pricing, routing
from compare.api import bearer_token
from compare.budget import BudgetExceeded
from compare.forms import RunForm, ignored_options
from compare.models import ApiToken, Image, Reference, Run, TeamSettings
from compare.registry import enabled_models
from compare.runs import create_run


def _form_context(form: RunForm, request: HttpRequest | None = None) -> dict:
    """The new-comparison page as the form stands: what the chosen models can do,
    what they will ignore, the cost estimate and the routing hint."""
    data = form.data if form.is_bound else {}
    chosen = form.models_in_data()
    options = form.preview_options()
    form.restrict_to(chosen)
    reused = _reused_images(request) if request is not None else []
    count = str(data.get("reference_count", ""))
    reference_count = int(count) if count.isascii() and count.isdigit() else len(reused)
    estimates = [(m, pricing.estimate(m, options, data.get("prompt", ""))) for m in chosen]
    known = [e for _, e in estimates if e is not None]
    return {
        "form": form,
        "models": enabled_models(),
        "notes": ignored_options(chosen, options),
        "estimates": estimates,
        "estimate_total": sum(known) if known else None,
        "reused": reused,
        "hints": routing.hints(data.get("prompt", ""), options, chosen, reference_count),
    }


@require_http_methods(["GET", "POST"])
def new_run(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = RunForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                return redirect(create_run(request.user, **form.run_fields()))
            except BudgetExceeded as exc:
                form.add_error(None, str(exc))
    else:
        source = Run.objects.filter(pk=request.GET["from"]).first() if _is_uuid(request.GET.get("from")) else None
        defaults = [m.key for m in enabled_models() if m.default and m.available]
        initial = RunForm.initial_from(source, defaults, TeamSettings.current().blind_by_default)
        form = RunForm(initial={**initial, "regenerate": request.GET.get("regenerate") == "1"})
    return render(request, "new_run.html", _form_context(form, request), status=400 if form.errors else 200)


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _reused_images(request: HttpRequest) -> list[Image]:
    """Earlier output images offered again as references (?ref=<sha256>, or the posted `reuse`)."""
    digests = request.POST.getlist("reuse") if request.method == "POST" else request.GET.getlist("ref")
    found = {img.sha256: img for img in Image.objects.filter(sha256__in=digests[:16], is_partial=False)}
    return [found[d] for d in dict.fromkeys(digests) if d in found]




@require_GET
def run_options(request: HttpRequest) -> HttpResponse:
    """htmx: the option fields (after a change of models), or the notes and the
    cost estimate (after any change), for the form as it stands."""
    part = "options" if request.GET.get("part") == "options" else "summary"
    return render(request, f"new_run.html#{part}", _form_context(RunForm(request.GET)))


@require_GET
def image_view(request: HttpRequest, run_id, sha256: str) -> HttpResponse:
    image = Image.objects.filter(generation__run_id=run_id, sha256=sha256).select_related("generation__run").first()
    if image is None:
        raise Http404("No such image in this run.")
    run = image.generation.run
    arena = request.GET.get("arena") == "1"
    generations, _ = blind.prepare(run, request.user, arena=arena)
    gen = next(g for g in generations if g.pk == image.generation_id)
    return render(request, "image.html", {"image": image, "gen": gen, "run": run, "arena": arena})


def _serve(name: str, content_type: str) -> FileResponse:
    try:
        handle = default_storage.open(name, "rb")
    except FileNotFoundError:
        raise Http404("The image file is missing.") from None
    response = FileResponse(handle, content_type=content_type)
    # Content-addressed: the bytes behind a name never change.
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response


def _allowed_to_see_images(request: HttpRequest) -> bool:
    """A logged-in session, or an API token (scripts fetch the URLs the API returns)."""
    if request.user.is_authenticated:
        return True
    token = bearer_token(request)
    return bool(token and ApiToken.authenticate(token))


@login_not_required
@require_GET
def image_file(request: HttpRequest, sha256: str) -> HttpResponse:
    if not _allowed_to_see_images(request):
        return redirect_to_login(request.get_full_path())
    image = Image.objects.filter(sha256=sha256).first()
    if image is None:
        raise Http404("No such image.")
    response = _serve(image.file, image.mime_type)
    if request.GET.get("download"):
        response["Content-Disposition"] = f'attachment; filename="{image.sha256[:16]}.{image.format}"'
    return response


@require_GET
def reference_file(request: HttpRequest, reference_id: int) -> FileResponse:
    ref = get_object_or_404(Reference, pk=reference_id)
    return _serve(ref.file, ref.mime_type)


@require_GET
def reference_thumbnail(request: HttpRequest, reference_id: int) -> FileResponse:
    ref = get_object_or_404(Reference, pk=reference_id)
    return _serve(ref.thumbnail, "image/webp")


@login_not_required
@require_GET
def image_thumbnail(request: HttpRequest, sha256: str) -> HttpResponse:
    if not _allowed_to_see_images(request):
        return redirect_to_login(request.get_full_path())
    image = Image.objects.filter(sha256=sha256).first()
    if image is None:
        raise Http404("No such image.")
    return _serve(image.thumbnail, "image/webp")



@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    """Issue and revoke the current user's API tokens. A new token is shown once."""
    new_token = None
    if request.method == "POST":
        if "revoke" in request.POST:
            token_id = request.POST.get("revoke", "")
            pk = int(token_id) if token_id.isascii() and token_id.isdigit() else None
            revoked = request.user.api_tokens.filter(pk=pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
            messages.success(request, "Token revoked.") if revoked else messages.error(request, "No such token.")
            return redirect("tokens")
        name = (request.POST.get("name") or "").strip()[:100] or "API token"
        _, new_token = ApiToken.issue(request.user, name)
    rows = request.user.api_tokens.order_by("-created_at")
    return render(request, "tokens.html", {"tokens": rows, "new_token": new_token})

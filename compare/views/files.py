"""Image and reference files, and the full-size image page. Files are served only
to logged-in viewers or API token holders; content-addressed, so cached for good."""

from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import redirect_to_login
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from compare.api.views import bearer_token
from compare.judging import blind
from compare.models import ApiToken, Image, Reference


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

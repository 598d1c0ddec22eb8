"""Image and reference files, and the full-size image page. Files are served only
to logged-in viewers or API token holders; content-addressed, so cached for good.
A blind viewer gets display copies instead, addressed by run and side letter
(`blind_image`, `blind_thumbnail`; compare/judging/blind_images.py says why and how),
and an original by its hash only once the names of a run holding it are shown to
them (`blind_images.originals`): a hash learnt elsewhere fetches nothing before the vote.
With files on S3 (compare/storage.py) an original, a thumbnail or a reference is answered,
after those same checks, by a redirect to a short-lived presigned URL; display copies are
always answered here."""

from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import redirect_to_login
from django.core.files.storage import default_storage
from django.db import router
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET
from PIL import Image as PILImage

from compare import images, storage
from compare.api.auth import bearer_token
from compare.judging import blind, blind_images
from compare.models import ApiToken, Image, Reference, Run
from compare.precompiled import Precompiled


@require_GET
def image_view(request: HttpRequest, run_id, sha256: str) -> HttpResponse:
    image = Image.objects.filter(generation__run_id=run_id, sha256=sha256).select_related("generation__run").first()
    if image is None:
        raise Http404("No such image in this run.")
    arena = request.GET.get("arena") == "1"
    run = _run(run_id, request, arena)
    generations, hidden = blind.prepare(run, request.user, arena=arena)
    gen = next(g for g in generations if g.pk == image.generation_id)
    shown = image
    if hidden:
        # While the names are hidden the page shows the side's display copy, never the original.
        finals = [img.pk for img in gen.final_images()]
        if image.pk not in finals or not gen.shown_images:
            raise Http404("This image is shown once every side has finished.")
        shown = gen.shown_images[finals.index(image.pk)]
    context = {"image": shown, "gen": gen, "run": run, "arena": arena, "hidden": hidden}
    return render(request, "image.html", context)


def _run(run_id, request: HttpRequest, arena: bool) -> Run:
    runs = Run.objects.with_viewer(request.user, arena=arena).prefetch_related("generations__images")
    return get_object_or_404(runs, pk=run_id)


def _blind_file(request: HttpRequest, run_id, letter: str, number: int, thumbnail: bool) -> HttpResponseBase:
    if not _allowed_to_see_images(request):
        return redirect_to_login(request.get_full_path())
    run = get_object_or_404(Run.objects.prefetch_related("generations__images"), pk=run_id)
    found = blind.locate(run, letter, number, arena=request.GET.get("arena") == "1")
    if found is None:
        raise Http404("No such side or image (or a side is still working).")
    image, size = found
    if thumbnail and request.GET.get("size") == "list":  # the history's small slot
        response = HttpResponse(_blind_list_thumbnail(image, size), content_type="image/webp")
    elif thumbnail:
        response = HttpResponse(blind_images.display_thumbnail(image, size), content_type="image/webp")
    else:
        response = HttpResponse(blind_images.display_bytes(image, size), content_type="image/png")
    # The address names a side, not a file: a retried side may get another image. The `v`
    # query parameter of the pages' links changes with the file, so caching is still safe.
    response["Cache-Control"] = "private, max-age=31536000, immutable" if request.GET.get("v") else "private, no-cache"
    if request.GET.get("download"):
        response["Content-Disposition"] = f'attachment; filename="side-{letter}-{number}.png"'
    return response


def _blind_list_thumbnail(image: Image, size: tuple[int, int]) -> bytes:
    """The display copy's thumbnail at the lists' size (compare/images.py `THUMB_SIZES`),
    made from its run-page thumbnail once and kept next to it."""
    key = blind_images.version(image, size)
    edge = images.THUMB_SIZES["list"]
    return blind_images._cached(
        f"blind/{key[:2]}/{key}-thumb-{edge}.webp",
        lambda: images.thumbnail_bytes(blind_images.display_thumbnail(image, size), edge),
    )


@login_not_required
@require_GET
def blind_image(request: HttpRequest, run_id, letter: str, number: int) -> HttpResponseBase:
    """A side's image as a blind viewer sees it: a PNG at the run's common display size,
    addressed by run, side letter and number (compare/judging/blind_images.py)."""
    return _blind_file(request, run_id, letter, number, thumbnail=False)


@login_not_required
@require_GET
def blind_thumbnail(request: HttpRequest, run_id, letter: str, number: int) -> HttpResponseBase:
    return _blind_file(request, run_id, letter, number, thumbnail=True)


def _serve(name: str, content_type: str, filename: str | None = None, download: bool = False) -> HttpResponseBase:
    """The file `name`, for a viewer already allowed to see it: on S3 a redirect to a
    short-lived presigned URL (compare/storage.py), else the bytes streamed from disk."""
    url = storage.presigned_url(name, content_type, filename=filename, download=download)
    if url is not None:
        return storage.redirect(url)
    try:
        handle = default_storage.open(name, "rb")
    except FileNotFoundError:
        raise Http404("The image file is missing.") from None
    response = FileResponse(handle, content_type=content_type)
    # Content-addressed: the bytes behind a name never change.
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    if download and filename:
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _viewer(request: HttpRequest):
    """Who asks for an image: the logged-in user, or the owner of an API token (scripts
    fetch the URLs the API returns); None for anyone else."""
    if request.user.is_authenticated:
        return request.user
    token = bearer_token(request)
    return ApiToken.authenticate(token) if token else None


def _allowed_to_see_images(request: HttpRequest) -> bool:
    return _viewer(request) is not None


# Every image and thumbnail request asks this (a run page's results, a history page's
# dozens of thumbnails): compiled once per database (compare/precompiled.py).
_ORIGINAL = Precompiled(
    lambda sha256, user_id: blind_images.originals(user_id).filter(sha256=sha256).order_by("pk")[:1],
    [("0" * 63 + "5", None), (-424245, None)],
)


def _original(viewer, sha256: str) -> Image:
    """The image with this hash, if `viewer` may see its original (one query); else 404,
    the same answer as for a hash that does not exist, so a hidden side is not confirmed."""
    image = _ORIGINAL.first(router.db_for_read(Image), sha256, viewer.pk)
    if image is None:
        raise Http404("No such image.")
    return image


@login_not_required
@require_GET
def image_file(request: HttpRequest, sha256: str) -> HttpResponseBase:
    viewer = _viewer(request)
    if viewer is None:
        return redirect_to_login(request.get_full_path())
    image = _original(viewer, sha256)
    filename = f"{image.sha256[:16]}.{image.format}"
    return _serve(image.file, image.mime_type, filename=filename, download=bool(request.GET.get("download")))


@require_GET
def reference_file(request: HttpRequest, reference_id: int) -> HttpResponseBase:
    ref = get_object_or_404(Reference, pk=reference_id)
    return _serve(ref.file, ref.mime_type)


@require_GET
def reference_thumbnail(request: HttpRequest, reference_id: int) -> HttpResponseBase:
    ref = get_object_or_404(Reference, pk=reference_id)
    return _serve_thumbnail(ref, request)


@login_not_required
@require_GET
def image_thumbnail(request: HttpRequest, sha256: str) -> HttpResponseBase:
    viewer = _viewer(request)
    if viewer is None:
        return redirect_to_login(request.get_full_path())
    return _serve_thumbnail(_original(viewer, sha256), request)


def _serve_thumbnail(row: Image | Reference, request: HttpRequest) -> HttpResponseBase:
    """The thumbnail in the size asked for (`?size=list`, else the run page's), made from
    the original on this first request if it is missing (compare/images.py)."""
    size = request.GET.get("size", "run")
    size = size if size in images.THUMB_SIZES else "run"
    name = row.thumbnail if size == "run" else images.thumbnail_name(row.sha256, size)
    if not default_storage.exists(name):
        try:
            name = images.ensure_thumbnail(row.file, row.sha256, size)
        except (OSError, images.ImageRejected, PILImage.DecompressionBombError):
            raise Http404("The image file is missing or unreadable.") from None
        if size == "run" and name != row.thumbnail:  # the storage renamed it: remember where
            type(row).objects.filter(pk=row.pk).update(thumbnail=name)
    return _serve(name, "image/webp")


# The search suggestions Google sends with grounded results (its terms require showing
# them): Google's HTML and CSS, so never part of our page. Served alone, under a policy of
# its own: sandboxed (no script, an opaque origin), nothing fetched but inline styles and
# images, framed only by our pages, links opening outside the frame.
SEARCH_SUGGESTIONS_CSP = (
    "sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; style-src 'unsafe-inline'; "
    "img-src https: data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)


@require_GET
def search_suggestions(request: HttpRequest, run_id, generation_id, index: int) -> HttpResponse:
    """One search entry point of a grounded generation (compare/providers/gemini.py keeps
    them), for the run page's sandboxed frame. Only once the viewer may see the model's
    names: a blind side shows no grounding, as on the pane."""
    arena = request.GET.get("arena") == "1"
    run = _run(run_id, request, arena)
    gen = next((g for g in run.generations.all() if str(g.pk) == str(generation_id)), None)
    entries = (gen.grounding or {}).get("search_entry_points") if gen is not None else None
    if blind.names_hidden(run, request.user, arena) or not isinstance(entries, list) or index >= len(entries):
        raise Http404("No search suggestions here.")
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><base target="_blank">'
        f"<title>Search suggestions</title></head><body>{entries[index]}</body></html>"
    )
    response = HttpResponse(page, content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = SEARCH_SUGGESTIONS_CSP
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "private, no-store"
    response["X-Frame-Options"] = "SAMEORIGIN"  # XFrameOptionsMiddleware keeps a header it finds
    return response

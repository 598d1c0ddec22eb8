"""Pages and their htmx fragments. Every view fits on a screen; the template
`page.html#fragment` renders the same markup for htmx and for full pages."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import redirect_to_login
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from compare import fairness, pricing, routing
from compare.api import bearer_token
from compare.forms import NoteForm, RunForm, VoteForm, ignored_options
from compare.models import ApiToken, Generation, Image, Reference, Run
from compare.registry import enabled_models, get_model
from compare.runs import cast_vote, create_run


def _get_run_or_404(run_id) -> Run:
    queryset = Run.objects.select_related("author").prefetch_related(
        "generations__images", "votes__user", "notes__author", "references"
    )
    return get_object_or_404(queryset, pk=run_id)


def _form_context(form: RunForm, request: HttpRequest | None = None) -> dict:
    """The new-comparison page as the form stands: what the chosen models can do,
    what they will ignore, the cost estimate and the routing hint."""
    data = form.data if form.is_bound else {}
    chosen = form.models_in_data()
    options = form.preview_options()
    form.restrict_to(chosen)
    reused = _reused_images(request) if request is not None else []
    count = str(data.get("reference_count", ""))
    reference_count = int(count) if count.isdigit() else len(reused)
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
            references, mask = form.inputs()
            run = create_run(
                request.user, form.cleaned_data["prompt"], form.chosen_models(), form.options(), references, mask
            )
            return redirect(run)
    else:
        form = RunForm(initial={"models": [m.key for m in enabled_models() if m.default and m.available]})
    return render(request, "new_run.html", _form_context(form, request), status=400 if form.errors else 200)


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
def run_detail(request: HttpRequest, run_id) -> HttpResponse:
    run = _get_run_or_404(run_id)
    return render(request, "run.html", _run_context(request, run))


def _run_context(request: HttpRequest, run: Run, **extra) -> dict:
    my_vote = next((v for v in run.votes.all() if v.user_id == request.user.id), None)
    generations = run.ordered_generations()
    return {
        "run": run,
        "generations": generations,
        "ledger": fairness.ledger(run, generations),
        "fairness_warnings": fairness.warnings(run, generations) if run.is_finished else [],
        "references": list(run.references.all()),
        "my_vote": my_vote,
        "note_form": extra.pop("note_form", NoteForm()),
        **extra,
    }


@require_GET
def generation_pane(request: HttpRequest, run_id, generation_id) -> HttpResponse:
    gen = get_object_or_404(
        Generation.objects.select_related("run").prefetch_related("images"), pk=generation_id, run_id=run_id
    )
    return render(request, "run.html#pane", {"gen": gen, "run": gen.run})


RUN_FRAGMENTS = {"votes", "ledger"}


@require_GET
def run_fragment(request: HttpRequest, run_id, name: str) -> HttpResponse:
    """htmx: a part of the run page that follows the panes until the run is finished."""
    if name not in RUN_FRAGMENTS:
        raise Http404("No such part of the run page.")
    run = _get_run_or_404(run_id)
    return render(request, f"run.html#{name}", _run_context(request, run))


@require_POST
def vote(request: HttpRequest, run_id) -> HttpResponse:
    run = _get_run_or_404(run_id)
    form = VoteForm(request.POST, run=run)
    if not run.is_finished:
        form.add_error(None, "Votes open once every model has finished.")
    elif form.is_valid():
        cast_vote(run, request.user, form.cleaned_data["choice"])
        run = _get_run_or_404(run_id)
    if not request.htmx:
        for error in form.errors.get("__all__", []) + form.errors.get("choice", []):
            messages.error(request, error)
        return redirect(run)
    status = 422 if form.errors else 200
    return render(request, "run.html#votes", _run_context(request, run, vote_errors=form.errors), status=status)


@require_POST
def add_note(request: HttpRequest, run_id) -> HttpResponse:
    run = _get_run_or_404(run_id)
    form = NoteForm(request.POST)
    if form.is_valid():
        form.instance.run = run
        form.instance.author = request.user
        form.save()
        run = _get_run_or_404(run_id)
        form = NoteForm()
    elif not request.htmx:
        messages.error(request, "; ".join(form.errors.get("body", ["The note could not be saved."])))
    if not request.htmx:
        return redirect(run)
    status = 422 if form.errors else 200
    return render(request, "run.html#notes", _run_context(request, run, note_form=form), status=status)


@require_GET
def history(request: HttpRequest) -> HttpResponse:
    runs = Run.objects.for_history().annotate(note_count=Count("notes", distinct=True))
    page = Paginator(runs, settings.COMPARE_RUNS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "history.html", {"page": page})


@require_GET
def image_view(request: HttpRequest, run_id, sha256: str) -> HttpResponse:
    image = Image.objects.filter(generation__run_id=run_id, sha256=sha256).select_related("generation__run").first()
    if image is None:
        raise Http404("No such image in this run.")
    return render(request, "image.html", {"image": image, "gen": image.generation, "run": image.generation.run})


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
            request.user.api_tokens.filter(pk=request.POST.get("revoke"), revoked_at__isnull=True).update(
                revoked_at=timezone.now()
            )
            messages.success(request, "Token revoked.")
            return redirect("tokens")
        name = (request.POST.get("name") or "").strip()[:100] or "API token"
        _, new_token = ApiToken.issue(request.user, name)
    rows = request.user.api_tokens.order_by("-created_at")
    return render(request, "tokens.html", {"tokens": rows, "new_token": new_token})

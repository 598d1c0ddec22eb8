"""The new-comparison page and its htmx fragments (options, notes, estimate, hints)."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from compare import budget, hints, pricing
from compare.budget import BudgetExceeded
from compare.forms import RunForm, replaced_models
from compare.models import Image, Run, TeamSettings
from compare.options import ignored_options
from compare.parsing import parse_uuid, parse_whole_number
from compare.registry import offered_models
from compare.runs import create_run


def _form_context(form: RunForm, request: HttpRequest | None = None, user=None) -> dict:
    """The new-comparison page as the form stands: what the chosen models can do,
    what they will ignore, the cost estimate against what is left of the user's
    daily limit, and the routing hint."""
    data = form.data if form.is_bound else {}
    chosen = form.models_in_data()
    options = form.preview_options()
    form.restrict_to(chosen)
    reused = _reused_images(request) if request is not None else []
    reference_count = parse_whole_number(data.get("reference_count"), default=len(reused))
    estimates = [(m, pricing.estimate_range(m, options, data.get("prompt", ""))) for m in chosen]
    viewer = user if user is not None else getattr(request, "user", None)
    return {
        "form": form,
        "models": offered_models(),
        "notes": ignored_options(chosen, options),
        "estimates": estimates,
        # A range when the provider picks the quality; the budget line compares its high end.
        "estimate_total": pricing.total(e for _, e in estimates),
        "prices_as_of": pricing.as_of(pricing.prices_checked(chosen)),
        "budget": budget.today(viewer) if viewer is not None and viewer.is_authenticated else None,
        "reused": reused,
        "hints": hints.hints(data.get("prompt", ""), options, chosen, reference_count),
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
        source_id = parse_uuid(request.GET.get("from"))
        source = Run.objects.filter(pk=source_id).first() if source_id else None
        defaults = [m.key for m in offered_models() if m.default and m.available]
        initial = RunForm.initial_from(source, defaults, TeamSettings.current().blind_by_default)
        for note in replaced_models(source) if source else []:
            messages.info(request, note)
        form = RunForm(initial={**initial, "regenerate": request.GET.get("regenerate") == "1"})
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
    return render(request, f"new_run.html#{part}", _form_context(RunForm(request.GET), user=request.user))

"""The run page and everything a team does on it: watch the panes, vote (blind or
not), rate per criterion, write notes, tag, fork. Each view fits on a screen; the
fragments are `run.html#…` partials of the one page template."""

import difflib
from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRefresh

from compare.budget import BudgetExceeded
from compare.judging import blind, fairness, queue
from compare.judging.forms import NoteForm, TagsForm, VoteForm, parse_ratings
from compare.models import Criterion, Generation, Note, Reveal, Run
from compare.parsing import parse_uuid, parse_whole_number
from compare.runs import cancel_generations, cast_vote, rate, retry_generation
from compare.tasks import expire_overdue
from compare.views.base import AuthenticatedRequest, HtmxHttpRequest

RUN_FRAGMENTS = {"votes", "ledger", "notes", "tags"}


def get_run_or_404(request: HttpRequest, run_id) -> Run:
    """The run with everything its page shows, as this viewer may see it."""
    queryset = (
        Run.objects.for_viewer(request.user, arena=_arena(request))
        .select_related("author", "parent")
        .prefetch_related(
            "generations__images",
            "generations__ratings",
            "notes__author",
            "notes__generation",
            "references",
            "tags",
            "children",
        )
    )
    return get_object_or_404(queryset, pk=run_id)


def _arena(request: HttpRequest) -> bool:
    return request.GET.get("arena") == "1" or request.POST.get("arena") == "1"


def prompt_diff(parent: str, child: str) -> list[tuple[str, str]]:
    """Word-level diff: [(op, text)] with op '=', '+' or '-'."""
    result = []
    for token in difflib.ndiff(parent.split(), child.split()):
        op, word = token[0], token[2:]
        if op in "+- ":
            result.append(({" ": "=", "+": "+", "-": "-"}[op], word))
    return result


def _run_context(request: AuthenticatedRequest, run: Run, **extra) -> dict:
    arena = _arena(request)
    generations, hidden = blind.prepare(run, request.user, arena=arena)
    my_vote = run.votes.filter(user=request.user).first()
    choices = blind.vote_choices(run, generations, hidden)
    my_choice = next((c for c in blind.all_choices(run, generations, hidden) if c.matches(my_vote)), None)
    criteria = list(Criterion.objects.filter(active=True))
    mine = {
        (r.generation_id, r.criterion_id): r.stars
        for g in generations
        for r in g.ratings.all()
        if r.user_id == request.user.id
    }
    notes = list(run.notes.all())
    for gen in generations:
        gen.my_ratings = [(c, mine.get((gen.id, c.id))) for c in criteria]
        gen.pinned_notes = [n for n in notes if n.generation_id == gen.id]
    return {
        "run": run,
        "generations": generations,
        "hidden": hidden,
        "arena": arena,
        # What the Judge queue has left after this run (it says so on the page).
        "queue_left": Run.objects.judge_queue(request.user).exclude(pk=run.pk).count() if arena else None,
        # Opened with the names shown: the page reports it (POST) so the Judge queue skips the run.
        "report_seen": not hidden
        and not run.revealed_to_me
        and not run.voted_by_me
        and run.author_id != request.user.id,
        "clock": blind.clock(generations),
        "delivered": sum(g.delivered for g in generations),
        "vote_choices": choices,
        "tally": [] if hidden else [(choice.label, n) for choice, n in blind.tally(run, generations)],
        "my_vote": my_vote,
        "my_choice": my_choice.value if my_choice else None,
        "my_vote_name": my_choice.label if my_choice else "",
        "ledger": [] if hidden else fairness.ledger(run, generations),
        "fairness_warnings": fairness.warnings(run, generations) if run.is_finished and not hidden else [],
        "references": list(run.references.all()),
        "note_form": extra.pop("note_form", NoteForm()),
        "tags_form": TagsForm(),
        "diff": prompt_diff(run.parent.prompt, run.prompt) if run.parent else [],
        **extra,
    }


@require_GET
def run_detail(request: AuthenticatedRequest, run_id) -> HttpResponse:
    expire_overdue()  # no pane may spin past its deadline, even if a worker was lost
    run = get_run_or_404(request, run_id)
    # A GET writes nothing: a page that shows the names reports so with a POST to `seen`.
    return render(request, "run.html", _run_context(request, run))


@require_POST
def seen(request: AuthenticatedRequest, run_id) -> HttpResponse:
    """The run page, once loaded with the model names shown, says so (htmx, on load).

    A `Reveal` row records it: the same record as "Show model names", since both
    mean this viewer has seen which model is which. Later votes on the run are then
    not blind, and the Judge queue no longer serves it. Nothing is recorded for a
    viewer from whom the names are hidden on the run page."""
    run = get_object_or_404(Run.objects.with_viewer(request.user), pk=run_id)
    if not run.names_hidden:
        Reveal.objects.get_or_create(run=run, user=request.user)
    return HttpResponse(status=204)


@require_GET
def generation_pane(request: AuthenticatedRequest, run_id, generation_id) -> HttpResponse:
    expire_overdue()
    context = _run_context(request, get_run_or_404(request, run_id))
    gen = next((g for g in context["generations"] if str(g.id) == str(generation_id)), None)
    if gen is None:
        raise Http404("No such generation in this run.")
    return render(request, "run.html#pane", {**context, "gen": gen})


@require_GET
def run_fragment(request: AuthenticatedRequest, run_id, name: str) -> HttpResponse:
    """htmx: a part of the run page that follows the panes until the run is finished."""
    if name not in RUN_FRAGMENTS:
        raise Http404("No such part of the run page.")
    run = get_run_or_404(request, run_id)
    shown = parse_whole_number(request.GET.get("sides"))
    if shown is not None and shown != len(run.generations.all()):
        # A fallback side appeared: show the page anew so it gets its own pane.
        return _reload_page()
    return render(request, f"run.html#{name}", _run_context(request, run))


@require_POST
def vote(request: AuthenticatedRequest, run_id) -> HttpResponse:
    run = get_run_or_404(request, run_id)
    hidden = run.names_hidden
    form = VoteForm(request.POST, run=run, arena=_arena(request))
    if not run.is_finished:
        form.add_error(None, "Votes open once every model has finished.")
    elif form.is_valid():
        verdict, winner = form.cleaned_data["choice"]
        cast_vote(run, request.user, verdict, winner, blind=hidden)
        run = get_run_or_404(request, run_id)
    if not request.htmx:
        for error in form.errors.get("__all__", []) + form.errors.get("choice", []):
            messages.error(request, str(error))
        return redirect(_after_reveal(request, run))
    if hidden and not run.names_hidden:
        return _revealed(request, run)
    status = 422 if form.errors else 200
    context = _run_context(request, run, vote_errors=form.errors)
    return render(request, "run.html#votes", context, status=status)


def _revealed(request: AuthenticatedRequest, run: Run) -> HttpResponse:
    """htmx: the names have just appeared for this viewer. The verdict is swapped as
    usual and every part that shows names (the panes, the ledger, the notes, the
    actions) out of band, in place: no side moves, no page reloads."""
    return render(request, "run.html#revealed", _run_context(request, run))


def _after_reveal(request: HttpRequest, run: Run) -> str:
    return run.get_absolute_url() + ("?arena=1" if _arena(request) else "")


@require_POST
def cancel(request: HtmxHttpRequest, run_id, generation_id=None) -> HttpResponse:
    """Cancel one generation, or every unfinished one of the run."""
    run = get_run_or_404(request, run_id)
    pending = run.generations.pending()
    if generation_id is not None:
        pending = pending.filter(pk=generation_id)
    count = cancel_generations(pending)
    if not request.htmx:
        messages.info(
            request, f"Cancelled {count} generation{'s' if count != 1 else ''}." if count else "Nothing to cancel."
        )
    return _refresh_or_redirect(request, run)


@require_POST
def retry(request: AuthenticatedRequest, run_id, generation_id) -> HttpResponse:
    """Run a failed, refused, cancelled or interrupted generation again."""
    run = get_run_or_404(request, run_id)
    gen = get_object_or_404(Generation, pk=generation_id, run=run)
    try:
        retried = retry_generation(gen, request.user)
        problem = None if retried else "Only a finished generation that did not succeed can be retried."
    except BudgetExceeded as exc:
        problem = str(exc)
    if problem:
        messages.error(request, problem)  # shown on the refreshed page, with or without htmx
    return _refresh_or_redirect(request, run)


def _reload_page() -> HttpResponse:
    """htmx: reload the whole page (django-htmx's HX-Refresh), with no content to swap."""
    response = HttpResponseClientRefresh()
    response.status_code = 204
    return response


def _refresh_or_redirect(request: HtmxHttpRequest, run: Run) -> HttpResponse:
    if request.htmx:
        return _reload_page()
    return redirect(_after_reveal(request, run))


@require_POST
def reveal(request: AuthenticatedRequest, run_id) -> HttpResponse:
    """Show the names without voting; later votes on this run are then not blind."""
    run = get_run_or_404(request, run_id)
    Reveal.objects.get_or_create(run=run, user=request.user)
    if request.htmx:
        return _revealed(request, get_run_or_404(request, run_id))
    return redirect(_after_reveal(request, run))


@require_POST
def rate_generation(request: AuthenticatedRequest, run_id, generation_id) -> HttpResponse:
    run = get_run_or_404(request, run_id)
    gen = next((g for g in run.generations.all() if str(g.id) == str(generation_id)), None)
    if gen is None:
        raise Http404("No such generation in this run.")
    ratings, problems = parse_ratings(request.POST, list(Criterion.objects.filter(active=True)))
    if gen.status != gen.Status.SUCCEEDED:
        problems.append("Rate a result once it has finished.")
    if not problems:
        for criterion, stars in ratings.items():
            rate(gen, request.user, criterion, stars)
    if not request.htmx:
        for problem in problems:
            messages.error(request, problem)
        return redirect(_after_reveal(request, run))
    context = _run_context(request, get_run_or_404(request, run_id), rating_errors=problems)
    gen = next(g for g in context["generations"] if g.id == gen.id)
    return render(request, "run.html#ratings", {**context, "gen": gen}, status=422 if problems else 200)


@require_POST
def add_note(request: AuthenticatedRequest, run_id) -> HttpResponse:
    run = get_run_or_404(request, run_id)
    form = NoteForm(request.POST, run=run)
    if form.is_valid():
        form.instance.run = run
        form.instance.author = request.user
        form.save()
        run = get_run_or_404(request, run_id)
        form = NoteForm(run=run)
    elif not request.htmx:
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
    if not request.htmx:
        return redirect(run)
    status = 422 if form.errors else 200
    return render(request, "run.html#notes", _run_context(request, run, note_form=form), status=status)


def _own_note_or_404(request: HttpRequest, run_id, note_id) -> Note:
    # Someone else's note is answered exactly like a missing one.
    return get_object_or_404(Note, pk=note_id, run_id=run_id, author=request.user)


@require_http_methods(["GET", "POST"])
def edit_note(request: AuthenticatedRequest, run_id, note_id) -> HttpResponse:
    note = _own_note_or_404(request, run_id, note_id)
    form = NoteForm(request.POST or None, instance=note, run=note.run)
    if request.method == "POST" and form.is_valid():
        form.save()
        if not request.htmx:
            return redirect(note.run)
        return render(request, "run.html#notes", _run_context(request, get_run_or_404(request, run_id)))
    generations, _ = blind.prepare(note.run, request.user)
    context = {"form": form, "note": note, "run": note.run, "generations": generations}
    return render(request, "note_edit.html", context, status=422 if form.errors else 200)


@require_POST
def delete_note(request: AuthenticatedRequest, run_id, note_id) -> HttpResponse:
    note = _own_note_or_404(request, run_id, note_id)
    note.delete()
    if not request.htmx:
        return redirect(reverse("run_detail", args=[run_id]))
    return render(request, "run.html#notes", _run_context(request, get_run_or_404(request, run_id)))


@require_POST
def edit_tags(request: AuthenticatedRequest, run_id) -> HttpResponse:
    run = get_run_or_404(request, run_id)
    form = TagsForm(request.POST)
    if form.is_valid():
        form.apply(run)
        run = get_run_or_404(request, run_id)
    if not request.htmx:
        return redirect(run)
    context = _run_context(request, run)
    context["tags_form"] = form if form.errors else TagsForm()
    return render(request, "run.html#tags", context, status=422 if form.errors else 200)


@require_GET
def judge_next(request: AuthenticatedRequest) -> HttpResponse:
    """The Judge queue: the newest run whose names this viewer has never seen, shown
    blind (`RunQuerySet.judge_queue` says which runs). `skip` passes over runs for now."""
    skip = [pk for s in request.GET.get("skip", "").split(",") if (pk := parse_uuid(s))][:200]
    run = Run.objects.judge_queue(request.user).exclude(pk__in=skip).first()
    if run is not None:
        return redirect(run.get_absolute_url() + "?arena=1")
    return render(request, "judge.html", queue.summary(request.user))


@require_GET
def fork(request: HttpRequest, run_id) -> HttpResponse:
    run = get_object_or_404(Run, pk=run_id)
    query = {"from": str(run.id)}
    for name in ("ref", "regenerate"):
        if request.GET.get(name):
            query[name] = request.GET[name]
    return redirect(reverse("new_run") + "?" + urlencode(query))

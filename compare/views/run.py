"""The run page and everything a team does on it: watch the panes, vote (blind or
not), rate per criterion, write notes, tag, fork. Each view fits on a screen; the
fragments are `run.html#…` partials of the one page template."""

import difflib
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render, resolve_url
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseClientRefresh, retarget

from compare import budget, live, pricing, run_query
from compare.budget import BudgetExceeded
from compare.judging import blind, fairness, queue
from compare.judging.forms import NoteForm, TagsForm, VoteForm, parse_ratings
from compare.models import Criterion, Generation, Note, Reveal, Run
from compare.parsing import parse_uuid, parse_whole_number
from compare.runs import CannotRetry, cancel_generations, cast_vote, rate, retry_generation
from compare.views.base import AuthenticatedRequest, HtmxHttpRequest

RUN_FRAGMENTS = {"votes", "ledger", "notes", "note_list", "tags"}


def get_run_or_404(request: HttpRequest, run_id, state: live.State | None = None, *, header: bool = True) -> Run:
    """The run with everything its page shows, as this viewer may see it (compare/
    run_query.py). Its live stamps (compare/live.py) are read first (or given), so they
    are never newer than what is shown: a part is at worst drawn once more, never left
    stale. Without `header`, what only the page's head shows (tags, forks) is not read:
    the live poll's answer never draws it."""
    if state is None:
        state = live.read(run_id, request.user.pk, _arena(request))
    run = run_query.load(request.user.pk, run_id, _arena(request), header)
    if run is None:
        raise Http404("No such run.")
    run.live_state = state
    return run


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
    state = getattr(run, "live_state", None) or live.read(run.pk, request.user.pk, arena)
    for gen in generations:
        gen.my_ratings = [(c, mine.get((gen.id, c.id))) for c in criteria]
        gen.pinned_notes = [n for n in notes if n.generation_id == gen.id]
        gen.live = state.stamp(f"p{gen.position}")
        gen.charge = budget.charge(gen)
        gen.estimate = _estimate(run, gen)
        gen.latency_s = _latency_seconds(gen)
    poll = {"key": live.poll_key(run.pk, request.user.pk)} | ({"arena": "1"} if arena else {})
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
        # Live updates (compare/live.py): each part's stamp, and the one poll of the page.
        "live": {key: state.stamp(key) for key in ("n", "v", "l", "a", "c")},
        "poll_url": reverse("run_updates", args=[run.pk]) + "?" + urlencode(poll),
        "poll_every": live.INTERVAL_MS,
        # The page keeps polling while a side's automatic checks run, after the run is done.
        "checks_pending": any(g.check_status == Generation.CheckStatus.PENDING for g in generations),
        "run_cost": budget.run_cost(generations),
        **extra,
    }


def _estimate(run: Run, gen: Generation) -> pricing.Estimate | None:
    """A pane's estimate as a range while its model's prices still give the stored high end
    (compare/pricing.py: with quality "auto" the provider picks the quality)."""
    return None if gen.is_terminal else gen.estimate_range()


def _latency_seconds(gen: Generation) -> float | None:
    """The one time a finished pane shows, in seconds: a reused result shows how long its
    original took (its own "generation" took no time)."""
    source = gen.cached_from if gen.cached_from_id and gen.cached_from is not None else gen
    return None if source.latency_ms is None else source.latency_ms / 1000


@require_GET
def run_detail(request: AuthenticatedRequest, run_id) -> HttpResponse:
    run = get_run_or_404(request, run_id)
    # A GET writes nothing: a page that shows the names reports so with a POST to `seen`,
    # and the deadline sweeper (compare/management/commands/serve.py) ends overdue panes.
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
    """One pane as it stands (the page itself learns of changes from `run_updates`)."""
    context = _run_context(request, get_run_or_404(request, run_id))
    gen = next((g for g in context["generations"] if str(g.id) == str(generation_id)), None)
    if gen is None:
        raise Http404("No such generation in this run.")
    return render(request, "run.html#pane", {**context, "gen": gen})


@login_not_required  # a poll key, or the session (checked inside)
@require_GET
def run_updates(request: AuthenticatedRequest, run_id) -> HttpResponse:
    """htmx: the run page's one poll (compare/live.py). `since` holds the page's stamps;
    the answer is 204 (nothing new), 286 (nothing new and the run is finished: polling
    stops), or the changed parts as out-of-band swaps. A "nothing new" answer usually
    needs no query at all: the poll key in the URL says who asks (no session is read),
    and `live.current` remembers the run's state."""
    user_id = live.poller(request.GET.get("key", ""), run_id)
    if user_id is None:
        if not request.user.is_authenticated:
            return _to_login(request)
        user_id = request.user.pk
    state = live.current(run_id, user_id, _arena(request))
    if not state.exists and not Run.objects.filter(pk=run_id).exists():
        raise Http404("No such run.")
    if state.changes(_since(request)) == set():
        return HttpResponse(status=286 if state.finished else 204)
    # Something to draw: that needs the viewer's session.
    if not request.user.is_authenticated or request.user.pk != user_id:
        return _to_login(request)
    return _updates(request, get_run_or_404(request, run_id, state, header=False), poll=True)


def _to_login(request: HtmxHttpRequest) -> HttpResponse:
    """The session is gone: to the login page, and back to this run after it (htmx: the
    whole page goes there, not the poll)."""
    if not request.htmx:
        return redirect_to_login(request.get_full_path())
    page = request.htmx.current_url_abs_path or ""
    return HttpResponseClientRedirect(
        resolve_url(settings.LOGIN_URL) + ("?" + urlencode({"next": page}) if page else "")
    )


def _since(request: HttpRequest) -> dict[str, str]:
    """The page's stamps: `since` on the poll, the X-Live-Since header on its other requests
    (static/compare.js adds it). Without them every live part is drawn anew."""
    return live.parse(request.GET.get("since") or request.headers.get("X-Live-Since", ""))


def _updates(request: AuthenticatedRequest, run: Run, *, poll: bool = False) -> HttpResponse:
    """htmx: every part of the run page whose stamp differs from the page's, swapped out
    of band: the poll's answer, and the answer to a cancel or a retry. Those carry the
    poll too, so that it starts again when a retry reopens the run."""
    state = run.live_state
    changes = state.changes(_since(request))
    if changes is None:
        return _reload_page()  # a fallback side appeared: the page gets its own pane for it
    finished = state.finished and run.is_finished
    if poll and not changes:
        return HttpResponse(status=286 if finished else 204)
    context = _run_context(request, run)
    for gen in context["generations"]:
        gen.live_changed = f"p{gen.position}" in changes
    context.update(changes=changes, oob=True, with_poll=not poll)
    response = render(request, "run.html#updates", context)
    if poll and finished:
        response.status_code = 286  # the last news: htmx swaps it in and stops polling
    return response


@require_GET
def run_fragment(request: AuthenticatedRequest, run_id, name: str) -> HttpResponse:
    """htmx: one part of the run page as it stands."""
    if name not in RUN_FRAGMENTS:
        raise Http404("No such part of the run page.")
    run = get_run_or_404(request, run_id)
    shown = parse_whole_number(request.GET.get("sides"))
    if shown is not None and shown != len(run.generations.all()):
        # A fallback side appeared: show the page anew so it gets its own pane.
        return _reload_page()
    focus_note = parse_whole_number(request.GET.get("focus"))  # a note edit cancelled: back to its Edit link
    return render(request, f"run.html#{name}", _run_context(request, run, focus_note=focus_note))


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
def cancel(request: AuthenticatedRequest, run_id, generation_id=None) -> HttpResponse:
    """Cancel one generation, or every unfinished one of the run."""
    run = get_run_or_404(request, run_id)
    pending = run.generations.pending()
    if generation_id is not None:
        pending = pending.filter(pk=generation_id)
    count = cancel_generations(pending)
    live.changed(run.pk)
    if request.htmx:  # the panes, the verdict and the actions change in place
        return _updates(request, get_run_or_404(request, run_id))
    messages.info(
        request, f"Cancelled {count} generation{'s' if count != 1 else ''}." if count else "Nothing to cancel."
    )
    return redirect(_after_reveal(request, run))


@require_POST
def retry(request: AuthenticatedRequest, run_id, generation_id) -> HttpResponse:
    """Run a failed, refused, cancelled or interrupted generation again."""
    run = get_run_or_404(request, run_id)
    gen = get_object_or_404(Generation, pk=generation_id, run=run)
    try:
        retried = retry_generation(gen, request.user)
        problem = None if retried else "Only a finished generation that did not succeed can be retried."
    except (BudgetExceeded, CannotRetry) as exc:
        problem = str(exc)
    if problem:
        messages.error(request, problem)  # shown on the refreshed page, with or without htmx
    else:
        live.changed(run.pk)
        if request.htmx:  # the pane is queued again in place, and the poll starts again
            return _updates(request, get_run_or_404(request, run_id))
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
        return redirect(_after_reveal(request, run))
    status = 422 if form.errors else 200
    # Ready for the next note: the cleared field (or the one to fix) has the focus.
    form.fields["body"].widget.attrs["autofocus"] = True
    context = _run_context(request, run, note_form=form)
    return render(request, "run.html#notes_added", context, status=status)


def _own_note_or_404(request: HttpRequest, run_id, note_id) -> Note:
    # Someone else's note is answered exactly like a missing one.
    return get_object_or_404(Note, pk=note_id, run_id=run_id, author=request.user)


@require_http_methods(["GET", "POST"])
def edit_note(request: AuthenticatedRequest, run_id, note_id) -> HttpResponse:
    """Edit one's own note: in place in the note list (htmx), or on a page of its own
    without JavaScript (templates/note_edit.html; it posts here and comes back)."""
    note = _own_note_or_404(request, run_id, note_id)
    form = NoteForm(request.POST or None, instance=note, run=note.run, auto_id=f"note-{note.pk}-%s")
    saved = request.method == "POST" and form.is_valid()
    if saved:
        form.save()
        if not request.htmx:
            return redirect(_after_reveal(request, note.run) + f"#note-{note.pk}")
    status = 422 if form.errors else 200
    if request.htmx:
        context = _run_context(request, get_run_or_404(request, run_id))
        if saved:  # the list again, the side it is pinned to too; focus back on its Edit link
            return render(request, "run.html#notes_changed", {**context, "focus_note": note.pk})
        form.fields["body"].widget.attrs["autofocus"] = True
        response = render(request, "run.html#note_edit", {**context, "note": note, "edit_form": form}, status=status)
        return retarget(response, f"#note-{note.pk}") if form.errors else response
    generations, _ = blind.prepare(note.run, request.user, arena=_arena(request))
    context = {"form": form, "note": note, "run": note.run, "generations": generations, "arena": _arena(request)}
    return render(request, "note_edit.html", context, status=status)


@require_POST
def delete_note(request: AuthenticatedRequest, run_id, note_id) -> HttpResponse:
    note = _own_note_or_404(request, run_id, note_id)
    note.delete()
    if not request.htmx:
        return redirect(_after_reveal(request, get_object_or_404(Run, pk=run_id)) + "#notes")
    context = _run_context(request, get_run_or_404(request, run_id))
    return render(request, "run.html#notes_changed", {**context, "focus_list": True})


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

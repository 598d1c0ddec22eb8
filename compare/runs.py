"""Creating a run: one transaction for the run and its generations, then one
task per generation once the transaction has committed."""

import random
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from compare import budget, images, pricing
from compare.models import Criterion, Generation, Rating, Reference, Run, SuiteRun, Tag, Vote
from compare.registry import Model
from compare.tasks import enqueue_generations


def _store_inputs(run: Run, references: list, mask, markup) -> None:
    inputs = [(Reference.Kind.REFERENCE, i, f) for i, f in enumerate(references)]
    if mask is not None:
        inputs.append((Reference.Kind.MASK, 0, mask))
    if markup is not None:
        inputs.append((Reference.Kind.MARKUP, 0, markup))
    for kind, position, item in inputs:
        Reference.objects.create(
            run=run,
            kind=kind,
            position=position,
            name=item.name,
            source_image=item.source_image,
            **images.store(item.data),
        )


def create_run(
    author,
    prompt: str,
    models: list[Model],
    options: dict,
    references=(),
    mask=None,
    *,
    markup=None,
    blind: bool = False,
    tags=(),
    parent: Run | None = None,
    suite_run: SuiteRun | None = None,
    suite_case: int | None = None,
    suite_sample: int | None = None,
) -> Run:
    """references / mask / markup: verified inputs (forms.InputFile) in the order the user
    gave them, stored as the run's Reference rows (the markup one of its own kind; the run's
    options say `markup: True`, which the option notes and the fairness ledger read).

    A case-sample of a suite run (`suite_run`, its case index and sample number) is
    neither checked against the budget nor enqueued here: compare/suites/dispatch.py
    checks the whole suite run once and enqueues its generations within the in-flight limit."""
    if markup is not None:
        options = {**options, "markup": True}
    # Blind runs show the sides in a random order, so "left" says nothing about the model.
    order = random.sample(range(len(models)), len(models)) if blind else list(range(len(models)))
    estimates = [pricing.estimate(model, options, prompt) for model in models]
    with transaction.atomic():
        if suite_run is None:
            budget.check(author, estimates, len(models), labels=[m.label for m in models])  # raises BudgetExceeded
        run = Run.objects.create(
            author=author,
            prompt=prompt,
            options=options,
            blind=blind,
            parent=parent,
            suite_run=suite_run,
            suite_case=suite_case,
            suite_sample=suite_sample,
        )
        if tags:
            run.tags.set(Tag.objects.get_or_create(name=name)[0] for name in tags)
        _store_inputs(run, list(references), mask, markup)
        generations = [
            Generation.objects.create(
                run=run,
                position=position,
                blind_position=order[position],
                model_key=model.key,
                model_label=model.label,
                model_id=model.model_id,
                simulated=model.simulated,
                estimated_cost_usd=estimates[position],
            )
            for position, model in enumerate(models)
        ]
        if suite_run is None:
            transaction.on_commit(partial(enqueue_generations, [g.id for g in generations]))
    return run


def cast_vote(run: Run, user, verdict: Vote.Verdict, winner: Generation | None = None, blind: bool = False) -> Vote:
    """One vote per user per run; changing it keeps it blind only if it still is.
    `winner` (a generation of `run`) is given exactly when the verdict is BETTER."""
    if (winner is not None) != (verdict == Vote.Verdict.BETTER) or (winner is not None and winner.run_id != run.pk):
        raise ValueError(f"A {verdict} vote on run {run.pk} cannot have winner {winner!r}.")
    existing = Vote.objects.filter(run=run, user=user).first()
    if existing is None:
        try:
            with transaction.atomic():
                return Vote.objects.create(run=run, user=user, verdict=verdict, winner=winner, blind=blind)
        except IntegrityError:  # a double click: the other request created it first
            existing = Vote.objects.get(run=run, user=user)
    existing.verdict, existing.winner = verdict, winner
    existing.blind = existing.blind and blind
    existing.save(update_fields=["verdict", "winner", "blind", "updated_at"])
    return existing


def rate(generation: Generation, user, criterion: Criterion, stars: int) -> Rating:
    rating, _ = Rating.objects.update_or_create(
        generation=generation, user=user, criterion=criterion, defaults={"stars": stars}
    )
    return rating


def cancel_generations(queryset) -> int:
    """Mark unfinished generations cancelled. A call already on its way is not
    aborted, but its result is dropped (tasks only write to running rows); the provider
    may still bill it, so a running one's log records that, as compare/recovery.py does
    for an interrupted one, and its cost is tallied again (compare/budget.py)."""
    now = timezone.now()
    ended: dict[str, Any] = {
        "status": Generation.Status.CANCELLED,
        "finished_at": now,
        "error_kind": "",
        "error_message": "Cancelled by a user.",
        "waiting_for": "",
    }
    count = 0
    with transaction.atomic():  # the task cannot append to a log between its read and this write
        running = queryset.filter(status=Generation.Status.RUNNING).select_for_update(of=("self",))
        for row in running.values_list("pk", "claim", "attempt_log", "estimated_cost_usd"):
            count += budget.end_running(row, "cancelled", **ended)
        count += queryset.pending().update(**ended)
    return count


RETRYABLE_STATES = {Generation.Status.FAILED, Generation.Status.REFUSED, Generation.Status.CANCELLED}


class CannotRetry(Exception):
    """Why a generation cannot run again, in words for its page."""


def retry_generation(gen: Generation, user) -> bool:
    """Queue a generation that did not succeed once more; its earlier attempts stay in
    the log. A retry is paid like a new run, so the budget guard applies (BudgetExceeded);
    a model its provider has retired is not called again (CannotRetry)."""
    if gen.model is not None and gen.model.retired:
        raise CannotRetry(gen.model.retirement_refusal())
    history = [*list(gen.attempt_log), {"retried_at": timezone.now().isoformat(), "after": gen.status}]
    with transaction.atomic():
        budget.check(user, [gen.estimated_cost_usd], 1)
        updated = Generation.objects.filter(pk=gen.pk, status__in=RETRYABLE_STATES).update(
            status=Generation.Status.QUEUED,
            queued_at=timezone.now(),
            started_at=None,
            finished_at=None,
            latency_ms=None,
            error_kind="",
            error_message="",
            attempts=0,
            attempt_log=history,
        )
        if updated:
            gen.images.filter(is_partial=True).delete()
            transaction.on_commit(partial(enqueue_generations, [gen.id]))
    return bool(updated)

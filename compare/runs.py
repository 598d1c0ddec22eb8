"""Creating a run: one transaction for the run and its generations, then one
task per generation once the transaction has committed."""

from functools import partial

from django.db import transaction

from compare import images, pricing
from compare.models import Generation, Reference, Run, Vote
from compare.registry import Model
from compare.tasks import enqueue_generations


def _store_inputs(run: Run, references: list, mask) -> None:
    inputs = [(Reference.Kind.REFERENCE, i, f) for i, f in enumerate(references)]
    if mask is not None:
        inputs.append((Reference.Kind.MASK, 0, mask))
    for kind, position, item in inputs:
        Reference.objects.create(
            run=run, kind=kind, position=position, name=item.name, source_image=item.source_image,
            **images.store(item.data),
        )


def create_run(author, prompt: str, models: list[Model], options: dict, references=(), mask=None) -> Run:
    """references / mask: verified inputs (forms.InputFile) in the order the user gave them."""
    with transaction.atomic():
        run = Run.objects.create(author=author, prompt=prompt, options=options)
        _store_inputs(run, list(references), mask)
        generations = [
            Generation.objects.create(
                run=run,
                position=position,
                model_key=model.key,
                model_label=model.label,
                model_id=model.model_id,
                simulated=model.simulated,
                estimated_cost_usd=pricing.estimate(model, options, prompt),
            )
            for position, model in enumerate(models)
        ]
        transaction.on_commit(partial(enqueue_generations, [g.id for g in generations]))
    return run


def cast_vote(run: Run, user, choice: str) -> Vote:
    vote, _ = Vote.objects.update_or_create(run=run, user=user, defaults={"choice": choice})
    return vote

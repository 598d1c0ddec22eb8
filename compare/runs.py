"""Creating a run: one transaction for the run and its generations, then one
task per generation once the transaction has committed."""

from functools import partial

from django.db import transaction

from compare import pricing
from compare.models import Generation, Run, Vote
from compare.registry import Model
from compare.tasks import enqueue_generations


def create_run(author, prompt: str, models: list[Model], options: dict) -> Run:
    with transaction.atomic():
        run = Run.objects.create(author=author, prompt=prompt, options=options)
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

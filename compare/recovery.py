"""Generations a stopped process was running: ended as interrupted, or run again by themselves.

When `serve` starts after a crash (compare/management/commands/serve.py) or a Celery
worker is handed the task of a worker that died (compare/celerybackend.py
`end_if_orphaned`), a generation is found "running" with nobody running it. The provider
may already have billed that call, so by default it ends **interrupted** and the user
decides (Retry). A team that prefers results to savings turns on Team settings →
"Re-run interrupted generations": such a generation is then queued again by itself, at
most `MAX_AUTOMATIC_RERUNS` times (a generation that brings its process down each time
must not do so for ever) and only within its author's daily limit, as a Retry. Either way the interrupted call stays in its attempt log,
counted as maybe billed (compare/budget.py), and the claim (compare/tasks.py `_claim`)
keeps the old call, should it still be alive somewhere, from recording a result.
"""

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from compare import budget, live
from compare.models import Generation, Image, TeamSettings

MAX_AUTOMATIC_RERUNS = 1
RERUN = "automatic"  # the `rerun` of an attempt-log entry written here


def automatic_reruns(attempt_log: list) -> int:
    return sum(1 for entry in attempt_log if isinstance(entry, dict) and entry.get("rerun") == RERUN)


def _affordable(author_id: int, estimate) -> bool:
    """Whether its author's daily limit leaves room to pay for the call once more: a re-run
    is paid like a Retry (compare/runs.py `retry_generation`), so the same guard applies."""
    try:
        with transaction.atomic():
            budget.check(get_user_model()(pk=author_id), [estimate], 0, what="Running it again")
    except budget.BudgetExceeded:
        return False
    return True


def recover(generations: QuerySet[Generation], message: str) -> tuple[list[str], int]:
    """End or queue again the running generations of `generations`, each only if it is
    still running under the claim it had when read. Returns the ids queued again (the
    caller sends their tasks) and how many were ended as interrupted."""
    rerun = TeamSettings.current().rerun_interrupted
    requeued: list[str] = []
    interrupted = 0
    rows = generations.filter(status=Generation.Status.RUNNING).values_list(
        "pk", "claim", "attempt_log", "estimated_cost_usd", "run_id", "run__author_id"
    )
    for pk, claim, log, estimate, run_id, author_id in rows:
        now = timezone.now()
        row = (pk, claim, log, estimate)
        if rerun and automatic_reruns(log) < MAX_AUTOMATIC_RERUNS and _affordable(author_id, estimate):
            marker = {"rerun": RERUN, "at": now.isoformat(), "after": "interrupted"}
            done = budget.end_running(
                row,
                "interrupted",
                then=(marker,),
                status=Generation.Status.QUEUED,
                queued_at=now,
                started_at=None,
                finished_at=None,
                latency_ms=None,
                error_kind="",
                error_message="",
                waiting_for="",
                attempts=0,
            )
            if done:
                Image.objects.filter(generation_id=pk, is_partial=True).delete()  # a stream's previews
                requeued.append(str(pk))
        else:
            done = budget.end_running(
                row,
                "interrupted",
                status=Generation.Status.FAILED,
                finished_at=now,
                error_kind="interrupted",
                error_message=message,
            )
            interrupted += done
        if done:
            live.changed(run_id)
    return requeued, interrupted

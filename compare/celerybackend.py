"""A django.tasks backend that hands each task to Celery (the scale-out profile).

`COMPARE_TASK_BACKEND=celery` selects it (compare/settings.py). `enqueue` publishes one
message to the broker (RabbitMQ); a Celery worker (`celery -A compare worker`, the app in
compare/celery.py) runs the task with `execute` below. The engine is Celery: this module
is only the translation between the two APIs, so it is kept thin. (The adapter packages
on PyPI were single 0.1 releases when this was written, one of them marked alpha.)

What a killed worker leaves behind, and who finishes it:
- its unacknowledged messages go back to the broker the moment its connection drops
  (late acknowledgement): generations it had not started yet are still queued in the
  database and simply run on another worker;
- a generation it was running is redelivered too. The provider may already have billed
  that call, so it is not made again behind the user's back: the redelivered task asks
  the workers whether any of them still runs it and, when none does, ends it as
  interrupted, as `serve` does after a crash (compare/management/commands/serve.py); the
  user's Retry runs it again, or it runs again by itself where the team allows automatic
  re-runs (compare/recovery.py). The claim (compare/tasks.py `_claim`) keeps a generation
  from ever running twice at once, whatever the broker delivers.
- every worker sweeps for generations past their deadline and releases held suite
  generations (`start_sweeper`), so the scale-out profile needs no `serve` for them.
A generation whose message cannot be published (the broker unreachable) fails at once,
saying so, instead of waiting queued for ever (`unsent`).
"""

import logging
import threading
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections, connections
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.base import Task, TaskResult
from django.utils import timezone
from django.utils.module_loading import import_string

from compare import live, sweeper
from compare.models import Generation
from compare.recovery import recover
from compare.taskbackend import ready_result

logger = logging.getLogger(__name__)
GENERATE = "compare.tasks.generate"
INTERRUPTED = "The worker running this generation stopped. Press Retry to run it again."
UNSENT = "The task queue could not be reached, so nothing was sent to the provider. Press Retry to try again."


class CeleryBackend(BaseTaskBackend):
    supports_defer = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.queue = str(self.options.get("queue") or settings.CELERY_TASK_DEFAULT_QUEUE)

    def enqueue[**P, R](self, task: Task[P, R], args: list[Any], kwargs: dict[str, Any]) -> TaskResult[P, R]:
        self.validate_task(task)
        try:
            from compare.celery import run_task
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"COMPARE_TASK_BACKEND=celery needs Celery: pip install 'celery>=5.4' ({exc})."
            ) from None
        result = ready_result(self.alias, task, args, kwargs, str(uuid.uuid4()), timezone.now())
        message = (task.module_path, result.args, result.kwargs)
        try:
            if task.run_after is None:
                run_task.apply_async(args=message, task_id=result.id, queue=self.queue)
            else:
                run_task.apply_async(args=message, task_id=result.id, queue=self.queue, eta=task.run_after)
        except Exception:
            # The broker stayed unreachable through kombu's retries. A generation says so on its
            # pane (nothing reached the provider: Retry is free) rather than wait for ever.
            logger.exception("Could not send %s to the broker (CELERY_BROKER_URL)", task.module_path)
            if task.module_path != GENERATE or not unsent(str(args[0] if args else kwargs["generation_id"])):
                raise
        return result


def unsent(generation_id: str) -> bool:
    """End a queued generation whose task could not be published; True if it was queued."""
    run_id = Generation.objects.filter(pk=generation_id).values_list("run_id", flat=True).first()
    failed = Generation.objects.filter(pk=generation_id, status=Generation.Status.QUEUED).update(
        status=Generation.Status.FAILED,
        finished_at=timezone.now(),
        error_kind="server",
        error_message=UNSENT,
    )
    if failed:
        live.changed(run_id)
    return bool(failed)


def execute(module_path: str, args: list, kwargs: dict, request: Any) -> None:
    """Run one delivered task in a worker thread (compare/celery.py `run_task`)."""
    task = import_string(module_path)
    if not isinstance(task, Task):
        raise TypeError(f"{module_path} is not a django.tasks task")
    close_old_connections()
    try:
        delivery = getattr(request, "delivery_info", None) or {}
        if module_path == GENERATE and delivery.get("redelivered"):
            generation_id = str(args[0] if args else kwargs["generation_id"])
            end_if_orphaned(generation_id, getattr(request, "hostname", None) or "")
        task.call(*args, **kwargs)
    finally:
        connections.close_all()  # this thread's connections: a pool of 128 must not keep 128 open


def end_if_orphaned(generation_id: str, hostname: str) -> str:
    """A redelivered generate task: when its generation is running and no worker runs it
    any more, end it as interrupted, or queue it again where the team allows automatic
    re-runs (compare/recovery.py; this delivery then runs it). What it found: "queued"
    (never started: the task then runs it as usual), "alive" (another delivery still runs
    it), "interrupted", "requeued" or "ended"."""
    row = Generation.objects.filter(pk=generation_id).values("status", "claim").first()
    if row is None or row["status"] != Generation.Status.RUNNING:
        return "queued" if row and row["status"] == Generation.Status.QUEUED else "ended"
    if deliveries_running(generation_id, hostname) > 0:
        return "alive"
    requeued, interrupted = recover(Generation.objects.filter(pk=generation_id, claim=row["claim"]), INTERRUPTED)
    if not (requeued or interrupted):
        return "ended"  # it finished (or was cancelled) while the workers were asked
    outcome = "requeued" if requeued else "interrupted"
    logger.warning("Generation %s was running on a worker that stopped; %s.", generation_id, outcome)
    return outcome


def deliveries_running(generation_id: str, hostname: str) -> int:
    """How many generate tasks for this generation the live workers are executing, not
    counting the caller's own (on `hostname`). A worker that does not answer within
    COMPARE_CELERY_INSPECT_TIMEOUT seconds is taken for dead: ending a generation that was still
    running only drops its late result (the claim no longer matches), never runs it twice."""
    from compare.celery import app

    try:
        replies = app.control.inspect(timeout=settings.COMPARE_CELERY_INSPECT_TIMEOUT).active() or {}
    except Exception:
        logger.warning("Could not ask the workers what they run; assuming none runs %s.", generation_id, exc_info=True)
        return 0
    count = 0
    for worker, active in replies.items():
        mine = sum(
            1
            for item in active or []
            if item.get("name") == "compare.run_task" and generation_id in repr(item.get("args"))
        )
        count += max(0, mine - 1) if worker == hostname else mine
    return count


_sweeper_lock = threading.Lock()
_sweeper: threading.Thread | None = None


def start_sweeper() -> None:
    """Once per worker process, when it is ready: sweep now, then every COMPARE_SWEEP_SECONDS."""
    global _sweeper
    with _sweeper_lock:
        if _sweeper is None:
            _sweeper = threading.Thread(
                target=sweeper.sweep_forever,
                args=(settings.COMPARE_SWEEP_SECONDS,),
                kwargs={"at_once": True},
                name="compare-sweeper",
                daemon=True,
            )
            _sweeper.start()

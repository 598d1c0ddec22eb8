"""A django.tasks backend that runs tasks in a thread pool inside the web process.

Provider calls spend minutes waiting on the network, so threads (not processes)
are the right tool, and a slow model never delays another model's start. The pool is
sized for I/O (COMPARE_TASK_WORKERS, 512 by default) and apart from the web server's
threads: a thread waiting on a socket costs little (512 waiting threads add ~8 MB of
memory), the CPU and memory of image work are bounded separately (`pixel_work` in
compare/images.py), and the per-model provider limits (compare/limits.py) are the only
caps on calls. A generation waiting for its model's limits sleeps in its task thread,
which a pool in the hundreds can afford. The database row, not this pool, is the
durable record: on start-up `serve` puts unfinished generations back in the queue.
"""

import logging
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any

from django.db import close_old_connections, connections
from django.tasks.backends.immediate import ImmediateBackend
from django.tasks.base import Task, TaskResult, TaskResultStatus

logger = logging.getLogger(__name__)
# Django keeps one backend instance per thread; the pool must be one per process.
_executors: dict[str, ThreadPoolExecutor] = {}
# Tasks that take turns on one resource get a small pool of their own, so they never hold
# the threads provider calls need: the automatic checks share one OCR engine per process
# (compare/checks/ocr.py), and a queue of them must not delay the next run's images.
OWN_POOLS = {"compare.tasks.check": 2}
_pending: set[Future] = set()
_lock = threading.Lock()


def wait_idle(timeout: float | None = None) -> bool:
    """Block until every submitted task has finished; True if none is left."""
    with _lock:
        pending = set(_pending)
    _done, not_done = wait_futures(pending, timeout=timeout)
    return not not_done


def ready_result[**P, R](
    alias: str, task: Task[P, R], args: list[Any], kwargs: dict[str, Any], result_id: str, enqueued_at=None
) -> TaskResult[P, R]:
    """The TaskResult of a task just handed to a backend (this pool, or Celery: compare/celerybackend.py)."""
    return TaskResult(
        task=task,
        id=result_id,
        status=TaskResultStatus.READY,
        enqueued_at=enqueued_at,
        started_at=None,
        last_attempted_at=None,
        finished_at=None,
        args=args,
        kwargs=kwargs,
        backend=alias,
        errors=[],
        worker_ids=[],
    )


class ThreadPoolBackend(ImmediateBackend):
    supports_async_task = False

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.max_workers = int(self.options.get("max_workers", 512))

    @property
    def executor(self) -> ThreadPoolExecutor:
        return self._executor(self.alias, self.max_workers)

    def _executor(self, key: str, workers: int) -> ThreadPoolExecutor:
        with _lock:
            if key not in _executors:
                _executors[key] = ThreadPoolExecutor(workers, thread_name_prefix="compare-task")
            return _executors[key]

    def executor_for(self, task: Task) -> ThreadPoolExecutor:
        workers = OWN_POOLS.get(task.module_path)
        return self.executor if workers is None else self._executor(f"{self.alias}:{task.module_path}", workers)

    def _run(self, task_result: TaskResult[..., Any]) -> None:
        close_old_connections()
        try:
            # Private Django API (hence the django<6.2 pin in pyproject.toml); django-stubs omits it.
            self._execute_task(task_result)  # type: ignore[attr-defined]
            for error in task_result.errors:
                logger.error("Task %s failed:\n%s", task_result.task.name, error.traceback)
        finally:
            _put_connections_away()

    def enqueue[**P, R](self, task: Task[P, R], args: list[Any], kwargs: dict[str, Any]) -> TaskResult[P, R]:
        self.validate_task(task)
        task_result = ready_result(self.alias, task, args, kwargs, uuid.uuid4().hex)
        future = self.executor_for(task).submit(self._run, task_result)
        with _lock:
            _pending.add(future)
        future.add_done_callback(lambda f: _discard(f))
        return task_result

    def shutdown(self, wait: bool = True) -> None:
        with _lock:
            keys = [key for key in _executors if key == self.alias or key.startswith(f"{self.alias}:")]
            executors = [_executors.pop(key) for key in keys]
        for executor in executors:
            executor.shutdown(wait=wait, cancel_futures=not wait)


def _put_connections_away() -> None:
    """After a task: this thread keeps its SQLite connection for its next task (opening
    one, with its PRAGMAs and functions, was a sixth of a generation's own CPU), as web
    threads do; a connection to a server database goes back, so a pool of hundreds of
    threads never holds hundreds of server connections."""
    for conn in connections.all(initialized_only=True):
        if conn.vendor == "sqlite":
            conn.close_if_unusable_or_obsolete()
        else:
            conn.close()


def _discard(future: Future) -> None:
    with _lock:
        _pending.discard(future)

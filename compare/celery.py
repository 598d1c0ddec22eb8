"""The Celery application of the scale-out profile: `celery -A compare worker` runs it.

Every setting comes from compare/settings.py (the CELERY_* names, read from the
environment there): RabbitMQ as the broker, late acknowledgement (a task's message is
acknowledged only once the task has ended, so a worker killed with `kill -9` gives its
messages back to the broker at once), one message prefetched per thread, and a pool of
threads sized for provider calls that wait on the network for minutes.

Tasks are `django.tasks` tasks (compare/tasks.py); compare/celerybackend.py sends them
here, and `run_task` below runs them. Each worker also sweeps for generations past their
deadline and releases held suite generations (compare/celerybackend.py `start_sweeper`).
"""

import os

from celery import Celery, signals
from django.conf import settings as django_settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "compare.settings")
if not django_settings.configured:  # a worker starting (a web process has read its settings already)
    # Its threads share a pool of PostgreSQL connections (compare/settings.py): each holds
    # one only while it reads or writes, never while it waits on a provider.
    os.environ.setdefault("COMPARE_DB_POOL", "20")

app = Celery("compare")
# Celery's Django fix-up (active because DJANGO_SETTINGS_MODULE is set) sets Django up in
# the worker and closes database connections around each task.
app.config_from_object("django.conf:settings", namespace="CELERY")


@app.task(name="compare.run_task", bind=True, ignore_result=True)
def run_task(self, module_path: str, args: list, kwargs: dict) -> None:
    """Run the django.tasks task at `module_path` (e.g. compare.tasks.generate)."""
    from compare.celerybackend import execute  # needs Django set up, which the worker does first

    execute(module_path, args, kwargs, self.request)


@signals.worker_ready.connect
def _start_sweeper(**_kwargs) -> None:
    from compare.celerybackend import start_sweeper

    start_sweeper()

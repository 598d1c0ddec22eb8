"""The sweeper: what must happen even when no request and no task is running.

Every `interval` seconds it fails generations that outlive their deadline (a hung call,
a lost worker: compare/tasks.py `expire_overdue`) and sends held suite generations the
places that frees (compare/suites/dispatch.py `release_all_held`; a hung generation's
task never ends, so nothing else would release them). Both are conditional updates under
locks, so several processes may sweep at once: `manage.py serve` runs it in the embedded
profile, every Celery worker in the scale-out profile (compare/celerybackend.py).
"""

import logging
import time

from django.db import connections

logger = logging.getLogger(__name__)


def sweep() -> tuple[int, int]:
    """One pass: (generations expired, held generations sent)."""
    from compare.suites.dispatch import release_all_held  # dispatch imports compare.tasks
    from compare.tasks import expire_overdue

    return expire_overdue(), release_all_held()


def sweep_forever(interval: float = 30.0, *, at_once: bool = False) -> None:
    """`sweep` every `interval` seconds (first at once when `at_once`); a failed pass is logged
    and the next one tried, and each pass gives its database connections back."""
    if not at_once:
        time.sleep(interval)
    while True:
        try:
            sweep()
        except Exception:
            logger.exception("The deadline sweeper failed; it will try again.")
        finally:
            connections.close_all()
        time.sleep(interval)

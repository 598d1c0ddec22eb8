"""Writes of other processes, pushed to this one: PostgreSQL LISTEN/NOTIFY.

In the scale-out profile a generation is stored by a Celery worker, maybe on another
machine, and the command line or a second web process writes votes and notes. An open
run page (compare/live.py) must learn of such a write within a poll interval, not
within `live.RECHECK`. So every write that `live.changed` records also sends
`NOTIFY compare_live, '<run id>'` on the writer's own connection, inside its
transaction: PostgreSQL delivers it when the write commits and never when it rolls
back, so a page that hears it reads the committed row. Each web process keeps ONE
listening connection in one daemon thread, started by the first poll it answers (a
worker never polls, so it never listens), whatever the number of open pages.

On SQLite (the embedded default, where the tasks run in the web process and mark their
writes in its memory directly) nothing is sent or heard. While the listening
connection is down, pages fall back to re-reading each run every `live.RECHECK` seconds;
on reconnecting every remembered state is dropped, since notices may have been missed.
"""

import logging
import os
import threading
from collections.abc import Callable

from django.db import DatabaseError, connection, connections, transaction

logger = logging.getLogger(__name__)

CHANNEL = "compare_live"
EVERY_RUN = "*"  # the payload of a write to runs not named
RETRY_SECONDS = (1, 2, 5, 10, 30)  # back-off while the database is away

# Django's own OPTIONS, which are not connection parameters for psycopg.
DJANGO_OPTIONS = {"pool", "server_side_binding", "isolation_level", "assume_role", "cursor_factory", "context"}
WAKE_SECONDS = 1.0  # how often the listener looks up from its connection to see whether it should stop

_lock = threading.Lock()
_listener: tuple[int, threading.Thread] | None = None  # (pid, thread): a forked child starts its own
_listening = threading.Event()
_stop = threading.Event()


def enabled(alias: str = "default") -> bool:
    return connections[alias].vendor == "postgresql"


def publish(run_id=None) -> None:
    """Tell every listening process that the run changed (all runs, with None). Inside a
    transaction the notice is sent once it has committed (when PostgreSQL would deliver
    it anyway), once per run however often the transaction wrote to it."""
    if not enabled():
        return
    payload = str(run_id) if run_id else EVERY_RUN
    if connection.in_atomic_block:
        # After the commit, as a statement of its own: no savepoint around it in the write's
        # transaction (two round trips more per write), and a notice that fails (its queue
        # full) cannot take the write it announces down with it.
        waiting = connection.run_on_commit  # Django's own list of this transaction's callbacks
        if not any(isinstance(entry[1], _Notice) and entry[1].payload == payload for entry in waiting):
            transaction.on_commit(_Notice(payload))
        return
    _notify(payload)


class _Notice:
    """A notice waiting for its transaction's commit."""

    def __init__(self, payload: str) -> None:
        self.payload = payload

    def __call__(self) -> None:
        _notify(self.payload)


def _notify(payload: str) -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, payload])
    except DatabaseError:
        # The pages fall back to live.RECHECK for this one write.
        logger.debug("Could not send a live notice.", exc_info=True)


def listening() -> bool:
    """True while this process holds a live LISTEN connection."""
    return _listening.is_set()


def ensure_listening(on_notice: Callable[[str | None], None], alias: str = "default") -> None:
    """Start this process's listener once (again after a fork); cheap to call per poll."""
    global _listener
    if not enabled(alias):
        return
    pid = os.getpid()
    if _listener is not None and _listener[0] == pid and _listener[1].is_alive():
        return
    with _lock:
        if _listener is not None and _listener[0] == pid and _listener[1].is_alive():
            return
        _listening.clear()
        _stop.clear()
        params = _connect_params(alias)
        thread = threading.Thread(target=_listen, args=(params, on_notice), name="compare-live-listen", daemon=True)
        _listener = (pid, thread)
        thread.start()


def stop() -> None:
    """Close this process's listening connection (tests: before their database is dropped)."""
    global _listener
    with _lock:
        found, _listener = _listener, None
    if found is not None and found[0] == os.getpid():
        _stop.set()
        found[1].join(timeout=10)
    _listening.clear()


def _connect_params(alias: str) -> dict:
    """The database's connection settings as psycopg takes them, without Django's pool:
    the listener keeps its own connection for as long as the process lives."""
    settings = connections[alias].settings_dict
    params = {k: v for k, v in dict(settings.get("OPTIONS") or {}).items() if k not in DJANGO_OPTIONS}
    names = {"NAME": "dbname", "USER": "user", "PASSWORD": "password", "HOST": "host", "PORT": "port"}
    params.update({key: settings[name] for name, key in names.items() if settings.get(name)})
    return params


def _listen(params: dict, on_notice: Callable[[str | None], None]) -> None:
    import psycopg  # the scale-out profile's driver; only imported where PostgreSQL is used

    failures = 0
    while not _stop.is_set():
        try:
            with psycopg.connect(**params, autocommit=True, application_name="compare live") as listen:
                listen.execute(f"LISTEN {CHANNEL}")
                _listening.set()
                failures = 0
                on_notice(None)  # whatever was written while nobody listened: read everything again
                while not _stop.is_set():
                    for notice in listen.notifies(timeout=WAKE_SECONDS):
                        on_notice(None if notice.payload == EVERY_RUN else notice.payload)
            _listening.clear()
        except Exception:  # a lost database must not end the listener for good
            was_listening = _listening.is_set()
            _listening.clear()
            delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
            failures += 1
            log = logger.warning if was_listening or failures == 1 else logger.debug
            log("Live updates from other processes paused (the database connection for them was lost); retrying.")
            _stop.wait(delay)

"""Django's SQLite backend, with the writers of one process taking turns in Python.

SQLite lets one writer at a time into a database. When several threads of a process
want to write at once (a burst of runs: web threads creating them, hundreds of task
threads claiming and finishing generations), each one that finds the database locked
sleeps in SQLite's busy handler, in steps growing to 100 ms, and checks again: the lock
is often free while they sleep, and writes queue for seconds. Here the threads of a
process wait for their turn on a lock of their own instead, and the next one goes the
moment the last one commits. Other processes (a `manage.py` command) still meet SQLite's
own locking and its busy timeout.

A turn is taken when a transaction begins (every `atomic` block: BEGIN IMMEDIATE, see
compare/settings.py) and given back when it commits or rolls back; a write outside a
transaction holds it for its one statement. Waiting for a turn is bounded by the
database's `timeout` option, then fails as SQLite would ("database is locked").
"""

import threading

from django.db.backends.sqlite3 import base
from django.db.utils import OperationalError

_locks: dict[str, threading.Lock] = {}
_locks_lock = threading.Lock()
# Statements that never write: they need no turn (WAL lets readers go alongside a writer).
READS = ("SELECT", "PRAGMA", "EXPLAIN", "WITH")


def _lock_for(name: str) -> threading.Lock:
    with _locks_lock:
        return _locks.setdefault(name, threading.Lock())


class TurnCursor(base.SQLiteCursorWrapper):
    wrapper: "DatabaseWrapper"

    def execute(self, query, params=None):
        if self.wrapper.needs_turn(query):
            with self.wrapper.turn():
                return super().execute(query, params)
        return super().execute(query, params)

    def executemany(self, query, param_list):
        if self.wrapper.needs_turn(query):
            with self.wrapper.turn():
                return super().executemany(query, param_list)
        return super().executemany(query, param_list)


class _Turn:
    def __init__(self, wrapper: "DatabaseWrapper") -> None:
        self.wrapper = wrapper

    def __enter__(self) -> None:
        self.wrapper.take_turn()

    def __exit__(self, *exc) -> None:
        self.wrapper.end_turn()


class DatabaseWrapper(base.DatabaseWrapper):
    holds_turn = False

    def _lock(self) -> "threading.Lock | None":
        name = str(self.settings_dict["NAME"])
        return None if self.is_in_memory_db() else _lock_for(name)

    def needs_turn(self, query: str) -> bool:
        if self.holds_turn or self.in_atomic_block:
            return False
        return not query.lstrip()[:7].upper().startswith(READS)

    def turn(self) -> _Turn:
        return _Turn(self)

    def take_turn(self) -> None:
        lock = self._lock()
        if lock is None or self.holds_turn:
            return
        timeout = float(self.settings_dict["OPTIONS"].get("timeout", 5))
        if not lock.acquire(timeout=timeout):
            raise OperationalError("database is locked")
        self.holds_turn = True

    def end_turn(self) -> None:
        if self.holds_turn:
            self.holds_turn = False
            lock = self._lock()
            if lock is not None:
                lock.release()

    def create_cursor(self, name=None):
        cursor = self.connection.cursor(factory=TurnCursor)
        cursor.wrapper = self
        return cursor

    def _start_transaction_under_autocommit(self):
        self.take_turn()
        try:
            super()._start_transaction_under_autocommit()  # type: ignore[misc]  # private Django API, not in django-stubs
        except BaseException:
            self.end_turn()
            raise

    def _commit(self):
        try:
            return super()._commit()  # type: ignore[misc]  # private Django API, not in django-stubs
        finally:
            self.end_turn()

    def _rollback(self):
        try:
            return super()._rollback()  # type: ignore[misc]  # private Django API, not in django-stubs
        finally:
            self.end_turn()

    def _close(self):
        try:
            return super()._close()  # type: ignore[misc]  # private Django API, not in django-stubs
        finally:
            self.end_turn()

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

import gc
import threading

from django.db.backends.sqlite3 import base
from django.db.utils import OperationalError

# Statements that never write: they need no turn (WAL lets readers go alongside a writer).
READS = ("SELECT", "PRAGMA", "EXPLAIN", "WITH")
# How often a waiting writer looks whether the thread holding the turn still exists.
LOOK_EVERY = 1.0


class Turns:
    """The writers' turn for one database file: a lock and the thread holding it. A thread
    that ended while holding the turn (its transaction never closed; SQLite rolls it back
    when the thread's connection goes away) does not keep the others waiting: a waiting
    writer takes the turn over."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.holder: threading.Thread | None = None
        self._guard = threading.Lock()

    def take(self, timeout: float) -> bool:
        remaining = timeout
        while True:
            wait = min(LOOK_EVERY, remaining)
            if self.lock.acquire(timeout=wait) if wait > 0 else self.lock.acquire(blocking=False):
                self.holder = threading.current_thread()
                return True
            remaining -= wait
            with self._guard:
                holder = self.holder
                if holder is not None and not holder.is_alive():
                    self.holder = None
                    # Its connection is in a reference cycle: collected now, SQLite rolls its
                    # transaction back and drops its lock, instead of at the next collection.
                    gc.collect()
                    self.lock.release()  # a plain Lock: any thread may release it
                    continue
            if remaining <= 0:
                return False

    def give_back(self) -> None:
        with self._guard:
            self.holder = None
            self.lock.release()


_turns: dict[str, Turns] = {}
_turns_lock = threading.Lock()


def _turns_for(name: str) -> Turns:
    with _turns_lock:
        return _turns.setdefault(name, Turns())


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

    def _turns(self) -> Turns | None:
        name = str(self.settings_dict["NAME"])
        return None if self.is_in_memory_db() else _turns_for(name)

    def needs_turn(self, query: str) -> bool:
        if self.holds_turn or self.in_atomic_block:
            return False
        return not query.lstrip()[:7].upper().startswith(READS)

    def turn(self) -> _Turn:
        return _Turn(self)

    def take_turn(self) -> None:
        turns = self._turns()
        if turns is None or self.holds_turn:
            return
        if not turns.take(float(self.settings_dict["OPTIONS"].get("timeout", 5))):
            raise OperationalError("database is locked")
        self.holds_turn = True

    def end_turn(self) -> None:
        if self.holds_turn:
            self.holds_turn = False
            turns = self._turns()
            if turns is not None:
                turns.give_back()

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

"""The embedded default's SQLite: a process's writers take turns in Python
(compare/sqlite/base.py). What a user would notice if the turn were lost or leaked: a
write that waits forever or fails with "database is locked" after another thread's
transaction ended (committed, rolled back by an error, or its connection closed)."""

import threading
from contextlib import contextmanager

import pytest
from django.db import OperationalError, connection, connections, transaction

from compare.models import Tag

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def sqlite_only():
    if connection.vendor != "sqlite":
        pytest.skip("the turns are the SQLite backend's")


def in_thread(fn, timeout: float = 20.0):
    """Run `fn` on a thread of its own (its own connection), return its result or raise its error."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as error:
            box["error"] = error
        finally:
            connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the thread never got its turn"
    if "error" in box:
        raise box["error"]
    return box.get("value")


@pytest.fixture
def short_wait(settings):
    """Waiting for a turn gives up after 0.3 s instead of the configured 30 s."""
    options = connection.settings_dict["OPTIONS"]
    saved = options.get("timeout")
    options["timeout"] = 0.3
    yield
    options["timeout"] = saved


@contextmanager
def transaction_on_another_thread(name: str):
    """Another thread writes a tag `name` in a transaction and keeps it open until the block ends."""
    inside, release = threading.Event(), threading.Event()

    def long_transaction():
        with transaction.atomic():
            Tag.objects.create(name=name)
            inside.set()
            release.wait(10)
        connections.close_all()

    holder = threading.Thread(target=long_transaction)
    holder.start()
    assert inside.wait(10)
    try:
        yield
    finally:
        release.set()
        holder.join(10)


def test_a_writer_waits_for_the_transaction_in_progress_then_writes():
    waiter_done = threading.Event()

    def second_writer():
        Tag.objects.create(name="second")
        connections.close_all()
        waiter_done.set()

    with transaction_on_another_thread("first"):
        waiter = threading.Thread(target=second_writer)
        waiter.start()
        assert not waiter_done.wait(0.3), "a second writer went in while a transaction was open"
    assert waiter_done.wait(10)
    waiter.join(10)
    assert sorted(Tag.objects.values_list("name", flat=True)) == ["first", "second"]


def test_the_turn_comes_back_after_commit_error_and_close(short_wait):
    with transaction.atomic():
        Tag.objects.create(name="committed")
    in_thread(lambda: Tag.objects.create(name="after commit"))

    with pytest.raises(ValueError), transaction.atomic():
        Tag.objects.create(name="rolled back")
        raise ValueError("a view failed half-way")
    in_thread(lambda: Tag.objects.create(name="after rollback"))

    def closed_mid_transaction():
        transaction.atomic().__enter__()  # never exited: the connection is closed instead
        Tag.objects.create(name="lost")
        connection.close()

    in_thread(closed_mid_transaction)
    in_thread(lambda: Tag.objects.create(name="after close"))
    assert sorted(Tag.objects.values_list("name", flat=True)) == [
        "after close",
        "after commit",
        "after rollback",
        "committed",
    ]


def test_a_writer_that_waits_too_long_is_told_the_database_is_locked(short_wait):
    with transaction_on_another_thread("slow"):
        with pytest.raises(OperationalError, match="database is locked"):
            in_thread(lambda: Tag.objects.create(name="impatient"))
        # Reading needs no turn (WAL): the page still loads while a writer works.
        assert in_thread(lambda: Tag.objects.count()) == 0
    assert list(Tag.objects.values_list("name", flat=True)) == ["slow"]


def test_a_thread_that_ended_inside_its_transaction_does_not_keep_the_turn():
    """A thread that never closed its transaction nor its connection (a bug elsewhere, a
    thread torn down): SQLite rolls its transaction back when the connection goes away, and
    the next writer takes the turn over instead of waiting for the timeout."""

    def abandoned():
        transaction.atomic().__enter__()  # never exited, connection never closed
        Tag.objects.create(name="never committed")

    thread = threading.Thread(target=abandoned)
    thread.start()
    thread.join(10)
    del thread
    in_thread(lambda: Tag.objects.create(name="next writer"), timeout=10)
    assert list(Tag.objects.values_list("name", flat=True)) == ["next writer"]


def test_a_writer_that_may_not_wait_still_writes_when_nobody_holds_the_turn(short_wait):
    connection.settings_dict["OPTIONS"]["timeout"] = 0
    in_thread(lambda: Tag.objects.create(name="no waiting needed"))
    assert list(Tag.objects.values_list("name", flat=True)) == ["no waiting needed"]

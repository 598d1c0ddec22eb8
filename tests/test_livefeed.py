"""Writes of other processes reach an open run page at its next poll, on PostgreSQL
(compare/livefeed.py: LISTEN/NOTIFY), instead of within live.RECHECK. Here RECHECK is an
hour, so only a pushed notice can make a page see another process's write."""

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from django.db import connection, transaction

from compare import live, livefeed
from compare.models import Generation
from tests.factories import make_run
from tests.test_live import Page, out_of_band

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="LISTEN/NOTIFY is PostgreSQL's: `make test` runs this file again with DATABASE_URL set",
    ),
]


@pytest.fixture(autouse=True)
def _only_pushed_news(monkeypatch):
    live.forget()
    monkeypatch.setattr(live, "RECHECK", 3600.0)
    monkeypatch.setattr(live, "SETTLE", 0.0)


def database_url() -> str:
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{s['USER']}{password}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def in_another_process(code: str) -> None:
    """Run Django code in a process of its own on the same (test) database, as a worker would."""
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "compare.settings"}
    script = "import django; django.setup()\n" + code
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def until(condition, what: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def listener_pid() -> int | None:
    with connection.cursor() as cursor:
        # This database's only: the tests may run in parallel, each worker on a database of its own.
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'compare live' AND datname = current_database()"
        )
        row = cursor.fetchone()
    return row[0] if row else None


def test_a_generation_stored_by_another_process_reaches_the_open_page_at_its_next_poll(auth_client, user):
    run = make_run(user, status="running", cost_usd=None)
    gen = run.generations.get(position=0)
    page = Page(auth_client, run.get_absolute_url())
    assert page.poll().status_code == 204  # the first poll starts this process's listener
    until(livefeed.listening, "the listener connected")
    assert page.poll().status_code == 204  # nothing new, and the remembered state is trusted for an hour

    in_another_process(
        "from compare.models import Generation\n"
        "from tests.factories import png, succeed\n"
        f"succeed(Generation.objects.get(pk='{gen.pk}'), png('green'))\n"
    )

    answer = until(lambda: (r := page.poll()).status_code == 200 and r, "the page heard of the other process's write")
    html = answer.content.decode()
    assert f"pane-{gen.id}" in out_of_band(html)
    assert 'data-status="succeeded"' in html
    assert Generation.objects.get(pk=gen.pk).status == Generation.Status.SUCCEEDED


def test_a_notice_is_sent_when_the_write_commits_and_never_for_a_rolled_back_one():
    run_id = "3f0c9a52-0000-4000-8000-000000000001"
    with psycopg.connect(database_url().replace("postgres://", "postgresql://"), autocommit=True) as watcher:
        watcher.execute(f"LISTEN {livefeed.CHANNEL}")

        with pytest.raises(RuntimeError), transaction.atomic():
            live.changed(run_id)
            raise RuntimeError("the write fails")
        assert [n.payload for n in watcher.notifies(timeout=0.5)] == []

        with transaction.atomic():
            live.changed(run_id)
            live.changed(run_id)  # repeats in one transaction are folded
            live.changed()
            assert [n.payload for n in watcher.notifies(timeout=0.3)] == []  # not before the commit
        assert sorted(n.payload for n in watcher.notifies(timeout=1.0, stop_after=2)) == ["*", run_id]


def test_the_listener_comes_back_after_its_connection_is_killed(auth_client, user):
    run = make_run(user, status="running", cost_usd=None)
    gen = run.generations.get(position=0)
    page = Page(auth_client, run.get_absolute_url())
    page.poll()
    until(livefeed.listening, "the listener connected")
    first = until(listener_pid, "the listener's connection")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [first])
    until(lambda: (pid := listener_pid()) and pid != first, "a new listening connection", timeout=30)
    until(livefeed.listening, "the listener connected again")
    assert page.poll().status_code == 204  # what may have been missed is read once: nothing was

    in_another_process(
        "from compare import live\n"
        "from compare.models import Generation\n"
        f"Generation.objects.filter(pk='{gen.pk}').update(attempts=2)\n"
        f"live.changed('{run.pk}')\n"  # what the task code does after an .update()
    )
    until(lambda: page.poll().status_code == 200, "the page heard of the write after the reconnect")


def test_a_notice_that_fails_never_takes_the_write_it_announces_with_it(user):
    # PostgreSQL refuses a payload of 8,000 bytes or more, as it would a full notice queue:
    # the write in the same transaction (a generation's failure, say) must still commit.
    run = make_run(user, status="running")
    with transaction.atomic():
        Generation.objects.filter(run=run).update(error_message="written")
        livefeed.publish("x" * 9000)
    assert set(Generation.objects.filter(run=run).values_list("error_message", flat=True)) == {"written"}

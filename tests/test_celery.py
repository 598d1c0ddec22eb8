"""The scale-out profile on Celery: runs go to the local RabbitMQ, real `celery -A compare
worker` subprocesses run them against the test database (PostgreSQL when `make test` runs
this file with DATABASE_URL), and a worker killed with `kill -9` loses nothing: what it
was running ends interrupted (never stuck, never run twice), what it had not started runs
on another worker. Each test uses a queue of its own on the broker."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from kombu import Queue

from compare.models import ApiToken, Generation, Run, TeamSettings
from tests.factories import BOTH, GPT, make_run

ROOT = Path(__file__).resolve().parent.parent


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgres,
    pytest.mark.skipif(
        not _answers("127.0.0.1", 5672), reason="RabbitMQ is not answering at 127.0.0.1:5672 (.ci/run starts it)"
    ),
]


def database_url() -> str:
    """The test database, as the worker processes must reach it."""
    params = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{params['NAME']}"
    user, host, port = params["USER"] or "postgres", params["HOST"] or "127.0.0.1", params["PORT"] or 5432
    return f"postgres://{user}@{host}:{port}/{params['NAME']}"


class Workers:
    """Celery worker subprocesses on one queue; `start` waits until the worker answers a ping."""

    def __init__(self, queue: str, env: dict[str, str], logs: Path):
        self.queue, self.env, self.logs = queue, env, logs
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, concurrency: int = 8) -> str:
        from compare.celery import app

        hostname = f"{name}-{self.queue}@test"
        log = (self.logs / f"{name}.log").open("w")
        # The README's command, with a name of its own and without the start-up chatter between workers.
        command = ["celery", "-A", "compare", "worker", "--pool", "threads", "-c", str(concurrency), "-n", hostname]
        self.procs[hostname] = subprocess.Popen(
            [sys.executable, "-m", *command, "--without-mingle", "--without-gossip"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.procs[hostname].poll() is not None:
                raise AssertionError(f"worker {name} exited:\n{self.log(name)}")
            if app.control.ping(destination=[hostname], timeout=0.5):
                return hostname
        raise AssertionError(f"worker {name} did not answer within 30 s:\n{self.log(name)}")

    def kill(self, hostname: str) -> None:
        proc = self.procs.pop(hostname)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()[-3000:]

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        self.procs.clear()


@pytest.fixture
def workers(settings, simulator, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("the Celery profile runs on PostgreSQL: `make test` runs this file again with DATABASE_URL set")
    queue = f"compare-test-{uuid.uuid4().hex[:10]}"
    settings.TASKS = {"default": {"BACKEND": "compare.celerybackend.CeleryBackend", "OPTIONS": {"queue": queue}}}
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "COMPARE_TASK_BACKEND": "celery",
        "COMPARE_CELERY_QUEUE": queue,
        "COMPARE_SIMULATOR_URL": simulator.url + "/sim",
        "COMPARE_SIMULATOR_LATENCY": "0",
        "COMPARE_RETRY_BASE_DELAY": "0",
        "COMPARE_MEDIA_ROOT": str(settings.MEDIA_ROOT),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)  # compare/celery.py sets it, as a newcomer's shell has none
    pool = Workers(queue, env, tmp_path)
    yield pool
    pool.stop_all()
    from compare.celery import app

    with app.connection_for_write() as conn:
        Queue(queue, channel=conn.default_channel).delete()


def api_post(client, user, body: dict) -> Run:
    token = ApiToken.issue(user, "celery")[1]
    response = client.post(
        "/api/runs", json.dumps(body), content_type="application/json", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code in (200, 201, 202), response.content.decode()[:600]
    return Run.objects.latest("created_at")


def wait_until(predicate, timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def statuses(run: Run) -> dict[str, str]:
    return dict(run.generations.values_list("model_key", "status"))


def test_a_run_through_the_api_finishes_on_a_celery_worker(client, user, workers):
    run = api_post(client, user, {"prompt": "a lighthouse, scaled out", "models": BOTH})
    assert set(statuses(run).values()) == {"queued"}  # this process only published the messages
    workers.start("w1")
    wait_until(lambda: all(g.is_terminal for g in run.generations.all()), what="the run to finish")
    assert statuses(run) == {"gpt-image-2": "succeeded", "gemini-3-pro-image": "succeeded"}
    assert all(g.images.filter(is_partial=False).count() == 1 for g in run.generations.all())
    assert all(g.attempts == 1 for g in run.generations.all())


def test_a_killed_worker_loses_nothing_and_runs_nothing_twice(client, user, workers):
    first = workers.start("a", concurrency=2)
    slow = api_post(client, user, {"prompt": "a slow harbour [[latency:5]]", "models": BOTH})
    wait_until(lambda: set(statuses(slow).values()) == {"running"}, what="both slow generations to run on worker a")
    claims = {g.pk: (g.claim, g.started_at) for g in slow.generations.all()}
    # Worker a's two threads are busy: this run waits in the broker, on a's queue.
    fast = api_post(client, user, {"prompt": "a quick lighthouse", "models": BOTH})
    time.sleep(0.5)
    assert set(statuses(fast).values()) == {"queued"}

    # While worker a lives, a second delivery of its task finds it still running and leaves it be.
    from compare.celerybackend import end_if_orphaned

    some = str(next(iter(claims)))
    assert end_if_orphaned(some, "someone-else@test") == "alive"
    assert Generation.objects.get(pk=some).status == "running"

    workers.kill(first)
    workers.start("b", concurrency=8)
    wait_until(lambda: all(g.is_terminal for g in slow.generations.all()), what="the slow run to end")
    wait_until(lambda: all(g.is_terminal for g in fast.generations.all()), what="the queued run to finish")

    for gen in slow.generations.all():
        # Ended as after a crash: interrupted, with Retry; the provider was not called again.
        assert (gen.status, gen.error_kind) == ("failed", "interrupted"), (gen.status, gen.error_message)
        assert "Retry" in gen.error_message
        assert (gen.claim, gen.started_at) == claims[gen.pk]  # nobody claimed it a second time
        assert gen.attempts == 1
        assert not gen.images.exists()
    assert statuses(fast) == {"gpt-image-2": "succeeded", "gemini-3-pro-image": "succeeded"}, [
        (g.error_kind, g.error_message, g.attempt_log) for g in fast.generations.all()
    ]


def test_where_the_team_allows_it_a_killed_workers_generation_runs_again_on_another_once(client, user, workers):
    TeamSettings.objects.create(pk=1, rerun_interrupted=True)
    first = workers.start("a", concurrency=2)
    run = api_post(client, user, {"prompt": "a slow harbour at dusk [[latency:5]]", "models": BOTH})
    wait_until(lambda: set(statuses(run).values()) == {"running"}, what="both generations to run on worker a")
    claims = {g.pk: g.claim for g in run.generations.all()}

    workers.kill(first)
    workers.start("b", concurrency=8)
    wait_until(lambda: all(g.is_terminal for g in run.generations.all()), what="the run to end on worker b")

    for gen in run.generations.all():
        assert gen.status == "succeeded", (gen.error_kind, gen.error_message, gen.attempt_log)
        assert gen.claim != claims[gen.pk]  # run again under a new claim, by worker b
        assert gen.images.filter(is_partial=False).count() == 1
        reruns = [e for e in gen.attempt_log if e.get("rerun") == "automatic"]
        lost = [e for e in gen.attempt_log if e.get("kind") == "interrupted"]
        assert len(reruns) == 1 and len(lost) == 1 and lost[0]["billed"] == "unknown"


def test_each_worker_sweeps_generations_past_their_deadline(settings, user, workers):
    long_ago = timezone.now() - timedelta(seconds=settings.COMPARE_GENERATION_DEADLINE + 3600)
    run = make_run(user, status="running", models=[GPT], started_at=long_ago, claim=uuid.uuid4())
    gen = run.generations.get()
    workers.start("sweeper")
    wait_until(lambda: Generation.objects.get(pk=gen.pk).is_terminal, what="the worker's sweeper")
    gen.refresh_from_db()
    assert (gen.status, gen.error_kind) == ("failed", "timeout")


def test_a_generation_whose_task_cannot_reach_the_broker_says_so_instead_of_waiting(user):
    run = make_run(user, status="queued", models=[GPT])
    gen = run.generations.get()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "COMPARE_TASK_BACKEND": "celery",
        "CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:1//",  # nothing listens there
        "DJANGO_SETTINGS_MODULE": "compare.settings",
    }
    code = f"import django; django.setup(); from compare.tasks import enqueue_generations; enqueue_generations({[str(gen.pk)]!r})"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Could not send compare.tasks.generate to the broker" in done.stderr
    gen.refresh_from_db()
    assert (gen.status, gen.error_kind) == ("failed", "server")
    assert gen.error_message.startswith("The task queue could not be reached, so nothing was sent to the provider.")
    assert Run.objects.get(pk=run.pk).is_finished

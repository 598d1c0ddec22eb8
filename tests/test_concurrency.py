"""Concurrency sized for I/O, and the simulator out of the app's way: a burst of
generations is in flight all at once (not capped by a thread count), the simulator draws
before it sleeps its latency and keeps drawn pictures in a bounded cache, and `serve`
runs it in a process of its own that workers find without extra settings."""

import os
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import httpx
import pytest

from compare.models import Generation, Run, TeamSettings
from compare.simulator import common, faults, render
from compare.simulator.render import RenderCache
from tests.factories import form_data, wait_for_generations
from tests.test_crash import free_port, manage, wait_for

ROOT = Path(__file__).resolve().parent.parent
KEY = {"Authorization": "Bearer test-key"}
BURST = 50  # more than the 48 task threads compare used to have


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_fifty_generations_is_in_flight_all_at_once(auth_client, simulator, monkeypatch):
    """Every simulated call waits at a barrier until all fifty are being answered; when
    it opens, the database is asked how many generations are running. With calls capped
    at 48 threads the barrier would never open and the calls would fail."""
    TeamSettings.objects.update_or_create(pk=1, defaults={"max_in_flight": 0, "daily_budget_usd": 0})
    running_when_full: list[int] = []
    barrier = threading.Barrier(
        BURST,
        action=lambda: running_when_full.append(Generation.objects.filter(status=Generation.Status.RUNNING).count()),
        timeout=60,
    )
    real_until = common.Pacer.until

    def until_everyone_is_in(pacer, fraction=1.0):
        barrier.wait()
        return real_until(pacer, fraction)

    monkeypatch.setattr(common.Pacer, "until", until_everyone_is_in)
    common.IN_FLIGHT.reset()
    for i in range(BURST // 2):
        response = auth_client.post("/", form_data(f"burst number {i}", regenerate="on"))
        assert response.status_code == 302
    runs = list(Run.objects.all())
    assert len(runs) == BURST // 2
    for run in runs:
        wait_for_generations(run, timeout=120)
    assert Generation.objects.filter(status=Generation.Status.SUCCEEDED).count() == BURST
    assert running_when_full == [BURST]  # all fifty running at once, as the database records it
    assert common.IN_FLIGHT.peak >= BURST  # and the simulator answered fifty calls at once


def _openai(base: str, prompt: str, latency: float = 0.0) -> dict:
    response = httpx.post(
        f"{base}/sim/openai/v1/images/generations",
        headers={**KEY, "X-Simulator-Latency": str(latency)},
        json={"model": "gpt-image-2", "prompt": prompt, "size": "1024x1024"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()


def _gemini(base: str, prompt: str, latency: float = 0.0) -> dict:
    response = httpx.post(
        f"{base}/sim/gemini/v1beta/models/gemini-3-pro-image:generateContent",
        headers={"x-goog-api-key": "test-key", "X-Simulator-Latency": str(latency)},
        json={"contents": [{"parts": [{"text": prompt}]}]},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("call", [_openai, _gemini], ids=["openai", "gemini"])
def test_the_picture_is_drawn_before_the_latency_is_slept(live_server, monkeypatch, call):
    """A reply takes about the latency, not the latency plus the drawing: the drawing
    comes first and only the rest of the latency is slept."""
    events: list[tuple[str, float]] = []
    real_compose, real_sleep = render.compose, faults.sleep

    def compose(*args, **kwargs):
        events.append(("draw", 0.0))
        return real_compose(*args, **kwargs)

    def sleep(seconds):
        events.append(("sleep", seconds))
        return real_sleep(seconds)

    monkeypatch.setattr(render, "compose", compose)
    monkeypatch.setattr(faults, "sleep", sleep)
    render.CACHE.clear()
    call(live_server.url, "drawn first, then the rest of the wait", latency=0.4)
    kinds = [kind for kind, _ in events]
    assert "draw" in kinds and kinds[-1] == "sleep", events
    assert kinds.index("draw") < kinds.index("sleep"), events
    slept = [seconds for kind, seconds in events if kind == "sleep"]
    assert len(slept) == 1 and 0 < slept[0] < 0.4  # the remainder, not the whole latency


def test_identical_requests_are_served_from_the_cache_without_drawing_again(live_server, monkeypatch):
    drawn: list[str] = []
    real_compose = render.compose

    def compose(prompt, *args, **kwargs):
        drawn.append(prompt)
        return real_compose(prompt, *args, **kwargs)

    monkeypatch.setattr(render, "compose", compose)
    render.CACHE.clear()
    first = _openai(live_server.url, 'A sign that says "Cached"')
    again = _openai(live_server.url, 'A sign that says "Cached"')
    other = _openai(live_server.url, 'A sign that says "Not the same"')
    assert first["data"][0]["b64_json"] == again["data"][0]["b64_json"]
    assert other["data"][0]["b64_json"] != first["data"][0]["b64_json"]
    assert drawn == ['A sign that says "Cached"', 'A sign that says "Not the same"']
    assert render.CACHE.renders == 2 and render.CACHE.hits == 1
    stats = httpx.get(f"{live_server.url}/sim/stats", headers=KEY).json()
    assert stats["renders"] == 2 and stats["cache_hits"] == 1


def test_the_cache_is_bounded_by_bytes_and_drops_the_least_recently_used(settings):
    settings.COMPARE_SIMULATOR_CACHE_MB = 1
    cache = RenderCache()
    drawn: list[str] = []

    def drawing(key: str):
        def draw() -> bytes:
            drawn.append(key)
            return key.encode() * (400 * 1024 // len(key))

        return draw

    for key in ["aaaa", "bbbb", "aaaa", "cccc", "aaaa", "bbbb"]:
        cache.get_or_render(key, drawing(key))
    # aaaa was used before cccc came in, so bbbb (least recently used) made room for it.
    assert drawn == ["aaaa", "bbbb", "cccc", "bbbb"]
    assert cache.size <= 1024 * 1024


def test_identical_requests_arriving_together_draw_once():
    cache = RenderCache()
    started, release = threading.Event(), threading.Event()
    drawn: list[int] = []

    def draw() -> bytes:
        drawn.append(1)
        started.set()
        release.wait(10)
        return b"picture"

    results: list[bytes] = []
    first = threading.Thread(target=lambda: results.append(cache.get_or_render("same", draw)))
    first.start()
    assert started.wait(10)
    others = [threading.Thread(target=lambda: results.append(cache.get_or_render("same", draw))) for _ in range(3)]
    for thread in others:
        thread.start()
    release.set()
    for thread in [first, *others]:
        thread.join(10)
    assert results == [b"picture"] * 4 and drawn == [1]


def test_stats_need_a_key(live_server):
    assert httpx.get(f"{live_server.url}/sim/stats").status_code == 401


def _two_free_ports() -> int:
    """A port whose next port is free too: the web server's and the simulator's defaults."""
    for _ in range(50):
        port = free_port()
        if port < 65535 and _free(port + 1):
            return port
    raise AssertionError("no two free ports in a row")


def _free(port: int) -> bool:
    try:
        with socket.create_server(("127.0.0.1", port)):
            return True
    except OSError:
        return False


def test_serve_runs_the_simulator_in_a_process_of_its_own_that_workers_find(tmp_path):
    port = _two_free_ports()
    env = {**os.environ, "COMPARE_VAR_DIR": str(tmp_path / "var"), "PORT": str(port), "COMPARE_LOG_LEVEL": "WARNING"}
    for name in ["OPENAI_API_KEY", "GEMINI_API_KEY", "DATABASE_URL", "COMPARE_SIMULATOR_URL", "COMPARE_SIMULATOR_PORT"]:
        env.pop(name, None)
    manage(env, "migrate", "--noinput")
    manage(env, "ensure_user", "--username", "sim", "--password", "sim-test-pw-1")
    token = manage(env, "issue_token", "sim").strip().splitlines()[-1]
    server = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    simulator = f"http://127.0.0.1:{port + 1}/sim"
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/login/"), what="the web server")
        # The simulator answers on its own port; /sim/ on the web port still answers too.
        assert httpx.get(f"{simulator}/openai/v1/models", headers=KEY).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/sim/openai/v1/models", headers=KEY).status_code == 200
        api = {"Authorization": f"Bearer {token}"}
        created = httpx.post(
            f"http://127.0.0.1:{port}/api/runs",
            headers=api,
            json={"prompt": "answered by the simulator's own process", "models": ["gpt-image-2", "gemini-3-pro-image"]},
            timeout=30,
        ).json()
        run = wait_for(
            lambda: (
                (r := httpx.get(f"http://127.0.0.1:{port}/api/runs/{created['id']}", headers=api).json())["status"]
                == "done"
                and r
            ),
            what="the run",
        )
        assert {g["status"] for g in run["generations"]} == {"succeeded"}
        # The pictures were drawn by the simulator's process, not by the web server's /sim/.
        assert httpx.get(f"{simulator}/stats", headers=KEY).json()["renders"] >= 2
        # It gives way to the app when both want a core (COMPARE_SIMULATOR_NICE, 10 by default).
        child = _simulator_child(server.pid)
        assert os.getpriority(os.PRIO_PROCESS, child) == os.getpriority(os.PRIO_PROCESS, server.pid) + 10
        # A worker started with the same PORT (and nothing else) calls the same simulator.
        worker_sees = manage(
            env, "shell", "-c", "from django.conf import settings; print(settings.COMPARE_SIMULATOR_URL)"
        )
        assert worker_sees.strip().splitlines()[-1] == simulator
    finally:
        server.kill()
        server.wait(10)
    # The simulator does not outlive its server, even one killed with SIGKILL.
    wait_for(lambda: not _answers(f"{simulator}/openai/v1/models"), timeout=20, what="the simulator to stop")


def _simulator_child(parent: int) -> int:
    for line in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
        if b"simulator" in Path(f"/proc/{line}/cmdline").read_bytes():
            return int(line)
    raise AssertionError("serve started no simulator process")


def _answers(url: str) -> bool:
    try:
        httpx.get(url, headers=KEY, timeout=2)
        return True
    except httpx.TransportError:
        return False


def test_the_task_pool_is_sized_for_io(settings):
    """Hundreds of calls may wait on the network at once; the pool is not the cap."""
    from django.tasks import task_backends

    assert settings.TASKS["default"]["OPTIONS"]["max_workers"] >= 200
    assert task_backends["default"].max_workers >= 200  # type: ignore[attr-defined]


@pytest.mark.django_db(transaction=True)
def test_a_task_thread_keeps_its_sqlite_connection_for_its_next_task(monkeypatch):
    """Opening an SQLite connection (its PRAGMAs, its functions) was a sixth of a
    generation's own CPU: a pool thread keeps its own between tasks, as web threads do,
    and the next task on it reads the database through the same one."""
    from django.db import connection
    from django.db.backends.signals import connection_created
    from django.tasks.base import TaskResultStatus

    from compare import tasks
    from compare.taskbackend import ThreadPoolBackend

    if connection.vendor != "sqlite":
        pytest.skip("a server database's connections go back after each task")
    seen = []
    opened = []

    def generation(generation_id):
        seen.append(Generation.objects.filter(pk=generation_id).exists())
        return "skipped"

    def count(sender, connection, **kwargs):
        opened.append(connection.alias)

    connection_created.connect(count)

    monkeypatch.setattr(tasks, "run_generation", generation)
    backend = ThreadPoolBackend("one-thread", {"OPTIONS": {"max_workers": 1}})
    try:
        results = [backend.enqueue(tasks.generate, [str(uuid.uuid4())], {}) for _ in range(3)]
        wait_for(lambda: all(r.status == TaskResultStatus.SUCCESSFUL for r in results), timeout=20, what="three tasks")
    finally:
        backend.shutdown(wait=True)
        connection_created.disconnect(count)
    assert seen == [False] * 3  # each task read the database
    assert opened == ["default"]  # through the one connection the first task opened


def _write_transactions(statements: list[str]) -> int:
    """Transactions that wrote, as SQLite sees them: BEGIN … COMMIT blocks with a write in
    them, and writes made outside one (each its own)."""
    count, inside, wrote = 0, False, False
    for sql in statements:
        verb = sql.lstrip().split(None, 1)[0].upper()
        if verb == "BEGIN":
            inside, wrote = True, False
        elif verb in {"COMMIT", "ROLLBACK"}:
            count += wrote
            inside = False
        elif verb in {"INSERT", "UPDATE", "DELETE"}:
            if inside:
                wrote = True
            else:
                count += 1
    return count


@pytest.mark.django_db(transaction=True)
def test_a_generation_writes_in_three_transactions_and_its_checks_in_one(auth_client, simulator, no_task_execution):
    """One SQLite writer at a time: in a burst every write waits for the others, so a
    generation writes three times, its claim, its call (what is sent, the call on record)
    and its outcome (images, result, the call answered), each in one transaction; then its
    checks that read no pixels (size, format, count), at once, in one more."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from compare import tasks
    from compare.models import ProviderCall

    if connection.vendor != "sqlite":
        pytest.skip("counts SQLite's write transactions")
    auth_client.post("/", form_data("three writes each", ["gpt-image-2", "gemini-3-pro-image"], regenerate="on"))
    run = Run.objects.get()
    for gen in run.generations.all():
        with CaptureQueriesContext(connection) as queries:
            assert tasks.run_generation(gen.pk) == "succeeded"
        assert _write_transactions([q["sql"] for q in queries.captured_queries]) == 4, gen.model_key
        done = Generation.objects.get(pk=gen.pk)
        assert done.status == "succeeded" and done.attempts == 1 and done.params_sent and done.images.count() == 1
        assert done.check_status == "passed"  # checked already: no task of its own
        assert ProviderCall.objects.get(generation=gen).finished_at is not None

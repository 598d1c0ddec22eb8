"""Benchmark (`make bench`, on PostgreSQL): the scale-out profile's burst. 10 and 200
generations submitted at once through the API, at a simulated latency L = 3 s, run by two
`celery -A compare worker --pool threads -c 128` processes; the same bursts on the embedded
default (the in-process thread pool) printed next to them. The issue measured the old
profile (two `db_worker` processes, one task at a time each) at 10 generations in 18.2 s."""

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.db import connection, connections
from django.test import Client

import compare.settings as defaults
from compare.models import ApiToken, Generation, TeamSettings
from tests.bench.test_bench import MODELS, report
from tests.test_celery import ROOT, workers  # noqa: F401  (the fixture: worker subprocesses on a queue of their own)

pytestmark = [pytest.mark.bench, pytest.mark.django_db(transaction=True)]
LATENCY = 3.0
COUNTS = (10, 200)
TARGETS = {10: 2.0, 200: 2.0}  # all done / L, as the embedded default's target for 200


def burst(token: str, generations: int, label: str) -> dict:
    """Submit generations/2 runs of both models at once (8 clients in parallel), wait for all."""
    prompts = [f"{label} burst {uuid.uuid4().hex[:8]} [[latency:{LATENCY:g}]]" for _ in range(generations // 2)]

    def submit(prompt: str) -> None:
        try:
            response = Client().post(
                "/api/runs",
                json.dumps({"prompt": prompt, "models": MODELS}),
                content_type="application/json",
                headers={"Authorization": f"Bearer {token}"},
            )
        finally:
            connections.close_all()  # this submitting thread's own
        assert response.status_code in (200, 201, 202), response.content.decode()[:400]

    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(submit, prompts))
    submitted = time.perf_counter() - started
    gens = Generation.objects.filter(run__prompt__in=prompts)
    peak = 0  # generations running at once, sampled: the calls in flight
    while gens.filter(status__in=Generation.PENDING).exists():
        assert time.perf_counter() - started < 300, "the burst did not finish in 5 minutes"
        peak = max(peak, gens.filter(status=Generation.Status.RUNNING).count())
        time.sleep(0.05)
    done = time.perf_counter() - started
    rows = list(gens.values_list("status", "run__created_at", "started_at", "finished_at"))
    waits = [(s - c).total_seconds() for _, c, s, _ in rows if s]
    runs = [(f - s).total_seconds() for _, _, s, f in rows if s and f]  # claimed → done: the call and storing
    return {
        "generations": len(rows),
        "succeeded": sum(1 for row in rows if row[0] == "succeeded"),
        "submit_s": round(submitted, 2),
        "all_done_s": round(done, 2),
        "all_done_over_L": round(done / LATENCY, 2),
        "done_after_last_submit_s": round(done - submitted, 2),
        "queue_wait_p50_s": round(statistics.median(waits), 2) if waits else None,
        "peak_running": peak,
        "running_p50_s": round(statistics.median(runs), 2) if runs else None,
        "running_max_s": round(max(runs), 2) if runs else None,
    }


EMBEDDED = Path(tempfile.gettempdir()) / "compare-bench-embedded-burst.json"


def test_embedded_burst(settings, user, simulator):
    """The same bursts on the embedded default (SQLite, the in-process pool), kept for the
    scale-out line that `make bench` prints next (on PostgreSQL)."""
    if connection.vendor != "sqlite" or defaults.TASKS != settings.TASKS:
        pytest.skip("the embedded figure is the default profile's: SQLite and the in-process pool")
    TeamSettings.objects.update_or_create(pk=1, defaults={"max_in_flight": 0, "daily_budget_usd": 0})
    settings.COMPARE_CACHE_SECONDS = 0
    token = ApiToken.issue(user, "bench")[1]
    figures = {}
    for count in COUNTS:
        figures[count] = burst(token, count, "embedded")
        report(f"embedded default, burst of {count} generations at L = {LATENCY:g} s", **figures[count])
        assert figures[count]["succeeded"] == count, figures[count]
    EMBEDDED.write_text(json.dumps(figures))


def test_scaleout_burst_on_two_celery_workers(settings, user, workers):  # noqa: F811
    if connection.vendor != "postgresql":
        pytest.skip("the scale-out profile runs on PostgreSQL: `make bench` runs this file with DATABASE_URL set")
    TeamSettings.objects.update_or_create(pk=1, defaults={"max_in_flight": 0, "daily_budget_usd": 0})
    settings.COMPARE_CACHE_SECONDS = 0
    token = ApiToken.issue(user, "bench")[1]
    # As in the topology: the simulator in a process of its own (the one `manage.py serve` starts).
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    command = ["manage.py", "simulator", "--host", "127.0.0.1", "--port", str(port), "--parent", str(os.getpid())]
    simulator = subprocess.Popen([sys.executable, *command], cwd=ROOT, env=workers.env)
    try:
        _wait_for_port(port)
        workers.env["COMPARE_SIMULATOR_URL"] = f"http://127.0.0.1:{port}/sim"
        workers.env["COMPARE_CACHE_SECONDS"] = "0"  # every generation calls the simulator
        _scaleout_bursts(token, workers)
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)


def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the simulator process did not start")


def _scaleout_bursts(token: str, workers) -> None:  # noqa: F811
    workers.start("one", concurrency=128)
    workers.start("two", concurrency=128)
    embedded = json.loads(EMBEDDED.read_text()) if EMBEDDED.exists() else {}
    for count in COUNTS:
        scaled = burst(token, count, "scale-out")
        target = TARGETS[count]
        verdict = "met" if scaled["all_done_over_L"] <= target and scaled["succeeded"] == count else "missed"
        same = embedded.get(str(count), {})
        report(
            f"scale-out burst, {count} generations at L = {LATENCY:g} s, two Celery workers x 128 threads",
            **scaled,
            embedded_all_done_over_L=same.get("all_done_over_L", "not measured"),
            target_over_L=target,
            verdict=verdict,
        )
        assert scaled["succeeded"] == count, scaled

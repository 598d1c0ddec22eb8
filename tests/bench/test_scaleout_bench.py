"""Benchmark (`make bench`, on PostgreSQL): the scale-out profile's burst. 10 and 200
generations submitted at once through the API of a web process (`manage.py serve`, as the
README's topology starts one), at a simulated latency L = 3 s, run by two
`celery -A compare worker --pool threads -c 128` processes; the same bursts on the embedded
default (`serve` on SQLite with its in-process pool) printed next to them. The issue
measured the old profile (two `db_worker` processes, one task at a time each) at 10
generations in 18.2 s."""

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
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from django.db import DatabaseError, connection

from compare.models import ApiToken, TeamSettings
from tests.bench.test_bench import MODELS, report
from tests.bench.test_throughput_bench import SIM_KEY, app  # noqa: F401  (the fixture: `serve` on SQLite)
from tests.test_celery import ROOT, workers  # noqa: F401  (the fixture: worker subprocesses on a queue of their own)
from tests.test_crash import free_port, start_server

pytestmark = [pytest.mark.bench]
LATENCY = 3.0
COUNTS = (10, 200)
TARGETS = {10: 2.0, 200: 2.0}  # all done / L, as the embedded default's target for 200


def _when(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def burst(api: httpx.Client, simulator: str, generations: int, label: str) -> dict:
    """Submit generations/2 runs of both models at once (8 clients in parallel) through the
    web process's API and wait for all, as a client does; the times are the server's own
    (each generation's started_at and finished_at), the calls in flight the simulator's."""
    prompts = [f"{label} burst {uuid.uuid4().hex[:8]} [[latency:{LATENCY:g}]]" for _ in range(generations // 2)]

    def submit(prompt: str) -> str:
        response = api.post("/api/runs", json={"prompt": prompt, "models": MODELS, "regenerate": True})
        assert response.status_code in (200, 201, 202), response.text[:400]
        return response.json()["id"]

    httpx.post(f"{simulator}/stats", headers=SIM_KEY)  # resets the peak of calls in flight
    cpu_before = _cpu_by_process()
    started = time.time()
    with ThreadPoolExecutor(8) as pool:
        run_ids = list(pool.map(submit, prompts))
    submitted = time.time() - started
    bodies = [_finished(api, run_id, started) for run_id in run_ids]
    cpu = _cpu_by_process()
    used: dict[str, float] = {}
    for (pid, kind), seconds in cpu.items():
        used[kind] = used.get(kind, 0.0) + seconds - cpu_before.get((pid, kind), 0.0)
    gens = [(body["created_at"], g) for body in bodies for g in body["generations"]]
    done = max(_when(g["finished_at"]) for _, g in gens) - started
    waits = [_when(g["started_at"]) - _when(created) for created, g in gens if g["started_at"]]
    runs = [_when(g["finished_at"]) - _when(g["started_at"]) for _, g in gens if g["started_at"]]
    return {
        "generations": len(gens),
        "succeeded": sum(1 for _, g in gens if g["status"] == "succeeded"),
        "submit_s": round(submitted, 2),
        "all_done_s": round(done, 2),
        "all_done_over_L": round(done / LATENCY, 2),
        "done_after_last_submit_s": round(done - submitted, 2),
        "queue_wait_p50_s": round(statistics.median(waits), 2) if waits else None,
        "peak_calls_in_flight": httpx.get(f"{simulator}/stats", headers=SIM_KEY).json()["peak_in_flight"],
        "running_p50_s": round(statistics.median(runs), 2) if runs else None,
        "running_max_s": round(max(runs), 2) if runs else None,
        # Where the machine's cores went meanwhile (CPU seconds; the cores give cores × wall).
        "cpu_s": ", ".join(f"{kind} {seconds:.1f}" for kind, seconds in sorted(used.items(), key=lambda i: -i[1])[:6]),
        "cpu_s_available": round(done * (os.cpu_count() or 1), 1),
    }


KINDS = {"celery": "workers", " serve": "web", "simulator": "simulator", "pytest": "bench client"}


def _cpu_by_process() -> dict[tuple[str, str], float]:
    """CPU seconds so far of every process on the machine, keyed by pid and what it is."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        kind = next((label for key, label in KINDS.items() if key in command), name.split("/")[0])
        fields = stat[stat.rindex(")") + 2 :].split()
        found[(pid, kind)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return found


def _finished(api: httpx.Client, run_id: str, started: float) -> dict:
    while True:
        body = api.get(f"/api/runs/{run_id}").json()
        if not {g["status"] for g in body["generations"]} & {"queued", "running"}:
            return body
        assert time.time() - started < 300, "the burst did not finish in 5 minutes"
        time.sleep(0.2)


EMBEDDED = Path(tempfile.gettempdir()) / "compare-bench-embedded-burst.json"


@pytest.mark.skipif(
    bool(os.environ.get("DATABASE_URL")),
    reason="the embedded figure is the default profile's: SQLite, the in-process pool",
)
def test_embedded_burst(app):  # noqa: F811
    """The same bursts on the embedded default (`serve` on SQLite with its in-process pool),
    kept for the scale-out line that `make bench` prints next (on PostgreSQL)."""
    figures = {}
    for count in COUNTS:
        figures[count] = burst(app.client, app.simulator, count, "embedded")
        report(f"embedded default, burst of {count} generations at L = {LATENCY:g} s", **figures[count])
        assert figures[count]["succeeded"] == count, figures[count]
    EMBEDDED.write_text(json.dumps(figures))


@pytest.mark.django_db(transaction=True)
def test_scaleout_burst_on_two_celery_workers(settings, user, workers):  # noqa: F811
    if connection.vendor != "postgresql":
        pytest.skip("the scale-out profile runs on PostgreSQL: `make bench` runs this file with DATABASE_URL set")
    TeamSettings.objects.update_or_create(pk=1, defaults={"max_in_flight": 0, "daily_budget_usd": 0})
    token = ApiToken.issue(user, "bench")[1]
    # As in the topology: the simulator in a process of its own (the one `manage.py serve` starts).
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    command = ["manage.py", "simulator", "--host", "127.0.0.1", "--port", str(port), "--parent", str(os.getpid())]
    simulator = subprocess.Popen([sys.executable, *command], cwd=ROOT, env=workers.env)
    web = None
    try:
        _wait_for_port(port)
        workers.env["COMPARE_SIMULATOR_URL"] = f"http://127.0.0.1:{port}/sim"
        workers.env["COMPARE_CACHE_SECONDS"] = "0"  # every generation calls the simulator
        workers.env["COMPARE_LOG_LEVEL"] = "WARNING"
        web_port = free_port()
        web = start_server({**workers.env, "PORT": str(web_port)}, web_port)  # a web process of the topology
        with httpx.Client(
            base_url=f"http://127.0.0.1:{web_port}", headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as api:
            _scaleout_bursts(api, workers.env["COMPARE_SIMULATOR_URL"], workers)
    finally:
        if web is not None:
            web.terminate()
            web.wait(timeout=20)
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


def _settled() -> None:
    """As pgbench does before it measures: the test database just created and migrated is
    vacuumed and analysed, and its writes checkpointed, so the burst does not share the
    cores with the autovacuum and checkpoint work that a new database sets off (seen taking
    4 CPU-seconds more of PostgreSQL's during a burst)."""
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
        try:
            cursor.execute("CHECKPOINT")
        except DatabaseError:  # not a superuser: the vacuum is the larger part
            pass


def _scaleout_bursts(api: httpx.Client, simulator: str, workers) -> None:  # noqa: F811
    _settled()
    workers.start("one", concurrency=128)
    workers.start("two", concurrency=128)
    embedded = json.loads(EMBEDDED.read_text()) if EMBEDDED.exists() else {}
    for count in COUNTS:
        scaled = burst(api, simulator, count, "scale-out")
        target = TARGETS[count]
        verdict = "met" if scaled["all_done_over_L"] <= target and scaled["succeeded"] == count else "missed"
        same = embedded.get(str(count), {})
        report(
            f"scale-out burst, {count} generations at L = {LATENCY:g} s, one web process, two Celery workers x 128 threads",
            **scaled,
            embedded_all_done_over_L=same.get("all_done_over_L", "not measured"),
            target_over_L=target,
            verdict=verdict,
        )
        assert scaled["succeeded"] == count, scaled

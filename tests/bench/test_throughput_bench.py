"""Throughput through the API with the simulator at a fixed latency L = 3 s, measured on
the app as `make run` starts it: `manage.py serve` in a process of its own (its task pool,
its web threads) with the simulator in another (compare/simulator/management/commands/
simulator.py); this process is only the client. Figures: one run done / L; 100 runs
(200 generations) submitted at once: all done / L and the queue wait; the seed's serial
approach on the same prompts (prompts one after another, the two models in parallel per
prompt); the simulator's own reply time / L. Each is printed next to its target (issue 12)
with met/missed; the ceilings asserted only catch a collapse.

BENCH_SERIAL_PROMPTS (default 100) shortens the serial comparison, which takes about
100 × L; the line then says on how many prompts it was measured."""

import os
import sqlite3
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.bench.reporting import report
from tests.test_concurrency import _two_free_ports
from tests.test_crash import manage, wait_for

pytestmark = [pytest.mark.bench]
ROOT = Path(__file__).resolve().parent.parent.parent
L = 3.0
MODELS = ["gpt-image-2", "gemini-3-pro-image"]
BURST_RUNS = 100
SIM_KEY = {"Authorization": "Bearer bench"}


def verdict(value: float, target: float) -> str:
    return "met" if value <= target else "missed"


class App:
    def __init__(self, port: int, token: str, var: Path):
        self.url = f"http://127.0.0.1:{port}"
        self.simulator = f"http://127.0.0.1:{port + 1}/sim"
        self.client = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        self.database = var / "compare.sqlite3"

    def queue_waits(self) -> list[float]:
        """Seconds each generation waited between queued and started, read from the database."""
        with sqlite3.connect(self.database) as db:
            rows = db.execute(
                "SELECT queued_at, started_at FROM compare_generation WHERE started_at IS NOT NULL ORDER BY queued_at"
            )
            return [(datetime.fromisoformat(s) - datetime.fromisoformat(q)).total_seconds() for q, s in rows]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """`manage.py serve` as `make run` starts it, on a fresh database; the team's
    per-person limits off (0) so a hundred runs may be in flight."""
    var = tmp_path_factory.mktemp("throughput") / "var"
    port = _two_free_ports()
    env = {**os.environ, "COMPARE_VAR_DIR": str(var), "PORT": str(port), "COMPARE_LOG_LEVEL": "WARNING"}
    for name in ["OPENAI_API_KEY", "GEMINI_API_KEY", "DATABASE_URL", "COMPARE_SIMULATOR_URL", "COMPARE_SIMULATOR_PORT"]:
        env.pop(name, None)
    manage(env, "migrate", "--noinput")
    manage(env, "ensure_user", "--username", "bench", "--password", "bench-pw-123456")
    manage(
        env,
        "shell",
        "-c",
        "from compare.models import TeamSettings; "
        "TeamSettings.objects.update_or_create(pk=1, defaults={'max_in_flight': 0, 'daily_budget_usd': 0})",
    )
    token = manage(env, "issue_token", "bench").strip().splitlines()[-1]
    server = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    app = App(port, token, var)
    try:
        wait_for(lambda: _answers(f"{app.url}/login/") and _answers(f"{app.simulator}/stats"), what="serve")
        yield app
    finally:
        app.client.close()
        server.terminate()
        server.wait(20)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, headers=SIM_KEY, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def prompt(i: int, tag: str) -> str:
    # No quoted text: the OCR text check (compare/checks/) is not what is measured here.
    return f"Poster {i} ({tag}): a loaf of fresh bread on a table [[latency:{L:g}]]"


def submit(api: httpx.Client, text: str) -> str:
    response = api.post("/api/runs", json={"prompt": text, "models": MODELS, "regenerate": True})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def wait_done(api: httpx.Client, run_id: str, poll: float = 0.05) -> float:
    """Poll the API as a client does until the run is done; then the moment it was done,
    as the server recorded it (its last generation's finished_at, wall-clock seconds):
    a client's poll interval is not the app's latency."""
    while True:
        body = api.get(f"/api/runs/{run_id}").json()
        statuses = {g["status"] for g in body["generations"]}
        if not statuses & {"queued", "running"}:
            assert statuses == {"succeeded"}, body
            return max(datetime.fromisoformat(g["finished_at"]).timestamp() for g in body["generations"])
        time.sleep(poll)


def one_run(api: httpx.Client, text: str) -> float:
    started = time.time()
    run_id = submit(api, text)
    return wait_done(api, run_id) - started


def test_one_run_and_a_hundred_runs_at_once(app):
    api = app.client
    # Warm up (imports, fonts, connections), then one run at a time.
    one_run(api, prompt(0, "warm-up"))
    singles = [one_run(api, prompt(i, "single")) for i in range(3)]
    single = statistics.median(singles) / L
    report("one run done (API) / L", ratio=round(single, 3), target="≤ 1.03", result=verdict(single, 1.03))

    # 100 runs = 200 generations submitted at once through the API.
    httpx.post(f"{app.simulator}/stats", headers=SIM_KEY)  # reset the peak
    started = time.time()
    with ThreadPoolExecutor(16) as pool:
        run_ids = list(pool.map(lambda i: submit(api, prompt(i, "burst")), range(BURST_RUNS)))
    submitted = time.time() - started
    burst = (max(wait_done(api, run_id, poll=0.2) for run_id in run_ids) - started) / L
    waits = app.queue_waits()[-2 * BURST_RUNS :]
    stats = httpx.get(f"{app.simulator}/stats", headers=SIM_KEY).json()
    report(
        f"{BURST_RUNS} runs = {2 * BURST_RUNS} generations at once: all done / L",
        ratio=round(burst, 2),
        target="≤ 2.0",
        result=verdict(burst, 2.0),
        queue_wait_p50_s=round(statistics.median(waits), 2),
        submit_s=round(submitted, 2),
        peak_calls_in_flight=stats["peak_in_flight"],
    )

    # The seed's serial approach on the same prompts: one prompt after another, the two
    # models of each prompt in parallel.
    count = int(os.environ.get("BENCH_SERIAL_PROMPTS", BURST_RUNS))
    started = time.time()
    for i in range(count):
        one_run(api, prompt(i, "burst"))
    serial = time.time() - started
    report(
        f"serial approach, {count} prompts one after another: all done / L",
        ratio=round(serial / L, 2),
        per_prompt_over_L=round(serial / count / L, 3),
        versus_at_once=f"{round(serial / L, 1)} L vs {round(burst, 2)} L"
        + ("" if count == BURST_RUNS else f" (serial on {count} of {BURST_RUNS} prompts)"),
    )
    assert single < 2 and burst < 20


SHOWN = """() => {
  const done = [...document.querySelectorAll('article.pane')].filter(pane => {
    const status = pane.querySelector('[data-status]');
    const img = pane.querySelector('img');
    return status && status.dataset.status === 'succeeded' && img && img.complete && img.naturalWidth > 0;
  });
  return done.length === 2 ? performance.timeOrigin + performance.now() : null;
}"""


def test_the_run_page_shows_both_results(app):
    """From pressing Run (here: the API call) to both results drawn on the open run page,
    in a real browser, over L: the live update's share of what a person waits."""
    from playwright.sync_api import sync_playwright

    from tests.e2e.test_browser import CHROMIUM

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(app.url + "/login/")
        page.get_by_label("Username").fill("bench")
        page.get_by_label("Password").fill("bench-pw-123456")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(lambda url: "/login/" not in url)
        ratios = []
        for i in range(5):
            started = time.time() * 1000
            run_id = submit(app.client, prompt(i, "page"))
            page.goto(f"{app.url}/runs/{run_id}/")
            shown = page.wait_for_function(SHOWN, polling="raf", timeout=60_000).json_value()
            ratios.append((shown - started) / 1000 / L)
        browser.close()
    ratio = statistics.median(ratios)
    report("run page shows both results / L", ratio=round(ratio, 3), target="≤ 1.10", result=verdict(ratio, 1.10))
    assert ratio < 2


@pytest.mark.parametrize("size", ["1024x1024", "3840x2160"])
def test_simulator_reply_takes_the_latency_not_the_latency_plus_drawing(app, size):
    """The simulator draws first and sleeps only the rest of L: a reply takes about L
    (before: L plus the drawing, ~0.3 s for a 4K PNG on this machine)."""
    times = []
    for i in range(3):
        started = time.perf_counter()
        response = httpx.post(
            f"{app.simulator}/openai/v1/images/generations",
            headers={**SIM_KEY, "X-Simulator-Latency": str(L)},
            json={"model": "gpt-image-2", "prompt": f"Reply time {i} at {size}", "size": size},
            timeout=60,
        )
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    ratio = statistics.median(times) / L
    report(
        f"simulator reply at {size} / L", ratio=round(ratio, 3), target="≈ 1.00 (≤ 1.03)", result=verdict(ratio, 1.03)
    )
    assert ratio < 1.5

"""Benchmarks of bounded image memory (compare/images.py `pixel_work`, the reply bodies
read from disk in compare/providers/_common.py): the peak resident memory of the app
process under a burst of 4K generations, and what reading one large reply costs.
Printed as BENCH lines, each with its target and whether it was met."""

import base64
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from compare import images, live
from compare.http import reset_shared_client
from compare.models import Generation, TeamSettings
from compare.providers import _common
from tests.bench.reporting import report
from tests.factories import form_data, png
from tests.test_crash import free_port, wait_for

pytestmark = pytest.mark.bench
RUNS = 50
TARGET_MB = 400
ROOT = Path(__file__).resolve().parent.parent.parent


def _status_mb(field: str, pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


def _reset_peak() -> bool:
    """Reset VmHWM (the peak resident set) to the current size; False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@pytest.fixture
def simulator_process(settings):
    """The simulator in a process of its own (compare/simulator/management/commands/simulator.py,
    as `serve` starts it): its memory is measured apart from the app's."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "django", "simulator", "--port", str(port), "--parent", str(os.getpid())],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "compare.settings"},
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/sim"

    def answers() -> bool:
        try:
            return httpx.get(f"{url}/stats", headers={"Authorization": "Bearer bench"}, timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(answers, timeout=30, what="the simulator process")
    settings.COMPARE_SIMULATOR_URL = url
    reset_shared_client()
    yield process
    process.terminate()
    process.wait(10)
    reset_shared_client()


@pytest.mark.django_db(transaction=True)
def test_peak_memory_of_fifty_runs_of_two_models_two_4k_images_each(auth_client, simulator_process, monkeypatch):
    """50 runs × 2 models × n=2 at 4K (16:9: gpt-image-2 3840×2160, Nano Banana Pro
    5504×3072), all submitted at once, the simulator answering after 3 s; the app (this
    process: the web views and the task pool) and the simulator each measured. Every run
    counts as open in a browser, the heaviest case: each image is decoded as it is stored
    and its thumbnails made at once (a run nobody looks at only has its PNGs checked)."""
    monkeypatch.setattr(live, "watched", lambda run_id: True)
    TeamSettings.objects.update_or_create(pk=1, defaults={"max_in_flight": 0, "daily_budget_usd": 0})
    prompt = os.environ.get("BENCH_MEMORY_PROMPT", "A bakery poster that says Fresh Bread") + " [[latency:3]]"
    auth_client.post("/", form_data(prompt, resolution="4K", aspect_ratio="16:9", n="2"))  # warm up
    _wait(Generation.objects.all(), 120)
    Generation.objects.all().delete()
    before = _status_mb("VmRSS")
    reset = _reset_peak()
    started = time.monotonic()
    for i in range(RUNS):
        response = auth_client.post("/", form_data(f"{prompt} {i}", resolution="4K", aspect_ratio="16:9", n="2"))
        assert response.status_code == 302, response.context["form"].errors
    gens = Generation.objects.all()
    most_running = _wait(gens, 600)
    seconds = time.monotonic() - started
    peak = _status_mb("VmHWM")
    simulator_peak = _status_mb("VmHWM", simulator_process.pid)
    succeeded = gens.filter(status=Generation.Status.SUCCEEDED).count()
    report(
        f"peak RSS, {RUNS} runs × 2 models × n=2 at 4K, the app (every run page open)",
        peak_mb=round(peak),
        rss_before_mb=round(before),
        peak_reset=reset,
        pixel_workers=settings.COMPARE_PIXEL_WORKERS,
        most_running_at_once=most_running,
        succeeded=f"{succeeded}/{RUNS * 2}",
        seconds=round(seconds, 1),
        target=f"≤ {TARGET_MB} MB",
        met="met" if peak <= TARGET_MB else "missed",
    )
    report(
        f"peak RSS, {RUNS} runs × 2 models × n=2 at 4K, the simulator's own process",
        peak_mb=round(simulator_peak),
        target=f"≤ {TARGET_MB} MB",
        met="met" if simulator_peak <= TARGET_MB else "missed",
    )
    assert succeeded == RUNS * 2


def _wait(gens, timeout: float) -> int:
    """Wait until no generation or its checks are pending; the most seen running at once."""
    deadline = time.monotonic() + timeout
    most = 0
    while time.monotonic() < deadline:
        most = max(most, gens.filter(status=Generation.Status.RUNNING).count())
        busy = gens.filter(status__in=Generation.PENDING) | gens.filter(check_status=Generation.CheckStatus.PENDING)
        if not busy.exists():  # the automatic checks (OCR) included
            return most
        time.sleep(0.2)
    raise AssertionError("the burst did not finish in time")


def _body(megabytes: int) -> bytes:
    image = (png("navy", (512, 512)) * (megabytes * 1024 * 1024 // len(png("navy", (512, 512))) + 1))[
        : megabytes * 1024 * 1024
    ]
    return json.dumps({"data": [{"b64_json": base64.b64encode(image).decode()}], "usage": {"total_tokens": 1}}).encode()


def test_reading_one_large_reply_body():
    """A 20 MB image in a JSON reply (27 MB of base64): the memory its parse and decode
    take beyond the body, as httpx's response.json() did and as compare/providers/_common.py
    does from the spooled file."""
    body = _body(20)
    tracemalloc.start()
    held = io.BytesIO(body).getvalue()  # what httpx keeps as response.content
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    parsed = json.loads(held)
    whole = base64.b64decode(parsed["data"][0]["b64_json"], validate=True)
    whole_peak = tracemalloc.get_traced_memory()[1] - before + len(held)
    del parsed, held
    with tempfile.TemporaryFile() as raw:
        raw.write(body)
        del body
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        spooled = _common.decode_b64(_common.load_json(raw)["data"][0]["b64_json"])
        spooled_peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    assert spooled == whole
    report(
        "one reply with a 20 MB image: memory to read it (MB)",
        in_memory=round(whole_peak / 1e6),
        from_disk=round(spooled_peak / 1e6),
        decoded_image=round(len(whole) / 1e6),
    )


def test_storing_one_4k_image():
    """The one decode of a stored 4K image, and its thumbnails made afterwards: their times."""
    from compare.simulator.render import render

    data = render("A poster", "simulated", b"seed" * 8, 5504, 3072, "png")
    started = time.perf_counter()
    stored = images.store(data, strip=True, thumbnails=False)
    store_s = time.perf_counter() - started
    started = time.perf_counter()
    images.write_thumbnails(stored)
    thumbs_s = time.perf_counter() - started
    report(
        "store one 5504×3072 PNG (one decode), then its thumbnails",
        store_ms=round(store_s * 1000),
        thumbnails_ms=round(thumbs_s * 1000),
    )

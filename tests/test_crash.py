"""Kill the real server with SIGKILL while generations run, start it again, and
check that nothing a user made is lost or duplicated and no pane spins forever."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def start_server(env: dict, port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/login/", timeout=1)
            return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise AssertionError("the server did not start")


def wait_for(check, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def logged_in(base: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=10)
    client.get("/login/")
    token = client.cookies["csrftoken"]
    response = client.post(
        "/login/", data={"username": "crash", "password": "crash-test-pw-1", "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302
    client.headers["X-CSRFToken"] = client.cookies["csrftoken"]
    return client


@pytest.fixture
def env(tmp_path):
    port = free_port()
    environment = {
        **os.environ,
        "COMPARE_VAR_DIR": str(tmp_path / "var"),
        "PORT": str(port),
        "COMPARE_SIMULATOR_URL": f"http://127.0.0.1:{port}/sim",
        "COMPARE_LOG_LEVEL": "WARNING",
    }
    environment.pop("OPENAI_API_KEY", None)
    environment.pop("GEMINI_API_KEY", None)
    environment.pop("DATABASE_URL", None)
    manage(environment, "migrate", "--noinput")
    manage(environment, "ensure_user", "--username", "crash", "--password", "crash-test-pw-1")
    token = manage(environment, "issue_token", "crash").strip().splitlines()[-1]
    return environment, port, token


def test_kill_9_mid_run_loses_nothing_and_duplicates_nothing(env):
    environment, port, token = env
    base = f"http://127.0.0.1:{port}"
    api = {"Authorization": f"Bearer {token}"}
    # One worker and slow models: at the kill, one generation runs and the others wait.
    slow = {**environment, "COMPARE_TASK_WORKERS": "1", "COMPARE_SIMULATOR_LATENCY": "10"}
    server = start_server(slow, port)
    try:
        done = httpx.post(
            f"{base}/api/runs",
            headers=api,
            json={"prompt": "finished before the crash [[latency:0]]", "models": ["gpt-image-2", "gemini-3-pro-image"]},
        ).json()
        wait_for(
            lambda: httpx.get(f"{base}/api/runs/{done['id']}", headers=api).json()["status"] == "done",
            what="the first run",
        )
        web = logged_in(base)
        assert web.post(f"/runs/{done['id']}/vote", data={"choice": "tie"}).status_code == 302
        assert web.post(f"/runs/{done['id']}/notes", data={"body": "kept through the crash"}).status_code == 302
        busy = httpx.post(
            f"{base}/api/runs",
            headers=api,
            json={"prompt": "in flight", "models": ["gpt-image-2", "gemini-3-pro-image"]},
        ).json()
        wait_for(
            lambda: (
                "running"
                in [g["status"] for g in httpx.get(f"{base}/api/runs/{busy['id']}", headers=api).json()["generations"]]
            ),
            what="a running generation",
        )
    finally:
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)

    server = start_server({**environment, "COMPARE_SIMULATOR_LATENCY": "0"}, port)
    try:

        def settled():
            body = httpx.get(f"{base}/api/runs/{busy['id']}", headers=api).json()
            statuses = [g["status"] for g in body["generations"]]
            return body if not {"queued", "running"} & set(statuses) else None

        body = wait_for(settled, timeout=90, what="every generation to reach a terminal state")
        by_status = {g["status"]: g for g in body["generations"]}
        # The one that was running may have been billed already: marked, not silently re-run.
        interrupted = by_status["failed"]
        assert interrupted["error"]["kind"] == "interrupted"
        # The one that was waiting in the queue was picked up again after the restart.
        assert by_status["succeeded"]["images"]
        web = logged_in(base)
        page = web.get(f"/runs/{busy['id']}/").text
        assert "The server stopped while this was running." in page and "Retry</button>" in page
        assert web.post(f"/runs/{busy['id']}/generations/{interrupted['id']}/retry").status_code == 302
        wait_for(
            lambda: settled() and all(g["status"] == "succeeded" for g in settled()["generations"]),
            timeout=60,
            what="the retried generation",
        )

        listing = httpx.get(f"{base}/api/runs", headers=api).json()
        assert listing["count"] == 2
        first = httpx.get(f"{base}/api/runs/{done['id']}", headers=api).json()
        assert first["votes"]["total"] == 1 and first["notes_count"] == 1
        second = httpx.get(f"{base}/api/runs/{busy['id']}", headers=api).json()
        for run in (first, second):
            assert len(run["generations"]) == 2
            assert all(len(g["images"]) == 1 for g in run["generations"])
        run_page = web.get(f"/runs/{done['id']}/").text
        assert len(re.findall("kept through the crash", run_page)) == 1
    finally:
        server.terminate()
        server.wait(10)

"""The scale-out profile: generations go through the durable database queue and a
separate `db_worker` process runs them (here against the test database, which is
PostgreSQL when `make test` runs this file with DATABASE_URL)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from compare.models import Run

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    params = connection.settings_dict
    if connection.vendor == "postgresql":
        return f"postgres://{params['USER'] or 'postgres'}@{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}/{params['NAME']}"
    return f"sqlite:///{params['NAME']}"


def test_a_worker_process_runs_queued_generations_from_the_database(auth_client, simulator, settings):
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    response = auth_client.post("/", {"prompt": "scaled out", "models": ["gpt-image-2", "gemini-3-pro-image"]})
    assert response.status_code == 302
    run = Run.objects.get()
    assert set(run.generations.values_list("status", flat=True)) == {"queued"}  # nobody in this process runs them
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "COMPARE_TASK_BACKEND": "django_tasks_db.DatabaseBackend",
        "COMPARE_SIMULATOR_URL": simulator.url + "/sim",
        "COMPARE_SIMULATOR_LATENCY": "0",
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "db_worker", "--batch", "--no-startup-delay", "--interval", "0.1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    statuses = dict(run.generations.values_list("model_key", "status"))
    assert statuses == {"gpt-image-2": "succeeded", "gemini-3-pro-image": "succeeded"}
    assert all(g.images.filter(is_partial=False).count() == 1 for g in run.generations.all())

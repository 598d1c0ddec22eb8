import time

import pytest

from compare.http import reset_shared_client
from compare.models import Generation
from compare.registry import registry
from compare.simulator.faults import release_sleepers
from compare.taskbackend import wait_idle


@pytest.fixture(autouse=True)
def _isolated_media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.COMPARE_SIMULATOR_LATENCY = 0.0
    settings.COMPARE_RETRY_BASE_DELAY = 0.0


@pytest.fixture(autouse=True)
def _no_real_keys(monkeypatch):
    # Tests never reach a real provider: without keys every model is simulated.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("dana", password="pw-dana-123")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("lee", password="pw-lee-123")


@pytest.fixture
def auth_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def simulator(live_server, settings):
    """The app talks to the built-in simulator over real HTTP on the live server."""
    settings.COMPARE_SIMULATOR_URL = live_server.url + "/sim"
    reset_shared_client()
    yield live_server
    # Let in-flight generations finish while the server and database still exist.
    release_sleepers()
    assert wait_idle(timeout=30), "tasks still running 30 s after the test"
    reset_shared_client()


def wait_for_generations(run, timeout: float = 30.0):
    """Wait until every generation of `run` is terminal (tasks run in threads)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gens = list(Generation.objects.filter(run=run))
        if gens and all(g.is_terminal for g in gens):
            return gens
        time.sleep(0.05)
    raise AssertionError(f"generations still pending: {[(g.model_key, g.status) for g in gens]}")


@pytest.fixture
def enable_models(settings, tmp_path):
    """Use a copy of the default registry with some "ready to enable" entries enabled."""

    def enable(*keys: str) -> None:
        text = settings.COMPARE_MODELS_FILE.read_text()
        for key in keys:
            head, tail = text.split(f'[models."{key}"]')
            text = head + f'[models."{key}"]' + tail.replace("enabled = false", "enabled = true", 1)
        path = tmp_path / "models.toml"
        path.write_text(text)
        settings.COMPARE_MODELS_FILE = path
        registry.cache_clear()

    yield enable
    registry.cache_clear()

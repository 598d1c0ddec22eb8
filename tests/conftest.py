"""Fixtures every test file can use. Builders (users, runs, images, PNGs, a provider
recorder) are plain functions in tests/factories.py."""

from datetime import date

import pytest
from django.test.utils import override_settings

from compare import livefeed
from compare import registry as registry_module
from compare.history import forget_choices
from compare.http import reset_shared_client
from compare.registry import registry
from compare.simulator.faults import release_sleepers
from compare.taskbackend import wait_idle
from tests.factories import DUMMY_TASKS, make_user


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hasher():
    """Hash test passwords with MD5: the production hasher is slow on purpose (a third of a
    second per password), which is most of the time a test that makes a user takes.
    Session-wide and process-wide, so the live server and the browser tests use it too;
    subprocesses (test_crash, test_production) keep the production hasher."""
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(autouse=True, scope="session")
def _live_listener_closed(django_db_setup):
    """On PostgreSQL the first run-page poll opens this process's LISTEN connection
    (compare/livefeed.py); it is closed before the test database is dropped, which
    PostgreSQL refuses while anyone is connected."""
    yield
    livefeed.stop()


@pytest.fixture(autouse=True)
def _a_fixed_day(monkeypatch):
    """Retirements (compare/registry.py `today`, which the simulator's model list reads
    too) are judged on a fixed day, so that a test of what a soon-retired model takes
    does not start failing on its retirement day. Tests of retirement move the day."""
    monkeypatch.setattr(registry_module, "today", lambda: date(2026, 11, 29))


@pytest.fixture(autouse=True)
def _isolated_media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.COMPARE_SIMULATOR_LATENCY = 0.0
    settings.COMPARE_RETRY_BASE_DELAY = 0.0


@pytest.fixture(autouse=True)
def _fresh_history_choices():
    # The history's filter choices are cached (compare/history.py); a rolled-back test leaves no signal behind.
    forget_choices()


@pytest.fixture(autouse=True)
def _no_real_keys(monkeypatch):
    # Tests never reach a real provider: without keys every model is simulated.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)


@pytest.fixture
def user(db):
    return make_user("dana")


@pytest.fixture
def other_user(db):
    return make_user("lee")


@pytest.fixture
def auth_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def no_task_execution(settings):
    """Generations stay queued: the test looks at what was stored, not at providers."""
    settings.TASKS = DUMMY_TASKS


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

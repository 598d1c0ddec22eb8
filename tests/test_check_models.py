"""The model check: compare.modelcheck, `manage.py check_models` and the /status page."""

import dataclasses
import json
import sys
from datetime import date
from io import StringIO
from pathlib import Path

import httpx
import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.db import connection

from compare import modelcheck
from compare import registry as registry_module
from compare.http import build_client
from compare.modelcheck import check_models
from compare.registry import load_registry, registry
from compare.views import status as views_status
from tests.factories import Recorder

DEFAULT_FILE = Path(__file__).resolve().parent.parent / "compare" / "models.toml"
FAKE_OPENAI_KEY = "sk-abc123def456ghi789jkl"
FAKE_GEMINI_KEY = "AIzaSyFAKEfake0123456789abcdef"
BEFORE, ON = date(2026, 11, 30), date(2026, 12, 1)  # OpenAI shuts gpt-image-1.5 down on 2026-12-01
RETIRED_ENTRY = """
[models."nano-banana-pro-preview"]
label = "Nano Banana Pro (preview)"
vendor = "Google"
protocol = "gemini"
model_id = "gemini-3-pro-image-preview"
base_url = "https://generativelanguage.googleapis.com/v1beta"
auth = "x-goog-api-key"
api_key_env = "GEMINI_API_KEY"
enabled = true

[models."nano-banana-pro-preview".capabilities]
sizes = "aspect"
"""


@pytest.fixture
def day(monkeypatch):
    """Set the day retirements are judged by (compare.registry.today)."""
    return lambda value: monkeypatch.setattr(registry_module, "today", lambda: value)


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()  # the status page keeps its last check in the cache
    yield
    cache.clear()


def by_key(rows) -> dict:
    return {row.key: row for row in rows}


@pytest.fixture
def retired_model(settings, tmp_path, monkeypatch):
    """The default registry plus an enabled model whose id Google shut down on 2026-06-25."""
    path = tmp_path / "models.toml"
    path.write_text(DEFAULT_FILE.read_text() + RETIRED_ENTRY)
    registry.cache_clear()
    settings.COMPARE_MODELS_FILE = path
    # The simulator lists every id the registry names (so generations never 404);
    # a real provider would not list a retired id, so let it see the shipped registry only.
    shipped = list(load_registry(DEFAULT_FILE).values())
    for name, module in list(sys.modules.items()):
        if name.startswith("compare.simulator") and hasattr(module, "configured_models"):
            monkeypatch.setattr(module, "configured_models", lambda: shipped)
    yield "nano-banana-pro-preview"
    registry.cache_clear()


def recording_client(answers: dict) -> tuple[httpx.Client, list[httpx.Request]]:
    """A client whose transport answers by host and remembers every request."""

    def by_host(request: httpx.Request) -> httpx.Response:
        answer = answers[request.url.host]
        return answer(request) if callable(answer) else answer

    recorder = Recorder(by_host)
    return build_client(recorder.transport), recorder.requests


# --- through the live simulator ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_default_models_are_ok_through_the_simulator(simulator):
    rows = check_models()
    assert [row.key for row in rows] == list(registry())
    for row in rows:
        model = registry()[row.key]
        if model.enabled:
            assert (row.status, row.simulated) == ("ok", True), row
            assert row.provider.startswith(simulator.url + "/sim/")
        else:
            assert row.status == "disabled"
    assert any(row.status == "ok" for row in rows)


@pytest.mark.django_db(transaction=True)
def test_a_retired_id_is_missing_and_the_command_fails(simulator, retired_model):
    rows = by_key(check_models())
    assert rows[retired_model].status == "missing"
    assert "gemini-3-pro-image-preview" in rows[retired_model].note
    assert rows["gemini-3-pro-image"].status == "ok"  # same account, one list, other id still there

    out = StringIO()
    with pytest.raises(CommandError) as info:
        call_command("check_models", stdout=out)
    assert info.value.returncode == 1
    assert retired_model in str(info.value)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["Model", "Id", "Provider", "Status", "Note"]
    line = next(line for line in lines if line.startswith(retired_model))
    assert "gemini-3-pro-image-preview" in line and "missing" in line and "(simulated)" in line


@pytest.mark.django_db(transaction=True)
def test_check_models_json(simulator):
    out = StringIO()
    call_command("check_models", "--json", stdout=out)  # all ok: no CommandError, exit code 0
    data = json.loads(out.getvalue())
    assert {row["key"] for row in data} == set(registry())
    row = next(row for row in data if row["key"] == "gpt-image-2")
    assert row == {
        "key": "gpt-image-2",
        "label": "GPT Image 2",
        "model_id": "gpt-image-2",
        "protocol": "openai-images",
        "provider": simulator.url + "/sim/openai/v1",
        "simulated": True,
        "status": "ok",
        "note": "Listed by the simulator.",
    }


@pytest.mark.django_db(transaction=True)
def test_check_models_json_with_a_failure(simulator, retired_model):
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("check_models", "--json", stdout=out)
    statuses = {row["key"]: row["status"] for row in json.loads(out.getvalue())}
    assert statuses[retired_model] == "missing"


@pytest.mark.django_db(transaction=True)
def test_a_model_past_its_retirement_day_is_retired_and_the_command_fails(simulator, enable_models, day):
    enable_models("gpt-image-1.5")
    day(BEFORE)
    row = by_key(check_models())["gpt-image-1.5"]
    assert (row.status, row.failing) == ("ok", False)
    assert row.note == "Listed by the simulator. Retires on 1 Dec 2026 — use GPT Image 2."
    call_command("check_models", stdout=StringIO())  # exit 0: a warning, not a failure

    day(ON)
    rows = by_key(check_models())
    assert (rows["gpt-image-1.5"].status, rows["gpt-image-1.5"].failing) == ("retired", True)
    assert rows["gpt-image-1.5"].note == (
        "Retired on 1 Dec 2026 — use GPT Image 2. No longer offered for new runs: disable it."
    )
    assert rows["gpt-image-2"].status == "ok"
    out = StringIO()
    with pytest.raises(CommandError) as info:
        call_command("check_models", stdout=out)
    assert info.value.returncode == 1
    assert "gpt-image-1.5 (retired)" in str(info.value)
    line = next(line for line in out.getvalue().splitlines() if line.startswith("gpt-image-1.5"))
    assert "retired" in line and "Retired on 1 Dec 2026 — use GPT Image 2." in line


@pytest.mark.django_db(transaction=True)
def test_a_disabled_retired_model_is_only_noted(simulator, day):
    day(ON)
    rows = by_key(check_models())
    assert (rows["gpt-image-1-mini"].status, rows["gpt-image-1-mini"].failing) == ("disabled", False)
    assert rows["gpt-image-1-mini"].note.endswith("Retired on 1 Dec 2026 — use GPT Image 2.")
    call_command("check_models", stdout=StringIO())  # nothing enabled is retired: exit 0


@pytest.mark.django_db(transaction=True)
def test_the_simulated_model_list_drops_a_shut_down_id(simulator, settings, tmp_path, day):
    """A registry that does not know the shutdown day (an older file of one's own) sees
    the id leave the provider's list, as OpenAI's would: missing, from the day on."""
    text = DEFAULT_FILE.read_text()
    head, tail = text.split('[models."gpt-image-1.5"]')
    tail = tail.replace("enabled = false", "enabled = true", 1).replace("retires_on = 2026-12-01\n", "", 1)
    path = tmp_path / "models.toml"
    path.write_text(head + '[models."gpt-image-1.5"]' + tail)
    settings.COMPARE_MODELS_FILE = path
    registry.cache_clear()
    try:
        assert registry()["gpt-image-1.5"].retires_on is None
        day(BEFORE)
        assert by_key(check_models())["gpt-image-1.5"].status == "ok"
        day(ON)
        listed = httpx.get(f"{simulator.url}/sim/openai/v1/models", headers={"Authorization": "Bearer x"}).json()
        assert "gpt-image-1.5" not in {m["id"] for m in listed["data"]}
        assert "gpt-image-2" in {m["id"] for m in listed["data"]}
        row = by_key(check_models())["gpt-image-1.5"]
        assert (row.status, row.note) == ("missing", "Missing or retired: gpt-image-1.5 is not in the model list.")
    finally:
        registry.cache_clear()


# --- the wire: MockTransport ---------------------------------------------------------------


def test_outgoing_requests_one_per_account(monkeypatch, day):
    day(BEFORE)  # gpt-image-1.5 is still asked about (from 2026-12-01 it is retired without asking)
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_OPENAI_KEY)
    monkeypatch.setenv("GEMINI_API_KEY", FAKE_GEMINI_KEY)

    def gemini(request: httpx.Request) -> httpx.Response:
        if "pageToken" not in request.url.params:
            return httpx.Response(
                200, json={"models": [{"name": "models/gemini-3-pro-image"}], "nextPageToken": "page-2"}
            )
        return httpx.Response(200, json={"models": [{"name": "models/gemini-nano-banana-2.1"}]})

    client, seen = recording_client(
        {
            "api.openai.com": httpx.Response(200, json={"object": "list", "data": [{"id": "gpt-image-2"}]}),
            "generativelanguage.googleapis.com": gemini,
        }
    )
    models = [
        registry()[key] for key in ("gpt-image-2", "gpt-image-1.5", "gemini-3-pro-image", "gemini-nano-banana-2.1")
    ]
    models = [dataclasses.replace(m, enabled=True) for m in models]
    rows = by_key(check_models(client, models))

    assert {k: r.status for k, r in rows.items()} == {
        "gpt-image-2": "ok",
        "gpt-image-1.5": "missing",
        "gemini-3-pro-image": "ok",
        "gemini-nano-banana-2.1": "ok",
    }
    assert not any(r.simulated for r in rows.values())
    openai_requests = [r for r in seen if r.url.host == "api.openai.com"]
    gemini_requests = [r for r in seen if r.url.host != "api.openai.com"]
    assert len(openai_requests) == 1  # two OpenAI models, one account, one list
    [request] = openai_requests
    assert (request.method, str(request.url)) == ("GET", "https://api.openai.com/v1/models")
    assert request.headers["Authorization"] == f"Bearer {FAKE_OPENAI_KEY}"
    assert [str(r.url) for r in gemini_requests] == [
        "https://generativelanguage.googleapis.com/v1beta/models?pageSize=1000",
        "https://generativelanguage.googleapis.com/v1beta/models?pageSize=1000&pageToken=page-2",
    ]
    for r in gemini_requests:
        assert r.method == "GET"
        assert r.headers["x-goog-api-key"] == FAKE_GEMINI_KEY
        assert "authorization" not in r.headers and "key=" not in str(r.url)
    assert rows["gemini-3-pro-image"].provider == "https://generativelanguage.googleapis.com/v1beta"


def test_provider_error_is_plain_and_scrubbed(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_OPENAI_KEY)
    monkeypatch.setenv("GEMINI_API_KEY", FAKE_GEMINI_KEY)
    client, _ = recording_client(
        {
            "api.openai.com": httpx.Response(
                401,
                json={
                    "error": {
                        "message": f"Incorrect API key provided: {FAKE_OPENAI_KEY}. You can find your API key at "
                        "https://platform.openai.com/account/api-keys.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "invalid_api_key",
                    }
                },
            ),
            "generativelanguage.googleapis.com": httpx.Response(
                503, text=f"upstream overloaded (key={FAKE_GEMINI_KEY})"
            ),
        }
    )
    rows = by_key(check_models(client))
    openai = rows["gpt-image-2"]
    assert openai.status == "error" and openai.failing
    assert "HTTP 401" in openai.note and "Incorrect API key provided" in openai.note
    assert "OPENAI_API_KEY" in openai.note  # tells the admin where to look
    gemini = rows["gemini-3-pro-image"]
    assert gemini.status == "error" and "HTTP 503" in gemini.note
    for row in rows.values():
        text = json.dumps(row.as_dict())
        assert "abc123" not in text and "FAKEfake" not in text


def test_network_trouble_never_raises(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_OPENAI_KEY)
    monkeypatch.setenv("GEMINI_API_KEY", FAKE_GEMINI_KEY)

    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)

    def hang(request):
        raise httpx.ReadTimeout("timed out", request=request)

    client, _ = recording_client({"api.openai.com": refuse, "generativelanguage.googleapis.com": hang})
    rows = by_key(check_models(client))
    assert rows["gpt-image-2"].status == "error"
    assert rows["gpt-image-2"].note.startswith("Could not reach OpenAI")
    assert rows["gemini-3-pro-image"].note == "Google did not answer within 15 s."


def test_malformed_list_is_an_error(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_OPENAI_KEY)
    monkeypatch.setenv("GEMINI_API_KEY", FAKE_GEMINI_KEY)
    client, _ = recording_client(
        {
            "api.openai.com": httpx.Response(200, text="<html>gateway</html>"),
            "generativelanguage.googleapis.com": httpx.Response(200, json={"models": "nope"}),
        }
    )
    rows = by_key(check_models(client))
    assert rows["gpt-image-2"].note == "OpenAI sent a reply that is not JSON."
    assert rows["gemini-3-pro-image"].status == "error"


def test_no_key_and_no_simulator_calls_nothing(settings):
    settings.COMPARE_SIMULATOR_ENABLED = False
    client, seen = recording_client({})
    rows = check_models(client)
    assert seen == []
    statuses = {row.key: row.status for row in rows}
    assert statuses["gpt-image-2"] == "no_key" and statuses["gemini-3-pro-image"] == "no_key"
    assert statuses["gpt-image-1.5"] == "disabled"
    assert "OPENAI_API_KEY" in by_key(rows)["gpt-image-2"].note


# --- the status page -----------------------------------------------------------------------


@pytest.mark.django_db
def test_status_page_needs_login(client):
    response = client.get("/status")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.mark.django_db(transaction=True)
def test_status_page_shows_the_check(simulator, auth_client, monkeypatch, settings):
    calls = []

    def counting_check():
        calls.append(1)
        return check_models()

    monkeypatch.setattr(views_status, "check_models", counting_check)
    response = auth_client.get("/status")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<table class="model-check cards">' in html
    for key, model in registry().items():
        assert key in html and model.model_id in html
    assert html.count('<span class="badge check-status">OK</span>') == sum(m.enabled for m in registry().values())
    assert "Disabled" in html and 'badge sim">simulator' in html
    assert settings.TASKS["default"]["BACKEND"] in html
    assert f"<code>{connection.vendor}</code>" in html and f"on, at {simulator.url}/sim" in html
    assert "style=" not in html and "<script>" not in html  # strict CSP: nothing inline

    assert auth_client.get("/status").status_code == 200
    assert len(calls) == 1  # the second visit shows the cached check

    response = auth_client.post("/status")
    assert (response.status_code, response["Location"]) == (302, "/status")
    assert len(calls) == 2  # the button asks the providers again


@pytest.mark.django_db(transaction=True)
def test_status_page_says_retired_and_when(simulator, auth_client, enable_models, day):
    enable_models("gpt-image-1.5")
    day(BEFORE)
    html = auth_client.get("/status").content.decode()
    assert "Retires on 1 Dec 2026 — use GPT Image 2." in html
    day(ON)
    auth_client.post("/status")  # check again
    html = auth_client.get("/status").content.decode()
    assert '<span class="badge check-status check-bad">Retired</span>' in html
    assert "Retired on 1 Dec 2026 — use GPT Image 2." in html
    assert "1 model needs attention" in html


@pytest.mark.django_db
def test_status_page_shows_errors_without_keys(auth_client, settings, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_OPENAI_KEY)
    client, _ = recording_client(
        {
            "api.openai.com": httpx.Response(
                401, json={"error": {"message": f"Incorrect API key provided: {FAKE_OPENAI_KEY}."}}
            )
        }
    )
    settings.COMPARE_SIMULATOR_ENABLED = False
    monkeypatch.setattr(modelcheck, "shared_client", lambda: client)
    html = auth_client.get("/status").content.decode()
    assert "HTTP 401" in html and "No key" in html and "off" in html
    assert "abc123" not in html

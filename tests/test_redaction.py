"""No provider key, whole or in part, reaches a page, the API, an export, a log or the
database — whatever its shape and wherever a provider's error text cuts it."""

import io
import json
import logging
import zipfile

import httpx
import pytest
from django.apps import apps
from django.test import Client

import compare.http
from compare.http import build_client
from compare.models import ApiToken, Generation, Run
from compare.providers import gemini, openai_images
from compare.providers.base import GenerationRequest, ProviderError
from compare.redact import MIN_FRAGMENT, redact, shorten_redacted
from compare.registry import registry
from tests.factories import IMMEDIATE_TASKS

# Every key shape the providers and gateways use (made-up values).
KEYS = {
    "openai": "sk-" + "a1B2c3D4e5F6g7H8i9J0" * 2 + "kLmN",
    "openai project": "sk-proj-" + "Qw3rTy7uIo0pAs5dFg9hJk" * 4,
    "openai service account": "sk-svcacct-" + "Zx8cVb2nM4lK6jH" * 4,
    "google": "AIzaSy" + "D3f4G5h6J7k8L9z0X1c2V3b4N5m",
    "gateway bearer": "gw_live_" + "7f3a9c1e5b" * 4,
}


def fragments(key: str) -> set[str]:
    return {key[i : i + MIN_FRAGMENT] for i in range(len(key) - MIN_FRAGMENT + 1)}


def leaked(text: str, key: str) -> set[str]:
    return {f for f in fragments(key) if f in text}


@pytest.mark.parametrize("name", KEYS)
def test_redact_removes_every_shape_whole(name):
    key = KEYS[name]
    for template in (
        "Incorrect API key provided: {k}. You can find your key at …",
        "Authorization: Bearer {k}",
        "GET https://gateway.example/v1/images?key={k}&alt=json failed",
        "x-goog-api-key: {k}",
        '{{"api_key": "{k}"}}',
    ):
        text = redact(template.format(k=key), [key])
        assert not leaked(text, key), (template, text)
        assert "[redacted]" in text


def test_configured_keys_are_redacted_in_any_surrounding(monkeypatch):
    # A gateway key of no known shape: only knowing it finds it, even run into other text.
    key = "plainGatewayKeyNoDigitsButLongEnough"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    text = redact(f"denied for user{key[:20]}-and-{key[9:30]}!")
    assert not leaked(text, key), text


def test_redaction_comes_before_the_cut():
    key = KEYS["openai project"]
    for offset in range(150, 240):
        body = "x" * offset + key + " trailing words"
        text = shorten_redacted(body, 200)
        assert not leaked(text, key), offset


def _plain_text_error(key: str, offset: int):
    body = ("upstream says: " + "e" * offset)[:offset] + key + " — check your configuration"
    return httpx.MockTransport(lambda request: httpx.Response(502, text=body))


@pytest.mark.parametrize("name", KEYS)
def test_a_key_at_any_offset_of_a_plain_text_error_body_never_survives(name, monkeypatch):
    """The adapters cut plain-text error bodies to 200 characters; a key straddling
    that cut used to slip under the key patterns."""
    key = KEYS[name]
    for model_key, adapter in (("gpt-image-2", openai_images), ("gemini-3-pro-image", gemini)):
        model = registry()[model_key]
        for offset in range(0, 260, 3):
            with httpx.Client(transport=_plain_text_error(key, offset)) as client:
                request = GenerationRequest(model=model, prompt="a fox")
                request.timeout = 5
                with pytest.raises(ProviderError) as caught:
                    adapter.generate(request, client)
            assert not leaked(caught.value.message, key), (model_key, offset, caught.value.message)


OPENAI_KEY = KEYS["openai project"]
GEMINI_KEY = KEYS["google"]


def test_a_cut_key_reaches_no_page_api_export_log_or_row(
    auth_client, user, settings, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("GEMINI_API_KEY", GEMINI_KEY)
    settings.TASKS = IMMEDIATE_TASKS
    settings.COMPARE_MAX_ATTEMPTS = 2
    settings.COMPARE_RETRY_BASE_DELAY = 0.0

    def provider(request: httpx.Request) -> httpx.Response:
        # Plain text, the key placed across the 200-character cut; and echoed headers.
        key = OPENAI_KEY if request.url.host == "api.openai.com" else GEMINI_KEY
        echoed = f"authorization: {request.headers.get('authorization', '')} x-goog-api-key: {request.headers.get('x-goog-api-key', '')}"
        return httpx.Response(503, text="e" * 190 + key + " " + echoed)

    monkeypatch.setattr(compare.http, "_client", build_client(httpx.MockTransport(provider)))
    caplog.set_level(logging.DEBUG)
    with django_capture_on_commit_callbacks(execute=True):
        response = auth_client.post("/", {"prompt": "a red fox", "models": ["gpt-image-2", "gemini-3-pro-image"]})
    assert response.status_code == 302
    run = Run.objects.get()
    assert {g.status for g in run.generations.all()} == {Generation.Status.FAILED}
    assert all(g.error_message for g in run.generations.all()), "the provider's words are still shown"

    token = ApiToken.issue(user, "t")[1]
    api = Client(headers={"Authorization": f"Bearer {token}"})
    outputs = {
        "run page": auth_client.get(run.get_absolute_url()).content.decode(),
        "history": auth_client.get("/runs/").content.decode(),
        "api": json.dumps(api.get(f"/api/runs/{run.id}").json()),
        "csv": auth_client.get("/runs/export.csv").getvalue().decode(),
        "json export": auth_client.get("/runs/export.json").getvalue().decode(),
        "log": "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records),
    }
    archive = zipfile.ZipFile(io.BytesIO(auth_client.get(f"/runs/{run.id}/export.zip").getvalue()))
    outputs["zip"] = "\n".join(archive.read(n).decode("utf-8", "replace") for n in archive.namelist())
    outputs["database"] = "\n".join(
        repr(row) for model in apps.get_models() for row in model._default_manager.all().values()
    )
    for where, text in outputs.items():
        for key in (OPENAI_KEY, GEMINI_KEY):
            assert not leaked(text, key), f"a piece of a key in the {where}: {leaked(text, key)}"


def test_log_records_from_any_library_are_redacted(caplog):
    caplog.set_level(logging.INFO)
    logging.getLogger("httpx").warning("HTTP Request: POST https://x.example/v1?key=%s", KEYS["google"])
    try:
        raise RuntimeError(f"boom with {KEYS['openai']}")
    except RuntimeError:
        logging.getLogger("compare").exception("failed")
    text = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert not leaked(text, KEYS["google"]) and not leaked(text, KEYS["openai"]), text

"""Hostile text, generated: lone surrogates, control and format characters, bidi
overrides, invisible-only strings and very long grapheme clusters, sent to every
text field through the form, the htmx endpoints and the API. The answer is never a
5xx; a rejection stores nothing; what is stored is valid, visible, NFC text.
And provider keys placed at any offset of an error body never come out whole or in part."""

import json
import unicodedata

import httpx
import pytest
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from compare import text
from compare.models import ApiToken, Generation, Note, Run, Tag, TeamSettings
from compare.providers import gemini, openai_images
from compare.providers.base import GenerationRequest, ProviderError
from compare.redact import MIN_FRAGMENT
from compare.registry import registry
from tests.factories import make_run

pytestmark = pytest.mark.django_db
MODELS = ["gpt-image-2", "gemini-3-pro-image"]
FUZZ = hsettings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00a0", "\u3000", "\u2028", "\u180e", " ", "\t", "\n"]
BIDI = list(text.BIDI_CONTROLS)
visible = st.text(st.characters(codec="utf-8", categories=["L", "N", "P", "S"]), min_size=1, max_size=12)
invisible_only = st.text(st.sampled_from(INVISIBLE + BIDI), min_size=1, max_size=30)
with_bidi = st.builds(lambda a, b, c: a + b + c, visible, st.sampled_from(BIDI), visible)
controls = st.builds(
    lambda a, c, b: a + c + b, visible, st.characters(categories=["Cc"]).filter(lambda c: c not in "\t\n\r"), visible
)
format_chars = st.builds(lambda a, c, b: a + c + b, visible, st.characters(categories=["Cf"]), visible)
grapheme_bomb = st.builds(
    lambda base, mark, n: base + mark * n,
    st.sampled_from(["a", "e", "界", "ก"]),
    st.sampled_from(["\u0301", "\u0308", "\u0e49", "\u20dd"]),
    st.integers(1, 400),
)
decomposed = st.sampled_from(["Cafe\u0301", "A\u030angstro\u0308m", "e\u0301e\u0301"])
# Everything a browser can send (no surrogates: a form post is UTF-8).
form_text = st.one_of(invisible_only, with_bidi, controls, format_chars, grapheme_bomb, decomposed, visible)
# JSON can carry lone surrogates ("\ud800") as escapes.
surrogates = st.builds(lambda a, s, b: a + s + b, visible, st.characters(categories=["Cs"]), visible)
api_text = st.one_of(form_text, surrogates)


def assert_clean(value: str) -> None:
    value.encode("utf-8")  # no surrogate survived
    assert value == unicodedata.normalize("NFC", value)
    assert text.has_visible(value)
    assert not any(unicodedata.category(c) == "Cc" and c not in "\t\n\r" for c in value)


@pytest.fixture(autouse=True)
def _no_provider_calls(no_task_execution):
    # Many accepted runs pile up as queued: no spending or in-flight limit in the way.
    TeamSettings.objects.update_or_create(pk=1, defaults={"max_in_flight": 0, "daily_budget_usd": 0})


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def api(user):
    return Client(headers={"Authorization": f"Bearer {ApiToken.issue(user, 't')[1]}"})


@FUZZ
@given(prompt=form_text, tags=st.one_of(st.just(""), form_text))
def test_form_prompts_and_tags(logged_in, prompt, tags):
    before = (Run.objects.count(), Tag.objects.count())
    response = logged_in.post("/", {"prompt": prompt, "models": MODELS, "tags": tags})
    assert response.status_code in (302, 400), (response.status_code, prompt)
    if response.status_code == 400:
        assert (Run.objects.count(), Tag.objects.count()) == before
        assert b'role="alert"' in response.content or b"errorlist" in response.content
        return
    run = Run.objects.latest("created_at")
    assert_clean(run.prompt)
    for tag in run.tags.all():
        assert_clean(tag.name)


@FUZZ
@given(prompt=api_text)
def test_api_prompts(api, prompt):
    before = Run.objects.count(), Generation.objects.count()
    body = json.dumps({"prompt": prompt, "models": MODELS})  # ensure_ascii: surrogates travel as \ud800
    response = api.post("/api/runs", body, content_type="application/json")
    assert response.status_code in (201, 400), (response.status_code, prompt)
    if response.status_code == 400:
        assert (Run.objects.count(), Generation.objects.count()) == before
        assert response.json()["error"]["message"]
    else:
        assert_clean(Run.objects.get(pk=response.json()["id"]).prompt)


@pytest.fixture
def run(user):
    return make_run(user, prompt="a fox")


@FUZZ
@given(body=form_text)
def test_htmx_notes(logged_in, run, body):
    before = Note.objects.count()
    response = logged_in.post(f"/runs/{run.id}/notes", {"body": body}, headers={"HX-Request": "true"})
    assert response.status_code < 500, body
    if Note.objects.count() == before:
        assert response.status_code >= 400
        assert "error" in response.content.decode(), "a rejected note says why"
    else:
        assert_clean(Note.objects.latest("created_at").body)


@FUZZ
@given(tags=form_text)
def test_htmx_tags(logged_in, run, tags):
    response = logged_in.post(f"/runs/{run.id}/tags", {"add": tags}, headers={"HX-Request": "true"})
    assert response.status_code < 500, tags
    for tag in Tag.objects.all():
        assert_clean(tag.name)


KEY_SHAPES = [
    "sk-proj-" + "Qw3rTy7uIo0pAs5dFg9hJk" * 4,
    "sk-svcacct-" + "Zx8cVb2nM4lK6jH" * 4,
    "sk-" + "a1B2c3D4e5F6g7H8i9J0" * 2,
    "AIzaSy" + "D3f4G5h6J7k8L9z0X1c2V3b4N5m",
]


@FUZZ
@given(
    key=st.sampled_from(KEY_SHAPES),
    offset=st.integers(0, 400),
    filler=st.text(st.characters(codec="utf-8"), max_size=30),
    adapter=st.sampled_from([("gpt-image-2", openai_images), ("gemini-3-pro-image", gemini)]),
    status=st.sampled_from([400, 401, 429, 500, 502, 503]),
)
def test_keys_at_any_offset_of_an_error_body(key, offset, filler, adapter, status):
    body = (filler * 50 + "x" * offset)[:offset] + key + " " + filler
    model_key, module = adapter
    transport = httpx.MockTransport(lambda request: httpx.Response(status, text=body))
    with httpx.Client(transport=transport) as client:
        request = GenerationRequest(model=registry()[model_key], prompt="a fox")
        request.timeout = 5
        with pytest.raises(ProviderError) as caught:
            module.generate(request, client)
    pieces = {key[i : i + MIN_FRAGMENT] for i in range(len(key) - MIN_FRAGMENT + 1)}
    assert not [p for p in pieces if p in caught.value.message], caught.value.message

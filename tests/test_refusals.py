"""When a provider says no: a key that is missing or not valid, a safety refusal, an error
in the middle of a stream. The simulator answers as the real APIs do (over real HTTP); the
adapters turn the replies into the right kind of failure; the pane says what happened,
without naming the model while the names are hidden."""

import html
import re

import httpx
import pytest

from compare.models import Generation, Reveal, Run
from compare.providers import gemini, openai_images
from compare.providers.base import ErrorKind, GenerationRequest, ProviderError
from compare.registry import Model, get_model, registry
from compare.simulator import faults
from tests.factories import BOTH, GPT, NANO, make_run, submit_and_wait


@pytest.fixture(autouse=True)
def _fresh_counters():
    faults.reset_counters()
    yield
    faults.release_sleepers()


class Sent:
    """An httpx client that keeps every request it sends (body read) in `requests`."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.client = httpx.Client(timeout=30, event_hooks={"request": [self._keep]})

    def _keep(self, request: httpx.Request) -> None:
        request.read()
        self.requests.append(request)


def gpt_image_2() -> Model:
    model = get_model("gpt-image-2")
    assert model is not None and model.simulated
    return model


def pane_text(client, run: Run) -> str:
    page = client.get(f"/runs/{run.id}/").content.decode()
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


@pytest.fixture
def gemini_at_simulator(simulator, settings, tmp_path, monkeypatch):
    """The shipped registry, except that Nano Banana Pro's base_url is the live simulator:
    with a key set it is called as a real provider is (its own URL, the key as given)."""

    def use_key(key: str):
        text = settings.COMPARE_MODELS_FILE.read_text()
        head, tail = text.split('[models."gemini-3-pro-image"]', 1)
        real = 'base_url = "https://generativelanguage.googleapis.com/v1beta"'
        assert real in tail.split("[models.", 1)[0]
        tail = tail.replace(real, f'base_url = "{simulator.url}/sim/gemini/v1beta"', 1)
        path = tmp_path / "models.toml"
        path.write_text(head + '[models."gemini-3-pro-image"]' + tail)
        settings.COMPARE_MODELS_FILE = path
        monkeypatch.setenv("GEMINI_API_KEY", key)
        registry.cache_clear()
        return get_model("gemini-3-pro-image")

    yield use_key
    registry.cache_clear()


# --- Gemini keys ---------------------------------------------------------------------------------


def test_gemini_bad_key_against_the_simulator_is_an_auth_error(gemini_at_simulator):
    model = gemini_at_simulator("invalid-key-for-tests")
    assert not model.simulated
    sent = Sent()
    with pytest.raises(ProviderError) as info:
        gemini.generate(GenerationRequest(model=model, prompt="a fox"), sent.client)
    (request,) = sent.requests
    assert request.headers["x-goog-api-key"] == "invalid-key-for-tests"
    assert str(request.url).endswith("/sim/gemini/v1beta/models/gemini-3-pro-image:generateContent")
    err = info.value
    assert (err.kind, err.status, err.retryable) == (ErrorKind.AUTH, 400, False)
    assert "Gemini says the API key for gemini-3-pro-image is not valid (400 INVALID_ARGUMENT)" in err.message


def test_a_run_with_a_bad_gemini_key_says_so_and_does_not_retry(auth_client, gemini_at_simulator):
    gemini_at_simulator("invalid-key-for-tests")
    run, (gpt, nano) = submit_and_wait(auth_client, "a red fox", BOTH)
    assert gpt.status == "succeeded"
    assert (nano.status, nano.error_kind, nano.attempts, len(nano.attempt_log)) == ("failed", "auth", 1, 1)
    text = pane_text(auth_client, run)
    assert "The API key was rejected." in text
    assert "Gemini says the API key for gemini-3-pro-image is not valid" in text
    assert "API key not valid. Please pass a valid API key." in text


def test_a_run_whose_gemini_request_carries_no_key_says_so(auth_client, simulator):
    # The app always sends a key; the marker makes the simulator answer as Google does
    # without one. Counted once: a retry would succeed, so a failure proves there was none.
    run, (_, nano) = submit_and_wait(auth_client, "a red fox [[fault:no_key@geminix1]]", BOTH)
    assert (nano.status, nano.error_kind, nano.attempts) == ("failed", "auth", 1)
    text = pane_text(auth_client, run)
    assert "No API key reached Gemini for gemini-3-pro-image (403 PERMISSION_DENIED)" in text
    assert "Please use API Key" in text


# --- OpenAI safety refusals ------------------------------------------------------------------------


def test_openai_refusal_keeps_the_moderation_details(simulator):
    sent = Sent()
    request = GenerationRequest(model=gpt_image_2(), prompt="forbidden [[fault:refusal]]")
    with pytest.raises(ProviderError) as info:
        openai_images.generate(request, sent.client)
    assert sent.requests[0].url.path.endswith("/sim/openai/v1/images/generations")
    err = info.value
    assert (err.kind, err.status, err.retryable) == (ErrorKind.REFUSED, 400, False)
    assert err.message.startswith("Rejected by OpenAI's safety system at the output stage (violence): Your request")
    assert err.echoed == {
        "refusal": {
            "stage": "output",
            "categories": ["violence"],
            "safety_violations": ["violence"],
            "found": ["violence"],
            "summary": "Refused by the provider's safety system at the output stage: violence.",
        }
    }


@pytest.mark.parametrize(
    ("error", "summary"),
    [
        (
            {"moderation_details": {"moderation_stage": "input", "categories": ["illicit"]}},
            "at the input stage: illicit",
        ),
        ({"safety_violations": ["violence", "<script>"]}, "system: violence."),
        # What it cannot read is left out; a refusal still says what it is, as Gemini's do.
        ({"moderation_details": {"moderation_stage": "later", "categories": "sexual"}}, "safety system."),
        ({}, "safety system."),
    ],
)
def test_moderation_wording_takes_only_what_it_knows(error, summary):
    said = openai_images.moderation(error)
    assert said["summary"].startswith("Refused by the provider's safety system")
    assert summary in said["summary"]


def test_a_refused_side_shows_where_and_why(auth_client, simulator):
    run, (gpt, _) = submit_and_wait(auth_client, "forbidden [[fault:prompt_blocked@openai]]", BOTH)
    assert (gpt.status, gpt.attempts) == ("refused", 1)
    assert "at the input stage (illicit)" in pane_text(auth_client, run)


def test_a_blind_pane_keeps_why_for_the_reveal(auth_client, user):
    # As a refusal with moderation details is stored: the summary in params_echoed.
    said = openai_images.moderation({"moderation_details": {"moderation_stage": "output", "categories": ["violence"]}})
    run = make_run(
        user,
        status=["refused", "succeeded"],
        models=(GPT, NANO),
        blind=True,
        images=1,
        error_message="Rejected by OpenAI's safety system at the output stage (violence): no.",
    )
    Generation.objects.filter(run=run, model_key=GPT[0]).update(params_echoed={"refusal": said})
    text = pane_text(auth_client, run)
    assert "This side refused the prompt." in text and "Why it refused shows once the names are revealed." in text
    # Where and why differ by provider (OpenAI's categories are not Google's): not before the reveal.
    assert "output stage" not in text and "violence" not in text
    assert "OpenAI" not in text and "GPT Image" not in text and "Nano Banana" not in text
    Reveal.objects.create(run=run, user=user)
    revealed = pane_text(auth_client, run)
    assert "Rejected by OpenAI's safety system at the output stage (violence)" in revealed


# --- an error in the middle of an OpenAI stream ---------------------------------------------------


def test_stream_error_event_is_a_clear_failure(simulator):
    sent = Sent()
    request = GenerationRequest(model=gpt_image_2(), prompt='"Break" [[fault:stream_error]]', partial_images=2)
    previews = []
    request.on_partial = lambda index, data, mime: previews.append(index)
    with pytest.raises(ProviderError) as info:
        openai_images.generate(request, sent.client)
    body = sent.requests[0].read()
    assert b'"stream": true' in body or b'"stream":true' in body
    assert previews == [0]  # the preview before the error arrived
    err = info.value
    assert (err.kind, err.status, err.retryable) == (ErrorKind.SERVER, None, True)
    assert err.message.startswith("OpenAI's stream for gpt-image-2 ended with an error (server_error): The server had")


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ({"type": "server_error", "code": "server_error"}, ErrorKind.SERVER),
        ({"type": "requests", "code": "rate_limit_exceeded"}, ErrorKind.RATE_LIMIT),
        ({"type": "insufficient_quota", "code": "insufficient_quota"}, ErrorKind.QUOTA),
        ({"type": "image_generation_user_error", "code": "moderation_blocked"}, ErrorKind.REFUSED),
        ({"type": "invalid_request_error", "code": "invalid_value"}, ErrorKind.BAD_REQUEST),
    ],
)
def test_stream_error_kind_follows_its_code(error, kind):
    err = openai_images._error_from(None, {"message": "stopped", **error}, "", None, gpt_image_2())
    assert err.kind is kind and "stopped" in err.message


def test_a_run_whose_stream_breaks_says_what_happened(auth_client, simulator, settings):
    run, (gpt, nano) = submit_and_wait(auth_client, '"Break" [[fault:stream_error@openai]]', BOTH, partial_images="2")
    assert nano.status == "succeeded"
    assert (gpt.status, gpt.error_kind, gpt.attempts) == ("failed", "server", settings.COMPARE_MAX_ATTEMPTS)
    text = pane_text(auth_client, run)
    assert "The provider had an internal error." in text
    assert "OpenAI's stream for gpt-image-2 ended with an error (server_error)" in text


# --- what a broken stream may have cost ------------------------------------------------------


def test_a_stream_that_breaks_after_it_started_may_have_been_billed(auth_client, simulator, settings):
    from compare import budget

    run, (gpt, nano) = submit_and_wait(auth_client, '"Break" [[fault:stream_error@openai]]', BOTH, partial_images="2")
    assert (gpt.status, gpt.error_kind) == ("failed", "server")
    # No usage arrived before the error event: each attempt's bill is unknown, up to its estimate.
    assert [entry.get("billed") for entry in gpt.attempt_log] == ["unknown"] * gpt.attempts
    estimate = gpt.estimated_cost_usd
    assert estimate is not None and gpt.cost_usd is None and gpt.cost_max_usd == gpt.attempts * estimate
    assert f"may have been charged (at most ${gpt.cost_max_usd})" in pane_text(auth_client, run)
    assert budget.spent_today(run.author) == gpt.cost_max_usd + (nano.cost_usd or 0)


def _sse(*events: dict) -> bytes:
    import json

    return b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events)


def test_an_error_event_after_a_completed_image_keeps_the_image_and_its_usage():
    import base64
    import json

    from tests.factories import png

    image = base64.b64encode(png()).decode()
    usage = {"input_tokens": 20, "output_tokens": 1000, "input_tokens_details": {"text_tokens": 20}}
    seen: list[httpx.Request] = []

    def provider(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = _sse(
            {"type": "image_generation.completed", "b64_json": image, "output_format": "png", "usage": usage},
            {"type": "error", "error": {"type": "server_error", "code": "server_error", "message": "Lost it."}},
        )
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    request = GenerationRequest(model=gpt_image_2(), prompt="two lamps", n=2, partial_images=1)
    with httpx.Client(transport=httpx.MockTransport(provider)) as client:
        result = openai_images.generate(request, client)
    sent = json.loads(seen[0].read())
    assert (sent["stream"], sent["n"], sent["partial_images"]) == (True, 2, 1)
    assert len(result.images) == 1 and result.usage == usage
    assert "Only 1 of 2 images arrived before OpenAI's stream reported an error" in result.text
    assert "Lost it." in result.text
    assert result.unknown_share == 0.5  # the image the error stopped may have been billed

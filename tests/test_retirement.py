"""Models that come and go: a registry `retires_on` day, after which a model is no longer
offered anywhere a new run is made, old runs still show it, and naming it is refused
with its day and replacement. The day is moved by replacing `compare.registry.today`."""

import json
import re
from datetime import date
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from compare import registry as registry_module
from compare.models import ApiToken, Run
from compare.registry import offered_models, registry
from compare.suites.dispatch import SuiteRunRefused, check_models
from tests.factories import GPT, form_data, make_run, make_user

RETIRING = "gpt-image-1.5"
BEFORE, ON = date(2026, 11, 30), date(2026, 12, 1)
REFUSAL = "GPT Image 1.5 (gpt-image-1.5) was retired by OpenAI on 1 Dec 2026. Use GPT Image 2 (gpt-image-2) instead."


@pytest.fixture
def day(monkeypatch):
    """Set the day retirements are judged by."""

    def set_day(value: date) -> None:
        monkeypatch.setattr(registry_module, "today", lambda: value)

    return set_day


@pytest.fixture
def retiring(enable_models):
    """The shipped registry with gpt-image-1.5 (retires 2026-12-01) turned on."""
    enable_models(RETIRING)
    return registry()[RETIRING]


def test_the_shipped_registry_retires_the_models_openai_shuts_down(day):
    day(BEFORE)
    for key in ("gpt-image-1.5", "gpt-image-1-mini", "chatgpt-image-latest"):
        model = registry()[key]
        assert (model.retires_on, model.replaced_by) == (ON, "gpt-image-2"), key
        assert model.retirement_note() == "Retires on 1 Dec 2026 — use GPT Image 2."
    assert registry()["gpt-image-2"].retires_on is None
    day(ON)
    assert registry()["gpt-image-1-mini"].retired
    assert registry()["gpt-image-1-mini"].retirement_note() == "Retired on 1 Dec 2026 — use GPT Image 2."


def test_offered_models_drop_a_model_on_its_day(retiring, day):
    day(BEFORE)
    assert RETIRING in [m.key for m in offered_models()]
    day(ON)
    assert RETIRING not in [m.key for m in offered_models()]
    assert retiring.enabled  # still in the registry: old runs keep their label and settings


@pytest.mark.django_db
def test_the_form_warns_before_the_day_and_drops_the_model_after(auth_client, retiring, day):
    day(BEFORE)
    html = auth_client.get("/").content.decode()
    assert 'value="gpt-image-1.5"' in html
    assert "Retires on 1 Dec 2026 — use GPT Image 2." in html
    day(ON)
    html = auth_client.get("/").content.decode()
    assert 'value="gpt-image-1.5"' not in html and "GPT Image 1.5" not in html
    assert 'value="gpt-image-2"' in html


@pytest.mark.django_db
def test_the_form_refuses_a_retired_model_with_its_day_and_replacement(auth_client, retiring, day, no_task_execution):
    day(ON)
    response = auth_client.post("/", form_data(models=["gpt-image-2", RETIRING]))
    assert response.status_code == 400
    assert REFUSAL in response.content.decode()
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_the_api_answers_400_naming_the_model_the_day_and_the_replacement(client, user, retiring, day):
    day(ON)
    token = ApiToken.issue(user, "tests")[1]
    response = client.post(
        "/api/runs",
        json.dumps({"prompt": "a fox", "models": ["gpt-image-2", RETIRING]}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 400
    error = json.loads(response.content)["error"]
    assert error["message"] == "The comparison is not valid: check models."
    assert error["fields"] == {"models": [REFUSAL]}
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_the_command_line_refuses_a_retired_model(retiring, day, no_task_execution):
    make_user("admin", is_staff=True, is_superuser=True)
    day(ON)
    with pytest.raises(CommandError) as info:
        call_command("compare", "a fox", "--models", f"gpt-image-2,{RETIRING}", stdout=StringIO(), stderr=StringIO())
    assert info.value.returncode == 2
    assert REFUSAL in str(info.value)
    assert not Run.objects.exists()


def test_a_suite_run_refuses_a_retired_model(retiring, day):
    day(ON)
    with pytest.raises(SuiteRunRefused) as info:
        check_models(["gpt-image-2", RETIRING])
    assert info.value.message == REFUSAL
    day(BEFORE)
    assert [m.key for m in check_models(["gpt-image-2", RETIRING])] == ["gpt-image-2", RETIRING]


@pytest.mark.django_db
def test_old_runs_still_show_a_retired_model(auth_client, user, retiring, day):
    run = make_run(user, models=(GPT, (RETIRING, "GPT Image 1.5", RETIRING)), images=1)
    day(ON)
    html = auth_client.get(run.get_absolute_url()).content.decode()
    assert "GPT Image 1.5" in html
    history = auth_client.get("/runs/").content.decode()
    assert "GPT Image 1.5" in history


# --- after the day: nothing calls the model again ---------------------------------------------------

ONE_FIVE = ("gpt-image-1.5", "GPT Image 1.5", "gpt-image-1.5")


@pytest.mark.django_db(transaction=True)
def test_an_old_failed_side_of_a_retired_model_offers_no_retry_and_refuses_one(retiring, day, auth_client, user):
    run = make_run(user, status=["failed", "succeeded"], models=(ONE_FIVE, GPT), error_kind="server")
    gen = run.generations.get(model_key=RETIRING)
    day(ON)
    page = auth_client.get(run.get_absolute_url()).content.decode()
    assert f'id="retry-{gen.id}"' not in page and "Retired on 1 Dec 2026 — use GPT Image 2." in page
    # A Retry sent anyway (an old tab) is refused in words, and nothing is queued.
    response = auth_client.post(f"/runs/{run.pk}/generations/{gen.pk}/retry", follow=True)
    assert REFUSAL in response.content.decode()
    gen.refresh_from_db()
    assert gen.status == "failed"


@pytest.mark.django_db(transaction=True)
def test_a_queued_generation_of_a_retired_model_ends_without_a_call(retiring, day, simulator, user, settings):
    from compare import tasks
    from compare.simulator.common import IN_FLIGHT

    day(ON)
    run = make_run(user, status="queued", models=(ONE_FIVE,), cost_usd=None)
    gen = run.generations.get()
    IN_FLIGHT.reset()
    assert tasks.run_generation(gen.pk) == "failed"
    gen.refresh_from_db()
    assert (gen.status, gen.error_kind, gen.error_message) == ("failed", "not_found", REFUSAL)
    assert IN_FLIGHT.peak == 0  # the provider (here the simulator) was never asked


@pytest.mark.django_db(transaction=True)
def test_no_fallback_to_a_retired_model(retiring, day, user):
    from compare.tasks import start_fallback

    day(ON)
    run = make_run(user, status="failed", models=(GPT,), options={"fallback_model": RETIRING}, error_kind="server")
    assert start_fallback(run.generations.get()) is None
    assert run.generations.count() == 1


@pytest.mark.django_db
def test_a_fork_of_an_old_run_picks_the_replacement_and_says_so(retiring, day, auth_client, user):
    run = make_run(user, models=(ONE_FIVE, ("gemini-3-pro-image", "Nano Banana Pro", "gemini-3-pro-image")))
    day(ON)
    page = auth_client.get(f"/?from={run.pk}&regenerate=1").content.decode()
    assert "GPT Image 1.5 was retired on 1 Dec 2026; GPT Image 2 is picked instead." in page
    picked = re.findall(r'name="models" value="([^"]+)" checked', page)
    assert sorted(picked) == ["gemini-3-pro-image", "gpt-image-2"]
    assert 'value="gpt-image-1.5"' not in page  # not offered any more

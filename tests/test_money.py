"""Money (issue 13): estimates as a range when the provider picks the quality, prices per
image size and per quality, every billed attempt counted ("at least … / at most …"), the
timeout retry limit per model, and the date on every price."""

import re
import threading
import time
from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import request_started
from django.utils import timezone

from compare import budget, pricing
from compare.models import ApiToken, Generation, Run, TeamSettings
from compare.registry import Model, get_model, parse_registry, registry
from tests.factories import GPT, NANO, form_data, make_run, new_run, submit_and_wait

ONE_K = {"aspect_ratio": "1:1", "resolution": "1K", "n": 1}


def flat(html: str) -> str:
    return re.sub(r"\s+", " ", html)


def model(key: str) -> Model:
    found = get_model(key)
    assert found is not None, key
    return found


def usd(value: Decimal | None) -> Decimal:
    assert value is not None
    return value


# --- estimates ------------------------------------------------------------------------------


def test_auto_quality_is_estimated_from_low_to_high_and_a_chosen_quality_exactly():
    gpt = model("gpt-image-2")
    assert pricing.estimate_range(gpt, {**ONE_K, "quality": "auto"}) == pricing.Estimate(
        Decimal("0.0060"), Decimal("0.2110")
    )
    assert str(pricing.estimate_range(gpt, {**ONE_K, "quality": "auto"})) == "$0.0060–$0.2110"
    assert str(pricing.estimate_range(gpt, {**ONE_K, "quality": "medium"})) == "$0.0530"
    # The number a generation stores and the budget counts: the high end.
    assert pricing.estimate(gpt, {**ONE_K, "quality": "auto"}) == Decimal("0.2110")


def test_the_form_shows_the_range_and_the_date_of_the_prices(auth_client):
    query = "part=summary&models=gpt-image-2&models=gemini-3-pro-image&quality=auto&n=1&resolution=1K&aspect_ratio=1:1"
    summary = flat(auth_client.get(f"/runs/options?{query}").content.decode())
    assert "GPT Image 2 $0.0060–$0.2110" in summary and "Nano Banana Pro $0.1340" in summary
    assert "total $0.1400–$0.3450" in summary
    assert "prices as of 27 Nov 2026" in summary


def test_the_daily_limit_counts_the_high_end_of_auto(auth_client, user, no_task_execution):
    # At medium GPT Image 2 would be $0.053 (with Nano Banana Pro: $0.187, under the limit);
    # the provider may render it at high ($0.211: $0.345 in all).
    TeamSettings.objects.update_or_create(pk=1, defaults={"daily_budget_usd": Decimal("0.30")})
    refused = auth_client.post("/", form_data("a lamp", quality="auto"))
    assert refused.status_code == 400 and "would take you past today" in refused.content.decode()
    assert not Run.objects.exists()
    TeamSettings.objects.filter(pk=1).update(daily_budget_usd=Decimal("0.35"))
    assert auth_client.post("/", form_data("a lamp", quality="auto")).status_code == 302
    assert Generation.objects.get(model_key="gpt-image-2").estimated_cost_usd == Decimal("0.2110")
    assert budget.spent_today(user) == Decimal("0.3450")


def test_a_pane_still_working_shows_its_estimate_as_a_range(auth_client, user, no_task_execution):
    run = new_run(user, "a lamp", quality="auto", aspect_ratio="1:1", resolution="1K")
    page = flat(auth_client.get(run.get_absolute_url()).content.decode())
    assert "$0.0060–$0.2110 est." in page and "≈ $0.1340 est." in page
    assert "(prices as of 27 Nov 2026)" in page


def test_nano_banana_21_is_priced_per_image_size():
    nano21 = model("gemini-nano-banana-2.1")
    at = {size: pricing.estimate(nano21, {**ONE_K, "resolution": size}) for size in ("1K", "2K", "4K")}
    # 1120 / 1680 / 2520 output tokens × $30 per million (the prompt's tokens round away).
    assert at == {"1K": Decimal("0.0336"), "2K": Decimal("0.0504"), "4K": Decimal("0.0756")}


def test_every_price_carries_the_day_it_was_checked():
    priced = [m for m in registry().values() if m.pricing.per_image_by_size or m.pricing.per_image_by_image_size]
    assert len(priced) >= 5 and {m.pricing.prices_checked for m in priced} == {date(2026, 11, 27)}
    assert pricing.as_of(model("gpt-image-2").pricing.prices_checked) == "prices as of 27 Nov 2026"


def _entry(capabilities: dict, pricing_table: dict) -> dict:
    return {
        "models": {
            "m": {
                "label": "M",
                "protocol": "openai-images",
                "model_id": "m",
                "base_url": "https://example.com/v1",
                "api_key_env": "M_KEY",
                "capabilities": {"sizes": "wxh", **capabilities},
                "pricing": pricing_table,
            }
        }
    }


def test_a_row_prices_every_quality_the_model_lists():
    five = {"qualities": ["auto", "low", "medium", "high", "xhigh", "max"]}
    with pytest.raises(ImproperlyConfigured, match=r"no price for quality \['max', 'xhigh'\]"):
        parse_registry(_entry(five, {"per_image_by_size": {"1024x1024": [0.01, 0.05, 0.2]}}))
    model = parse_registry(_entry(five, {"per_image_by_size": {"1024x1024": [0.01, 0.05, 0.2, 0.4, 0.8]}}))["m"]
    assert pricing.estimate(model, {**ONE_K, "quality": "max"}) == Decimal("0.8000")
    assert str(pricing.estimate_range(model, {**ONE_K, "quality": "auto"})) == "$0.0100–$0.2000"
    table = {"low": 0.01, "medium": 0.05, "high": 0.2, "xhigh": 0.4, "max": 0.8}
    model = parse_registry(_entry(five, {"per_image_by_size": {"1024x1024": table}}))["m"]
    assert pricing.estimate(model, {**ONE_K, "quality": "xhigh"}) == Decimal("0.4000")
    with pytest.raises(ImproperlyConfigured, match="table of prices by quality"):
        parse_registry(_entry(five, {"per_image_by_size": {"1024x1024": {"ultra": 1.0}}}))


def test_prices_checked_must_be_a_date_and_timeout_retries_a_count():
    with pytest.raises(ImproperlyConfigured, match="prices_checked must be a date without quotes"):
        parse_registry(_entry({}, {"prices_checked": "2026-11-27"}))
    data = _entry({}, {})
    data["models"]["m"]["timeout_retries"] = -1
    with pytest.raises(ImproperlyConfigured, match="timeout_retries must be a whole number ≥ 0"):
        parse_registry(data)
    del data["models"]["m"]["timeout_retries"]
    assert parse_registry(data)["m"].timeout_retries == 1


# --- what counts as spent -----------------------------------------------------------------


def test_the_budget_counts_the_most_each_generation_may_have_cost_in_python_and_sql(user):
    started = timezone.now()
    runs = [
        # Reported usage, and an earlier attempt that timed out (cost unknown): 0.04 … 0.04 + 0.05.
        make_run(user, models=[GPT], cost_usd="0.04", cost_max_usd="0.09", started_at=started),
        # Two timed-out attempts, nothing reported: 0 … 2 × 0.05.
        make_run(user, "b", "failed", [GPT], cost_usd=None, cost_max_usd="0.10", error_kind="timeout"),
        # Running again after an unknown attempt: the call under way counts at its estimate too.
        make_run(user, "c", "running", [NANO], cost_usd=None, cost_max_usd="0.05", started_at=started),
        # Refused, not billed.
        make_run(user, "d", "refused", [NANO], cost_usd=None, error_kind="refused", started_at=started),
    ]
    charges = [budget.charge(g) for r in runs for g in r.generations.all()]
    assert [(c.kind, c.at_least, c.at_most, c.uncertain) for c in charges] == [
        ("spent", Decimal("0.04"), Decimal("0.09"), True),
        ("maybe", Decimal("0"), Decimal("0.10"), True),
        ("estimate", Decimal("0"), Decimal("0.10"), False),
        ("none", Decimal("0"), Decimal("0"), False),
    ]
    assert budget.spent_today(user) == sum(c.counted for c in charges) == Decimal("0.29")


# --- through the simulator: every billed attempt, and the timeout retry limit ----------------


class Received(list):
    def settled(self, expected: int) -> list[str]:
        """The requests, once `expected` have arrived or 30 s have passed: a request the client
        gave up on (a timeout) may reach the simulator's handler after the generation has ended."""
        deadline = time.monotonic() + 30
        while len(self) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self)


def received(wanted) -> Iterator[Received]:
    """The requests the simulator's server saw whose path `wanted` accepts, as it saw them."""
    seen = Received()
    lock = threading.Lock()

    def count(sender, environ, **kwargs):
        path = environ.get("PATH_INFO", "")
        if wanted(path):
            with lock:
                seen.append(path)

    request_started.connect(count)
    yield seen
    request_started.disconnect(count)


@pytest.fixture
def simulator_requests(simulator):
    """The OpenAI image requests the simulator received, by path."""
    yield from received(lambda path: path.startswith("/sim/openai/") and "/images/" in path)


@pytest.mark.django_db(transaction=True)
def test_a_timeout_is_retried_once_and_each_timed_out_attempt_may_be_billed(auth_client, simulator_requests, settings):
    settings.COMPARE_REQUEST_TIMEOUT = 1.0  # the simulator answers after 5 s
    assert settings.COMPARE_MAX_ATTEMPTS > 2  # other errors would be tried more often
    run, (gen, nano) = submit_and_wait(auth_client, "slow [[fault:timeout:5@openai]]", timeout=60)
    assert simulator_requests.settled(2) == ["/sim/openai/v1/images/generations"] * 2
    assert (gen.status, gen.error_kind, gen.attempts) == ("failed", "timeout", 2)
    assert [a.get("billed") for a in gen.attempt_log] == ["unknown", "unknown"]
    assert gen.cost_usd is None and gen.cost_max_usd == 2 * usd(gen.estimated_cost_usd) == Decimal("0.4220")
    nano_cost = usd(nano.cost_usd)
    assert nano.status == "succeeded" and nano_cost > 0 and nano.cost_max_usd is None
    page = flat(auth_client.get(run.get_absolute_url()).content.decode())
    assert "may have been charged (at most $0.4220)" in page
    assert f"at least ${nano_cost} / at most ${nano_cost + Decimal('0.4220')}" in page
    assert "(prices as of 27 Nov 2026)" in page
    assert page.count("· may have been billed") == 2  # each failed attempt says so
    assert budget.spent_today(run.author) == nano_cost + Decimal("0.4220")


@pytest.mark.django_db(transaction=True)
def test_timeout_retries_is_set_per_model(auth_client, simulator_requests, settings, tmp_path):
    default = settings.COMPARE_MODELS_FILE
    head, tail = default.read_text().split('[models."gpt-image-2".capabilities]')
    path = tmp_path / "models.toml"
    path.write_text(head + 'timeout_retries = 0\n\n[models."gpt-image-2".capabilities]' + tail)
    settings.COMPARE_MODELS_FILE = path
    registry.cache_clear()
    try:
        settings.COMPARE_REQUEST_TIMEOUT = 1.0
        _, (gen, _) = submit_and_wait(auth_client, "slow once [[fault:timeout:5@openai]]", timeout=60)
    finally:  # back to the default registry before anything (a task still finishing) reads it again
        settings.COMPARE_MODELS_FILE = default
        registry.cache_clear()
    assert simulator_requests.settled(1) == ["/sim/openai/v1/images/generations"]
    assert (gen.status, gen.error_kind, gen.attempts) == ("failed", "timeout", 1)
    assert "not retried again" in gen.error_message


@pytest.mark.django_db(transaction=True)
def test_a_success_after_a_timeout_costs_at_least_its_usage_and_at_most_one_more_image(
    auth_client, client, user, simulator_requests, settings
):
    settings.COMPARE_REQUEST_TIMEOUT = 1.0
    run, (gen, nano) = submit_and_wait(auth_client, "fox [[fault:timeout:5@openaix1]]", timeout=60)
    assert simulator_requests.settled(2) == ["/sim/openai/v1/images/generations"] * 2
    assert gen.status == "succeeded" and gen.attempts == 2
    timed_out, succeeded = gen.attempt_log
    assert timed_out["billed"] == "unknown" and "cost_usd" not in timed_out
    spent, most, nano_cost = usd(gen.cost_usd), usd(gen.cost_max_usd), usd(nano.cost_usd)
    assert Decimal(succeeded["cost_usd"]) == pricing.actual(model("gpt-image-2"), succeeded["usage"]) == spent > 0
    assert most == spent + usd(gen.estimated_cost_usd)
    page = flat(auth_client.get(run.get_absolute_url()).content.decode())
    assert f"at least ${spent} / at most ${most}" in page  # the pane
    assert f"at least ${spent + nano_cost} / at most ${most + nano_cost}" in page  # the run
    token = ApiToken.issue(user, "tests")[1]
    body = client.get(f"/api/runs/{run.id}", headers={"Authorization": f"Bearer {token}"}).json()
    assert body["generations"][0]["cost"] == {
        "kind": "spent",
        "at_least_usd": str(gen.cost_usd),
        "at_most_usd": str(gen.cost_max_usd),
        "estimate_low_usd": "0.0060",
        "estimate_high_usd": "0.2110",
        "prices_checked": "2026-11-27",
    }
    assert budget.spent_today(run.author) == most + nano_cost


# --- models without prices -------------------------------------------------------------------

SUNBURST = "gpt-image-2.5-sunburst"
NO_PRICE = (
    "GPT Image 2.5 Sunburst has no price in the model registry, so it cannot be checked against your "
    "daily limit — an admin can add its prices, or set the limit to 0."
)


def test_a_model_without_token_prices_has_an_unknown_cost_not_a_free_one():
    usage = {"input_tokens": 50, "output_tokens": 4160, "input_tokens_details": {"text_tokens": 50}}
    assert pricing.actual(model(SUNBURST), usage) is None
    assert pricing.estimate(model(SUNBURST), ONE_K) is None
    assert pricing.actual(model("gpt-image-2"), usage) == Decimal("0.1251")  # 50 × $5 + 4160 × $30 per million


def test_under_a_daily_limit_a_model_without_prices_is_refused_on_the_form_the_api_and_suites(
    auth_client, client, user, enable_models, no_task_execution, django_capture_on_commit_callbacks
):
    from compare.models import Suite, SuiteCase
    from compare.suites import dispatch

    enable_models(SUNBURST)
    TeamSettings.objects.update_or_create(pk=1, defaults={"daily_budget_usd": Decimal("5.00")})
    form = auth_client.post("/", form_data("a lamp", [SUNBURST, NANO[0]], quality="medium"))
    assert form.status_code == 400 and NO_PRICE in html_text(form)
    token = ApiToken.issue(user, "tests")[1]
    api = client.post(
        "/api/runs",
        {"prompt": "a lamp", "models": [SUNBURST, NANO[0]]},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert api.status_code == 429 and api.json()["error"]["message"] == NO_PRICE
    suite = Suite.objects.create(name="Lamps")
    SuiteCase.objects.create(suite=suite, position=0, title="Lamp", prompt="a lamp")
    with pytest.raises(dispatch.SuiteRunRefused) as info:
        dispatch.start_suite_run(suite, user, [SUNBURST], 1)
    assert info.value.over_limit and info.value.message == NO_PRICE
    assert not Run.objects.exists()
    # The shipped default models are priced: they still run under the limit.
    assert auth_client.post("/", form_data("a lamp", quality="medium")).status_code == 302
    # Without a limit there is nothing to check.
    TeamSettings.objects.filter(pk=1).update(daily_budget_usd=Decimal("0"))
    assert auth_client.post("/", form_data("a lamp", [SUNBURST, NANO[0]], quality="medium")).status_code == 302
    assert Generation.objects.get(model_key=SUNBURST).estimated_cost_usd is None


def html_text(response) -> str:
    import html

    return flat(html.unescape(response.content.decode()))


# --- a cancel while running, a success without usage, a reused result after a Retry ----------


def test_cancelling_a_running_call_keeps_its_possible_bill(auth_client, user, no_task_execution):
    import uuid

    run = new_run(user, "a lamp", quality="medium", aspect_ratio="1:1", resolution="1K")
    gpt, nano = sorted(run.generations.all(), key=lambda g: g.position)
    estimate = usd(gpt.estimated_cost_usd)
    earlier = [{"attempt": 1, "ok": False, "kind": "server", "cost_usd": "0.0100"}]  # a billed error
    Generation.objects.filter(pk=gpt.pk).update(
        status="running",
        started_at=timezone.now(),
        attempts=2,
        claim=uuid.uuid4(),
        attempt_log=earlier,
        **budget.tally(earlier, estimate),
    )
    assert auth_client.post(f"/runs/{run.id}/cancel").status_code == 302
    gpt.refresh_from_db()
    nano.refresh_from_db()
    assert gpt.status == nano.status == "cancelled"
    assert gpt.attempt_log[:1] == earlier
    assert {k: gpt.attempt_log[1][k] for k in ("kind", "billed")} == {"kind": "cancelled", "billed": "unknown"}
    assert (gpt.cost_usd, gpt.cost_max_usd) == (Decimal("0.0100"), Decimal("0.0100") + estimate)
    assert nano.attempt_log == [] and budget.charge(nano).kind == "none"  # it never left the queue
    assert budget.spent_today(user) == Decimal("0.0100") + estimate
    page = flat(auth_client.get(run.get_absolute_url()).content.decode())
    assert f"at least $0.0100 / at most ${Decimal('0.0100') + estimate}" in page


def test_a_success_without_usage_after_a_timeout_says_at_least_and_at_most(
    auth_client, client, user, no_task_execution
):
    run = new_run(user, "a lamp", quality="medium", aspect_ratio="1:1", resolution="1K")
    gen = run.generations.get(model_key=GPT[0])
    estimate = usd(gen.estimated_cost_usd)
    log = [
        {"attempt": 1, "ok": False, "kind": "timeout", **budget.attempt_cost("timeout", None)},
        {"attempt": 2, "ok": True, **budget.attempt_cost(None, None)},  # no usage in the reply
    ]
    Generation.objects.filter(pk=gen.pk).update(
        status="succeeded",
        started_at=timezone.now(),
        finished_at=timezone.now(),
        attempt_log=log,
        **budget.tally(log, estimate),
    )
    page = flat(auth_client.get(run.get_absolute_url()).content.decode())
    assert f"at least ${estimate} / at most ${2 * estimate}" in page
    assert f"≈ ${estimate} est." not in page
    token = ApiToken.issue(user, "tests")[1]
    cost = client.get(f"/api/runs/{run.id}", headers={"Authorization": f"Bearer {token}"}).json()["generations"][0][
        "cost"
    ]
    assert (cost["at_least_usd"], cost["at_most_usd"]) == (str(estimate), str(2 * estimate))
    nano = run.generations.get(model_key=NANO[0])  # still queued: its estimate counts too
    assert budget.spent_today(user) == 2 * estimate + usd(nano.estimated_cost_usd)


def test_a_reused_result_after_a_retry_keeps_the_billed_attempts_before_it(auth_client, user, no_task_execution):
    from compare import reuse
    from compare.tasks import run_generation

    run = new_run(user, "a lamp", quality="medium", aspect_ratio="1:1", resolution="1K")
    gen = run.generations.get(model_key=GPT[0])
    estimate = usd(gen.estimated_cost_usd)
    earlier = make_run(
        user,
        "a lamp",
        "succeeded",
        [GPT],
        images=1,
        cost_usd="0.0530",
        finished_at=timezone.now(),
        cache_key=reuse.key_for(gen),
        simulated=gen.simulated,
    ).generations.get()
    billed = [
        {"attempt": 1, "ok": False, "kind": "server", "cost_usd": "0.0100"},
        {"attempt": 2, "ok": False, "kind": "timeout", **budget.attempt_cost("timeout", None)},
    ]
    Generation.objects.filter(pk=gen.pk).update(
        status="failed",
        error_kind="timeout",
        started_at=timezone.now(),
        finished_at=timezone.now(),
        attempts=2,
        attempt_log=billed,
        **budget.tally(billed, estimate),
    )
    assert auth_client.post(f"/runs/{run.id}/generations/{gen.id}/retry").status_code == 302
    assert run_generation(gen.id) == "cached"  # what the worker runs for the queued retry
    gen.refresh_from_db()
    assert gen.status == "succeeded" and gen.cached_from_id == earlier.pk and gen.images.count() == 1
    assert gen.attempt_log[:2] == billed and gen.attempt_log[-1]["cached_from"] == str(earlier.pk)
    assert gen.attempt_log[-1]["cost_usd"] == "0"
    assert (gen.cost_usd, gen.cost_max_usd) == (Decimal("0.0100"), Decimal("0.0100") + estimate)
    page = flat(auth_client.get(run.get_absolute_url()).content.decode())
    assert f"at least $0.0100 / at most ${Decimal('0.0100') + estimate}" in page


@pytest.fixture
def gemini_requests(simulator):
    """The Gemini generateContent requests the simulator received."""
    yield from received(lambda path: path.startswith("/sim/gemini/") and path.endswith(":generateContent"))


@pytest.mark.django_db(transaction=True)
def test_a_gemini_request_that_timed_out_beside_one_that_succeeded_may_have_been_billed(
    auth_client, gemini_requests, settings
):
    settings.COMPARE_REQUEST_TIMEOUT = 1.0  # the first Gemini request is answered after 5 s
    run, (gpt, nano) = submit_and_wait(auth_client, "fox [[fault:timeout:5@geminix1]]", n="2", timeout=60)
    assert gemini_requests.settled(2) == ["/sim/gemini/v1beta/models/gemini-3-pro-image:generateContent"] * 2
    assert nano.status == "succeeded" and nano.attempts == 1 and nano.images.filter(is_partial=False).count() == 1
    [entry] = nano.attempt_log
    spent, estimate = usd(nano.cost_usd), usd(nano.estimated_cost_usd)
    assert Decimal(entry["cost_usd"]) == spent > 0 and (entry["billed"], entry["share"]) == ("unknown", "0.5")
    assert nano.cost_max_usd == (spent + estimate / 2).quantize(pricing.CENT)  # one of the two requests
    page = flat(auth_client.get(run.get_absolute_url()).content.decode())
    assert f"at least ${spent} / at most ${nano.cost_max_usd}" in page
    assert budget.spent_today(run.author) == usd(nano.cost_max_usd) + usd(gpt.cost_usd)

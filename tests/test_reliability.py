"""Nothing lost: provider faults (every fault × both protocols through the
simulator), retries, deadlines, cancel and retry, fallback, cache, budget guard,
atomic image writes, and what a restart does with unfinished generations."""

import html
import importlib
import re
import threading
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.core.files.storage import default_storage
from django.db import connections
from django.utils import timezone

from compare import images, reuse, tasks
from compare.models import Generation, Image, Run, TeamSettings
from tests.factories import BOTH, GPT, make_run, submit_and_wait, wait_for_generations

pytestmark = pytest.mark.django_db(transaction=True)
SIDE = {"openai": 0, "gemini": 1}


@pytest.fixture(autouse=True)
def _fast_retries(settings):
    settings.COMPARE_MAX_ATTEMPTS = 2


def run_with(client, prompt, **options):
    # "regenerate": never served from earlier results, so every fault reaches a provider.
    return submit_and_wait(client, prompt, regenerate="on", timeout=60, **options)


# (fault, protocol) → (status, error kind, attempts) with COMPARE_MAX_ATTEMPTS = 2
FAULT_MATRIX = [
    ("rate_limit", "openai", "failed", "rate_limit", 2),
    ("rate_limit", "gemini", "failed", "rate_limit", 2),
    ("quota", "openai", "failed", "quota", 1),
    ("quota", "gemini", "failed", "quota", 1),
    ("server_error", "openai", "failed", "server", 2),
    ("server_error", "gemini", "failed", "server", 2),
    ("overloaded", "openai", "failed", "overloaded", 2),
    ("overloaded", "gemini", "failed", "overloaded", 2),
    ("malformed", "openai", "failed", "malformed", 2),
    ("malformed", "gemini", "failed", "malformed", 2),
    ("refusal", "openai", "refused", "refused", 1),
    ("refusal", "gemini", "refused", "refused", 1),
    ("prompt_blocked", "openai", "refused", "refused", 1),
    ("prompt_blocked", "gemini", "refused", "refused", 1),
    ("no_image", "gemini", "refused", "refused", 1),
    ("text_only", "gemini", "refused", "refused", 1),
    ("auth", "openai", "failed", "auth", 1),
    ("auth", "gemini", "failed", "auth", 1),
]


@pytest.mark.parametrize(("fault", "protocol", "status", "kind", "attempts"), FAULT_MATRIX)
def test_fault_matrix(auth_client, simulator, fault, protocol, status, kind, attempts):
    run, gens = run_with(auth_client, f"poster [[fault:{fault}@{protocol}]]")
    hit, other = gens[SIDE[protocol]], gens[1 - SIDE[protocol]]
    assert (hit.status, hit.error_kind, hit.attempts) == (status, kind, attempts)
    assert hit.error_message and len(hit.attempt_log) == attempts
    assert other.status == "succeeded"  # one side's trouble never stops the other
    page = auth_client.get(run.get_absolute_url()).content.decode()
    assert html.escape(hit.error_headline) in page and "Retry</button>" in page


@pytest.mark.parametrize("protocol", ["openai", "gemini"])
def test_a_timeout_is_retried_then_reported(auth_client, simulator, settings, protocol):
    settings.COMPARE_REQUEST_TIMEOUT = 1.0
    _, gens = run_with(auth_client, f"slow [[fault:timeout:5@{protocol}]]")
    hit = gens[SIDE[protocol]]
    assert (hit.status, hit.error_kind, hit.attempts) == ("failed", "timeout", 2)


def test_a_cut_off_stream_is_retried(auth_client, simulator):
    _, (gpt, _) = run_with(auth_client, "stream [[fault:cutoff@openaix1]]", partial_images="1")
    assert gpt.status == "succeeded" and gpt.attempts == 2
    assert gpt.attempt_log[0]["ok"] is False and "cut off" in gpt.attempt_log[0]["error"]


@pytest.mark.parametrize("protocol", ["openai", "gemini"])
def test_rate_limits_are_retried_honouring_retry_after(auth_client, simulator, settings, protocol):
    settings.COMPARE_MAX_ATTEMPTS = 3
    _, gens = run_with(auth_client, f"busy [[fault:rate_limit@{protocol}x2]]")
    hit = gens[SIDE[protocol]]
    assert (hit.status, hit.attempts) == ("succeeded", 3)
    failed = [a for a in hit.attempt_log if not a["ok"]]
    assert [a["kind"] for a in failed] == ["rate_limit", "rate_limit"]
    # The simulator asks for 1 s; the retries waited at least that long.
    assert (hit.finished_at - hit.started_at).total_seconds() >= 2.0


def test_a_generation_past_its_deadline_is_failed_not_left_spinning(auth_client, user, settings, monkeypatch):
    settings.COMPARE_GENERATION_DEADLINE = 5
    run = make_run(user, "stuck", "running", [GPT], started_at=timezone.now() - timedelta(minutes=5))
    gen = run.generations.get()
    auth_client.get(f"/runs/{run.id}/generations/{gen.id}")
    assert Generation.objects.get(pk=gen.pk).status == "running"  # a GET writes nothing: the sweeper does it
    sweeper = importlib.import_module("compare.sweeper")
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        if slept:
            raise SystemExit  # one pass of the sweeper is enough
        slept.append(seconds)

    monkeypatch.setattr(sweeper, "time", SimpleNamespace(sleep=sleep))
    monkeypatch.setattr(sweeper.connections, "close_all", lambda: None)  # keep the test's connection
    with pytest.raises(SystemExit):
        sweeper.sweep_forever(interval=0)
    gen.refresh_from_db()
    assert (gen.status, gen.error_kind) == ("failed", "timeout")
    pane = auth_client.get(f"/runs/{run.id}/generations/{gen.id}").content.decode()
    page = auth_client.get(run.get_absolute_url()).content.decode()
    assert "The provider took too long to answer." in pane and 'hx-trigger="every' not in page


def test_the_command_lines_wait_ends_an_overdue_generation(user, settings, monkeypatch):
    """`manage.py compare` waits for its run; a side whose worker was lost is failed there
    too (as the server's sweeper would), not reported as still running."""
    settings.COMPARE_GENERATION_DEADLINE = 5
    run = make_run(user, "stuck", "running", [GPT], started_at=timezone.now() - timedelta(minutes=5))
    cli = importlib.import_module("compare.management.commands.compare")
    clock = iter([0.0, 1000.0])  # the wait starts; then its own deadline has passed
    monkeypatch.setattr(cli, "time", SimpleNamespace(monotonic=lambda: next(clock), sleep=lambda seconds: None))
    generations = cli.Command()._wait(run, show=False)
    assert [(g.status, g.error_kind) for g in generations] == [("failed", "timeout")]


def test_cancel_a_generation_then_retry_it(auth_client, simulator):
    auth_client.post("/", {"prompt": "slow [[latency:3]]", "models": BOTH, "regenerate": "on"})
    run = Run.objects.get()
    gpt = run.generations.get(position=0)
    response = auth_client.post(f"/runs/{run.id}/generations/{gpt.id}/cancel", HTTP_HX_REQUEST="true")
    # In place: the pane says so at once, no reload.
    assert response.status_code == 200 and "HX-Refresh" not in response
    assert f'id="pane-{gpt.id}"' in response.content.decode() and "Cancelled." in response.content.decode()
    wait_for_generations(run)
    gpt.refresh_from_db()
    assert gpt.status == "cancelled" and not gpt.images.filter(is_partial=False).exists()  # the late result was dropped
    assert run.generations.get(position=1).status == "succeeded"
    auth_client.post(f"/runs/{run.id}/generations/{gpt.id}/retry")
    wait_for_generations(run)
    gpt.refresh_from_db()
    assert gpt.status == "succeeded" and gpt.images.filter(is_partial=False).count() == 1
    assert any("retried_at" in entry for entry in gpt.attempt_log)  # the earlier try stays on record
    assert auth_client.post(f"/runs/{run.id}/generations/{gpt.id}/retry").status_code == 302
    gpt.refresh_from_db()
    assert gpt.status == "succeeded"  # a success is not retried


def test_cancel_the_whole_run(auth_client, simulator):
    auth_client.post("/", {"prompt": "slow [[latency:3]]", "models": BOTH, "regenerate": "on"})
    run = Run.objects.get()
    auth_client.post(f"/runs/{run.id}/cancel")
    assert set(run.generations.values_list("status", flat=True)) == {"cancelled"}
    wait_for_generations(run)
    assert set(run.generations.values_list("status", flat=True)) == {"cancelled"}


def test_fallback_model_runs_as_a_labelled_extra_side(auth_client, simulator):
    run, _gens = run_with(auth_client, "poster [[fault:server_error@gemini]]", fallback_model="gpt-image-2")
    run_gens = wait_for_generations(run, timeout=60)
    fallback = next(g for g in run_gens if g.fallback_of_id)
    assert fallback.fallback_of and fallback.fallback_of.model_key == "gemini-3-pro-image"
    assert fallback.model_key == "gpt-image-2"
    assert fallback.status == "succeeded" and fallback.position == 2
    page = auth_client.get(run.get_absolute_url()).content.decode()
    assert "GPT Image 2 (fallback for Nano Banana Pro)" in page


def test_fallback_to_a_lower_quality(auth_client, simulator):
    run, _ = run_with(auth_client, "poster [[fault:server_error@openaix2]]", quality="high", fallback_quality="low")
    run_gens = wait_for_generations(run, timeout=60)
    fallback = next(g for g in run_gens if g.fallback_of_id)
    assert fallback.model_key == "gpt-image-2" and fallback.params_sent["quality"] == "low"
    assert fallback.status == "succeeded"


def test_a_failed_side_and_its_fallback_land_together(auth_client, simulator, monkeypatch):
    """Another connection (a page's poll, an API client) never sees the failed side before
    its fallback exists: at that moment the run would look finished and the page's poll,
    which stops then, would never show the fallback."""
    seen_meanwhile = []
    start_fallback = tasks.start_fallback

    def watched(gen):
        fallback = start_fallback(gen)
        seen_meanwhile.append(_read_elsewhere(gen.run_id))  # before the failure commits
        return fallback

    monkeypatch.setattr(tasks, "start_fallback", watched)
    run, _ = run_with(auth_client, "poster [[fault:quota@openai]]", fallback_model="gemini-3-pro-image")
    gens = wait_for_generations(run, timeout=60)
    assert seen_meanwhile and all(statuses["gpt-image-2"] == ["running"] for statuses in seen_meanwhile)
    assert len(gens) == 3 and next(g for g in gens if g.fallback_of_id).status == "succeeded"


def test_a_fallback_that_cannot_start_never_holds_the_failure_back(auth_client, simulator, monkeypatch):
    def broken(gen):
        raise RuntimeError("the fallback could not be created")

    monkeypatch.setattr(tasks, "start_fallback", broken)
    run, gens = run_with(auth_client, "poster [[fault:quota@openai]]", fallback_model="gemini-3-pro-image")
    assert [(g.model_key, g.status) for g in gens] == [("gpt-image-2", "failed"), ("gemini-3-pro-image", "succeeded")]
    assert gens[0].error_kind == "quota" and Run.objects.get(pk=run.pk).state == "partial"


def _read_elsewhere(run_id) -> dict[str, list[str]]:
    """The run's sides by model, as a connection of another thread reads them now."""
    found: dict[str, list[str]] = {}

    def read():
        try:
            for key, status in Generation.objects.filter(run_id=run_id).values_list("model_key", "status"):
                found.setdefault(key, []).append(status)
        finally:
            connections.close_all()

    thread = threading.Thread(target=read)
    thread.start()
    thread.join(10)
    return found


def test_an_identical_request_is_served_from_the_cache_at_no_cost(auth_client, simulator):
    data = {"prompt": "the same poster", "models": BOTH, "aspect_ratio": "1:1", "resolution": "1K"}
    auth_client.post("/", data)
    first = Run.objects.get()
    wait_for_generations(first)
    auth_client.post("/", data)
    second = Run.objects.exclude(pk=first.pk).get()
    for gen in wait_for_generations(second):
        original = first.generations.get(model_key=gen.model_key)
        assert gen.cached_from == original and gen.cost_usd == Decimal("0") and gen.attempts == 0
        assert gen.images.get().sha256 == original.images.get().sha256
    page = auth_client.get(second.get_absolute_url()).content.decode()
    assert f'reused from <a href="/runs/{first.id}/">run {str(first.id)[:8]}</a></span>' in page
    auth_client.post("/", {**data, "regenerate": "on"})
    third = Run.objects.exclude(pk__in=[first.pk, second.pk]).get()
    assert all(g.cached_from is None and (g.cost_usd or 0) > 0 for g in wait_for_generations(third))
    form = auth_client.get(f"/runs/{first.id}/fork?regenerate=1", follow=True).content.decode()
    assert re.search(r'name="regenerate"[^>]*checked', form)


def test_budget_guard_daily_limit_and_in_flight_limit(auth_client, client, user):
    TeamSettings.objects.update_or_create(pk=1, defaults={"daily_budget_usd": Decimal("0.10"), "max_in_flight": 24})
    response = auth_client.post("/", {"prompt": "pricey", "models": BOTH})
    assert response.status_code == 400
    assert "would take you past today&#x27;s limit of $0.10" in response.content.decode()
    assert not Run.objects.exists()
    TeamSettings.objects.filter(pk=1).update(daily_budget_usd=0, max_in_flight=1)
    response = auth_client.post("/", {"prompt": "two at once", "models": BOTH})
    assert response.status_code == 400 and "the limit is 1" in response.content.decode()
    from compare.models import ApiToken

    _, token = ApiToken.issue(user, "s")
    api = client.post(
        "/api/runs",
        {"prompt": "x", "models": BOTH},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert api.status_code == 429 and "the limit is 1" in api.json()["error"]["message"]
    assert not Run.objects.exists()


def test_a_failure_while_storing_images_leaves_no_row_and_no_file(auth_client, simulator, monkeypatch, settings):
    settings.COMPARE_MAX_ATTEMPTS = 1
    real_store = images.store
    calls = []

    def failing_store(data, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_store(data, **kwargs)

    monkeypatch.setattr(images, "store", failing_store)
    _run, (gpt, gemini) = run_with(auth_client, "two images", n="2", models=["gpt-image-2", "gemini-3-pro-image"])
    failed = [g for g in (gpt, gemini) if g.status == "failed"]
    assert len(failed) == 1 and not failed[0].images.exists()
    kept = {img.file for img in Image.objects.all()}
    written = {
        f"images/{d}/{name}"
        for d in default_storage.listdir("images")[0]
        for name in default_storage.listdir(f"images/{d}")[1]
    }
    assert written == kept  # the one file stored before the failure was removed again


def test_a_restart_resumes_queued_and_marks_running_interrupted(user, settings):
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    serve = importlib.import_module("compare.management.commands.serve")
    run = Run.objects.create(author=user, prompt="p", options={"n": 1})
    queued = Generation.objects.create(run=run, position=0, model_key="gpt-image-2", model_label="G", model_id="g")
    running = Generation.objects.create(
        run=run,
        position=1,
        model_key="gemini-3-pro-image",
        model_label="N",
        model_id="n",
        status="running",
        started_at=timezone.now(),
    )
    assert serve.resume_unfinished() == (1, 1)
    running.refresh_from_db()
    queued.refresh_from_db()
    assert (running.status, running.error_kind) == ("failed", "interrupted") and "Retry" in running.error_message
    assert queued.status == "queued"  # handed to the task backend again


# --- stale tasks, one fallback per side, the cache key, new sides, retry and budget ----------


@pytest.mark.django_db  # no live server: no need for the module's transactions
def test_a_task_left_over_from_before_a_retry_cannot_write(user):
    run = make_run(user, status="running")
    gen = run.generations.get(position=0)
    Generation.objects.filter(pk=gen.pk).update(claim="00000000-0000-0000-0000-000000000001")
    stale = Generation.objects.get(pk=gen.pk)
    stale.claim = "00000000-0000-0000-0000-000000000002"  # the claim of the task before the retry
    assert tasks._finish(stale, Generation.Status.FAILED, error_kind="server") is False
    assert Generation.objects.get(pk=gen.pk).status == "running"


@pytest.mark.django_db  # no live server: no need for the module's transactions
def test_one_fallback_per_side_even_after_a_retry_fails_again(user, settings):
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    run = make_run(user, options={"fallback_model": "gpt-image-2"})
    failed = run.generations.get(position=1)
    assert tasks.start_fallback(failed) is not None
    assert tasks.start_fallback(failed) is None
    assert run.generations.count() == 3


@pytest.mark.django_db  # no live server: no need for the module's transactions
def test_the_cache_key_follows_a_fallbacks_lower_quality(user):
    run = make_run(user, options={"quality": "high"})
    gen = run.generations.get(position=0)
    normal = reuse.key_for(gen)
    gen.option_overrides = {"quality": "low"}
    assert reuse.key_for(gen) != normal


@pytest.mark.django_db  # no live server: no need for the module's transactions
def test_a_new_side_refreshes_the_page(auth_client, user):
    run = make_run(user, status="running")
    same = auth_client.get(f"/runs/{run.id}/parts/votes?sides=2")
    assert same.status_code == 200
    more = auth_client.get(f"/runs/{run.id}/parts/votes?sides=1")
    assert more.status_code == 204 and more["HX-Refresh"] == "true"


@pytest.mark.django_db  # no live server: no need for the module's transactions
def test_retry_respects_the_budget(auth_client, user):
    run = make_run(user, status="failed")
    TeamSettings.objects.update_or_create(pk=1, defaults={"daily_budget_usd": Decimal("0.05"), "max_in_flight": 0})
    gen = run.generations.get(position=0)
    page = auth_client.post(f"/runs/{run.id}/generations/{gen.id}/retry", follow=True).content.decode()
    assert "would take you past today" in page
    assert Generation.objects.get(pk=gen.pk).status == "failed"

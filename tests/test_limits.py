"""Per-model provider limits (compare/limits.py): requests per minute and requests in
flight, held across threads and processes through the database, waited for visibly
(run page, API, status page; no model name for a blind viewer), never burning a retry."""

import html
import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.utils import timezone

from compare import limits, live, tasks
from compare.http import build_client
from compare.models import ApiToken, Generation, ProviderCall, Run
from compare.registry import get_model, parse_registry, registry
from tests.factories import BOTH, form_data, make_run, wait_for_generations

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parent.parent
GPT_KEY = "gpt-image-2"


@pytest.fixture
def set_limits(settings, tmp_path, monkeypatch):
    """A copy of the shipped registry with the given limits on one model, applied to
    simulated calls too (COMPARE_LIMIT_SIMULATOR); waiters look again every 0.1 s."""
    settings.COMPARE_LIMIT_SIMULATOR = True
    monkeypatch.setattr(limits, "POLL", 0.1)

    def apply(key: str = GPT_KEY, **fields: int | None) -> Path:
        text = settings.COMPARE_MODELS_FILE.read_text()
        head, sep, tail = text.partition(f'[models."{key}"]\n')
        section, cap, rest = tail.partition(f'[models."{key}".capabilities]')
        section = re.sub(r"^(rpm|max_in_flight) = .*\n", "", section, flags=re.MULTILINE)
        section += "".join(f"{name} = {value}\n" for name, value in fields.items() if value is not None)
        path = tmp_path / "models.toml"
        path.write_text(head + sep + section + cap + rest)
        settings.COMPARE_MODELS_FILE = path
        registry.cache_clear()
        return path

    yield apply
    registry.cache_clear()


class Counting(httpx.BaseTransport):
    """Forwards to the real transport (the live simulator) and records, at the HTTP level,
    the OpenAI requests (gpt-image-2's protocol): how many, and how many were open at once."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.lock = threading.Lock()
        self.open = 0
        self.peak = 0
        self.sent = 0
        self.cap: int | None = None  # like a provider's concurrency limit: beyond it, a 429
        self.refused = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        counted = "/openai/" in request.url.path
        if counted:
            with self.lock:
                self.open += 1
                self.peak = max(self.peak, self.open)
                self.sent += 1
                if self.cap is not None and self.open > self.cap:
                    self.refused += 1
                    request.headers["X-Simulator-Fault"] = "rate_limit"  # the simulator's own 429 reply
        try:
            response = self.inner.handle_request(request)
            response.read()
            return response
        finally:
            if counted:
                with self.lock:
                    self.open -= 1


@pytest.fixture
def wire(monkeypatch, simulator):
    """Every provider call of the tasks goes through one Counting transport."""
    counting = Counting()
    client = build_client(transport=counting)
    monkeypatch.setattr(tasks, "shared_client", lambda: client)
    yield counting
    # A test that failed half-way leaves generations waiting: stop them before the server goes.
    Generation.objects.pending().update(status=Generation.Status.CANCELLED)
    client.close()


def block(model_key: str = GPT_KEY, **fields) -> ProviderCall:
    """A call of another process, still in flight."""
    return ProviderCall.objects.create(model_key=model_key, **fields)


def submit(client, prompt: str, **fields) -> Run:
    """A comparison of gpt-image-2 (limited by `set_limits`) and Nano Banana Pro."""
    response = client.post("/", form_data(prompt, BOTH, regenerate="on", **fields))
    assert response.status_code == 302, response.content.decode()[:600]
    return Run.objects.latest("created_at")


def wait_until(condition, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def gpt(gens: list[Generation]) -> Generation:
    [gen] = [g for g in gens if g.model_key == GPT_KEY]
    return gen


def waiting(run: Run, model_key: str = GPT_KEY) -> Generation:
    return wait_until(lambda: run.generations.filter(model_key=model_key).exclude(waiting_for="").first())


def page_text(response) -> str:
    return html.unescape(response.content.decode())


def limits_row(client, key: str) -> list[str]:
    """The cells of `key`'s row in the status page's table of provider limits, as text."""
    table = client.get("/status").content.decode().split("provider-limits")[1].split("</table>")[0]
    [row] = [tr for tr in table.split("<tr") if f">{key}<" in tr]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", cell)).split()) for cell in cells]


# --- the registry -------------------------------------------------------------------------


def entry(**fields) -> dict:
    return {
        "models": {
            "m": {
                "label": "M",
                "protocol": "gemini",
                "model_id": "m-1",
                "base_url": "https://example.test/v1beta",
                "api_key_env": "M_KEY",
                "capabilities": {"sizes": "aspect"},
                **fields,
            }
        }
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"rpm": -1}, "Model 'm': rpm must be a whole number of requests per minute of at least 1, not -1"),
        ({"rpm": "ten"}, "Model 'm': rpm must be a whole number of requests per minute of at least 1, not 'ten'"),
        ({"rpm": 0}, "rpm must be a whole number of requests per minute of at least 1, not 0 (leave it out"),
        ({"rpm": True}, "rpm must be a whole number"),
        ({"max_in_flight": 2.5}, "Model 'm': max_in_flight must be a whole number of requests in flight"),
        ({"max_in_flight": "4"}, "max_in_flight must be a whole number of requests in flight of at least 1, not '4'"),
    ],
)
def test_the_registry_refuses_a_bad_limit_with_a_clear_message(fields, message):
    with pytest.raises(ImproperlyConfigured, match=re.escape(message)):
        parse_registry(entry(**fields))


def test_limits_are_optional_and_the_shipped_models_have_them():
    model = parse_registry(entry())["m"]
    assert (model.rpm, model.max_in_flight) == (None, None)
    assert parse_registry(entry(rpm=10, max_in_flight=3))["m"].rpm == 10
    shipped = registry()
    assert shipped[GPT_KEY].rpm and shipped[GPT_KEY].max_in_flight
    assert shipped["gemini-3-pro-image"].rpm and shipped["gemini-3-pro-image"].max_in_flight


# --- what the limits hold -----------------------------------------------------------------


def test_never_more_generations_in_flight_than_the_limit(auth_client, set_limits, wire):
    set_limits(max_in_flight=2)
    runs = [submit(auth_client, f"[[latency:0.4]] poster {i}") for i in range(5)]
    gens = [gpt(wait_for_generations(run, timeout=60)) for run in runs]
    assert [g.status for g in gens] == ["succeeded"] * 5
    assert wire.sent == 5
    assert wire.peak == 2  # five calls wanted to go at once; two at a time went
    calls = ProviderCall.objects.filter(model_key=GPT_KEY)
    assert calls.count() == 5 and not calls.filter(finished_at__isnull=True).exists()
    assert all(g.attempts == 1 and g.waiting_for == "" for g in gens)


@pytest.mark.parametrize("limited", [True, False], ids=["limit-set", "no-limit"])
def test_a_limit_that_matches_the_providers_means_no_429(auth_client, set_limits, wire, settings, limited):
    """The provider takes two requests at a time and answers 429 beyond: with max_in_flight = 2
    nothing meets a 429; without it (the control) the same burst does."""
    settings.COMPARE_MAX_ATTEMPTS = 1  # a 429 shows as a failure, not hidden by a retry
    set_limits(max_in_flight=2 if limited else None)
    wire.cap = 2
    runs = [submit(auth_client, f"[[latency:0.4]] burst {i}") for i in range(5)]
    gens = [gpt(wait_for_generations(run, timeout=60)) for run in runs]
    statuses = sorted(g.status for g in gens)
    if limited:
        assert statuses == ["succeeded"] * 5 and wire.refused == 0
    else:
        assert wire.refused >= 1 and "failed" in statuses
        assert {g.error_kind for g in gens if g.status == "failed"} == {"rate_limit"}


def test_never_more_requests_in_a_window_than_rpm(auth_client, set_limits, wire, monkeypatch):
    monkeypatch.setattr(limits, "WINDOW", 1.0)  # a one-second "minute"
    monkeypatch.setattr(limits, "PRUNE_EVERY", 3600.0)  # keep every row for the count below
    set_limits(rpm=2)
    runs = [submit(auth_client, f"poster {i}") for i in range(6)]
    gens = [gpt(wait_for_generations(run, timeout=60)) for run in runs]
    assert [g.status for g in gens] == ["succeeded"] * 6 and wire.sent == 6
    starts = sorted(ProviderCall.objects.filter(model_key=GPT_KEY).values_list("started_at", flat=True))
    assert len(starts) == 6
    for i, start in enumerate(starts):
        in_window = [s for s in starts[i:] if s - start < timedelta(seconds=1.0)]
        assert len(in_window) <= 2, f"{len(in_window)} calls started within one window from {start}"


def test_a_model_without_limits_does_not_wait(auth_client, set_limits, wire):
    set_limits(rpm=None, max_in_flight=None)
    block()  # another process's call: it would block a limit of one
    run = submit(auth_client, "unlimited")
    gen = gpt(wait_for_generations(run))
    assert gen.status == "succeeded" and gen.waiting_for == ""
    assert ProviderCall.objects.filter(generation=gen, finished_at__isnull=False).count() == 1


def test_simulated_calls_ignore_the_limits_unless_asked(auth_client, set_limits, wire, settings):
    set_limits(max_in_flight=1)
    settings.COMPARE_LIMIT_SIMULATOR = False
    block()
    gen = gpt(wait_for_generations(submit(auth_client, "a demo")))
    assert gen.status == "succeeded"
    assert ProviderCall.objects.filter(generation=gen).count() == 1  # still counted for the status page


# --- waiting, visibly ---------------------------------------------------------------------


def test_a_waiting_generation_says_why_on_the_run_page_the_api_and_the_status_page(auth_client, user, set_limits, wire):
    set_limits(max_in_flight=1)
    blocker = block()
    run = submit(auth_client, "a poster that waits")
    gen = waiting(run)
    reason = "Waiting for GPT Image 2's limit: 1 of 1 generation in flight."
    assert gen.waiting_for == reason
    assert gen.status == "queued" and gen.started_at is None and gen.attempts == 0  # queued, no attempt used
    assert wire.sent == 0

    page = page_text(auth_client.get(run.get_absolute_url()))
    assert "Queued…" in page and reason in page
    token = ApiToken.issue(user, "tests")[1]
    body = json.loads(auth_client.get(f"/api/runs/{run.id}", headers={"Authorization": f"Bearer {token}"}).content)
    assert [g["waiting_for"] for g in body["generations"]] == [reason, ""]
    # The status page: the model's limits, the call in flight (another process's) and the one waiting.
    assert limits_row(auth_client, GPT_KEY) == ["GPT Image 2 gpt-image-2", "1 in flight", "1", "1", "1"]

    blocker.finished_at = timezone.now()
    blocker.save()
    done = gpt(wait_for_generations(run))
    assert done.status == "succeeded" and done.waiting_for == "" and done.attempts == 1
    assert "Waiting for" not in page_text(auth_client.get(run.get_absolute_url()))
    assert wire.sent == 1


def test_a_blind_viewer_is_not_told_that_a_side_waits_for_a_rate_limit(auth_client, user, set_limits, wire):
    """Which side waits for a rate limit would tell which model it is: a blind viewer sees
    the generic queued text only, on the page and in the API."""
    set_limits(max_in_flight=1)
    blocker = block()
    run = submit(auth_client, "a blind poster", blind="on")
    gen = waiting(run)
    assert "GPT Image 2" in gen.waiting_for  # stored for the status page and the admin
    page = page_text(auth_client.get(run.get_absolute_url()))
    assert "Generating… the sides appear together" in page
    for leak in ("Waiting for", "rate limit", "in flight", "GPT Image 2", GPT_KEY):
        assert leak not in page
    token = ApiToken.issue(user, "tests")[1]
    body = json.loads(auth_client.get(f"/api/runs/{run.id}", headers={"Authorization": f"Bearer {token}"}).content)
    assert [g["waiting_for"] for g in body["generations"]] == ["", ""]
    assert "GPT Image 2" not in json.dumps(body) and "Waiting for" not in json.dumps(body)
    blocker.finished_at = timezone.now()
    blocker.save()
    assert {g.status for g in wait_for_generations(run)} == {"succeeded"}


def test_a_change_of_the_reason_reaches_open_pages(user):
    run = make_run(user, status="queued")
    gen = run.generations.get(position=0)
    before = live.read(run.id, user.id, False).stamps
    limits._set_waiting(gen, "", "Waiting for GPT Image 2's rate limit (5 requests per minute).")
    after = live.read(run.id, user.id, False).stamps
    assert before["p0"] != after["p0"] and before["p1"] == after["p1"]


def test_a_side_cancelled_between_its_claim_and_its_call_sends_nothing(auth_client, wire, monkeypatch):
    """The write that puts the call on record is the one that finds the side still its task's:
    a cancel that lands after the claim but before the call stops it with no request and no
    call on record."""
    from compare import reuse

    key_for = reuse.key_for

    def cancelled_meanwhile(gen):
        if gen.model_key == GPT_KEY:
            Generation.objects.filter(pk=gen.pk).update(status=Generation.Status.CANCELLED)
        return key_for(gen)

    monkeypatch.setattr(reuse, "key_for", cancelled_meanwhile)
    run = submit(auth_client, "cancelled before its call")
    gen = gpt(wait_for_generations(run))
    assert gen.status == "cancelled" and gen.attempts == 0 and gen.params_sent == {}
    assert wire.sent == 0
    assert not ProviderCall.objects.filter(generation=gen).exists()
    other = run.generations.exclude(pk=gen.pk).get()
    assert other.status == "succeeded"
    assert ProviderCall.objects.filter(generation=other, finished_at__isnull=False).count() == 1


def test_cancelling_a_waiting_generation_stops_it_without_a_call(auth_client, set_limits, wire):
    set_limits(max_in_flight=1)
    block()  # never released in this test
    run = submit(auth_client, "cancel me")
    gen = waiting(run)
    response = auth_client.post(f"/runs/{run.id}/generations/{gen.id}/cancel", HTTP_HX_REQUEST="true")
    assert response.status_code in (200, 204)
    done = gpt(wait_for_generations(run))
    assert done.status == "cancelled" and done.attempts == 0
    wait_until(lambda: not Generation.objects.filter(pk=gen.pk).exclude(waiting_for="").exists())
    assert wire.sent == 0
    assert not ProviderCall.objects.filter(generation=gen).exists()


def test_a_wait_that_reaches_the_deadline_fails_with_a_clear_message(auth_client, set_limits, wire, settings):
    set_limits(max_in_flight=1)
    settings.COMPARE_GENERATION_DEADLINE = 1.5
    block()
    gen = gpt(wait_for_generations(submit(auth_client, "too long a wait")))
    assert gen.status == "failed" and gen.error_kind == "rate_limit"
    assert gen.error_message == (
        "Waiting for GPT Image 2's limit: 1 of 1 generation in flight, until the deadline passed; no request was sent."
    )
    assert gen.attempts == 0 and gen.waiting_for == "" and wire.sent == 0


def test_the_wait_for_a_slot_and_the_retries_share_one_deadline(auth_client, set_limits, wire, settings):
    """A generation that waited 2.5 s of its 4 s for the model's limits has 1.5 s left:
    a retry due in 2 s would pass the deadline, so it gives up after its one call instead
    of starting a fresh 4 s for the calls (which would let it take up to twice the deadline)."""
    set_limits(max_in_flight=1)
    settings.COMPARE_GENERATION_DEADLINE = 4.0
    settings.COMPARE_RETRY_BASE_DELAY = 2.0
    blocker = block()
    run = submit(auth_client, "[[fault:rate_limitx1@openai]] a poster that waits, then is refused once")
    waiting(run)
    time.sleep(2.5)  # it has waited at least this long when the slot frees
    blocker.finished_at = timezone.now()
    blocker.save()
    gen = gpt(wait_for_generations(run))
    assert gen.status == "failed" and gen.error_kind == "rate_limit" and gen.attempts == 1
    assert "(gave up: the next retry would pass the deadline)" in gen.error_message
    assert wire.sent == 1


def test_every_retry_takes_a_slot_of_its_own(auth_client, set_limits, wire):
    set_limits(max_in_flight=1)
    gen = gpt(wait_for_generations(submit(auth_client, "[[fault:rate_limitx1@openai]] a retried poster")))
    assert gen.status == "succeeded" and gen.attempts == 2
    calls = ProviderCall.objects.filter(generation=gen)
    assert calls.count() == 2 and not calls.filter(finished_at__isnull=True).exists()
    assert wire.sent == 2


# --- crashes and cleaning up --------------------------------------------------------------


def test_a_crashed_call_stops_counting_after_the_deadline(user, set_limits, settings):
    set_limits(max_in_flight=1)
    settings.COMPARE_GENERATION_DEADLINE = 5.0
    model = get_model(GPT_KEY)
    assert model is not None
    gen = make_run(user, status="queued").generations.get(model_key=GPT_KEY)
    crashed = block(started_at=timezone.now() - timedelta(seconds=10))  # within deadline + grace: counts
    with pytest.raises(limits.WaitedTooLong, match="1 of 1 generation in flight"):
        limits.acquire(model, gen, stop=lambda: False, deadline=time.monotonic() + 0.3)
    crashed.started_at = timezone.now() - timedelta(seconds=5 + limits.GRACE + 1)
    crashed.save()
    slot = limits.acquire(model, gen, stop=lambda: False, deadline=time.monotonic() + 0.3)
    assert slot is not None
    slot.release()
    assert ProviderCall.objects.get(pk=slot.call_id).finished_at is not None
    gen.refresh_from_db()
    assert gen.waiting_for == ""  # the reason shown while it waited is gone


def test_old_calls_are_pruned(user, monkeypatch, settings):
    settings.COMPARE_GENERATION_DEADLINE = 5.0
    now = timezone.now()
    keep = [
        block(started_at=now - timedelta(seconds=30)),
        block(started_at=now - timedelta(seconds=30), finished_at=now),
    ]
    block(started_at=now - timedelta(seconds=200), finished_at=now - timedelta(seconds=199))  # past the window
    block(started_at=now - timedelta(seconds=100))  # crashed long ago
    monkeypatch.setattr(limits, "_pruned_at", 0.0)
    limits._prune()
    assert set(ProviderCall.objects.values_list("pk", flat=True)) == {c.pk for c in keep}


# --- across processes ---------------------------------------------------------------------

WORKER = """
import json, os, sys, time
os.environ["DJANGO_SETTINGS_MODULE"] = "compare.settings"
from django.conf import settings
if os.environ.get("LIMITS_SQLITE"):
    settings.DATABASES["default"]["NAME"] = os.environ["LIMITS_SQLITE"]
import django
django.setup()
from compare import limits
from compare.models import Generation
from compare.registry import get_model
limits.POLL = 0.002  # both processes look all the time: a free slot is contested at once
gen = Generation.objects.select_related("run").get(pk=sys.argv[1])
spans = []
for _ in range(6):
    slot = limits.acquire(get_model("gpt-image-2"), gen, stop=lambda: False, deadline=time.monotonic() + 60)
    began = time.time()
    time.sleep(0.05)
    spans.append((began, time.time()))
    slot.release()
print(json.dumps(spans))
"""


@pytest.mark.parametrize("sqlite_by_url", [False, True], ids=["app-settings", "database-url"])
def test_two_processes_never_hold_more_slots_than_the_limit(user, set_limits, sqlite_by_url):
    """On SQLite, once with the app's own options (BEGIN IMMEDIATE) and once through
    DATABASE_URL (plain BEGIN: compare/limits.py `_lock` takes the write lock itself)."""
    if sqlite_by_url and connection.vendor != "sqlite":
        pytest.skip("the DATABASE_URL case is the PostgreSQL run itself")
    registry_file = set_limits(max_in_flight=1)
    run = make_run(user, status="queued")
    params = connection.settings_dict
    env = {
        **os.environ,
        "COMPARE_MODELS_FILE": str(registry_file),
        "COMPARE_LIMIT_SIMULATOR": "1",
        "COMPARE_LOG_LEVEL": "WARNING",
    }
    if connection.vendor == "postgresql":
        env["DATABASE_URL"] = (
            f"postgres://{params['USER'] or 'postgres'}@{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}/{params['NAME']}"
        )
    elif sqlite_by_url:
        env["DATABASE_URL"] = f"sqlite:///{params['NAME']}"
    else:
        env.pop("DATABASE_URL", None)
        env["LIMITS_SQLITE"] = params["NAME"]  # the test database, with the app's own SQLite options
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(gen.pk)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for gen in run.generations.all()
    ]
    spans = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err[-2000:]
        spans += json.loads(out.strip().splitlines()[-1])
    spans.sort()
    assert len(spans) == 12
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, "two processes held the model's only slot at once"
    assert ProviderCall.objects.filter(model_key=GPT_KEY, finished_at__isnull=False).count() == 12

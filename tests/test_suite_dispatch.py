"""Starting a suite run (compare/suites/dispatch.py): cases × samples ordinary Runs, the
budget checked once for the whole suite run, generations beyond the in-flight limit held
in the queue and released as others end, validation, and cancelling."""

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.tasks.backends.dummy import DummyBackend
from django.utils import timezone

from compare import pricing
from compare.budget import BudgetExceeded
from compare.models import Generation, Run, Suite, SuiteCase, SuiteRun, TeamSettings
from compare.registry import Model, get_model
from compare.runs import create_run
from compare.suites import dispatch
from compare.tasks import HELD, generate, on_checks_failed, run_generation
from tests.factories import BOTH, IMMEDIATE_TASKS

GPT_KEY, NANO_KEY = BOTH


def make_suite(name: str = "Three cases", cases: list[dict[str, Any]] | None = None) -> Suite:
    suite = Suite.objects.create(name=name, version=3)
    default: list[dict[str, Any]] = [
        {"title": "Poster", "prompt": 'A poster that says "新春钜惠 全场 8 折"', "tags": ["poster", "zh"]},
        {"title": "UI", "prompt": 'A dashboard titled "Analytics Dashboard"', "tags": ["ui-mockup"]},
        {
            "title": "Infographic",
            "prompt": 'An infographic "How Coffee Gets to Your Cup"',
            "tags": ["infographic"],
            "options": {"aspect_ratio": "3:4", "quality": "high"},
        },
    ]
    for position, case in enumerate(cases if cases is not None else default):
        SuiteCase.objects.create(suite=suite, position=position, **case)
    return suite


def dummy_backend() -> DummyBackend:
    backend = generate.get_backend()
    assert isinstance(backend, DummyBackend)
    return backend


def enqueued_ids() -> list[str]:
    """Generation ids sent to the (dummy) task queue so far, in order."""
    return [r.args[0] for r in dummy_backend().results if r.task.name == generate.name]


def models(*keys: str) -> list[Model]:
    found = [get_model(k) for k in keys]
    return [m for m in found if m is not None]


def team(**fields) -> TeamSettings:
    row = TeamSettings.objects.get_or_create(pk=1)[0]
    for name, value in fields.items():
        setattr(row, name, value)
    row.save()
    return row


@pytest.fixture
def queue(no_task_execution, django_capture_on_commit_callbacks):
    """Generations stay queued. `queue(f, …)` calls f as if its transaction committed
    (the test's own transaction never does): the enqueueing it asked for happens."""
    dummy_backend().clear()

    def committed(function, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return function(*args, **kwargs)

    return committed


def test_a_suite_run_is_cases_times_samples_runs_linked_tagged_and_queued(user, queue):
    team(max_in_flight=0)  # no in-flight limit: everything goes to the queue at once
    suite = make_suite()
    suite_run = queue(dispatch.start_suite_run, suite, user, BOTH, 2)

    suite_run.refresh_from_db()
    assert (suite_run.suite_name, suite_run.suite_version, suite_run.samples) == ("Three cases", 3, 2)
    assert suite_run.model_keys == BOTH and suite_run.author == user
    assert [c["title"] for c in suite_run.cases] == ["Poster", "UI", "Infographic"]
    assert suite_run.cases[0] == suite.cases.all()[0].snapshot()

    runs = list(Run.objects.filter(suite_run=suite_run).order_by("suite_sample", "suite_case"))
    assert [(r.suite_case, r.suite_sample) for r in runs] == [(c, s) for s in range(2) for c in range(3)]
    for r in runs:
        case = suite_run.cases[r.suite_case]
        assert r.prompt == case["prompt"] and r.author == user and not r.blind
        assert sorted(t.name for t in r.tags.all()) == sorted(case["tags"])
        assert [g.model_key for g in r.generations.order_by("position")] == BOTH
    infographic = runs[2]
    assert infographic.options["aspect_ratio"] == "3:4" and infographic.options["quality"] == "high"
    assert runs[0].options["quality"] == "auto"  # defaults filled in as for the form

    gens = Generation.objects.filter(run__suite_run=suite_run)
    assert gens.count() == 12
    assert set(gens.values_list("status", flat=True)) == {"queued"}
    assert set(gens.values_list("waiting_for", flat=True)) == {""}
    assert sorted(enqueued_ids()) == sorted(str(pk) for pk in gens.values_list("pk", flat=True))


def test_the_estimate_is_every_case_and_model_times_samples(user, queue):
    suite = make_suite()
    chosen = models(*BOTH)
    # What the new-comparison form would estimate for each case and model (compare/pricing.py).
    parts = [
        pricing.estimate(m, dispatch.prepare_case(i, c, chosen).options, c.prompt)
        for i, c in enumerate(suite.cases.all())
        for m in chosen
    ]
    one_sample = sum((p for p in parts if p is not None), Decimal("0"))
    assert len(parts) == 6 and None not in parts
    span = dispatch.estimate_range(suite, BOTH, 5)
    assert span is not None and span.high == one_sample * 5 > 0
    suite_run = queue(dispatch.start_suite_run, suite, user, BOTH, 5)
    assert suite_run.estimated_cost_usd == one_sample * 5
    stored = Generation.objects.filter(run__suite_run=suite_run).values_list("estimated_cost_usd", flat=True)
    assert sum((e for e in stored if e is not None), Decimal("0")) == one_sample * 5
    # Nothing to estimate for an invalid choice.
    assert dispatch.estimate_range(suite, ["nope"], 5) is None
    assert dispatch.estimate_range(suite, BOTH, 0) is None


def test_generations_beyond_the_in_flight_limit_wait_in_the_queue_and_follow_as_others_end(user, queue):
    team(max_in_flight=5)
    suite_run = queue(dispatch.start_suite_run, make_suite(), user, BOTH, 2)  # 12 generations
    gens = Generation.objects.filter(run__suite_run=suite_run)
    sent = enqueued_ids()
    assert len(sent) == 5
    # Sample by sample, case by case: the first sample's cases go first.
    first = gens.filter(pk__in=sent)
    assert {(g.run.suite_sample, g.run.suite_case) for g in first} == {(0, 0), (0, 1), (0, 2)}
    held = gens.exclude(pk__in=sent)
    assert held.count() == 7 and set(held.values_list("status", flat=True)) == {"queued"}
    assert set(held.values_list("waiting_for", flat=True)) == {
        "Queued behind your other generations: at most 5 of yours run at once."
    }
    assert set(first.values_list("waiting_for", flat=True)) == {""}

    # A held generation cannot be claimed by a task (e.g. one re-sent after a restart).
    a_held = held[0]
    assert run_generation(a_held.pk) == "skipped"
    assert Generation.objects.get(pk=a_held.pk).status == "queued"

    # An ordinary comparison counts the held ones as queued: the limit names the numbers.
    with pytest.raises(BudgetExceeded, match="You have 12 generations queued or running and this comparison adds 2"):
        create_run(user, "a fox", models(*BOTH), {})

    # One ends: exactly one more is sent, and nothing while none has ended.
    assert queue(dispatch.release_held, author_id=user.pk) == 0
    done = first[0]
    Generation.objects.filter(pk=done.pk).update(status="succeeded")
    assert queue(dispatch.release_held, generation_id=done.pk) == 1
    assert len(enqueued_ids()) == 6
    assert gens.filter(waiting_for__startswith=HELD).count() == 6
    # The limit is per person: another user's suite run starts at once.


def test_a_fallback_side_of_a_suite_run_waits_for_the_in_flight_limit_too(user, queue):
    """The option "fall back when the text check fails" adds a side to a suite run's Run: it joins the
    held queue instead of going past the author's limit."""
    team(max_in_flight=2)
    options = {"fallback_model": NANO_KEY, "fallback_on_text_check": True}
    suite = make_suite("Fallbacks", cases=[{"prompt": 'A poster that says "Sale"', "options": options}])
    suite_run = queue(dispatch.start_suite_run, suite, user, [GPT_KEY], 3)
    gens = Generation.objects.filter(run__suite_run=suite_run)
    first, second = (gens.get(pk=pk) for pk in enqueued_ids())
    # The first succeeds and its task frees its slot: the third sample is sent.
    misread = {"images": [{"text": [{"expected": "Sale", "read": "Sole", "passed": False}]}]}
    gens.filter(pk=first.pk).update(status="succeeded", check_status="failed", checks=misread)
    assert queue(dispatch.release_held, generation_id=first.pk) == 1
    dummy_backend().clear()

    # Its text check failed: the fallback side is made, and held (two of the author's are running).
    fallback = queue(on_checks_failed, first.pk)
    assert fallback is not None and fallback.model_key == NANO_KEY and fallback.run_id == first.run_id
    fallback.refresh_from_db()
    assert fallback.status == "queued"
    assert fallback.waiting_for == "Queued behind your other generations: at most 2 of yours run at once."
    assert enqueued_ids() == []
    assert run_generation(fallback.pk) == "skipped"  # not claimable while held

    # The second ends: the fallback is sent.
    gens.filter(pk=second.pk).update(status="succeeded")
    assert queue(dispatch.release_held, generation_id=second.pk) == 1
    assert enqueued_ids() == [str(fallback.pk)]
    fallback.refresh_from_db()
    assert fallback.waiting_for == ""


def test_after_a_restart_held_generations_are_released_in_order(user, queue):
    """`serve` re-sends every queued generation after a restart; a held one is skipped by
    the claim, and its task then releases as many as the limit allows."""
    team(max_in_flight=2)
    suite_run = queue(dispatch.start_suite_run, make_suite(), user, [GPT_KEY], 1)  # 3 generations
    sent = enqueued_ids()
    assert len(sent) == 2
    gens = Generation.objects.filter(run__suite_run=suite_run)
    gens.filter(pk__in=sent).update(status="failed", error_kind="interrupted")  # what the restart does
    held = gens.get(waiting_for__startswith=HELD)
    assert held.run.suite_case == 2
    dummy_backend().clear()

    assert queue(generate.call, str(held.pk)) == "skipped"

    held.refresh_from_db()
    assert (held.status, held.waiting_for) == ("queued", "")
    assert enqueued_ids() == [str(held.pk)]


def test_the_sweeper_releases_held_generations_when_it_expires_a_hung_one(user, queue, settings):
    """A hung generation's task never ends, so it never releases anything: the server's
    sweeper, which fails it after its deadline, sends the next held ones itself."""
    from compare.sweeper import sweep

    team(max_in_flight=1)
    suite_run = queue(dispatch.start_suite_run, make_suite(), user, [GPT_KEY], 1)  # 3 generations
    [hung] = enqueued_ids()
    gens = Generation.objects.filter(run__suite_run=suite_run)
    long_ago = timezone.now() - timedelta(seconds=settings.COMPARE_GENERATION_DEADLINE + 120)
    gens.filter(pk=hung).update(status="running", started_at=long_ago)
    dummy_backend().clear()

    assert queue(sweep) == (1, 1)

    assert gens.get(pk=hung).status == "failed"
    [sent] = enqueued_ids()
    assert gens.get(pk=sent).run.suite_case == 1 and gens.get(pk=sent).waiting_for == ""
    assert gens.filter(waiting_for__startswith=HELD).count() == 1
    assert queue(sweep) == (0, 0)  # nothing more while the one sent is active


def test_another_users_suite_run_is_not_held_behind_mine(user, other_user, queue):
    team(max_in_flight=3)
    queue(dispatch.start_suite_run, make_suite(), user, BOTH, 1)
    dummy_backend().clear()
    theirs = queue(dispatch.start_suite_run, make_suite("Other"), other_user, [GPT_KEY], 1)
    assert len(enqueued_ids()) == 3
    assert not Generation.objects.filter(run__suite_run=theirs, waiting_for__startswith=HELD).exists()


def test_over_the_daily_budget_nothing_is_written(user, queue):
    team(daily_budget_usd=Decimal("1.00"), max_in_flight=0)
    suite = make_suite()
    span = dispatch.estimate_range(suite, BOTH, 10)
    assert span is not None and span.high > Decimal("1.00")
    expected = span.high
    with pytest.raises(dispatch.SuiteRunRefused) as info:
        queue(dispatch.start_suite_run, suite, user, BOTH, 10)
    assert info.value.over_limit
    assert f"This suite run (60 generations) (≈ ${expected:.2f})" in info.value.message
    assert "today's limit of $1.00" in info.value.message
    assert not SuiteRun.objects.exists() and not Run.objects.exists() and not Generation.objects.exists()
    assert enqueued_ids() == []


@pytest.mark.parametrize(
    ("models", "samples", "field", "message"),
    [
        (BOTH, 0, "samples", "from 1 to 20, not 0"),
        (BOTH, 21, "samples", "from 1 to 20, not 21"),
        (BOTH, "x", "samples", "from 1 to 20, not 'x'"),
        (BOTH, True, "samples", "from 1 to 20, not True"),
        ([], 2, "models", "Pick at least one model"),
        (["gpt-image-2", "nope"], 2, "models", "Unknown model 'nope'. Models: gpt-image-2, gemini-3-pro-image"),
        (["gpt-image-1-mini"], 2, "models", "Unknown model 'gpt-image-1-mini'"),  # in the registry, not enabled
        ("gpt-image-2", 2, "models", "Models must be a list"),
    ],
)
def test_bad_models_or_samples_are_refused_and_nothing_is_written(user, queue, models, samples, field, message):
    with pytest.raises(dispatch.SuiteRunRefused) as info:
        queue(dispatch.start_suite_run, make_suite(), user, models, samples)
    assert info.value.field == field and not info.value.over_limit
    assert message in info.value.message
    assert not SuiteRun.objects.exists() and not Run.objects.exists()


def test_a_model_without_a_key_is_refused(user, queue, settings):
    settings.COMPARE_SIMULATOR_ENABLED = False
    with pytest.raises(dispatch.SuiteRunRefused, match=r"Not available right now \(no API key\): GPT Image 2"):
        queue(dispatch.start_suite_run, make_suite(), user, [GPT_KEY], 1)


@pytest.mark.parametrize(
    ("options", "models", "message"),
    [
        ({"quality": "high"}, [NANO_KEY], "Case 1 (“Only”): quality: None of the chosen models supports quality."),
        ({"quality": "ultra"}, BOTH, "Case 1 (“Only”): quality: Select a valid choice."),
        ({"colour": "red"}, BOTH, "Case 1 (“Only”): unknown option colour."),
        ({"references": 2}, BOTH, "cannot have reference images"),
        ({"background": "transparent", "output_format": "jpeg"}, BOTH, "needs PNG or WebP"),
    ],
)
def test_case_options_are_checked_as_the_form_checks_them(user, queue, options, models, message):
    suite = make_suite(cases=[{"title": "Only", "prompt": "a fox", "options": options}])
    with pytest.raises(dispatch.SuiteRunRefused) as info:
        queue(dispatch.start_suite_run, suite, user, models, 1)
    assert message in info.value.message and info.value.field == "cases"
    assert not SuiteRun.objects.exists()


def test_an_option_one_model_ignores_is_kept_as_for_an_ordinary_run(user, queue):
    suite = make_suite(cases=[{"prompt": "a fox", "options": {"quality": "high"}}])
    suite_run = queue(dispatch.start_suite_run, suite, user, BOTH, 1)
    assert Run.objects.get(suite_run=suite_run).options["quality"] == "high"


def test_a_suite_without_cases_is_refused(user, queue):
    with pytest.raises(dispatch.SuiteRunRefused, match="“Empty” has no cases yet"):
        queue(dispatch.start_suite_run, make_suite("Empty", cases=[]), user, BOTH, 1)


def test_too_many_generations_are_refused(user, queue, monkeypatch):
    monkeypatch.setattr(dispatch, "MAX_GENERATIONS", 10)
    with pytest.raises(dispatch.SuiteRunRefused, match="3 cases × 2 models × 2 samples is 12 generations"):
        queue(dispatch.start_suite_run, make_suite(), user, BOTH, 2)


def test_cancel_cancels_every_unfinished_generation_held_ones_included(user, queue):
    team(max_in_flight=4)
    suite_run = queue(dispatch.start_suite_run, make_suite(), user, BOTH, 2)
    gens = Generation.objects.filter(run__suite_run=suite_run)
    finished = gens.filter(waiting_for="")[0]
    Generation.objects.filter(pk=finished.pk).update(status="succeeded")

    assert queue(dispatch.cancel_suite_run, suite_run) == 11

    suite_run.refresh_from_db()
    assert suite_run.cancelled_at is not None
    assert gens.filter(status="cancelled").count() == 11
    assert gens.get(pk=finished.pk).status == "succeeded"
    assert not gens.exclude(waiting_for="").exists()
    # A cancelled suite run frees the person's queue for ordinary comparisons.
    create_run(user, "a fox", models(*BOTH), {})
    assert queue(dispatch.cancel_suite_run, suite_run) == 0


@pytest.mark.django_db(transaction=True)
def test_held_generations_all_run_with_a_backend_that_runs_tasks_inside_enqueue(user, simulator, settings):
    """Django's ImmediateBackend runs each task inside `enqueue`: every release happens
    from within the task that freed the slot, and still each held generation runs once."""
    settings.TASKS = IMMEDIATE_TASKS
    team(max_in_flight=1)
    suite = make_suite("Foxes", cases=[{"prompt": "a fox"}, {"prompt": "a fox in snow"}])
    suite_run = dispatch.start_suite_run(suite, user, [GPT_KEY], 6)  # 12 generations, one at a time
    gens = Generation.objects.filter(run__suite_run=suite_run)
    assert gens.filter(status="succeeded", attempts=1).count() == 12
    assert not gens.exclude(waiting_for="").exists()


def test_every_sample_is_generated_anew_not_copied_from_the_cache(user, queue):
    suite = make_suite(cases=[{"prompt": "a fox", "options": {"regenerate": False}}])
    suite_run = queue(dispatch.start_suite_run, suite, user, BOTH, 3)
    assert [r.options["regenerate"] for r in Run.objects.filter(suite_run=suite_run)] == [True, True, True]

"""A generation its process was running when it stopped (compare/recovery.py): interrupted
with Retry by default; run again by itself, once, where the team allows automatic re-runs.
`serve` applies it at start (resume_unfinished); the Celery profile's redelivery too
(tests/test_celery.py)."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from compare.management.commands.serve import resume_unfinished
from compare.models import Generation, TeamSettings
from compare.recovery import MAX_AUTOMATIC_RERUNS
from tests.factories import GPT, make_run, make_user, wait_for_generations

pytestmark = pytest.mark.django_db(transaction=True)


def crashed_run(user):
    """A run whose process stopped while its generation was being made."""
    started = timezone.now() - timedelta(seconds=20)
    run = make_run(user, status="running", models=[GPT], started_at=started, claim=uuid.uuid4(), cost_usd=None)
    return run, run.generations.get()


def test_by_default_a_running_generation_ends_interrupted_with_retry_and_may_have_been_billed(user):
    _, gen = crashed_run(user)
    assert resume_unfinished() == (0, 1)
    gen.refresh_from_db()
    assert (gen.status, gen.error_kind) == ("failed", "interrupted")
    assert "Press Retry" in gen.error_message
    assert gen.attempt_log[-1]["kind"] == "interrupted" and gen.attempt_log[-1]["billed"] == "unknown"
    assert gen.cost_max_usd == gen.estimated_cost_usd  # the call may have been billed: at most its estimate


def test_where_the_team_allows_it_the_generation_runs_again_by_itself_once(simulator, user):
    TeamSettings.objects.create(pk=1, rerun_interrupted=True)
    run, gen = crashed_run(user)
    old_claim = gen.claim

    assert resume_unfinished() == (1, 0)  # one queued again, none ended
    [gen] = wait_for_generations(run)
    assert gen.status == "succeeded" and gen.images.filter(is_partial=False).count() == 1
    assert gen.claim != old_claim  # claimed anew: the lost call can no longer record a result
    kinds = [(e.get("kind"), e.get("rerun")) for e in gen.attempt_log]
    assert ("interrupted", None) in kinds and (None, "automatic") in kinds
    # The lost call may have been billed: the run's cost says at most two calls' worth.
    assert gen.cost_max_usd is not None and gen.cost_max_usd > (gen.cost_usd or 0)

    # Brought down again while running its re-run: now the user decides.
    Generation.objects.filter(pk=gen.pk).update(status="running", claim=uuid.uuid4(), finished_at=None)
    assert MAX_AUTOMATIC_RERUNS == 1
    assert resume_unfinished() == (0, 1)
    gen.refresh_from_db()
    assert (gen.status, gen.error_kind) == ("failed", "interrupted")


def test_a_generation_no_longer_running_is_left_as_it_is(user):
    TeamSettings.objects.create(pk=1, rerun_interrupted=True)
    _, gen = crashed_run(user)
    Generation.objects.filter(pk=gen.pk).update(status="succeeded", finished_at=timezone.now())
    assert resume_unfinished() == (0, 0)
    gen.refresh_from_db()
    assert gen.status == "succeeded" and gen.attempt_log == []


def test_an_admin_finds_the_setting_in_team_settings(client):
    admin = make_user("admin", is_staff=True, is_superuser=True)
    client.force_login(admin)
    page = client.get("/admin/compare/teamsettings/add/").content.decode()
    assert "Re-run interrupted generations" in page
    assert "can cost twice" in page


def test_a_rerun_that_would_pass_the_daily_limit_waits_for_the_user_instead(user):
    TeamSettings.objects.create(pk=1, rerun_interrupted=True, daily_budget_usd="0.01")
    _, gen = crashed_run(user)  # estimated at $0.05, and the lost call may have been billed
    assert resume_unfinished() == (0, 1)
    gen.refresh_from_db()
    assert (gen.status, gen.error_kind) == ("failed", "interrupted")

"""Pages around the loop: API tokens, full-size image, history pages, three-way votes."""

import html
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from compare import budget
from compare.models import ApiToken, Generation, Run, TeamSettings, Vote
from compare.registry import registry
from compare.runs import create_run
from tests.factories import GPT, make_run, make_user, wait_for_generations

pytestmark = pytest.mark.django_db


def test_tokens_page_shows_a_new_token_once_and_revokes_it(auth_client, user):
    page = auth_client.post("/settings/tokens", {"name": "nightly"}).content.decode()
    shown = re.search(r'<code class="token">(cmp_[^<]+)</code>', page)
    assert shown, "the new token is not shown"
    token = shown.group(1)
    row = ApiToken.objects.get(user=user)
    assert row.digest == ApiToken.hash(token) and token not in row.digest  # only the hash is kept
    again = auth_client.get("/settings/tokens").content.decode()
    assert token not in again and "nightly" in again and row.hint in again
    auth_client.post("/settings/tokens", {"revoke": row.pk})
    row.refresh_from_db()
    assert row.revoked_at is not None and ApiToken.authenticate(token) is None


def test_a_user_cannot_revoke_someone_elses_token(auth_client, other_user):
    row, token = ApiToken.issue(other_user, "theirs")
    auth_client.post("/settings/tokens", {"revoke": row.pk})
    assert ApiToken.authenticate(token) == other_user


def test_history_is_paginated_newest_first(auth_client, user, settings):
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    TeamSettings.objects.update_or_create(pk=1, defaults={"max_in_flight": 0})  # the runs stay queued here
    models = [registry()["gpt-image-2"], registry()["gemini-3-pro-image"]]
    for i in range(settings.COMPARE_RUNS_PER_PAGE + 3):
        create_run(user, f"prompt number {i}", models, {"n": 1})
    first = auth_client.get("/runs/").content.decode()
    assert "prompt number 26" in first and "prompt number 2<" not in first and "Older →" in first
    # Keyset pages: the "Older" link carries the cursor (and the page number it shows).
    older = re.search(r'<a[^>]*href="([^"]+)"[^>]*>Older →</a>', first)
    assert older is not None
    href = html.unescape(older.group(1))
    second = auth_client.get(href if href.startswith("/") else "/runs/" + href).content.decode()
    assert "prompt number 0" in second and "prompt number 26" not in second and "Page 2 of 2" in second
    assert auth_client.get("/runs/?page=banana").status_code == 200  # a bad page number shows page 1


@pytest.mark.django_db(transaction=True)
def test_with_three_models_the_team_picks_the_best(auth_client, simulator, enable_models):
    enable_models("gpt-image-1.5")
    keys = ["gpt-image-2", "gemini-3-pro-image", "gpt-image-1.5"]
    auth_client.post("/", {"prompt": "three-way", "models": keys, "aspect_ratio": "1:1", "resolution": "1K"})
    run = Run.objects.get()
    wait_for_generations(run)
    page = auth_client.get(f"/runs/{run.id}/").content.decode()
    for label in ["GPT Image 2 best", "Nano Banana Pro best", "GPT Image 1.5 best", "All bad", "Tie"]:
        assert re.search(rf">{label}\s*<kbd>", page), label
    response = auth_client.post(f"/runs/{run.id}/vote", {"choice": "gen:2"}, HTTP_HX_REQUEST="true")
    assert "GPT Image 1.5 best: <strong>1</strong>" in response.content.decode()
    assert auth_client.post(f"/runs/{run.id}/vote", {"choice": "gen:7"}).status_code == 302
    assert Vote.objects.values_list("verdict", "winner__position").get() == ("better", 2)


@pytest.mark.django_db(transaction=True)
def test_full_size_view_shows_the_image_at_its_real_size(auth_client, simulator):
    auth_client.post(
        "/",
        {"prompt": "wide", "models": ["gpt-image-2", "gemini-3-pro-image"], "aspect_ratio": "16:9", "resolution": "2K"},
    )
    run = Run.objects.get()
    gpt = next(g for g in wait_for_generations(run) if g.model_key == "gpt-image-2")
    image = gpt.images.get()
    page = auth_client.get(f"/runs/{run.id}/images/{image.sha256}").content.decode()
    assert f'width="{image.width}" height="{image.height}"' in page
    # Fitted by default, real pixels one click away (the run page opens its own viewer).
    assert f"{image.width}×{image.height}" in page and '<a href="#actual">1:1 pixels</a>' in page
    download = auth_client.get(image.url + "?download=1")
    assert "attachment" in download["Content-Disposition"]
    assert auth_client.get(f"/runs/{run.id}/images/{'0' * 64}").status_code == 404
    assert Generation.objects.get(pk=gpt.pk).params_sent["size"] == "2720x1536"


def test_an_admin_edits_the_criteria_and_the_team_sees_them(client, user):
    admin_user = make_user("boss", is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    response = client.post(
        "/admin/compare/criterion/add/",
        {"name": "Brand fit", "description": "On-brand colours and type", "position": 9, "active": "on"},
    )
    assert response.status_code == 302
    run = make_run(user, "p")
    client.force_login(user)
    assert "<legend>Brand fit</legend>" in client.get(run.get_absolute_url()).content.decode()
    assert client.get("/admin/compare/criterion/").status_code == 302  # not for non-staff users


# --- money and time, as they read on the run page and the form -----------------------------


def found(pattern: str, html: str) -> str:
    match = re.search(pattern, html, re.S)
    assert match, pattern
    return re.sub(r"\s+", " ", match.group(1))


def pane_foot(client, run, position: int) -> str:
    gen = run.generations.get(position=position)
    return found(
        r'<footer class="pane-foot">(.*?)</footer>', client.get(f"/runs/{run.id}/generations/{gen.id}").content.decode()
    )


def test_a_pane_shows_cost_as_spent_only_when_it_was(auth_client, user):
    started = timezone.now() - timedelta(seconds=30)
    cases: list[tuple[str, dict, str]] = [
        # (status, fields, what the pane says)
        ("succeeded", {"cost_usd": Decimal("0.0400")}, "$0.0400"),
        ("running", {"cost_usd": None, "started_at": started}, "≈ $0.0500 est."),
        ("failed", {"cost_usd": None, "started_at": started, "error_kind": "server"}, "not charged"),
        ("refused", {"cost_usd": None, "started_at": started, "error_kind": "refused"}, "not charged"),
        ("cancelled", {"cost_usd": None}, "not charged"),  # cancelled while queued
        ("cancelled", {"cost_usd": None, "started_at": started}, "may have been charged (≈ $0.0500)"),
        ("failed", {"cost_usd": None, "started_at": started, "error_kind": "timeout"}, "may have been charged"),
        ("failed", {"cost_usd": Decimal("0.0100"), "started_at": started, "error_kind": "server"}, "$0.0100"),
    ]
    for status, fields, says in cases:
        run = make_run(user, status=status, models=[GPT])
        Generation.objects.filter(run=run).update(**fields)
        foot = pane_foot(auth_client, run, 0)
        assert says in foot, (status, fields, foot)
        if status in ("failed", "refused", "cancelled") and "$0.01" not in says:
            assert "est.</span>" not in foot  # never an estimate dressed as a cost


def test_the_run_shows_its_total_spent_and_what_is_still_estimated(auth_client, user):
    run = make_run(user, status=["succeeded", "running"], cost_usd=None)
    Generation.objects.filter(run=run, position=0).update(cost_usd=Decimal("0.0400"))
    page = auth_client.get(run.get_absolute_url()).content.decode()
    total = found(r'id="run-cost"[^>]*>(.*?)</span>\s*</p>', page)
    assert "$0.0400 spent" in total and "≈ $0.0500 est. while running" in total
    Generation.objects.filter(run=run, position=1).update(status="failed", error_kind="server", started_at=None)
    page = auth_client.get(run.get_absolute_url()).content.decode()
    total = found(r'id="run-cost"[^>]*>(.*?)</span>\s*</p>', page)
    assert "$0.0400 spent" in total and "est." not in total
    blind = make_run(user, status="succeeded", blind=True)
    page = auth_client.get(blind.get_absolute_url()).content.decode()
    assert "spent" not in found(r'id="run-cost"[^>]*>(.*?)</span>', page)  # hidden like each side's


def test_the_daily_limit_counts_what_was_or_may_have_been_charged_and_the_form_shows_what_is_left(
    auth_client, user, other_user
):
    TeamSettings.objects.update_or_create(pk=1, defaults={"daily_budget_usd": Decimal("1.00")})
    started = timezone.now() - timedelta(seconds=30)
    make_run(user, status="succeeded", cost_usd="0.0400")  # 2 × 0.04 spent
    make_run(user, status="running", cost_usd=None, started_at=started)  # 2 × 0.05 reserved
    failed = make_run(user, status="failed", cost_usd=None, started_at=started, error_kind="server")  # not billed
    timed_out = make_run(user, status="failed", cost_usd=None, started_at=started, error_kind="timeout")  # maybe
    make_run(user, status="succeeded", cost_usd="0.0400", days_ago=1)  # yesterday
    make_run(other_user, status="succeeded", cost_usd="0.0400")  # someone else's
    assert budget.spent_today(user) == Decimal("0.2800")  # 0.08 + 0.10 + 0 + 0.10
    python = sum(budget.charge(g).counted for r in (failed, timed_out) for g in r.generations.all())
    assert python == Decimal("0.1000")  # the same rule in Python (panes) and SQL (the limit)
    form = re.sub(r"\s+", " ", auth_client.get("/").content.decode())
    assert "Your daily limit: <strong>$0.72 left</strong> of $1.00" in form
    assert "≈ $0.28 spent or reserved today" in form
    TeamSettings.objects.filter(pk=1).update(daily_budget_usd=Decimal("0.30"))
    summary = auth_client.get("/runs/options", {"models": ["gpt-image-2", "gemini-3-pro-image"]}).content.decode()
    assert "$0.02 left" in summary and "This comparison would pass it" in summary
    TeamSettings.objects.filter(pk=1).update(daily_budget_usd=0)
    assert "Your daily limit" not in auth_client.get("/").content.decode()  # no limit, no line


def test_latency_reads_in_seconds_once_and_a_reused_result_names_its_original(auth_client, user):
    original = make_run(user, status="succeeded", models=[GPT], latency_ms=6123, images=1)
    page = auth_client.get(original.get_absolute_url()).content.decode()
    assert re.search(r'<span class="timer"[^>]*>6\.1 s</span>', page) and " ms<" not in page
    reused = make_run(user, status="succeeded", models=[GPT], latency_ms=3, images=1, cost_usd="0")
    Generation.objects.filter(run=reused).update(cached_from=original.generations.get())
    page = auth_client.get(reused.get_absolute_url()).content.decode()
    assert f'reused from <a href="/runs/{original.id}/">run {str(original.id)[:8]}</a>' in page
    assert re.search(r'<span class="timer" title="How long the original generation took">6\.1 s</span>', page)
    assert "0.0 s" not in page and "no charge" in page

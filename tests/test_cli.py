"""The management commands: ensure_user, issue_token and compare."""

import re
import socket
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from compare.http import reset_shared_client
from compare.models import ApiToken, Generation, Run
from tests.factories import make_user

MODELS = "gpt-image-2,gemini-3-pro-image"
User = get_user_model()


def run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def fails(*args, returncode: int | None = None) -> str:
    with pytest.raises(CommandError) as info:
        run(*args)
    if returncode is not None:
        assert info.value.returncode == returncode
    return str(info.value)


# --- ensure_user ---------------------------------------------------------------------


@pytest.mark.django_db
def test_ensure_user_creates_admin_and_prints_the_password_once(client, caplog, monkeypatch):
    monkeypatch.delenv("COMPARE_ADMIN_PASSWORD", raising=False)
    out, _ = run("ensure_user")
    match = re.search(r"Log in at http://127\.0\.0\.1:\d+ as admin / (\S+)", out)
    assert match, out
    password = match.group(1)
    assert len(password) >= 16
    admin = User.objects.get()
    assert admin.username == "admin" and admin.is_superuser and admin.is_staff
    assert client.login(username="admin", password=password)
    assert password not in caplog.text  # printed once, logged nowhere

    again, _ = run("ensure_user")
    assert password not in again and "exist already" in again
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_ensure_user_with_given_credentials_does_not_echo_the_password(client):
    out, _ = run("ensure_user", "--username", "designer", "--password", "correct horse battery staple")
    assert "correct horse" not in out and "designer" in out
    assert client.login(username="designer", password="correct horse battery staple")
    # Asking again leaves the account (and its password) alone.
    out, _ = run("ensure_user", "--username", "designer", "--password", "another long passphrase")
    assert "exists already" in out
    assert client.login(username="designer", password="correct horse battery staple")


@pytest.mark.django_db
def test_ensure_user_reads_the_password_from_the_environment(client, monkeypatch):
    monkeypatch.setenv("COMPARE_ADMIN_PASSWORD", "scripted set-up passphrase")
    run("ensure_user")
    assert client.login(username="admin", password="scripted set-up passphrase")


@pytest.mark.django_db
def test_ensure_user_refuses_a_weak_password():
    assert "too weak" in fails("ensure_user", "--password", "admin")
    assert not User.objects.exists()


# --- issue_token ---------------------------------------------------------------------


@pytest.fixture
def alice(db):
    return make_user("alice")


@pytest.mark.django_db
def test_issue_token_prints_the_token_alone_on_stdout(alice):
    out, err = run("issue_token", "alice", "--name", "laptop")
    token = out.strip()
    assert token.startswith("cmp_") and "\n" not in token
    assert ApiToken.authenticate(token) == alice
    assert "not shown again" in err and token not in err
    row = ApiToken.objects.get()
    assert (row.name, row.hint) == ("laptop", token[:8])


@pytest.mark.django_db
def test_issue_token_for_an_unknown_user_fails(alice):
    assert "No user named 'bob'" in fails("issue_token", "bob")
    assert "Name the user" in fails("issue_token")


@pytest.mark.django_db
def test_revoke_by_hint_or_whole_token(alice):
    first = run("issue_token", "alice")[0].strip()
    second = run("issue_token", "alice")[0].strip()
    out, _ = run("issue_token", "--revoke", first[:8])
    assert "Revoked" in out and "alice" in out
    assert ApiToken.authenticate(first) is None
    assert ApiToken.authenticate(second) == alice
    run("issue_token", "--revoke", second)
    assert ApiToken.authenticate(second) is None
    assert "No active token" in fails("issue_token", "--revoke", first[:8])


@pytest.mark.django_db
def test_ambiguous_hint_needs_the_user(alice):
    bob = make_user("bob")
    a = ApiToken.issue(alice, "a")[0]
    b = ApiToken.issue(bob, "b")[0]
    ApiToken.objects.filter(pk=b.pk).update(hint=a.hint)  # a 4-character collision, forced
    assert "name the user" in fails("issue_token", "--revoke", a.hint)
    run("issue_token", "bob", "--revoke", a.hint)
    assert ApiToken.objects.get(pk=b.pk).revoked_at is not None
    assert ApiToken.objects.get(pk=a.pk).revoked_at is None


@pytest.mark.django_db
def test_list_tokens(alice):
    token = run("issue_token", "alice", "--name", "ci")[0].strip()
    run("issue_token", "--revoke", token[:8])
    out, _ = run("issue_token", "alice", "--list")
    assert token[:8] in out and "ci" in out and "revoked" in out and token not in out


# --- compare: input and user ------------------------------------------------------------


@pytest.fixture
def admin(db):
    return make_user("admin", is_staff=True, is_superuser=True)


@pytest.mark.django_db
def test_compare_without_any_user_says_how_to_make_one(no_task_execution):
    assert "ensure_user" in fails("compare", "a fox", "--models", MODELS, returncode=2)
    assert not Run.objects.exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--models", "gpt-image-2"], "--models: Pick at least two models"),
        (["--models", "gpt-image-2,nope"], "--models: Select a valid choice. nope"),
        (["--models", MODELS, "--size", "huge"], "--size: Write the size as WIDTHxHEIGHT"),
        (["--models", MODELS, "--n", "9"], "--n: Ensure this value is less than or equal to 4."),
        (["--models", MODELS, "--n", "two"], "--n: Enter a whole number."),
        (["--models", MODELS, "--aspect", "7:3"], "--aspect: Select a valid choice."),
        (
            ["--models", MODELS, "--background", "transparent", "--format", "jpeg"],
            "--background: A transparent background needs PNG",
        ),
    ],
)
def test_compare_reports_invalid_input_readably(admin, no_task_execution, args, expected):
    message = fails("compare", "a fox", *args, returncode=2)
    assert message.startswith("The comparison is not valid:")
    assert expected in message
    assert not Run.objects.exists()


def test_compare_unknown_user(admin, no_task_execution):
    assert "No active user named 'zed'" in fails("compare", "a fox", "--models", MODELS, "--user", "zed")


def test_compare_no_wait_prints_the_run_and_leaves_it_queued(admin, alice, no_task_execution):
    out, _ = run(
        "compare",
        "a fox",
        "--models",
        MODELS,
        "--aspect",
        "16:9",
        "--resolution",
        "2K",
        "--quality",
        "high",
        "--format",
        "webp",
        "--background",
        "opaque",
        "--n",
        "2",
        "--user",
        "alice",
        "--no-wait",
    )
    the_run = Run.objects.get()
    assert out.splitlines() == [str(the_run.id), f"http://127.0.0.1:8000/runs/{the_run.id}/"]
    assert the_run.author == alice
    assert the_run.options == {
        "aspect_ratio": "16:9",
        "resolution": "2K",
        "size": "",
        "quality": "high",
        "output_format": "webp",
        "background": "opaque",
        "n": 2,
        "partial_images": 0,
        "grounding": False,
        "references": 0,
        "mask": False,
        "output_compression": None,
        "moderation": "auto",
        "fallback_model": None,
        "fallback_quality": None,
        "fallback_on_text_check": False,
        "regenerate": False,
    }
    assert [g.status for g in the_run.ordered_generations()] == ["queued", "queued"]


def test_compare_defaults_to_the_registry_default_models(admin, no_task_execution):
    run("compare", "a fox", "--no-wait")
    assert [g.model_key for g in Run.objects.get().ordered_generations()] == MODELS.split(",")


# --- compare: real runs through the simulator ----------------------------------------------


def table_rows(out: str) -> dict[str, list[str]]:
    """{model: [status, seconds, cost, first result]} from the printed table."""
    lines = out.splitlines()
    assert lines[0].split() == ["MODEL", "STATUS", "SECONDS", "COST", "(USD)", "RESULT"]
    rows = {}
    for line in lines[1:]:
        if line and not line.startswith((" ", "Run:")):
            model, status, seconds, cost, result = line.split(None, 4)
            rows[model] = [status, seconds, cost, result]
    return rows


@pytest.mark.django_db(transaction=True)
def test_compare_runs_every_model_and_prints_the_table(admin, settings, simulator):
    out, err = run("compare", 'A poster that says "HELLO"', "--models", MODELS, "--format", "webp", "--n", "2")
    rows = table_rows(out)
    assert set(rows) == set(MODELS.split(","))
    media = Path(settings.MEDIA_ROOT).resolve()
    for _model, (status, seconds, cost, first) in rows.items():
        assert status == "succeeded"
        float(seconds)
        assert re.fullmatch(r"~?\d+\.\d{4}", cost)
        assert Path(first).is_file() and Path(first).resolve().is_relative_to(media)
    # Two images per model: the second path sits on its own continuation line.
    paths = re.findall(r"(/\S+\.(?:png|webp|jpeg))$", out, re.MULTILINE)
    assert len(paths) == 4 and all(Path(p).is_file() for p in paths)
    assert Path(rows["gpt-image-2"][3]).suffix == ".webp"
    # Progress went to stderr, one line per model and state; the run is an ordinary Run.
    assert re.search(r"gpt-image-2\s+succeeded\s+\d+\.\ds", err)
    assert re.search(r"gemini-3-pro-image\s+succeeded\s+\d+\.\ds", err)
    the_run = Run.objects.get()
    assert the_run.author == admin and the_run.status == "done"
    assert f"Run: http://127.0.0.1:8000/runs/{the_run.id}/" in out


@pytest.mark.django_db(transaction=True)
def test_compare_exits_1_when_a_model_refuses(admin, simulator):
    out = StringIO()
    with pytest.raises(CommandError) as info:
        call_command("compare", "a cat [[fault:refusal@gemini]]", "--models", MODELS, stdout=out, stderr=StringIO())
    assert info.value.returncode == 1
    assert "1 of 2 generations did not succeed" in str(info.value)
    rows = table_rows(out.getvalue())
    assert rows["gpt-image-2"][0] == "succeeded"
    assert rows["gemini-3-pro-image"][0] == "refused"
    assert rows["gemini-3-pro-image"][3].startswith("refused: ")
    assert Generation.objects.get(model_key="gemini-3-pro-image").status == "refused"


@pytest.mark.django_db(transaction=True)
def test_compare_serves_its_own_simulator_when_none_is_running(admin, settings):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    settings.COMPARE_SIMULATOR_URL = f"http://127.0.0.1:{closed}/sim"
    reset_shared_client()
    out, err = run("compare", "a lighthouse", "--models", MODELS)
    assert "using one in this process" in err
    assert {row[0] for row in table_rows(out).values()} == {"succeeded"}
    assert all(g.status == "succeeded" for g in Generation.objects.all())


@pytest.mark.django_db(transaction=True)
def test_compare_stops_its_own_simulator_cleanly(admin, settings, monkeypatch, caplog, capfd):
    """The private waitress is shut down in order: no "Bad file descriptor" from its loop or
    its workers on stderr, and none of its threads outlives the command."""
    import logging
    import threading

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    settings.COMPARE_SIMULATOR_URL = f"http://127.0.0.1:{closed}/sim"
    crashed: list[str] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: crashed.append(f"{args.thread}: {args.exc_value!r}"))
    caplog.set_level(logging.WARNING, logger="waitress")
    before = set(threading.enumerate())
    for _ in range(3):
        reset_shared_client()
        out, err = run("compare", "a lighthouse", "--models", MODELS)
        assert "using one in this process" in err
        assert {row[0] for row in table_rows(out).values()} == {"succeeded"}
        left = [t.name for t in set(threading.enumerate()) - before if t.name.startswith(("waitress", "compare-sim"))]
        assert left == [], f"the simulator's threads outlived the command: {left}"
    assert crashed == []
    assert [r.getMessage() for r in caplog.records if r.name.startswith("waitress")] == []
    assert "Bad file descriptor" not in capfd.readouterr().err

"""The run page's one live update (compare/live.py, views/run.py `run_updates`): the page
sends the stamps of what it shows, the server answers "nothing new" with at most one
query, or exactly the parts that changed, and says when to stop. GET requests write
nothing. The browser side is tests/e2e/test_live.py."""

import re
from datetime import timedelta
from html import unescape
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from compare import live, tasks
from compare.models import Generation, Note, Vote
from tests.factories import GPT, NANO, make_run, png, succeed

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_memory(monkeypatch):
    """Each test starts with nothing remembered; what is remembered is trusted for a minute
    (not a second), so query counts do not depend on how fast this machine is."""
    live.forget()
    monkeypatch.setattr(live, "RECHECK", 60.0)
    monkeypatch.setattr(live, "SETTLE", 0.0)  # the moment after a write: tested on its own below


class Page:
    """A run page as the browser holds it: its stamps, updated by every answer it swaps in."""

    def __init__(self, client, url: str):
        self.client = client
        html = client.get(url).content.decode()
        self.html = html
        found = re.search(r'id="live-poll"[^>]*hx-get="([^"]+)"', html)
        # A finished run's page does not poll; asked anyway (with the session), it says "stop".
        arena = "&arena=1" if "arena=1" in url else ""
        self.poll_url = unescape(found.group(1)) if found else url.split("?")[0] + "updates?x=" + arena
        self.stamps = stamps_of(html)

    def poll(self):
        response = self.client.get(self.poll_url + "&" + urlencode({"since": self.since}))
        self.stamps.update(stamps_of(response.content.decode()))
        return response

    @property
    def since(self) -> str:
        return ",".join(f"{key}:{digest}" for key, digest in self.stamps.items())


def stamps_of(html: str) -> dict[str, str]:
    return dict(stamp.split(":", 1) for stamp in re.findall(r'data-live="([^"]+)"', html))


def out_of_band(html: str) -> list[str]:
    """The ids of the parts an answer swaps out of band."""
    return re.findall(r'<\w+ [^>]*id="([^"]+)"[^>]*hx-swap-oob="true"', html)


def test_the_page_has_one_poll_and_its_parts_carry_stamps(auth_client, user):
    run = make_run(user, status="running", cost_usd=None)
    page = Page(auth_client, run.get_absolute_url())
    assert page.html.count('hx-trigger="every') == 1  # no pane, ledger or verdict polls on its own
    assert set(page.stamps) == {"p0", "p1", "n", "v", "l", "a", "c"}


def test_nothing_new_is_answered_with_at_most_one_query_and_usually_none(auth_client, user, django_assert_num_queries):
    run = make_run(user, status="running", cost_usd=None)
    page = Page(auth_client, run.get_absolute_url())
    with django_assert_num_queries(0):  # the page's own read is remembered; no session is read
        assert page.poll().status_code == 204
    live.forget()  # as after a second without news (or in another web process)
    with django_assert_num_queries(1):
        assert page.poll().status_code == 204


def test_a_finished_generation_reaches_the_page_with_the_verdict_ledger_and_actions(auth_client, user):
    run = make_run(user, status="running", cost_usd=None, started_at=timezone.now())
    page = Page(auth_client, run.get_absolute_url())
    assert "Cancel the run" in page.html and "Voting opens when every model has finished." in page.html
    gpt, nano = run.generations.order_by("position")
    succeed(gpt, png())  # through the model's save: this process hears of it at once
    update = page.poll()
    assert update.status_code == 200
    html = update.content.decode()
    assert out_of_band(html) == [f"pane-{gpt.id}", "votes", "ledger-slot", "run-cost"]
    assert gpt.images.get().url in html and "Cancel the run" not in html
    assert page.poll().status_code == 204  # the page is up to date
    Generation.objects.filter(pk=nano.pk).update(status="failed", error_kind="server", finished_at=timezone.now())
    live.changed(run.id)  # as tasks.py says after its update
    last = page.poll()
    html = last.content.decode()
    assert last.status_code == 286  # the run is finished: htmx swaps this and stops polling
    assert set(out_of_band(html)) == {f"pane-{nano.id}", "votes", "ledger-slot", "run-actions", "run-cost"}
    assert "Cancel the run" not in html and "The provider had an internal error." in html
    assert 'name="choice"' in html  # voting is open
    assert page.poll().status_code == 286 and page.poll().content == b""


def test_cancel_goes_when_every_side_has_finished_not_when_their_checks_have(auth_client, user):
    # Both results shown, the text check still reading them: "Cancel the run" had stayed
    # until the checks ended, offering to cancel a run with nothing left to cancel.
    run = make_run(user, status="running", cost_usd=None, started_at=timezone.now())
    page = Page(auth_client, run.get_absolute_url())
    for gen in run.generations.all():
        succeed(gen, png())
    Generation.objects.filter(run=run).update(check_status=Generation.CheckStatus.PENDING)
    live.changed(run.id)
    update = page.poll()
    html = update.content.decode()
    assert update.status_code == 200  # the checks are still to land: the page keeps polling
    assert "run-actions" in out_of_band(html) and "Cancel the run" not in html
    Generation.objects.filter(run=run).update(check_status=Generation.CheckStatus.PASSED)
    live.changed(run.id)
    last = page.poll()
    assert last.status_code == 286 and "run-actions" not in out_of_band(last.content.decode())


def test_a_poll_answer_reads_nothing_the_answer_does_not_draw(auth_client, user):
    run = make_run(user, status="running", cost_usd=None, started_at=timezone.now())
    page = Page(auth_client, run.get_absolute_url())
    succeed(run.generations.get(position=0), png())
    with CaptureQueriesContext(connection) as queries:
        assert page.poll().status_code == 200
    read = " ".join(query["sql"] for query in queries.captured_queries)
    assert "compare_run_tags" not in read  # the head's tags
    assert 'WHERE "compare_run"."parent_id" =' not in read  # and its forks


def test_for_a_moment_after_a_write_every_poll_reads_the_run_again(
    auth_client, user, monkeypatch, django_assert_num_queries
):
    run = make_run(user, status="running", cost_usd=None)
    page = Page(auth_client, run.get_absolute_url())
    monkeypatch.setattr(live, "SETTLE", 60.0)
    live.changed(run.id)  # its transaction may still be open: what is remembered is not trusted
    for _ in range(3):
        with django_assert_num_queries(1):
            assert page.poll().status_code == 204
    monkeypatch.setattr(live, "SETTLE", 0.0)  # long since committed
    with django_assert_num_queries(0):
        assert page.poll().status_code == 204


def test_a_write_of_another_process_is_seen_within_the_recheck_interval(auth_client, user, monkeypatch):
    run = make_run(user, status="running", cost_usd=None)
    page = Page(auth_client, run.get_absolute_url())
    # A worker process finished a side: this process was not told.
    Generation.objects.filter(run=run, position=0).update(status="refused", finished_at=timezone.now())
    assert page.poll().status_code == 204  # remembered, and trusted for RECHECK seconds
    monkeypatch.setattr(live, "RECHECK", 0.0)  # …which have passed
    update = page.poll()
    assert update.status_code == 200 and "refused this prompt" in update.content.decode()


@pytest.mark.parametrize("case", ["running", "finished", "blind", "blind-running", "arena", "notes-and-votes"])
def test_the_stamps_of_a_drawn_page_match_the_server_so_nothing_is_drawn_twice(auth_client, user, other_user, case):
    blind = case.startswith("blind")
    status = "running" if case.endswith("running") else "succeeded"
    run = make_run(user, status=status, blind=blind, images=0 if status == "running" else 1)
    if case == "notes-and-votes":
        Note.objects.create(run=run, author=other_user, body="the left one", generation=run.generations.first())
        Vote.objects.create(run=run, user=other_user, verdict="tie")
    url = run.get_absolute_url() + ("?arena=1" if case == "arena" else "")
    if case == "arena":
        run.author = other_user
        run.save()
    page = Page(auth_client, url)
    assert page.poll().status_code == (204 if status == "running" else 286)
    live.forget()
    assert page.poll().status_code == (204 if status == "running" else 286)


def test_a_new_side_reloads_the_page(auth_client, user):
    run = make_run(user, status="running", models=[GPT, NANO])
    page = Page(auth_client, run.get_absolute_url())
    Generation.objects.create(run=run, position=2, model_key=GPT[0], model_label=GPT[1], model_id=GPT[2])
    response = page.poll()
    assert response.status_code == 204 and response["HX-Refresh"] == "true"


def test_a_poll_key_is_for_one_run_and_drawing_needs_the_session(auth_client, user, other_user):
    client = Client(headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/runs/"})  # htmx, no session
    run = make_run(user, status="running")
    other = make_run(user, status="running")
    page = Page(auth_client, run.get_absolute_url())
    key = page.poll_url.split("key=")[1].split("&")[0]
    # Without a session, the key answers "nothing new" and nothing more.
    assert client.get(page.poll_url + "&" + urlencode({"since": page.since})).status_code == 204
    changed = client.get(page.poll_url + "&since=")  # the page would need drawing: log in first
    assert changed.status_code == 200 and changed["HX-Redirect"] == "/login/?next=%2Fruns%2F"
    assert changed.content == b""
    # The key of one run does not open another.
    wrong = client.get(f"/runs/{other.id}/updates?key={key}&since=")
    assert "HX-Redirect" in wrong and wrong.content == b""
    # Someone else's session cannot draw with this key either.
    client.force_login(other_user)
    assert "HX-Redirect" in client.get(page.poll_url + "&since=")
    # Outside htmx it is a page like any other: to the login.
    plain = Client().get(page.poll_url + "&since=")
    assert plain.status_code == 302 and plain["Location"].startswith("/login/")


def test_get_requests_write_nothing_not_even_an_overdue_generation(auth_client, user, settings):
    settings.COMPARE_GENERATION_DEADLINE = 5
    run = make_run(user, "stuck", "running", [GPT], started_at=timezone.now() - timedelta(minutes=5), cost_usd=None)
    gen = run.generations.get()
    page = Page(auth_client, run.get_absolute_url())
    with CaptureQueriesContext(connection) as queries:
        for url in (
            run.get_absolute_url(),
            f"/runs/{run.id}/generations/{gen.id}",
            f"/runs/{run.id}/parts/votes",
            f"/runs/{run.id}/parts/notes",
        ):
            assert auth_client.get(url).status_code == 200
        page.poll()
    writes = [q["sql"] for q in queries if not q["sql"].lstrip().upper().startswith(("SELECT", "SAVEPOINT", "RELEASE"))]
    assert writes == []
    assert Generation.objects.get(pk=gen.pk).status == "running"
    # The sweeper (compare/management/commands/serve.py) ends it; the page learns it on its next poll.
    assert tasks.expire_overdue() == 1
    update = page.poll()
    assert update.status_code == 286
    assert "The provider took too long to answer." in update.content.decode()


def test_a_finished_run_has_no_poll_at_all(auth_client, user):
    run = make_run(user, status=["succeeded", "cancelled"], images=1)
    html = auth_client.get(run.get_absolute_url()).content.decode()
    assert 'id="live-poll"' in html and 'hx-trigger="every' not in html


def test_the_poll_query_is_compiled_once_and_answers_what_django_would(user, other_user):
    """compare/precompiled.py: the SQL compiled with stand-ins, run with this run and viewer,
    gives exactly the rows Django's own compilation of the same query gives."""
    mine = make_run(user, status=["succeeded", "running"])
    Vote.objects.create(run=mine, user=other_user, verdict=Vote.Verdict.TIE)
    make_run(other_user)  # another run: never in the answer
    for viewer in (user, other_user):
        sql, params = live._query(mine.pk, viewer.pk).query.get_compiler(using=connection.alias).as_sql()
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            expected = cursor.fetchall()
        assert len(expected) == 2 and sorted(live._rows(mine.pk, viewer.pk)) == sorted(expected)
    assert live._ROWS._compiled[connection.alias] is not None  # compiled once, not each time

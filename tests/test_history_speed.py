"""The history stays fast: the run's stored status (`Run.state`) follows every write path,
keyset pages, cached filter choices, a page's queries constant in the number of runs, and
small lazy thumbnails for the list."""

import io
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Case, CharField, Exists, OuterRef, Value, When
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from PIL import Image as PILImage

from compare import history, runs, tasks
from compare.management.commands import serve
from compare.models import Generation, Note, Run, Tag, Vote
from tests.factories import DUMMY_TASKS, MINI, add_image, image_bytes, make_run, new_run, submit_and_wait

pytestmark = pytest.mark.django_db


# --- the stored status equals the rule it replaced -----------------------------------------


def computed_status(run: Run) -> str:
    """The test oracle: the status as the history computed it before it was stored (a CASE
    over EXISTS subqueries on the generations), evaluated now."""
    gens = Generation.objects.filter(run=OuterRef("pk"))
    rule = Case(
        When(~Exists(gens), then=Value("empty")),
        When(Exists(gens.filter(status__in=["queued", "running"])), then=Value("running")),
        When(~Exists(gens.exclude(status="succeeded")), then=Value("done")),
        When(Exists(gens.filter(status="succeeded")), then=Value("partial")),
        default=Value("failed"),
        output_field=CharField(),
    )
    return Run.objects.annotate(old=rule).values_list("old", flat=True).get(pk=run.pk)


def stored(run: Run) -> str:
    return Run.objects.values_list("state", flat=True).get(pk=run.pk)


def follows(run: Run, expected: str) -> None:
    assert stored(run) == computed_status(run) == expected


def test_every_transition_through_the_app_keeps_the_stored_status(user, settings):
    settings.TASKS = DUMMY_TASKS  # the tasks stay queued: each step below is one write path
    run = new_run(user, "a red fox")
    follows(run, "running")  # created: both sides queued
    gpt, nano = run.ordered_generations()

    token = tasks._claim(gpt.pk)  # queued → running (the task's claim)
    assert token is not None
    follows(run, "running")
    gpt.refresh_from_db()
    assert tasks._finish(gpt, Generation.Status.SUCCEEDED)  # running → succeeded
    follows(run, "running")  # the other side still queued

    assert runs.cancel_generations(run.generations.all()) == 1  # queued → cancelled
    follows(run, "partial")

    nano.refresh_from_db()
    assert runs.retry_generation(nano, user)  # cancelled → queued again
    follows(run, "running")

    tasks._claim(nano.pk)
    nano.refresh_from_db()
    assert tasks._finish(nano, Generation.Status.REFUSED, error_kind="refusal")  # running → refused
    follows(run, "partial")

    nano.refresh_from_db()
    assert runs.retry_generation(nano, user)
    tasks._claim(nano.pk)
    nano.refresh_from_db()
    assert tasks._finish(nano, Generation.Status.SUCCEEDED)
    follows(run, "done")


def test_a_failed_side_and_its_fallback(user, settings):
    settings.TASKS = DUMMY_TASKS
    run = make_run(user, "with a backup", ("succeeded", "failed"), options={"fallback_model": "gpt-image-2"})
    follows(run, "partial")
    fallback = tasks.start_fallback(run.generations.get(position=1))  # a new side, queued
    assert fallback is not None
    follows(run, "running")
    Generation.objects.filter(pk=fallback.pk).delete()  # a side removed (admin)
    follows(run, "partial")


def test_the_deadline_sweeper_and_crash_recovery(user, settings):
    settings.TASKS = DUMMY_TASKS
    long_ago = timezone.now() - timedelta(seconds=settings.COMPARE_GENERATION_DEADLINE + 3600)
    hung = make_run(user, "hung", ("running", "succeeded"), started_at=long_ago)
    crashed = make_run(user, "crashed", ("running", "running"), started_at=timezone.now())
    follows(hung, "running")
    assert tasks.expire_overdue() == 1  # only the hung side is past its deadline
    follows(hung, "partial")
    follows(crashed, "running")
    assert serve.resume_unfinished() == (0, 2)  # the server restarts: running sides are interrupted
    follows(crashed, "failed")


@pytest.mark.parametrize(
    "statuses",
    [("succeeded", "succeeded"), ("failed", "cancelled"), ("queued", "refused"), ("succeeded", "refused")],
)
def test_rows_written_directly_keep_the_stored_status(user, statuses):
    run = make_run(user, "direct", statuses)
    follows(run, computed_status(run))
    gen = run.generations.get(position=0)
    gen.status = Generation.Status.FAILED
    gen.save()  # a model save (the admin, a script): the signal refreshes the run
    follows(run, computed_status(run))
    assert Run.objects.create(author=user, prompt="no sides").state == "empty"


def test_a_whole_run_through_the_simulator_ends_done(auth_client, simulator):
    run, gens = submit_and_wait(auth_client, "a lighthouse at dusk")
    assert {g.status for g in gens} == {"succeeded"}
    follows(run, "done")
    run, gens = submit_and_wait(auth_client, "poster [[fault:prompt_blocked@gemini]]")
    follows(run, "partial")
    assert re.search(r'class="badge status-partial">partial<', auth_client.get("/runs/").content.decode())


# --- keyset pages ------------------------------------------------------------------------------


def prompts(html: str) -> list[str]:
    return re.findall(r'<p class="prompt"><a href="[^"]+">([^<]*)</a></p>', html)


def link(html: str, label: str) -> str | None:
    found = re.search(rf'<a href="(\?[^"]*)" hx-get="[^"]+">{label}</a>', html)
    return found.group(1).replace("&amp;", "&") if found else None


def walk(client, query: str, forward: str, back: str) -> tuple[list[list[str]], list[list[str]]]:
    """Every page from the first by the forward links, then back again by the back links."""
    html = client.get(f"/runs/?{query}").content.decode()
    pages = [prompts(html)]
    while nxt := link(html, forward):
        html = client.get(f"/runs/{nxt}").content.decode()
        pages.append(prompts(html))
    backwards = [prompts(html)]
    while prev := link(html, back):
        html = client.get(f"/runs/{prev}").content.decode()
        backwards.append(prompts(html))
    return pages, backwards[::-1]


@pytest.mark.parametrize(
    ("sort", "forward", "back"),
    [("newest", "Older →", "← Newer"), ("oldest", "Next →", "← Previous"), ("discussed", "Next →", "← Previous")],
)
def test_keyset_pages_cover_every_run_once_in_order_and_back(
    auth_client, user, other_user, settings, sort, forward, back
):
    settings.COMPARE_RUNS_PER_PAGE = 3
    same_time = timezone.now() - timedelta(hours=1)
    for i in range(8):  # five share one creation time: the id breaks the tie
        run = make_run(user, f"run {i}", created_at=same_time if i < 5 else same_time - timedelta(days=i))
        for _ in range(i % 3):
            Note.objects.create(run=run, author=other_user, body="hm")
    notes = {r.pk: r.notes.count() for r in Run.objects.all()}
    key = {
        "newest": lambda r: (r.created_at, r.pk),
        "oldest": lambda r: (r.created_at, r.pk),
        "discussed": lambda r: (notes[r.pk], r.created_at, r.pk),
    }[sort]
    expected = [r.prompt for r in sorted(Run.objects.all(), key=key, reverse=sort != "oldest")]
    pages, back_again = walk(auth_client, f"sort={sort}", forward, back)
    assert [p for page in pages for p in page] == expected
    assert [len(page) for page in pages] == [3, 3, 2]
    assert back_again == pages


def test_page_links_keep_the_filters_and_number_the_pages(auth_client, user, settings):
    settings.COMPARE_RUNS_PER_PAGE = 2
    for i in range(5):
        make_run(user, f"cat {i}", days_ago=i, tags=["pets"])
        make_run(user, f"dog {i}", days_ago=i)
    html = auth_client.get("/runs/?q=cat&tag=pets&status=done").content.decode()
    assert "Page 1 of 3" in html and prompts(html) == ["cat 0", "cat 1"]
    older = link(html, "Older →")
    assert older and "q=cat" in older and "tag=pets" in older and "status=done" in older and "after=" in older
    html = auth_client.get(f"/runs/{older}").content.decode()
    assert "Page 2 of 3" in html and prompts(html) == ["cat 2", "cat 3"]
    assert "5 comparisons" in html  # the count is of every matching run, on every page
    # Exports take every matching run, whatever page they are linked from.
    csv_link = re.search(r'href="(/runs/export\.csv[^"]*)"', html)
    assert csv_link and "after=" not in csv_link.group(1) and "page=" not in csv_link.group(1)


@pytest.mark.parametrize(
    "cursor",
    [
        "after=garbage",
        "after=1_2",
        "before=-5_00000000000000000000000000000000",
        "after=99999999999999999999_ab",
        "after=%00",
        "before=1_2_3_4",
    ],
)
def test_a_bad_cursor_shows_the_first_page_with_a_note(auth_client, user, cursor):
    make_run(user, "only one")
    response = auth_client.get(f"/runs/?{cursor}")
    html = response.content.decode()
    assert response.status_code == 200
    assert prompts(html) == ["only one"] and "That page link is not valid" in html


def test_a_cursor_past_the_last_run_starts_again(auth_client, user, settings):
    settings.COMPARE_RUNS_PER_PAGE = 1
    make_run(user, "newer")
    make_run(user, "older", days_ago=1)
    older = link(auth_client.get("/runs/").content.decode(), "Older →")
    assert older
    Run.objects.filter(prompt="older").delete()
    html = auth_client.get(f"/runs/{older}").content.decode()
    assert prompts(html) == ["newer"] and "That page link is not valid" in html


# --- queries and filter choices -------------------------------------------------------------------


def add_runs(author, voter, n: int) -> None:
    for i in range(n):
        run = make_run(
            author,
            f"run {i}",
            ("succeeded", "failed") if i % 3 else "succeeded",
            blind=i % 2 == 0,
            tags=[f"t{i % 4}"],
            images=1 if i % 5 == 0 else 0,
        )
        Vote.objects.create(run=run, user=voter, verdict=Vote.Verdict.TIE)
        Note.objects.create(run=run, author=voter, body="n")


def queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_a_page_takes_at_most_six_queries_at_5_and_at_50_runs(auth_client, user, other_user, settings):
    settings.COMPARE_RUNS_PER_PAGE = 4
    add_runs(other_user, user, 5)
    urls = ["/runs/", "/runs/?model=gpt-image-2&status=partial", "/runs/?sort=discussed&tag=t1"]
    queries(auth_client, "/runs/")  # the filters' choices are read once, then cached
    at_5 = [queries(auth_client, url) for url in urls]
    second = link(auth_client.get("/runs/").content.decode(), "Older →")
    assert second
    at_5.append(queries(auth_client, f"/runs/{second}"))
    add_runs(other_user, user, 45)
    at_50 = [queries(auth_client, url) for url in urls] + [queries(auth_client, f"/runs/{second}")]
    assert at_50 == at_5 and max(at_50) <= 6  # the session and the user included


def test_filter_choices_come_from_the_registry_and_follow_new_authors_tags_and_models(auth_client, user, other_user):
    html = auth_client.get("/runs/").content.decode()
    assert '<option value="gpt-image-2">GPT Image 2</option>' in html  # an enabled model, before any run
    assert '<option value="lee">' not in html and '<option value="pets">' not in html
    make_run(other_user, "retired", models=(MINI, ("old-model", "Old Model", "old-1")), tags=["pets"])
    html = auth_client.get("/runs/").content.decode()
    assert '<option value="lee">lee</option>' in html and '<option value="pets">pets</option>' in html
    assert '<option value="old-model">Old Model</option>' in html  # a model only the history knows
    assert auth_client.get("/runs/?model=old-model").status_code == 200
    assert prompts(auth_client.get("/runs/?model=old-model").content.decode()) == ["retired"]
    Tag.objects.filter(name="pets").delete()
    assert '<option value="pets">' not in auth_client.get("/runs/").content.decode()


# --- small thumbnails, lazy below the fold ----------------------------------------------------------


def test_list_thumbnails_are_small_and_lazy_below_the_first_rows(auth_client, user, settings):
    settings.COMPARE_RUNS_PER_PAGE = 8
    for i in range(6):
        run = make_run(user, f"photo {i}", days_ago=i / 10)
        for gen in run.generations.all():
            add_image(gen, image_bytes(size=(1024, 768)))
    html = auth_client.get("/runs/").content.decode()
    tags = re.findall(r"<img [^>]*>", html.split('<ol class="history">')[1])
    assert len(tags) == 12
    eager = [t for t in tags if 'loading="lazy"' not in t]
    assert len(eager) == 8  # the first four rows' two sides
    assert all(re.search(r'width="\d+" height="\d+"', t) for t in tags)
    src = re.search(r'src="([^"]+)"', tags[0])
    assert src and src.group(1).endswith("?size=list")
    response = auth_client.get(src.group(1))
    assert response.status_code == 200 and response["Content-Type"] == "image/webp"
    with PILImage.open(io.BytesIO(b"".join(response))) as img:
        assert max(img.size) == 240


def test_blind_list_thumbnails_are_small_display_copies(auth_client, user, other_user):
    run = make_run(other_user, "blind one", blind=True)
    for gen in run.generations.all():
        add_image(gen, image_bytes(size=(640, 480)))
    html = auth_client.get("/runs/").content.decode()
    srcs = re.findall(r'<img src="([^"]+)" alt="Side [AB]"', html)
    assert len(srcs) == 2 and all("/sides/" in s and s.endswith("size=list") for s in srcs)
    response = auth_client.get(srcs[0].replace("&amp;", "&"))
    assert response.status_code == 200 and response["Content-Type"] == "image/webp"
    with PILImage.open(io.BytesIO(response.content)) as img:
        assert img.size == (240, 180)


def test_a_long_history_is_counted_up_to_a_limit(auth_client, user, settings, monkeypatch):
    monkeypatch.setattr(history, "COUNT_UP_TO", 3)
    settings.COMPARE_RUNS_PER_PAGE = 2
    for i in range(5):
        make_run(user, f"run {i}", days_ago=i)
    html = auth_client.get("/runs/").content.decode()
    assert "More than 3 comparisons" in html and "Page 1<" in html and " of " not in html.split('class="pager"')[1]
    html = auth_client.get(
        "/runs/?date_from=" + (timezone.localdate() - timedelta(days=2)).isoformat()
    ).content.decode()
    assert "3 comparisons" in html and "More than" not in html  # at the limit: still exact


# --- the migration -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_computes_the_state_of_existing_runs_and_goes_back():
    from tests.test_migrations import latest, migrate

    try:
        old = migrate([("compare", "0011_reference_suite")])
        User, OldRun, OldGeneration = (
            old.get_model(*name) for name in [("auth", "User"), ("compare", "Run"), ("compare", "Generation")]
        )
        author = User.objects.create(username="dana")
        cases = {
            "empty": [],
            "running": ["succeeded", "queued"],
            "done": ["succeeded", "succeeded"],
            "partial": ["refused", "succeeded"],
            "failed": ["failed", "cancelled"],
        }
        for expected, statuses in cases.items():
            run = OldRun.objects.create(author=author, prompt=expected)
            for position, status in enumerate(statuses):
                OldGeneration.objects.create(run=run, position=position, model_key=f"m{position}", status=status)
        new = migrate(latest())
        NewRun = new.get_model("compare", "Run")
        assert dict(NewRun.objects.values_list("prompt", "state")) == {name: name for name in cases}
        back = migrate([("compare", "0011_reference_suite")])  # the way back drops the column
        assert back.get_model("compare", "Run").objects.count() == len(cases)
    finally:
        migrate(latest())


# --- statements compiled once per page shape, rows drawn once per look -----------------------------


def page_html(client, url: str) -> str:
    """The history section of the page as HTML (the rest carries per-response tokens)."""
    html = client.get(url).content.decode()
    return html[html.index('<section class="history-page">') : html.index("</section>")]


def history_pages(client, urls: list[str]) -> list[str]:
    """Each page, then every page its links lead to (both ways), as HTML."""
    seen = []
    for url in urls:
        html = page_html(client, url)
        seen.append(html)
        for label in ("Older →", "Next →", "← Newer", "← Previous"):
            if nxt := link(html, label):
                page = page_html(client, f"/runs/{nxt}")
                seen.append(page)
                if back := link(page, "← Newer") or link(page, "← Previous"):
                    seen.append(page_html(client, f"/runs/{back}"))
    return seen


def test_compiled_pages_show_what_the_query_built_each_time_shows(auth_client, user, other_user, settings, monkeypatch):
    """Each page shape is compiled once and run with its values as parameters: every filter,
    sort and page link shows the same rows as the page built from scratch each time."""
    settings.COMPARE_RUNS_PER_PAGE = 3
    add_runs(other_user, user, 11)
    make_run(user, "mine, voted blind", blind=True, tags=["t1"])
    urls = [
        "/runs/",
        "/runs/?model=gpt-image-2&status=partial",
        "/runs/?winner=gpt-image-2",
        f"/runs/?author={other_user.username}&tag=t1",
        "/runs/?sort=discussed&voted=yes",
        "/runs/?sort=oldest&checks=passed",
        "/runs/?q=run&date_from=2000-01-01",  # search words and dates: built each time
        "/runs/?tag=no-such-tag",  # invalid: no rows
    ]
    monkeypatch.setattr(history, "_pages_compiled", history._Kept(history.SHAPES_KEPT))
    compiled = history_pages(auth_client, urls)
    assert len(history._pages_compiled) >= 8  # six shapes, and their pages after and before a cursor
    assert sum(len(prompts(page)) for page in compiled) > 20
    monkeypatch.setattr(history, "_shape", lambda *args: None)  # every page built from scratch
    history.forget_drawn_rows()
    assert history_pages(auth_client, urls) == compiled


def test_a_page_seen_again_compiles_no_query_of_runs_and_draws_no_row_again(auth_client, user, monkeypatch):
    from django.db.models.sql.compiler import SQLCompiler

    for i in range(3):
        make_run(user, f"seen {i}", images=1, tags=["again"])
    first = page_html(auth_client, "/runs/?tag=again")
    compiled, drawn = [], []
    original_sql, original_render = SQLCompiler.as_sql, history.render_to_string

    def counted_sql(self, *args, **kwargs):
        compiled.append(self.query.model)
        return original_sql(self, *args, **kwargs)

    def counted_render(name, context=None, *args, **kwargs):
        drawn.append(name)
        return original_render(name, context, *args, **kwargs)

    monkeypatch.setattr(SQLCompiler, "as_sql", counted_sql)
    monkeypatch.setattr(history, "render_to_string", counted_render)
    assert page_html(auth_client, "/runs/?tag=again") == first
    assert not {Run, Generation, history.Image} & set(compiled)
    assert drawn == []


def test_a_row_drawn_before_shows_each_change(auth_client, user, other_user):
    """A row's markup is kept per look: a vote, a note, a tag, a finished side or names
    shown to the viewer each give the row a new look, drawn anew."""
    run = make_run(other_user, "changing", status=["running", "succeeded"], blind=True, images=1)

    def row_html() -> str:
        html = auth_client.get("/runs/").content.decode()
        return html.split(f'id="run-{run.pk}"')[1].split("</li>")[0]

    before = row_html()
    assert "0 votes" in before and "0 notes" in before and "Working" in before and "GPT Image" not in before
    Note.objects.create(run=run, author=other_user, body="hm")
    run.tags.add(Tag.objects.create(name="fresh"))
    gen = run.generations.get(status="running")
    gen.status = Generation.Status.SUCCEEDED
    gen.save()
    add_image(gen)
    after = row_html()
    assert "1 note" in after and "#fresh" in after and "Working" not in after and "GPT Image" not in after
    Vote.objects.create(run=run, user=user, verdict=Vote.Verdict.TIE)
    voted = row_html()
    assert "1 vote" in voted and "GPT Image" in voted  # names shown once this viewer voted
    shown_at = re.compile(r"<time [^>]*>([^<]*)</time>")
    with timezone.override("Pacific/Kiritimati"):  # UTC+14: another local time, never the same
        elsewhere = row_html()
    assert shown_at.search(elsewhere).group(1) != shown_at.search(voted).group(1)  # type: ignore[union-attr]


def test_what_is_kept_is_what_was_used_most_lately():
    """Compiled page shapes and drawn rows are kept for the keys used most lately: a shape
    in steady use is not pushed out by a run of new ones."""
    kept = history._Kept(2)
    made: list[str] = []

    def make(key):
        def made_now():
            made.append(key)
            return key.upper()

        return made_now

    assert kept.get_or_make("a", make("a")) == "A"
    kept.get_or_make("b", make("b"))
    assert kept.get_or_make("a", make("a")) == "A"  # used again: kept, not made again
    kept.get_or_make("c", make("c"))  # "b" is the one used least lately
    assert len(kept) == 2 and made == ["a", "b", "c"]
    kept.get_or_make("a", make("a"))
    kept.get_or_make("b", make("b"))
    assert made == ["a", "b", "c", "b"]

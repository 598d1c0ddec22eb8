"""The history page: search, every filter, sort, pagination, htmx, and blind rows."""

import io
import re
from datetime import timedelta

import pytest
from django import forms
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from PIL import Image as PILImage

from compare.history import HistoryFilters, annotated, filtered, row, with_rows
from compare.judging import blind
from compare.models import Image, Note, Reveal, Run, Vote
from tests.factories import GPT, MINI, NANO, add_image, image_bytes, make_run, png, without_random_ids

pytestmark = pytest.mark.django_db


def prompts(client, query: str = "") -> list[str]:
    """The prompts of the rows on the history page, in order."""
    html = client.get(f"/runs/{query}").content.decode()
    return re.findall(r'<p class="prompt"><a href="[^"]+">([^<]*)</a></p>', html)


def row_html(client, run: Run, query: str = "") -> str:
    html = client.get(f"/runs/{query}").content.decode()
    match = re.search(rf'<li class="history-row history-card" id="run-{run.id}">(.*?)</li>', html, re.S)
    assert match, f"no row for {run.prompt!r}"
    return match.group(1)


def test_search_needs_every_word_in_any_case(auth_client, user):
    make_run(user, "A red fox in snow")
    make_run(user, "The FOX is RED")
    make_run(user, "a red panda")
    assert sorted(prompts(auth_client, "?q=fox+red")) == ["A red fox in snow", "The FOX is RED"]
    assert prompts(auth_client, "?q=PANDA") == ["a red panda"]
    assert prompts(auth_client, "?q=  ") == prompts(auth_client)  # blank search is no search


def test_filter_by_model_author_and_tag(auth_client, user, other_user):
    make_run(user, "both", models=(GPT, NANO), tags=["poster"])
    make_run(other_user, "mini vs nano", models=(MINI, NANO), tags=["logo", "poster"])
    assert prompts(auth_client, "?model=gpt-image-2") == ["both"]
    assert sorted(prompts(auth_client, "?model=gemini-3-pro-image")) == ["both", "mini vs nano"]
    assert prompts(auth_client, "?author=lee") == ["mini vs nano"]
    assert prompts(auth_client, "?tag=logo") == ["mini vs nano"]
    assert sorted(prompts(auth_client, "?tag=poster")) == ["both", "mini vs nano"]
    assert prompts(auth_client, "?tag=poster&author=dana&model=gemini-3-pro-image") == ["both"]


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (("running", "succeeded"), "running"),
        (("queued", "failed"), "running"),
        (("succeeded", "succeeded"), "done"),
        (("succeeded", "refused"), "partial"),
        (("failed", "cancelled"), "failed"),
    ],
)
def test_status_filter_is_computed_in_sql_like_run_status(auth_client, user, statuses, expected):
    run = make_run(user, f"run {expected}", statuses)
    make_run(user, "other", ("succeeded", "failed") if expected != "partial" else ("failed", "failed"))
    assert run.status == expected == annotated(user).get(pk=run.pk).state
    assert prompts(auth_client, f"?status={expected}") == [f"run {expected}"]
    # The count above the rows is a SQL count of the filtered runs, so pages add up.
    assert ">1 comparison<" in auth_client.get(f"/runs/?status={expected}").content.decode()


def test_date_range_is_inclusive_and_iso(auth_client, user):
    make_run(user, "today")
    make_run(user, "last week", days_ago=7)
    make_run(user, "last month", days_ago=30)
    week = (timezone.localdate() - timedelta(days=7)).isoformat()
    assert prompts(auth_client, f"?date_from={week}") == ["today", "last week"]
    assert prompts(auth_client, f"?date_to={week}") == ["last week", "last month"]
    assert prompts(auth_client, f"?date_from={week}&date_to={week}") == ["last week"]


def test_voted_and_not_voted_by_me(auth_client, user, other_user):
    mine = make_run(user, "I voted")
    theirs = make_run(user, "only lee voted")
    make_run(user, "nobody voted")
    Vote.objects.create(run=mine, user=user, verdict=Vote.Verdict.BETTER, winner=mine.generations.get(position=0))
    Vote.objects.create(
        run=theirs, user=other_user, verdict=Vote.Verdict.BETTER, winner=theirs.generations.get(position=1)
    )
    assert prompts(auth_client, "?voted=yes") == ["I voted"]
    assert sorted(prompts(auth_client, "?voted=no")) == ["nobody voted", "only lee voted"]


def test_winner_is_the_model_at_the_voted_position(auth_client, user, other_user):
    gpt_won = make_run(user, "gpt won", models=(GPT, NANO))
    nano_won = make_run(user, "nano won", models=(GPT, NANO))
    swapped = make_run(user, "gpt won on the right", models=(NANO, GPT))
    tie = make_run(user, "tie", models=(GPT, NANO))
    Vote.objects.create(
        run=gpt_won, user=other_user, verdict=Vote.Verdict.BETTER, winner=gpt_won.generations.get(position=0)
    )
    Vote.objects.create(
        run=nano_won, user=other_user, verdict=Vote.Verdict.BETTER, winner=nano_won.generations.get(position=1)
    )
    Vote.objects.create(
        run=swapped, user=other_user, verdict=Vote.Verdict.BETTER, winner=swapped.generations.get(position=1)
    )
    Vote.objects.create(run=tie, user=other_user, verdict=Vote.Verdict.TIE)
    assert sorted(prompts(auth_client, "?winner=gpt-image-2")) == ["gpt won", "gpt won on the right"]
    assert prompts(auth_client, "?winner=gemini-3-pro-image") == ["nano won"]


def test_model_and_winner_filters_skip_blind_runs_whose_names_are_hidden(auth_client, user, other_user):
    run = make_run(other_user, "blind gpt win", blind=True)
    Vote.objects.create(run=run, user=other_user, verdict=Vote.Verdict.BETTER, winner=run.generations.get(position=0))
    assert prompts(auth_client, "?winner=gpt-image-2") == []
    assert prompts(auth_client, "?model=gpt-image-2") == []
    assert prompts(auth_client) == ["blind gpt win"]  # still listed, just not findable by model
    Reveal.objects.create(run=run, user=user)
    assert prompts(auth_client, "?winner=gpt-image-2") == ["blind gpt win"]
    assert prompts(auth_client, "?model=gpt-image-2") == ["blind gpt win"]


def test_sort_newest_oldest_and_most_discussed(auth_client, user, other_user):
    old = make_run(user, "old", days_ago=3)
    make_run(user, "middle", days_ago=2)
    make_run(user, "new", days_ago=1)
    Note.objects.create(run=old, author=user, body="hm")
    Vote.objects.create(run=old, user=other_user, verdict=Vote.Verdict.TIE)
    assert prompts(auth_client) == ["new", "middle", "old"]
    assert prompts(auth_client, "?sort=newest") == ["new", "middle", "old"]
    assert prompts(auth_client, "?sort=oldest") == ["old", "middle", "new"]
    assert prompts(auth_client, "?sort=discussed") == ["old", "new", "middle"]


def test_pagination_keeps_the_filters(auth_client, user, settings):
    settings.COMPARE_RUNS_PER_PAGE = 3
    for i in range(5):
        make_run(user, f"cat {i}", days_ago=i, tags=["pets"])
        make_run(user, f"dog {i}", days_ago=i)
    first = auth_client.get("/runs/?q=cat&tag=pets&model=&sort=").content.decode()
    older = re.search(r'<a href="(\?[^"]*after=[^"]*)" hx-get="[^"]+">Older →</a>', first)
    assert older, "no link to the older runs"
    link = older.group(1)
    assert "q=cat" in link and "tag=pets" in link and "model=" not in link  # empty fields are dropped
    assert prompts(auth_client, link.replace("&amp;", "&")) == ["cat 3", "cat 4"]
    assert "Page 2 of 2" in auth_client.get("/runs/" + link.replace("&amp;", "&")).content.decode()


def test_htmx_gets_only_the_results_and_a_clean_url_to_push(auth_client, user):
    make_run(user, "a fox")
    make_run(user, "a hen")
    response = auth_client.get("/runs/?q=fox&model=&tag=", HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="results"') and "<html" not in html and "<form" not in html
    assert prompts(auth_client, "?q=fox") == ["a fox"] and "a hen" not in html
    assert response["HX-Push-Url"] == "/runs/?q=fox"
    assert "HX-Request" in response["Vary"]
    # A back-button cache miss must get the whole page, not the fragment.
    restore = auth_client.get("/runs/?q=fox", HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true")
    assert "<html" in restore.content.decode()


def test_the_form_works_with_and_without_javascript(auth_client, user):
    html = auth_client.get("/runs/?q=fox&sort=oldest").content.decode()
    found = re.search(r"<form class=\"history-filters\"[^>]*>", html)
    assert found, "no filters form"
    form = found.group(0)
    assert 'method="get"' in form and 'action="/runs/"' in form and 'hx-push-url="true"' in form
    assert 'hx-get="/runs/"' in form and 'hx-target="#results"' in form
    assert "input from:[name=q] delay:400ms" in form and "change" in form
    assert '<button type="submit">Apply</button>' in html
    assert 'value="fox"' in html and '<option value="oldest" selected>' in html  # the form shows the filters


def test_an_invalid_filter_shows_an_error_and_no_runs(auth_client, user):
    make_run(user, "a fox", tags=["animals"])
    html = auth_client.get("/runs/?tag=no-such-tag").content.decode()
    assert "a fox" not in html and 'role="alert"' in html and "Tag:" in html
    html = auth_client.get("/runs/?date_from=2025-02-30").content.decode()
    assert "a fox" not in html and "From:" in html


def test_rows_show_thumbnails_status_tags_tally_and_notes(auth_client, user, other_user):
    run = make_run(user, "a fox", ("succeeded", "failed"), tags=["animals"])
    gen = run.generations.get(position=0)
    img = Image.objects.create(
        generation=gen,
        sha256="ab" * 32,
        file="x.png",
        thumbnail="x.webp",
        width=1024,
        height=768,
        format="png",
        bytes=1,
    )
    Vote.objects.create(run=run, user=other_user, verdict=Vote.Verdict.BETTER, winner=run.generations.get(position=0))
    Note.objects.create(run=run, author=user, body="nice")
    html = row_html(auth_client, run)
    assert f'src="{img.thumbnail_url}?size=list"' in html and f'src="{img.url}"' not in html  # the list's small one
    assert "GPT Image 2" in html and "Nano Banana Pro" in html and ">Failed<" in html
    assert '<span class="badge status-partial">partial</span>' in html and "#animals" in html
    assert "GPT Image 2 <strong>1</strong>" in html and "1 vote" in html and "1 note" in html


def test_blind_rows_name_no_model_until_the_viewer_votes(auth_client, user, other_user):
    run = make_run(other_user, "blind poster", blind=True)
    gen = run.generations.get(position=0)
    Image.objects.create(
        generation=gen, sha256="cd" * 32, file="y.png", thumbnail="y.webp", width=512, height=512, format="png", bytes=1
    )
    Vote.objects.create(run=run, user=other_user, verdict=Vote.Verdict.BETTER, winner=run.generations.get(position=0))
    html = row_html(auth_client, run)
    assert "Side A" in html and "Side B" in html and "1 vote" in html
    for needle in [*GPT, *NANO, "gpt", "gemini", "nano"]:
        assert needle.lower() not in html.lower(), needle
    Vote.objects.create(run=run, user=user, verdict=Vote.Verdict.BETTER, winner=run.generations.get(position=1))
    html = row_html(auth_client, run)
    assert "GPT Image 2" in html and "Nano Banana Pro" in html and "2 votes" in html


def test_blind_rows_show_side_thumbnails_never_the_originals_until_the_vote(auth_client, user, other_user):
    run = make_run(other_user, "blind sizes", blind=True, latency_ms=6100)
    gpt, nano = run.generations.order_by("position")
    originals = [
        add_image(gpt, image_bytes((200, 30, 30), (65, 48), fmt="WEBP", lossless=True)),
        add_image(nano, png((30, 30, 200), (64, 48))),
    ]
    html = row_html(auth_client, run)
    # The original's hash is its address: /images/<sha256> would serve it with format, size and metadata.
    assert "/images/" not in html
    for image in originals:
        assert image.sha256 not in html
    words = without_random_ids(html)
    for giveaway in ['width="64"', "64×48", "65×48", "webp", "WEBP", "6100", "6.1", "$"]:
        assert giveaway not in words, giveaway
    thumbs = re.findall(r'<img src="([^"]+)" alt="Side ([AB])" width="(\d+)" height="(\d+)"', html)
    assert [(side, w, h) for _, side, w, h in thumbs] == [("A", "65", "48"), ("B", "65", "48")]  # the common size
    sizes = set()
    for src, side, _, _ in thumbs:
        assert src.startswith(f"/runs/{run.id}/sides/{side}/1/thumbnail?v=")
        response = auth_client.get(src.replace("&amp;", "&"))
        assert response.status_code == 200 and response["Content-Type"] == "image/webp"
        with PILImage.open(io.BytesIO(response.content)) as decoded:
            assert decoded.format == "WEBP"
            sizes.add(decoded.size)
    assert sizes == {(65, 48)}  # made from the display copies: one shape, one size

    Vote.objects.create(run=run, user=user, verdict=Vote.Verdict.TIE)
    html = row_html(auth_client, run)
    assert "/sides/" not in html
    for image in originals:
        assert f'src="{image.thumbnail_url}?size=list"' in html and f'width="{image.width}"' in html


def test_a_blind_row_shows_no_outcome_while_a_side_works(auth_client, other_user):
    run = make_run(other_user, "blind, half done", ("succeeded", "running"), blind=True)
    done = add_image(run.generations.get(position=0))
    html = row_html(auth_client, run)
    # Which side finished first is a latency too: neither side shows an image or its own status.
    assert "<img" not in html and done.sha256 not in html
    assert html.count('<span class="no-thumb status-running">Working</span>') == 2
    assert "Succeeded" not in html and "Running" not in html


@pytest.mark.parametrize("case", ["open", "blind", "blind-voted", "blind-revealed"])
def test_row_hides_names_exactly_when_blind_says_so(user, other_user, case):
    run = make_run(other_user, case, blind=case.startswith("blind"))
    if case == "blind-voted":
        Vote.objects.create(run=run, user=user, verdict=Vote.Verdict.TIE)
    if case == "blind-revealed":
        Reveal.objects.create(run=run, user=user)
    loaded = with_rows(annotated(user)).get(pk=run.pk)
    expected_sides, expected_hidden = blind.prepare(Run.objects.get(pk=run.pk), user)
    got = row(loaded, user)
    assert got.hidden == expected_hidden == (case == "blind")
    assert [g.display_name for g in got.sides] == [g.display_name for g in expected_sides]


def test_a_page_costs_the_same_queries_for_any_number_of_runs(auth_client, user, other_user):
    def count_queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert auth_client.get("/runs/").status_code == 200
        return len(captured)

    def add_runs(n: int) -> None:
        for i in range(n):
            run = make_run(other_user, f"run {i}", blind=i % 2 == 0, tags=["t"])
            Vote.objects.create(
                run=run, user=other_user, verdict=Vote.Verdict.BETTER, winner=run.generations.get(position=0)
            )
            Note.objects.create(run=run, author=user, body="n")

    add_runs(2)
    count_queries()  # fills the filters' choices (compare/history.py `choice_lists`)
    few = count_queries()
    add_runs(8)
    assert count_queries() == few


def test_filters_form_offers_models_from_history_and_authors_with_runs(user, other_user):
    make_run(user, "x", models=(MINI, NANO))
    form = HistoryFilters({})
    model_field, author_field = form.fields["model"], form.fields["author"]
    assert isinstance(model_field, forms.ChoiceField) and isinstance(author_field, forms.ChoiceField)
    model_choices, author_choices = model_field.choices, author_field.choices
    assert isinstance(model_choices, list) and isinstance(author_choices, list)  # Django normalises to a list
    assert ("gpt-image-1-mini", "GPT Image 1 mini") in model_choices
    assert [c for c, _ in author_choices] == ["", "dana"]
    assert list(filtered(form, user)) == list(Run.objects.all())

"""Leaderboard maths against hand-computed cases, its filters, pages and exports; the scorecard."""

import csv
import io
import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.test import Client

from compare.judging.leaderboard import (
    Battle,
    Filters,
    GenFacts,
    battles_from_vote,
    bootstrap_intervals,
    build_leaderboard,
    fit_bradley_terry,
    leaderboard_for,
    percentile,
    to_scores,
    win_probability,
)
from compare.judging.scorecard import build_scorecard
from compare.models import Criterion, Rating, Run, TeamSettings, Vote
from tests import factories

LABELS = {"a": "Model A", "b": "Model B", "c": "Model C"}


def wins(a: str, b: str, n: int = 1) -> list[tuple[Battle, ...]]:
    """n two-model votes where a beat b."""
    return [battles_from_vote([a, b], a)] * n


def ties(a: str, b: str, n: int = 1) -> list[tuple[Battle, ...]]:
    return [battles_from_vote([a, b], None)] * n


def p_beats(strengths: dict[str, float], a: str, b: str) -> float:
    return strengths[a] / (strengths[a] + strengths[b])


# --- Maths on plain data -----------------------------------------------------------


def test_a_vote_becomes_battles_against_every_other_side():
    assert battles_from_vote(["a", "b", "c"], "b") == (Battle("b", "a", 1.0), Battle("b", "c", 1.0))
    # tie and all_bad both tie every pair
    pairs = (Battle("a", "b", 0.5), Battle("a", "c", 0.5), Battle("b", "c", 0.5))
    assert battles_from_vote(["a", "b", "c"], None) == pairs
    assert battles_from_vote(["a", "a"], "a") == ()  # a model never meets itself


def test_three_wins_to_one_loss_is_odds_of_three_to_one():
    battles = [b for v in wins("a", "b", 3) + wins("b", "a") for b in v]
    no_prior = fit_bradley_terry(battles, ["a", "b"], prior=0)
    assert no_prior["a"] / no_prior["b"] == pytest.approx(3.0)
    assert p_beats(no_prior, "a", "b") == pytest.approx(0.75)
    # The default prior adds one tie: 3.5 wins to 1.5 → 0.7
    assert p_beats(fit_bradley_terry(battles, ["a", "b"]), "a", "b") == pytest.approx(0.7)
    # On the Elo-like scale: mean 1000, and the score gap gives the same probability
    sa, sb = to_scores([no_prior["a"], no_prior["b"]])
    assert (sa + sb) / 2 == pytest.approx(1000)
    assert sa - sb == pytest.approx(400 * 0.47712125472)  # 400·log10(3)
    assert win_probability(sa, sb) == pytest.approx(0.75)


def test_a_cycle_gives_equal_scores_and_a_shared_rank():
    votes = wins("a", "b") + wins("b", "c") + wins("c", "a")
    strengths = fit_bradley_terry([b for v in votes for b in v], ["a", "b", "c"], prior=0)
    assert all(s == pytest.approx(1.0) for s in strengths.values())
    board = build_leaderboard(votes, [], min_battles=1, resamples=20)
    assert [row.rank for row in board.rows] == [1, 1, 1]
    assert all(row.score == pytest.approx(1000) for row in board.rows)


def test_a_tie_counts_half_a_win_to_each_side():
    votes = wins("a", "b") + ties("a", "b", 2)  # a: 1 + 2·½ = 2 "wins", b: 1
    strengths = fit_bradley_terry([b for v in votes for b in v], ["a", "b"], prior=0)
    assert p_beats(strengths, "a", "b") == pytest.approx(2 / 3)
    row_a = build_leaderboard(votes, [], min_battles=1, resamples=10).rows[0]
    assert (row_a.key, row_a.wins, row_a.ties, row_a.losses, row_a.battles) == ("a", 1, 2, 0, 3)
    assert row_a.win_rate == pytest.approx(2 / 3)


def test_undefeated_and_winless_models_stay_finite():
    board = build_leaderboard(wins("a", "b", 5), [], min_battles=1, resamples=50)
    a, b = board.rows
    # prior of one virtual tie: 5.5 to 0.5 → odds 11:1 → 400·log10(11) apart
    assert a.key == "a" and a.score - b.score == pytest.approx(400 * 1.0413926852)
    assert a.low <= a.score <= a.high and b.low <= b.score <= b.high


def test_no_votes_and_single_model_runs_give_an_empty_board():
    assert build_leaderboard([], [], min_battles=10).rows == []
    assert build_leaderboard([battles_from_vote(["a"], "a")], [], min_battles=10).rows == []


def test_win_rate_matrix_reads_row_beats_column():
    votes = wins("a", "b", 3) + wins("b", "a") + ties("b", "c", 2)
    board = build_leaderboard(votes, [], min_battles=1, resamples=10)
    order = [row.key for row in board.rows]
    cells = {(row.key, order[j]): cell for row, cs in board.matrix for j, cell in enumerate(cs)}
    assert cells["a", "b"].rate == pytest.approx(0.75) and cells["a", "b"].battles == 4
    assert cells["b", "a"].rate == pytest.approx(0.25)
    assert cells["b", "c"].rate == pytest.approx(0.5) and cells["c", "b"].battles == 2
    assert cells["a", "c"].rate is None and cells["a", "c"].battles == 0  # they never met


def test_percentiles_interpolate_between_ranks():
    seconds = [float(s) for s in range(1, 11)]
    assert percentile(seconds, 50) == pytest.approx(5.5)
    assert percentile(seconds, 90) == pytest.approx(9.1)  # 1 + 0.9·9
    assert percentile([4.0], 90) == 4.0 and percentile([], 50) is None


def test_latency_cost_per_image_and_cost_per_win():
    votes = wins("a", "b") + ties("a", "b")  # a: 1 win + 1 tie = 1.5, b: 0.5
    gens = [GenFacts("a", True, ms, None, 1) for ms in range(1000, 11000, 1000)]  # 1…10 s, no cost
    gens += [
        GenFacts("a", True, None, 0.08, 2),
        GenFacts("a", True, None, 0.04, 1),
        GenFacts("a", False, None, 0.03, 0),
    ]  # a failed call that was still charged
    gens += [GenFacts("b", False, 500, None, 0)]  # failed: no latency, no cost
    a, b = build_leaderboard(votes, gens, min_battles=1, resamples=10).rows
    assert a.median_latency_s == pytest.approx(5.5) and a.p90_latency_s == pytest.approx(9.1)
    assert a.cost_per_image == pytest.approx(0.12 / 3)  # per image over successful generations
    assert a.cost_per_win == pytest.approx(0.15 / 1.5)  # every charged call, over wins + ½ ties
    assert b.median_latency_s is None and b.cost_per_image is None and b.cost_per_win is None


def test_preliminary_below_the_minimum_battles():
    board = build_leaderboard(wins("a", "b", 3) + wins("a", "c", 2), [], min_battles=3, resamples=10)
    assert {row.key: row.preliminary for row in board.rows} == {"a": False, "b": False, "c": True}


def test_bootstrap_is_seeded_and_brackets_the_score():
    votes = wins("a", "b", 6) + wins("b", "a", 3) + ties("a", "b", 2)
    first = bootstrap_intervals(votes, ["a", "b"], resamples=100)
    assert first == bootstrap_intervals(votes, ["a", "b"], resamples=100)
    assert first["a"][0] < first["a"][1] and first["a"][0] > first["b"][0]


# --- Reading the database ----------------------------------------------------------


def make_run(author, keys, *, created=None, cost="0.0400", images=1, latency_ms=2000, **fields) -> Run:
    """A finished run of the models named by `keys` (letters of LABELS), `images` per side."""
    return factories.make_run(
        author,
        "a red fox",
        models=[(key, LABELS[key], key) for key in keys],
        created_at=created or datetime(2026, 3, 1, 12, tzinfo=UTC),
        cost_usd=Decimal(cost),
        images=images,
        latency_ms=latency_ms,
        **fields,
    )


def vote(run, user, winner: int | Vote.Verdict, blind=False) -> Vote:
    """`winner`: the position of the better side, or a verdict without a winner."""
    if isinstance(winner, int):
        gen = run.generations.get(position=winner)
        return Vote.objects.create(run=run, user=user, verdict=Vote.Verdict.BETTER, winner=gen, blind=blind)
    return Vote.objects.create(run=run, user=user, verdict=winner, blind=blind)


def scores(filters: Filters | None = None, min_battles=1) -> dict[str, tuple[int, int, int]]:
    board = leaderboard_for(filters or Filters(), min_battles, resamples=10)
    return {r.key: (r.wins, r.ties, r.losses) for r in board.rows}


@pytest.mark.django_db
def test_votes_become_battles_with_each_run_costed_once(user, other_user):
    run = make_run(user, ["a", "b", "c"], cost="0.0600", images=2)
    vote(run, user, 1)
    vote(run, other_user, Vote.Verdict.ALL_BAD)
    # A winner that is not a side of the voted run (only a bad import could write one): skipped.
    stray = make_run(user, ["a", "c"])
    Vote.objects.create(run=stray, user=user, verdict=Vote.Verdict.BETTER, winner=run.generations.get(position=0))
    board = leaderboard_for(Filters(), 10, resamples=10)
    rows = {r.key: r for r in board.rows}
    assert (board.votes, board.battles) == (2, 5)
    assert (rows["b"].wins, rows["b"].ties, rows["b"].losses) == (2, 2, 0)
    assert rows["b"].cost_per_win == pytest.approx(0.06 / 3)  # the run's cost once, not once per voter
    assert rows["b"].cost_per_image == pytest.approx(0.03) and rows["b"].median_latency_s == 2.0


@pytest.mark.django_db
def test_filters_by_tag_dates_voter_and_blind(user, other_user):
    logo = make_run(user, ["a", "b"], tags=["logo"], created=datetime(2026, 1, 10, 9, tzinfo=UTC))
    photo = make_run(user, ["a", "b"], tags=["photo"], created=datetime(2026, 2, 20, 23, tzinfo=UTC), blind=True)
    vote(logo, user, 0)
    vote(photo, other_user, 1, blind=True)
    vote(photo, user, Vote.Verdict.TIE)
    assert scores() == {"a": (1, 1, 1), "b": (1, 1, 1)}
    assert scores(Filters(tag="logo")) == {"a": (1, 0, 0), "b": (0, 0, 1)}
    assert scores(Filters(date_from=date(2026, 2, 20))) == {"a": (0, 1, 1), "b": (1, 1, 0)}  # inclusive
    assert scores(Filters(date_to=date(2026, 1, 10))) == {"a": (1, 0, 0), "b": (0, 0, 1)}
    assert scores(Filters(date_from=date(2026, 1, 11), date_to=date(2026, 2, 19))) == {}
    assert scores(Filters(voter="lee")) == {"a": (0, 0, 1), "b": (1, 0, 0)}
    assert scores(Filters(blind_only=True)) == {"a": (0, 0, 1), "b": (1, 0, 0)}
    assert scores(Filters(tag="photo", voter="dana")) == {"a": (0, 1, 0), "b": (0, 1, 0)}


def test_filters_read_from_the_query_string():
    filters, errors = Filters.from_query({"tag": "logo", "from": "2026-01-02", "to": "soon", "voter": "", "blind": "1"})
    assert filters == Filters(tag="logo", date_from=date(2026, 1, 2), blind_only=True)
    assert errors == ["“soon” is not a date like 2026-01-31; ignored."]
    assert filters.as_query() == {"tag": "logo", "from": "2026-01-02", "blind": "1"}


def find(pattern: str, html: str) -> re.Match[str]:
    """The first match of `pattern` (dot matches newlines); fails the test if the page lacks it."""
    match = re.search(pattern, html, re.S)
    assert match, f"{pattern!r} is not on the page"
    return match


def page_rows(html: str) -> dict[str, dict]:
    """The numbers the leaderboard page shows, per model."""
    out = {}
    for key, body in re.findall(r'<tr[^>]*data-model="(\w+)">(.*?)</tr>', html, re.S):
        score = find(r'<strong>(\d+)</strong> <span class="interval">\[(\d+), (\d+)\]', body)
        out[key] = {
            "score": int(score[1]),
            "low": int(score[2]),
            "high": int(score[3]),
            "wtl": find(r'class="num wtl">(\d+) / (\d+) / (\d+)<', body).groups(),
            "win_rate": find(r'class="num win-rate">(\d+)%<', body)[1],
            "cost_win": find(r'class="num cost-win">([^<]+)<', body)[1],
            "preliminary": "preliminary</span>" in body,
        }
    return out


@pytest.fixture
def voted(user, other_user):
    TeamSettings.objects.update_or_create(pk=1, defaults={"leaderboard_min_votes": 4})
    third = factories.make_user("kim")
    for voter in (user, other_user, third):
        vote(make_run(user, ["a", "b"], tags=["logo"]), voter, 0)
    vote(make_run(user, ["a", "b"], tags=["logo"]), user, 1)
    vote(make_run(user, ["a", "c"]), user, Vote.Verdict.TIE)


@pytest.mark.django_db
def test_leaderboard_page_csv_and_json_agree(auth_client, voted):
    html = auth_client.get("/leaderboard").content.decode()
    assert "<html" in html and "Leaderboard" in html and "LMArena" in html
    shown = page_rows(html)
    assert shown["a"]["wtl"] == ("3", "1", "1") and shown["a"]["win_rate"] == "70"  # 3.5 / 5
    assert shown["a"]["cost_win"] == "$0.0571"  # 5 runs × $0.04 / 3.5
    assert [shown[k]["preliminary"] for k in "abc"] == [False, False, True]
    data = json.loads(auth_client.get("/leaderboard.json").content)
    assert [m["key"] for m in data["models"]] == list(shown)  # same ranking
    for model in data["models"]:
        assert round(model["score"]) == shown[model["key"]]["score"]
        assert (round(model["low"]), round(model["high"])) == (shown[model["key"]]["low"], shown[model["key"]]["high"])
    assert data["min_battles"] == 4 and data["votes"] == 5
    rates = dict(zip(data["win_rate_matrix"]["models"], data["win_rate_matrix"]["rates"], strict=True))
    assert rates["a"][data["win_rate_matrix"]["models"].index("b")] == 0.75
    response = auth_client.get("/leaderboard.csv")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["key"] for r in rows] == list(shown)
    for row, model in zip(rows, data["models"], strict=True):
        assert float(row["score"]) == model["score"] and row["wins"] == str(model["wins"])
        assert row["preliminary"] == str(model["preliminary"])


@pytest.mark.django_db
def test_filters_in_the_url_reach_the_page_and_exports(auth_client, voted):
    html = auth_client.get("/leaderboard?tag=logo&voter=dana").content.decode()
    assert set(page_rows(html)) == {"a", "b"} and 'href="/leaderboard.csv?tag=logo&amp;voter=dana"' in html
    data = json.loads(auth_client.get("/leaderboard.json?tag=logo&voter=dana").content)
    assert data["filters"] == {"tag": "logo", "voter": "dana"} and data["battles"] == 2
    bad = auth_client.get("/leaderboard?from=yesterday").content.decode()
    assert "is not a date" in bad and set(page_rows(bad)) == {"a", "b", "c"}


@pytest.mark.django_db
def test_htmx_request_gets_only_the_results(auth_client, voted):
    response = auth_client.get("/leaderboard?tag=logo", HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="results"') and "<html" not in html and "<form" not in html
    assert set(page_rows(html)) == {"a", "b"} and "HX-Request" in response["Vary"]
    pushed = auth_client.get("/leaderboard?tag=logo&from=&to=&voter=", HTTP_HX_REQUEST="true")
    assert pushed["HX-Push-Url"] == "/leaderboard?tag=logo"  # the address bar gets the tidy URL
    restore = auth_client.get("/leaderboard", HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true")
    assert "<html" in restore.content.decode()


@pytest.mark.django_db
def test_pages_need_a_login_and_handle_no_data(auth_client):
    for url in ["/leaderboard", "/leaderboard.csv", "/leaderboard.json", "/scorecard"]:
        assert Client().get(url).status_code == 302
    assert "No votes match" in auth_client.get("/leaderboard").content.decode()
    assert json.loads(auth_client.get("/leaderboard.json").content)["models"] == []
    assert "No ratings" in auth_client.get("/scorecard").content.decode()


def test_scorecard_maths_on_plain_data():
    ratings = [("a", 1, 10, 5), ("a", 1, 10, 4), ("a", 2, 10, 3), ("a", 1, 20, 2), ("b", 3, 20, 5)]
    a, b = build_scorecard(ratings, [10, 20], usability=10)
    assert (a.cells[0].mean, a.cells[0].count, a.cells[1].mean) == (4.0, 3, 2.0)
    assert (a.success_rate, a.success_base) == (0.5, 2)  # gen 1: mean 4.5 ≥ 4; gen 2: 3
    assert b.cells[0].count == 0 and (b.success_rate, b.success_base) == (None, 0)


@pytest.mark.django_db
def test_scorecard_page_shows_means_counts_and_success(auth_client, user, other_user):
    usable = Criterion.objects.get(is_usability=True)
    text = Criterion.objects.get(name="Text accuracy")
    hidden = Criterion.objects.create(name="Old criterion", active=False, position=99)
    logo, other = make_run(user, ["a", "b"], tags=["logo"]), make_run(user, ["a", "b"])
    ga, gb = logo.generations.order_by("position")
    oa = other.generations.get(position=0)
    for gen, voter, crit, stars in [
        (ga, user, usable, 5),
        (ga, other_user, usable, 4),
        (ga, user, text, 3),
        (ga, other_user, text, 4),
        (gb, user, usable, 4),
        (gb, other_user, usable, 3),
        (oa, user, usable, 2),
        (oa, user, hidden, 5),
    ]:
        Rating.objects.create(generation=gen, user=voter, criterion=crit, stars=stars)
    html = auth_client.get("/scorecard").content.decode()
    assert "Old criterion" not in html and html.index("Prompt adherence") < html.index("Usability as delivered")
    row_a = find(r'data-model="a">(.*?)</tr>', html)[1]
    assert '<strong>3.5</strong> <span class="hint">n=2</span>' in row_a  # text accuracy (3 + 4) / 2
    assert '<strong>3.7</strong> <span class="hint">n=3</span>' in row_a  # usability (5 + 4 + 2) / 3
    assert '<strong>50%</strong> <span class="hint">of 2</span>' in row_a  # logo gen 4.5 ✓, other gen 2 ✗
    row_b = find(r'data-model="b">(.*?)</tr>', html)[1]
    assert '<strong>0%</strong> <span class="hint">of 1</span>' in row_b  # mean 3.5 < 4
    tagged = auth_client.get("/scorecard?tag=logo").content.decode()
    row_a = find(r'data-model="a">(.*?)</tr>', tagged)[1]
    assert '<strong>100%</strong> <span class="hint">of 1</span>' in row_a  # only the logo run's generation


# --- Only battles between two images; blind runs the viewer has not judged stay out ---------


def imageless(run: Run, *positions: int, status: str = "failed") -> Run:
    """Sides of `run` that delivered no image (their files gone, their status `status`)."""
    for gen in run.generations.filter(position__in=positions):
        gen.images.all().delete()
        gen.status = status
        gen.save()
    return run


@pytest.mark.django_db
def test_only_sides_that_delivered_an_image_meet_in_battles(auth_client, user, other_user):
    vote(make_run(user, ["a", "b"]), user, 0)  # counted: a beats b
    one_failed = imageless(make_run(user, ["a", "b"]), 1)
    vote(one_failed, user, 0)  # an image against a failure: no battle
    vote(one_failed, other_user, Vote.Verdict.TIE)
    vote(imageless(make_run(user, ["a", "b"]), 0, 1, status="cancelled"), user, Vote.Verdict.ALL_BAD)
    three = imageless(make_run(user, ["a", "b", "c"]), 2, status="refused")
    vote(three, user, 1)  # counted: b beats a; c (refused) meets no one
    vote(three, other_user, 2)  # the refused side voted better (an old vote): left out
    board = leaderboard_for(Filters(), 1, resamples=10)
    assert (board.votes, board.battles, board.left_out) == (2, 2, 4)
    assert {r.key: (r.wins, r.ties, r.losses) for r in board.rows} == {"a": (1, 0, 1), "b": (1, 0, 1)}
    html = auth_client.get("/leaderboard").content.decode()
    assert "4 votes on runs where a side had no image are not counted" in html
    assert 'data-model="c"' not in html
    data = json.loads(auth_client.get("/leaderboard.json").content)
    assert (data["votes"], data["battles"], data["left_out"]) == (2, 2, 4)


@pytest.mark.django_db
def test_a_blind_run_the_viewer_has_not_judged_stays_out_of_their_scorecard_and_leaderboard(
    auth_client, client, user, other_user
):
    # Dana rated side A 1★ and side B 5★ and tagged the run, but has not voted: a scorecard or
    # leaderboard narrowed to that tag must not name the models of her sides.
    run = make_run(other_user, ["a", "b"], tags=["solo"], blind=True)
    usable = Criterion.objects.get(is_usability=True)
    ga, gb = run.generations.order_by("position")
    Rating.objects.create(generation=ga, user=user, criterion=usable, stars=1)
    Rating.objects.create(generation=gb, user=user, criterion=usable, stars=5)
    vote(run, other_user, 0, blind=True)
    card = auth_client.get("/scorecard?tag=solo").content.decode()
    assert "data-model=" not in card and "2 ratings on blind runs you have not judged yet" in card
    board = auth_client.get("/leaderboard?tag=solo").content.decode()
    assert "data-model=" not in board and "1 vote on blind runs you have not judged yet" in board
    assert json.loads(auth_client.get("/leaderboard.json?tag=solo").content)["not_judged"] == 1
    assert "a,Model A" not in auth_client.get("/leaderboard.csv?tag=solo").content.decode()
    # Lee has voted on it: lee's pages count it.
    client.force_login(other_user)
    assert 'data-model="a"' in client.get("/scorecard?tag=solo").content.decode()
    assert 'data-model="a"' in client.get("/leaderboard?tag=solo").content.decode()
    # Once Dana has voted, everything appears.
    vote(run, user, 1, blind=True)
    card = auth_client.get("/scorecard?tag=solo").content.decode()
    assert 'data-model="a"' in card and 'data-model="b"' in card and "data-not-judged" not in card
    assert json.loads(auth_client.get("/leaderboard.json?tag=solo").content)["not_judged"] == 0

"""Leaderboard maths against hand-computed cases, its filters, pages and exports; the scorecard."""

import csv
import io
import json
import math
import re
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.test import Client

import compare.judging.leaderboard as lb
from compare.judging.leaderboard import (
    Battle,
    Filters,
    GenFacts,
    battles_from_vote,
    bootstrap_intervals,
    build_leaderboard,
    fit_bradley_terry,
    fit_votes,
    groups_of,
    leaderboard_for,
    percentile,
    to_scores,
    weighted_battles,
    win_probability,
)
from compare.judging.scorecard import build_scorecard
from compare.models import Criterion, Rating, Run, TeamSettings, Vote
from tests import factories

LABELS = {"a": "Model A", "b": "Model B", "c": "Model C", "d": "Model D"}


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
    board = build_leaderboard(votes, [], min_votes=1, resamples=20)
    assert [row.rank for row in board.rows] == [1, 1, 1]
    assert all(row.score == pytest.approx(1000) for row in board.rows)


def test_a_tie_counts_half_a_win_to_each_side():
    votes = wins("a", "b") + ties("a", "b", 2)  # a: 1 + 2·½ = 2 "wins", b: 1
    strengths = fit_bradley_terry([b for v in votes for b in v], ["a", "b"], prior=0)
    assert p_beats(strengths, "a", "b") == pytest.approx(2 / 3)
    row_a = build_leaderboard(votes, [], min_votes=1, resamples=10).rows[0]
    assert (row_a.key, row_a.wins, row_a.ties, row_a.losses, row_a.battles) == ("a", 1, 2, 0, 3)
    assert row_a.win_rate == pytest.approx(2 / 3)


def test_undefeated_and_winless_models_stay_finite():
    board = build_leaderboard(wins("a", "b", 5), [], min_votes=1, resamples=50)
    a, b = board.rows
    # prior of one virtual tie: 5.5 to 0.5 → odds 11:1 → 400·log10(11) apart
    assert a.key == "a" and a.score - b.score == pytest.approx(400 * 1.0413926852)
    assert a.low <= a.score <= a.high and b.low <= b.score <= b.high


def test_no_votes_and_single_model_runs_give_an_empty_board():
    assert build_leaderboard([], [], min_votes=10).rows == []
    assert build_leaderboard([battles_from_vote(["a"], "a")], [], min_votes=10).rows == []


def test_win_rate_matrix_reads_row_beats_column():
    votes = wins("a", "b", 3) + wins("b", "a") + ties("b", "c", 2)
    board = build_leaderboard(votes, [], min_votes=1, resamples=10)
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
    a, b = build_leaderboard(votes, gens, min_votes=1, resamples=10).rows
    assert a.median_latency_s == pytest.approx(5.5) and a.p90_latency_s == pytest.approx(9.1)
    assert a.cost_per_image == pytest.approx(0.12 / 3)  # per image over successful generations
    assert a.cost_per_win == pytest.approx(0.15 / 1.5)  # every charged call, over wins + ½ ties
    assert b.median_latency_s is None and b.cost_per_image is None and b.cost_per_win is None


def test_preliminary_below_the_minimum_battles():
    board = build_leaderboard(wins("a", "b", 3) + wins("a", "c", 2), [], min_votes=3, resamples=10)
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


def scores(filters: Filters | None = None, min_votes=1) -> dict[str, tuple[int, int, int]]:
    board = leaderboard_for(filters or Filters(), min_votes, resamples=10)
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


# --- Statistics that hold on any data (issue 11) -------------------------------------

POINTS = 400 / math.log(10)  # score points per unit of θ = ln(strength)


def reference_fit(votes, models, prior=1.0):
    """An independent maximum-likelihood fit for the checks below: plain Newton on θ with the
    first model pinned at θ = 0 (instead of the app's centring), each vote weighing one in all,
    `prior` virtual ties per pair, run until the step is below 1e-13; returns centred scores."""
    m, index = len(models), {k: i for i, k in enumerate(models)}
    W = [[prior / 2 if i != j else 0.0 for j in range(m)] for i in range(m)]
    for vote in votes:
        for b in vote:
            i, j = index[b.a], index[b.b]
            W[i][j] += b.score / len(vote)
            W[j][i] += (1 - b.score) / len(vote)
    theta = [0.0] * m
    for _ in range(200):
        g, H = [0.0] * m, [[0.0] * m for _ in range(m)]
        for i in range(m):
            for j in range(m):
                if i != j and W[i][j] + W[j][i]:
                    n, p = W[i][j] + W[j][i], 1 / (1 + math.exp(theta[j] - theta[i]))
                    g[i] += W[i][j] - n * p
                    H[i][i] += n * p * (1 - p)
                    H[i][j] -= n * p * (1 - p)
        # solve H[1:,1:] δ = g[1:] by Gauss–Jordan (θ_0 stays 0)
        A = [[*H[r][1:], g[r]] for r in range(1, m)]
        for c in range(m - 1):
            piv = max(range(c, m - 1), key=lambda r: abs(A[r][c]))
            A[c], A[piv] = A[piv], A[c]
            A[c] = [x / A[c][c] for x in A[c]]
            for r in range(m - 1):
                if r != c:
                    A[r] = [x - A[r][c] * y for x, y in zip(A[r], A[c], strict=True)]
        step = [0.0] + [row[-1] for row in A]
        theta = [t + d for t, d in zip(theta, step, strict=True)]
        if max(abs(d) for d in step) < 1e-13:
            break
    mean = sum(theta) / m
    return {k: 1000 + POINTS * (theta[i] - mean) for k, i in index.items()}


def scores_of(votes, models):
    strengths, converged = fit_votes(votes, models)
    assert converged
    return dict(zip(models, to_scores([strengths[k] for k in models]), strict=True))


def test_weakly_linked_groups_are_fitted_to_convergence():
    # Two groups of two, 19,400 : 600 inside each, joined by a single battle. The old MM loop
    # stopped at 10,000 iterations with scores 88 points off (1365 / 762 / 1238 / 634).
    votes = wins("a", "b", 19_400) + wins("b", "a", 600) + wins("c", "d", 19_400) + wins("d", "c", 600)
    votes += wins("b", "c")
    ours, ref = scores_of(votes, list("abcd")), reference_fit(votes, list("abcd"))
    for k in "abcd":
        assert ours[k] == pytest.approx(ref[k], abs=1e-6)
    assert round(ours["a"], 2) == 1453.52 and round(ours["d"], 2) == 546.48
    # The fit satisfies the likelihood equations: each model's expected wins equal its actual
    # wins (prior included: half a win per other model) to 1e-6 of a battle.
    p = fit_votes(votes, list("abcd"))[0]
    met = {(b.a, b.b): 0 for v in votes for b in v}
    for v in votes:
        met[v[0].a, v[0].b] += 1
    for k in "abcd":
        actual = sum(n for (w, _), n in met.items() if w == k) + 1.5
        expected = sum((met.get((k, o), 0) + met.get((o, k), 0) + 1) * p[k] / (p[k] + p[o]) for o in "abcd" if o != k)
        assert expected == pytest.approx(actual, abs=1e-6)
    board = build_leaderboard(votes, [], min_votes=1, resamples=5)
    assert board.converged and len(board.groups) == 1
    # Within one group, 19,400 : 600 (plus the prior's half win each): a hand-computed gap.
    one = scores_of(wins("a", "b", 19_400) + wins("b", "a", 600), ["a", "b"])
    assert one["a"] - one["b"] == pytest.approx(400 * math.log10(19_400.5 / 600.5), abs=1e-6)


def test_three_model_groups_joined_by_one_battle_match_the_reference():
    votes = wins("a", "b", 500) + wins("b", "c", 500) + wins("a", "c", 300)
    votes += wins("d", "e", 500) + wins("e", "f", 500) + wins("d", "f", 300) + wins("c", "d")
    models = list("abcdef")
    ours, ref = scores_of(votes, models), reference_fit(votes, models)
    assert all(ours[k] == pytest.approx(ref[k], abs=1e-6) for k in models)


def test_a_fit_that_stops_early_says_so(monkeypatch):
    votes = wins("a", "b", 19_400) + wins("b", "a", 600)
    assert build_leaderboard(votes, [], min_votes=1, resamples=5).converged
    monkeypatch.setattr(lb, "MAX_ITER", 1)
    assert not build_leaderboard(votes, [], min_votes=1, resamples=5).converged


@pytest.mark.django_db
def test_the_page_and_json_say_when_scores_did_not_converge(auth_client, user, monkeypatch):
    for winner in (0, 0, 1):
        vote(make_run(user, ["a", "b"]), user, winner)
    assert "did not converge" not in auth_client.get("/leaderboard").content.decode()
    assert json.loads(auth_client.get("/leaderboard.json").content)["converged"] is True
    monkeypatch.setattr(lb, "MAX_ITER", 1)
    html = auth_client.get("/leaderboard").content.decode()
    assert "<strong>Scores did not converge; treat them as rough.</strong>" in html
    assert json.loads(auth_client.get("/leaderboard.json").content)["converged"] is False


def test_models_never_compared_form_separate_groups():
    votes = wins("a", "b", 3) + wins("b", "a") + wins("c", "d", 2) + ties("c", "d") + wins("e", "c")
    assert groups_of(votes) == [["c", "d", "e"], ["a", "b"]]  # largest first
    board = build_leaderboard(votes, [], min_votes=1, resamples=10)
    assert [[row.key for row in rows] for rows in board.groups] == [["e", "c", "d"], ["a", "b"]]
    assert [(row.key, row.group, row.rank) for row in board.rows] == [
        ("e", 1, 1),
        ("c", 1, 2),
        ("d", 1, 3),
        ("a", 2, 1),
        ("b", 2, 2),
    ]
    # Each group is fitted on its own votes: a and b score exactly as if c, d, e did not exist.
    alone = build_leaderboard(wins("a", "b", 3) + wins("b", "a"), [], min_votes=1, resamples=10)
    by_key = {row.key: row for row in board.rows}
    for row in alone.rows:
        assert by_key[row.key].score == pytest.approx(row.score, abs=1e-9)
        assert (by_key[row.key].low, by_key[row.key].high) == pytest.approx((row.low, row.high), abs=1e-6)
    # 3.5 : 1.5 with the prior, centred on 1000 within the group
    assert by_key["a"].score == pytest.approx(1000 + 200 * math.log10(3.5 / 1.5))
    assert sum(row.score for row in board.groups[0]) / 3 == pytest.approx(1000)


@pytest.mark.django_db
def test_the_page_shows_groups_whose_relative_order_is_unknown(auth_client, user):
    vote(make_run(user, ["a", "b"]), user, 0)
    vote(make_run(user, ["c", "d"]), user, 1)
    html = auth_client.get("/leaderboard").content.decode()
    assert 'data-groups="2"' in html and "their relative order is unknown" in html
    groups = re.findall(r'<tbody data-group="(\d)">(.*?)</tbody>', html, re.S)
    assert [(n, re.findall(r'data-model="(\w)"', body)) for n, body in groups] == [("1", ["a", "b"]), ("2", ["d", "c"])]
    assert [row["score"] for row in page_rows(html).values()] == [1095, 905, 1095, 905]
    data = json.loads(auth_client.get("/leaderboard.json").content)
    assert data["groups"] == [["a", "b"], ["d", "c"]] and [m["group"] for m in data["models"]] == [1, 1, 2, 2]
    # Linking the groups with one battle makes one group, and the note goes.
    vote(make_run(user, ["b", "c"]), user, 0)
    html = auth_client.get("/leaderboard").content.decode()
    assert "data-groups" not in html and "data-group=" not in html


def test_identical_votes_get_a_small_sample_interval_not_a_zero_width_one():
    def interval(votes):
        board = build_leaderboard(votes, [], min_votes=1)
        assert all(row.small_sample for row in board.rows)
        return {row.key: (round(row.low, 1), round(row.score, 1), round(row.high, 1)) for row in board.rows}

    # Hand-computed: the pair's win share with the prior, (wins + ½ ties + ½) / (votes + 1), gets a
    # Wilson interval over votes + 1 trials; each bound q maps to a gap of 400·log10(q / (1 − q)),
    # and each of the two scores takes half of it around 1000.
    # One battle: share 1.5 / 2 over 2 trials → q ∈ [0.1979, 0.9733]; gap ∈ [−243.1, 624.8] points.
    assert interval(wins("a", "b")) == {"a": (878.4, 1095.4, 1312.4), "b": (687.6, 904.6, 1121.6)}
    # 50–0: share 50.5 / 51 over 51 → q ∈ [0.9127, 0.9990]; gap ∈ [407.8, 1195.6].
    assert interval(wins("a", "b", 50)) == {"a": (1203.9, 1400.9, 1597.8), "b": (402.2, 599.1, 796.1)}
    # Only ties: share ½ → a symmetric interval around 1000 that narrows as votes accumulate.
    few, many = interval(ties("a", "b", 3)), interval(ties("a", "b", 50))
    assert few["a"][1] == 1000 and few["a"][2] - 1000 == pytest.approx(1000 - few["a"][0], abs=0.1)
    assert 40 < many["a"][2] - 1000 < few["a"][2] - 1000
    # Three sides, the same vote five times: finite, non-degenerate, around each score.
    three = interval([battles_from_vote(["a", "b", "c"], "a")] * 5)
    assert all(low < score < high for low, score, high in three.values())
    assert three["b"] == three["c"]
    # Different votes: the bootstrap as before.
    mixed = build_leaderboard(wins("a", "b", 3) + wins("b", "a"), [], min_votes=1)
    assert not any(row.small_sample for row in mixed.rows)


def test_wilson_reference_values():
    z = 1.959963984540054

    def wilson(p, n):
        c, h = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        return c - h / (1 + z * z / n), c + h / (1 + z * z / n)

    def gap(q):
        return 400 * math.log10(q / (1 - q))

    lo, hi = wilson(50.5 / 51, 51)
    board = {r.key: r for r in build_leaderboard(wins("a", "b", 50), [], min_votes=1).rows}
    assert board["a"].low == pytest.approx(1000 + gap(lo) / 2) and board["a"].high == pytest.approx(1000 + gap(hi) / 2)
    assert board["b"].low == pytest.approx(1000 - gap(hi) / 2)


def test_each_vote_weighs_the_same_however_many_sides():
    decisive, tie = battles_from_vote(["a", "b", "c"], "a"), battles_from_vote(["a", "b", "c"], None)
    for v in (decisive, tie, battles_from_vote(["a", "b"], "a"), battles_from_vote(list("abcd"), None)):
        assert sum(w for _, w in weighted_battles([v])) == pytest.approx(1.0)
    # Hand-computed, prior 1: a–b is ½ (a's win) + ⅓ (the tie) + 1 (prior) = 11/6 battles of which
    # a won ½ + ⅙ + ½ = 7/6; b and c are symmetric, so a's share 7/11 over a–b and a–c → odds 7 : 4.
    # (Counting every battle as one, the tie's three pairs weighed more: odds 2 : 1.)
    board = {r.key: r for r in build_leaderboard([decisive, tie], [], min_votes=1, resamples=10).rows}
    assert board["a"].score - board["b"].score == pytest.approx(400 * math.log10(7 / 4))
    assert board["b"].score == pytest.approx(board["c"].score)
    assert (board["a"].battles, board["a"].votes) == (4, 2)  # battles shown as they happened


def test_preliminary_counts_the_votes_a_model_took_part_in():
    # One three-sided tie: each model is in 1 vote but 2 battles. The setting says votes.
    board = build_leaderboard([battles_from_vote(["a", "b", "c"], None), *wins("a", "b")], [], min_votes=2)
    assert {r.key: (r.votes, r.battles, r.preliminary) for r in board.rows} == {
        "a": (2, 3, False),
        "b": (2, 3, False),
        "c": (1, 2, True),
    }


@pytest.mark.django_db
def test_preliminary_on_the_page_and_exports_is_in_votes(auth_client, user):
    TeamSettings.objects.update_or_create(pk=1, defaults={"leaderboard_min_votes": 2})
    vote(make_run(user, ["a", "b", "c"]), user, Vote.Verdict.TIE)
    html = auth_client.get("/leaderboard").content.decode()
    assert all(row["preliminary"] for row in page_rows(html).values())
    assert 'title="In fewer than 2 votes (1 so far)"' in html
    assert "took part in fewer than 2 votes is marked preliminary" in html
    data = json.loads(auth_client.get("/leaderboard.json").content)
    assert data["min_votes"] == 2 and [m["votes"] for m in data["models"]] == [1, 1, 1]
    assert [m["interval"] for m in data["models"]] == ["wilson"] * 3
    assert TeamSettings._meta.get_field("leaderboard_min_votes").help_text.startswith("Below this many votes")

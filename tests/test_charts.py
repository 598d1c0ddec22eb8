"""Charts (compare/charts.py): the SVG geometry follows the numbers, text is escaped, empty
data says so, the table under each chart carries the same numbers; and the leaderboard,
scorecard and history pages render their charts in a number of queries that does not grow
with the number of runs."""

import re
import xml.etree.ElementTree as ET
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from compare import charts
from compare.charts import BarSeries, ChartRow, Distribution
from compare.models import Criterion, Rating, Vote
from tests import factories
from tests.factories import GPT, MINI, NANO

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '<script>alert("x")</script>'


def parse(markup: str) -> ET.Element:
    """The chart as XML: it must be well formed (every tag closed, every text escaped)."""
    return ET.fromstring(str(markup))


def svg_all(root: ET.Element, tag: str, cls: str = "") -> list[ET.Element]:
    return [e for e in root.iter(SVG + tag) if not cls or cls in (e.get("class") or "").split()]


def pct(value: str) -> float:
    assert value.endswith("%"), value
    return float(value[:-1])


def axis_share(root: ET.Element, x: str) -> float:
    """Where an x position falls along the axis line, 0 at its start and 1 at its end."""
    (axis,) = svg_all(root, "line", "axis")
    start, end = pct(axis.get("x1", "")), pct(axis.get("x2", ""))
    return (pct(x) - start) / (end - start)


def text_of(element: ET.Element | None) -> str:
    assert element is not None
    return "".join(element.itertext())


def table(root: ET.Element) -> list[list[str]]:
    """The rows of the chart's table, header included, as text."""
    tbl = root.find(".//table")
    assert tbl is not None
    return [["".join(cell.itertext()) for cell in tr] for tr in tbl.iter("tr")]


# --- dot and whisker -----------------------------------------------------------------------


def test_the_dot_sits_at_its_value_and_the_whisker_spans_the_interval():
    root = parse(charts.dot_whisker([ChartRow("GPT Image 2", 0.75, 0.5, 0.9)], title="Success rate"))
    (dot,) = svg_all(root, "svg", "dot")
    assert axis_share(root, dot.get("x", "")) == pytest.approx(0.75)
    (whisker,) = svg_all(root, "line", "whisker")
    assert axis_share(root, whisker.get("x1", "")) == pytest.approx(0.5)
    assert axis_share(root, whisker.get("x2", "")) == pytest.approx(0.9)
    caps = sorted(axis_share(root, cap.get("x1", "")) for cap in svg_all(root, "line", "cap"))
    assert caps == pytest.approx([0.5, 0.9])
    texts = ["".join(t.itertext()) for t in svg_all(root, "text")]
    assert "75 % [50 % – 90 %]" in texts and "0 %" in texts and "100 %" in texts


def test_a_fitted_axis_places_scores_between_its_round_ticks():
    rows = [ChartRow("A", 1050, 1000, 1100), ChartRow("B", 950, 905, 996)]
    root = parse(charts.dot_whisker(rows, domain=None, unit="", title="Scores", axis="Score (points)"))
    ticks = {"".join(t.itertext()): axis_share(root, t.get("x", "")) for t in svg_all(root, "text", "tick")}
    assert {"900", "1000", "1100"} <= set(ticks)
    per_point = (ticks["1100"] - ticks["1000"]) / 100
    dots = {d.get("data-value"): axis_share(root, d.get("x", "")) for d in svg_all(root, "svg", "dot")}
    assert dots["1050"] == pytest.approx(ticks["1000"] + 50 * per_point)
    assert dots["950"] == pytest.approx(ticks["900"] + 50 * per_point)
    assert "Score (points)" in [t.text for t in svg_all(root, "text", "axis-name")]


def test_grouped_rows_have_headings_and_one_colour_and_shape_per_label():
    rows = [
        ChartRow("GPT Image 2", 0.75, 0.5, 0.9, group="poster zh"),
        ChartRow("Nano Banana Pro", 0.92, 0.8, 0.97, group="poster zh"),
        ChartRow("GPT Image 2", 0.88, 0.7, 0.95, group="ui-mockup"),
        ChartRow("Nano Banana Pro", 0.78, 0.6, 0.9, group="ui-mockup"),
    ]
    root = parse(charts.dot_whisker(rows, title="Success by case"))
    assert [t.text for t in svg_all(root, "text", "group-name")] == ["poster zh", "ui-mockup"]
    dots = svg_all(root, "svg", "dot")
    classes = [d.get("class") for d in dots]
    assert classes[0] == classes[2] != classes[1] == classes[3]
    shapes = [next(iter(d)).tag for d in dots]
    assert shapes[0] == shapes[2] != shapes[1] == shapes[3]  # told apart without colour too
    assert table(root)[1:] == [
        ["poster zh", "GPT Image 2", "75 %", "50 %", "90 %"],
        ["poster zh", "Nano Banana Pro", "92 %", "80 %", "97 %"],
        ["ui-mockup", "GPT Image 2", "88 %", "70 %", "95 %"],
        ["ui-mockup", "Nano Banana Pro", "78 %", "60 %", "90 %"],
    ]


def test_the_figure_is_an_accessible_image_with_title_and_description():
    root = parse(charts.dot_whisker([ChartRow("A", 0.0, 0.0, 0.3)], title="Rates", caption="95 % Wilson"))
    (svg,) = [e for e in root.iter(SVG + "svg") if e.get("role") == "img"]
    title_id, desc_id = svg.get("aria-labelledby", "").split()
    assert text_of(root.find(f".//{SVG}title[@id='{title_id}']")) == "Rates"
    assert "A: 0 % (from 0 % to 30 %)" in text_of(root.find(f".//{SVG}desc[@id='{desc_id}']"))
    # a 0 % value is drawn at the start of the axis, not dropped
    (dot,) = svg_all(root, "svg", "dot")
    assert axis_share(root, dot.get("x", "")) == pytest.approx(0)
    assert "style=" not in str(charts.dot_whisker([ChartRow("A", 0.5, 0.2, 0.8)], title="t"))


def test_long_labels_are_shortened_with_the_full_name_as_a_tooltip():
    name = "An extraordinarily long model name from a gateway that never ends"
    root = parse(charts.dot_whisker([ChartRow(name, 0.5, 0.4, 0.6)], title="t"))
    (label,) = svg_all(root, "text", "label")
    assert text_of(label.find(SVG + "title")) == name
    assert "".join(label.itertext()).endswith("…") and len(label.text or label[-1].tail or "") < len(name)
    assert table(root)[1][0] == name  # the table keeps the whole name


# --- heat map ----------------------------------------------------------------------------------


def test_heat_cell_opacity_is_proportional_to_its_value_and_prints_it():
    root = parse(
        charts.heat_map(
            ["A", "B"], ["A", "B"], [[None, 0.25], [1.0, 0.0]], title="Head to head", corner="Row beats column"
        )
    )
    cells = {r.get("data-value"): float(r.get("fill-opacity", "")) for r in svg_all(root, "rect", "heat")}
    assert cells["100 %"] == pytest.approx(charts.MAX_HEAT)
    assert cells["25 %"] == pytest.approx(charts.MAX_HEAT * 0.25)
    assert cells["0 %"] == 0  # drawn, and printed, not left blank
    printed = ["".join(t.itertext()) for t in svg_all(root, "text", "cell-text")]
    assert printed == ["·", "25 %", "100 %", "0 %"]  # never measured: a dot
    assert table(root) == [["Row beats column", "A", "B"], ["A", "—", "25 %"], ["B", "100 %", "0 %"]]


def test_a_star_heat_map_maps_one_to_five_stars():
    root = parse(charts.heat_map(["M"], ["Text", "Style"], [[5.0, 3.0]], domain=(1, 5), unit="★", title="Ratings"))
    cells = {r.get("data-value"): float(r.get("fill-opacity", "")) for r in svg_all(root, "rect", "heat")}
    assert cells == {"5.0 ★": pytest.approx(charts.MAX_HEAT), "3.0 ★": pytest.approx(charts.MAX_HEAT / 2)}


# --- box and strip, bars -------------------------------------------------------------------


def test_box_plot_draws_quartiles_median_and_every_value():
    root = parse(
        charts.box_strip([Distribution("A", [1, 2, 3, 4, 5]), Distribution("B", [])], unit="s", title="Latency")
    )
    # the axis runs from 0 to a round 5 s
    (median,) = svg_all(root, "line", "median")
    assert axis_share(root, median.get("x1", "")) == pytest.approx(3 / 5)
    (box,) = svg_all(root, "rect", "box")
    assert axis_share(root, box.get("x", "")) == pytest.approx(2 / 5)
    assert pct(box.get("width", "")) / 98 == pytest.approx(2 / 5, abs=1e-3)  # the plot spans 98 % of the width
    assert len(svg_all(root, "circle", "point")) == 5
    assert table(root)[1:] == [["A", "5", "1 s", "2 s", "3 s", "4 s", "5 s"], ["B", "0", "no data", "", "", "", ""]]


def test_bars_are_as_tall_as_their_values_and_zero_draws_nothing():
    markup = charts.bars(
        ["Nov 1", "Nov 2", "Nov 3"],
        [BarSeries("Runs", [4, 0, 2]), BarSeries("Spend", [0.5, 0, 0.25], "$")],
        title="Runs and spend",
    )
    root = parse(markup)
    runs = [b for b in svg_all(root, "rect", "bar") if "s0" in b.get("class", "")]
    assert [b.get("data-value") for b in runs] == ["4", "2"]
    assert float(runs[0].get("height", "")) == pytest.approx(2 * float(runs[1].get("height", "")))
    assert table(root) == [
        ["Day", "Runs", "Spend ($)"],
        ["Nov 1", "4", "$0.50"],
        ["Nov 2", "0", "$0"],
        ["Nov 3", "2", "$0.25"],
    ]


def test_hostile_text_is_escaped_everywhere():
    outputs = [
        charts.dot_whisker([ChartRow(HOSTILE, 0.5, 0.4, 0.6, group=HOSTILE)], title=HOSTILE, caption=HOSTILE),
        charts.heat_map([HOSTILE], [HOSTILE], [[0.5]], title=HOSTILE, notes=[[HOSTILE]], corner=HOSTILE),
        charts.box_strip([Distribution(HOSTILE, [1.0])], title=HOSTILE),
        charts.bars([HOSTILE], [BarSeries(HOSTILE, [1], HOSTILE)], title=HOSTILE, category_name=HOSTILE),
    ]
    for markup in outputs:
        assert "<script" not in markup and "&lt;script&gt;" in markup
        parse(markup)


def test_empty_data_says_no_data_instead_of_an_empty_frame():
    outputs = [
        charts.dot_whisker([], title="Scores"),
        charts.heat_map([], [], [], title="Head to head"),
        charts.heat_map(["A"], ["B"], [[None]], title="Head to head"),
        charts.box_strip([Distribution("A", [])], title="Latency"),
        charts.bars(["Nov 1"], [BarSeries("Runs", [0])], title="Runs"),
    ]
    for markup in outputs:
        assert "No data yet." in markup and "<svg" not in markup


# --- pages ---------------------------------------------------------------------------------


def figures(html: str) -> dict[str, str]:
    """Each chart figure of a page, by its title."""
    found = re.findall(r'(<figure class="chart .*?</figure>)', html, re.S)
    return {re.search(r'class="chart-title">([^<]*)<', f)[1]: f for f in found}  # type: ignore[index]


def with_chart(client, url: str, **headers) -> str:
    """The history page (or its htmx fragment) at `url`, with its chart as a browser shows it:
    the page's chart slot asks for `history_chart` once drawn; its answer takes the slot's place."""
    html = client.get(url, **headers).content.decode()
    slot = re.search(r'<div class="chart-slot" hx-get="([^"]+)"[^>]*>.*?</div>', html, re.S)
    if slot is None:
        return html
    chart = client.get(slot[1].replace("&amp;", "&"))
    assert chart.status_code == 200 and "<html" not in chart.content.decode()
    return html.replace(slot[0], chart.content.decode())


def board_runs(user, n: int) -> None:
    """`n` runs of three models, each voted for the first: every chart of the board has data."""
    for i in range(n):
        run = factories.make_run(user, models=(GPT, NANO, MINI), images=1, latency_ms=1000 * (i + 2), cost_usd="0.04")
        Vote.objects.create(run=run, user=user, verdict=Vote.Verdict.BETTER, winner=run.generations.get(position=0))


def queries_for(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.django_db
def test_leaderboard_shows_scores_head_to_head_latency_and_cost_charts(auth_client, user):
    board_runs(user, 3)
    html = auth_client.get("/leaderboard").content.decode()
    shown = figures(html)
    assert set(shown) == {"Scores with 95 % intervals", "Head to head", "Latency per model", "Cost per image"}
    scores = parse(shown["Scores with 95 % intervals"])
    assert table(scores)[1][0] == "GPT Image 2"  # the winner first, as in the table
    heat = table(parse(shown["Head to head"]))
    assert heat[1] == ["GPT Image 2", "—", "100 % (3 battles)", "100 % (3 battles)"]
    latency = table(parse(shown["Latency per model"]))
    assert latency[1] == ["GPT Image 2", "3", "2 s", "2.5 s", "3 s", "3.5 s", "4 s"]
    cost = table(parse(shown["Cost per image"]))
    assert cost[1][:3] == ["GPT Image 2", "3", "$0.04"]


@pytest.mark.django_db
def test_leaderboard_queries_do_not_grow_with_the_runs(auth_client, user):
    board_runs(user, 2)
    few = queries_for(auth_client, "/leaderboard")
    board_runs(user, 12)
    assert queries_for(auth_client, "/leaderboard") == few


@pytest.mark.django_db
def test_leaderboard_without_votes_has_no_chart_frames(auth_client):
    html = auth_client.get("/leaderboard").content.decode()
    assert "<svg" not in html.split("<main", 1)[1] and 'class="chart ' not in html


@pytest.mark.django_db
def test_scorecard_shows_a_model_by_criterion_heat_map(auth_client, user):
    usable = Criterion.objects.get(is_usability=True)
    run = factories.make_run(user, images=1)
    gpt, nano = run.generations.order_by("position")
    Rating.objects.create(generation=gpt, user=user, criterion=usable, stars=5)
    Rating.objects.create(generation=nano, user=user, criterion=usable, stars=2)
    html = auth_client.get("/scorecard").content.decode()
    (heat,) = figures(html).values()
    root = parse(heat)
    rows = {r[0]: r for r in table(root)[1:]}
    column = table(root)[0].index(usable.name)
    assert rows["GPT Image 2"][column] == "5.0 ★ (n=1)" and rows["Nano Banana Pro"][column] == "2.0 ★ (n=1)"
    opacity = {r.get("data-value"): float(r.get("fill-opacity", "")) for r in svg_all(root, "rect", "heat")}
    assert opacity["5.0 ★"] == pytest.approx(charts.MAX_HEAT) and opacity["2.0 ★"] == pytest.approx(charts.MAX_HEAT / 4)
    few = queries_for(auth_client, "/scorecard")
    for _ in range(8):
        more = factories.make_run(user, images=1)
        for gen in more.generations.all():
            Rating.objects.create(generation=gen, user=user, criterion=usable, stars=4)
    assert queries_for(auth_client, "/scorecard") == few


@pytest.mark.django_db
def test_history_shows_runs_and_spend_per_day_of_the_filtered_runs(auth_client, user, other_user):
    today = timezone.localdate()
    for _ in range(3):
        factories.make_run(user, prompt="a red fox", cost_usd="0.25")
    factories.make_run(user, prompt="a blue bird", days_ago=2, cost_usd="0.5")
    factories.make_run(user, prompt="old", days_ago=45)  # before the last 30 days
    # Someone else's blind run: counted as a run, but its cost stays hidden like in its row.
    factories.make_run(other_user, prompt="a red fox", blind=True, cost_usd="9")
    html = with_chart(auth_client, "/runs/")
    (chart,) = figures(html).values()
    rows = table(parse(chart))
    assert rows[0] == ["Day", "Runs", "Spend ($)"] and len(rows) == 1 + 30
    by_day = {r[0]: r[1:] for r in rows[1:]}
    two_days_ago = today - timedelta(days=2)
    assert by_day[f"{today:%b} {today.day}"] == ["4", "$1.50"]  # three runs of two sides at $0.25
    assert by_day[f"{two_days_ago:%b} {two_days_ago.day}"] == ["1", "$1.00"]
    assert "Spend leaves out 1 blind run whose names you have not seen." in chart
    # The chart follows the filters: only the foxes.
    (fox,) = figures(with_chart(auth_client, "/runs/?q=fox")).values()
    assert {r[0]: r[1:] for r in table(parse(fox))[1:]}[f"{today:%b} {today.day}"] == ["4", "$1.50"]
    assert sum(int(r[1]) for r in table(parse(fox))[1:]) == 4


@pytest.mark.django_db
def test_history_chart_follows_the_date_range_per_week_when_long(auth_client, user):
    factories.make_run(user, created_at=timezone.now() - timedelta(days=100), cost_usd=Decimal("0.1"))
    start = (timezone.localdate() - timedelta(days=200)).isoformat()
    (chart,) = figures(with_chart(auth_client, f"/runs/?date_from={start}")).values()
    rows = table(parse(chart))
    assert rows[0][0] == "Week" and 28 <= len(rows) - 1 <= 30
    assert sum(int(r[1]) for r in rows[1:]) == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query", ["date_to=0001-01-05", "date_from=0001-01-01&date_to=9999-12-31", "date_from=9999-12-30"]
)
def test_history_chart_survives_dates_at_the_ends_of_the_calendar(auth_client, user, query):
    """The year 1 and the year 9999 are valid dates: the page answers, and the chart covers
    at most its last two years (about 105 weeks) instead of millions of days."""
    factories.make_run(user, days_ago=3)
    assert auth_client.get(f"/runs/?{query}").status_code == 200
    assert auth_client.get(f"/runs/chart?{query}").status_code == 200
    html = with_chart(auth_client, f"/runs/?{query}")
    if "9999-12-31" in query:
        (chart,) = figures(html).values()
        rows = table(parse(chart))
        assert rows[0][0] == "Week" and len(rows) - 1 <= 106
        assert sum(int(r[1]) for r in rows[1:]) == 1


@pytest.mark.django_db
def test_history_queries_do_not_grow_with_the_runs(auth_client, user):
    for i in range(2):
        factories.make_run(user, days_ago=i)
    queries_for(auth_client, "/runs/")  # fills the filters' choices (compare/history.py `choice_lists`)
    few = queries_for(auth_client, "/runs/")
    few_for_chart = queries_for(auth_client, "/runs/chart")
    for i in range(15):
        factories.make_run(user, days_ago=i % 5)
    assert queries_for(auth_client, "/runs/") == few
    assert queries_for(auth_client, "/runs/chart") == few_for_chart <= 3  # session, user, one aggregate


@pytest.mark.django_db
def test_history_without_runs_shows_no_chart(auth_client):
    html = with_chart(auth_client, "/runs/")
    assert 'class="chart ' not in html and "No comparisons yet" in html


@pytest.mark.django_db
def test_hostile_model_and_criterion_names_are_escaped_on_the_pages(auth_client, user):
    evil = ("evil", HOSTILE, "evil-1")
    criterion = Criterion.objects.create(name=HOSTILE, position=50)
    for _ in range(2):
        run = factories.make_run(user, models=(evil, GPT), images=1, latency_ms=3000)
        Vote.objects.create(run=run, user=user, verdict=Vote.Verdict.BETTER, winner=run.generations.get(position=0))
        for gen in run.generations.all():
            Rating.objects.create(generation=gen, user=user, criterion=criterion, stars=3)
    for url, count in (("/leaderboard", 4), ("/scorecard", 1), ("/runs/", 1)):
        html = with_chart(auth_client, url)
        assert HOSTILE not in html, url
        shown = figures(html)
        assert len(shown) == count, url
        if url != "/runs/":  # the history's chart names no model
            assert all("&lt;script&gt;" in chart for chart in shown.values()), url


@pytest.mark.django_db
def test_the_history_fragment_brings_its_chart_along(auth_client, user):
    factories.make_run(user, prompt="a red fox")
    factories.make_run(user, prompt="a blue bird")
    html = with_chart(auth_client, "/runs/?q=fox", HTTP_HX_REQUEST="true")
    assert "<html" not in html
    (chart,) = figures(html).values()
    assert sum(int(r[1]) for r in table(parse(chart))[1:]) == 1


@pytest.mark.django_db
def test_models_never_compared_are_charted_under_their_own_group(auth_client, user):
    other_pair = (("x", "Model X", "x-1"), ("y", "Model Y", "y-1"))
    for models in ((GPT, NANO), other_pair):
        run = factories.make_run(user, models=models, images=1)
        Vote.objects.create(run=run, user=user, verdict=Vote.Verdict.BETTER, winner=run.generations.get(position=0))
    root = parse(figures(auth_client.get("/leaderboard").content.decode())["Scores with 95 % intervals"])
    assert [t.text for t in svg_all(root, "text", "group-name")] == ["Group 1 of 2", "Group 2 of 2"]
    groups: dict[str, set[str]] = {}
    for group, name, *_ in table(root)[1:]:
        groups.setdefault(group, set()).add(name)
    assert sorted(groups.values(), key=sorted) == [{"GPT Image 2", "Nano Banana Pro"}, {"Model X", "Model Y"}]


def test_numbers_print_the_same_way_in_charts_and_tables():
    assert [charts.fmt(v, "%") for v in (0, 0.754, 1)] == ["0 %", "75 %", "100 %"]
    assert [charts.fmt(v, "$") for v in (0, 0.04, 0.0492, 0.5, 12.345)] == ["$0", "$0.04", "$0.049", "$0.50", "$12.35"]
    assert [charts.fmt(v, "s") for v in (9.0, 12.34)] == ["9 s", "12.3 s"]
    assert [charts.fmt(v, "★") for v in (4, 3.666)] == ["4.0 ★", "3.7 ★"]
    assert charts.fmt(None, "%") == "—" and charts.fmt(1077.4) == "1077"
    assert charts.nice_ticks(0, 1) == [0, 0.25, 0.5, 0.75, 1]
    assert charts.nice_domain(905, 1183) == (900, 1200)

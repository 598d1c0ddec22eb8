"""The charts of the leaderboard, scorecard and history pages, as template tags: each
turns what the page's view already computed into a chart of compare/charts.py.

    {% load charts %}
    {% score_chart board %}  {% winrate_heat_map board %}  {% spread_charts board spread %}
    {% scorecard_heat_map criteria rows %}  {% daily_chart activity %}
"""

from collections.abc import Mapping, Sequence

from django import template
from django.utils.safestring import SafeString, mark_safe

from compare import charts
from compare.history import Activity
from compare.judging.leaderboard import BASE, Leaderboard
from compare.judging.scorecard import ScoreRow
from compare.models import Criterion

register = template.Library()


@register.simple_tag
def score_chart(board: Leaderboard) -> SafeString:
    """Scores with their 95 % intervals; models of separate groups under their group's name."""
    grouped = len(board.groups) > 1
    rows = [
        charts.ChartRow(
            label=row.label,  # as in the other charts: one colour and shape per model
            value=row.score,
            low=row.low,
            high=row.high,
            group=f"Group {row.group} of {len(board.groups)}" if grouped else "",
        )
        for row in board.rows
    ]
    return charts.dot_whisker(
        rows,
        domain=None,
        unit="",
        title="Scores with 95 % intervals",
        caption=f"Dot: the score; whisker: its 95 % interval. {BASE:g} is the average"
        + (" of each group; compare within a group only." if grouped else ".")
        + " Models whose whiskers overlap are not reliably apart.",
        axis="Score (points)",
        value_name="Score",
    )


@register.simple_tag
def winrate_heat_map(board: Leaderboard) -> SafeString:
    """The head-to-head matrix: how often the row's model beat the column's, ties counted half."""
    labels = [row.label for row in board.rows]
    values = [[cell.rate for cell in cells] for _, cells in board.matrix]
    notes = [
        [f"{cell.battles} battle{'' if cell.battles == 1 else 's'}" if cell.battles else "never met" for cell in cells]
        for _, cells in board.matrix
    ]
    for i, _ in enumerate(labels):  # a model against itself: no note, no number
        notes[i][i] = ""
    return charts.heat_map(
        labels,
        labels,
        values,
        title="Head to head",
        caption="How often the row's model beat the column's (ties count half); darker is more often. "
        "A dotted cell: they never met.",
        notes=notes,
        corner="Row beats column",
    )


@register.simple_tag
def spread_charts(board: Leaderboard, spread: Mapping[str, tuple[Sequence[float], Sequence[float]]]) -> SafeString:
    """Latency and cost per image of every successful generation behind the board, per model
    (`spread`: model key → (latencies in seconds, costs per image in USD))."""
    latency = [charts.Distribution(row.label, spread.get(row.key, ((), ()))[0]) for row in board.rows]
    cost = [charts.Distribution(row.label, spread.get(row.key, ((), ()))[1]) for row in board.rows]
    return mark_safe(
        '<div class="charts-grid">'
        + charts.box_strip(
            latency,
            unit="s",
            title="Latency per model",
            caption="Each dot a generation that succeeded; box: middle half; line: median.",
            axis="Latency (seconds)",
        )
        + charts.box_strip(
            cost,
            unit="$",
            title="Cost per image",
            caption="Reported cost, or the estimate when none was reported, divided by the images delivered.",
            axis="Cost per image (US dollars)",
        )
        + "</div>"
    )


@register.simple_tag
def scorecard_heat_map(criteria: Sequence[Criterion], rows: Sequence[ScoreRow]) -> SafeString:
    """Mean stars per model and criterion (1–5); darker is better."""
    return charts.heat_map(
        [row.label for row in rows],
        [criterion.name for criterion in criteria],
        [[cell.mean for cell in row.cells] for row in rows],
        domain=(1, 5),
        unit="★",
        title="Mean rating per model and criterion",
        caption="Stars from 1 to 5; darker is better. A dotted cell: not rated yet.",
        notes=[[f"n={cell.count}" if cell.count else "" for cell in row.cells] for row in rows],
        corner="Model",
    )


@register.simple_tag
def daily_chart(activity: Activity) -> SafeString:
    """Runs and spend per day (per week over long ranges) of the history's filtered runs."""
    per = activity.per.lower()
    caption = f"{activity.first:%b} {activity.first.day} – {activity.last:%b} {activity.last.day}, {activity.last.year}, per {per}."
    if activity.unpriced:
        n = activity.unpriced
        caption += f" Spend leaves out {n} blind run{'' if n == 1 else 's'} whose names you have not seen."
    return charts.bars(
        [label for label, _, _ in activity.bins],
        [
            charts.BarSeries("Runs", [n for _, n, _ in activity.bins]),
            charts.BarSeries("Spend", [spend for _, _, spend in activity.bins], "$"),
        ],
        title=f"Runs and spend per {per}",
        caption=caption,
        category_name=activity.per,
        empty="No comparisons in this range.",
        panel_height=64,
    )

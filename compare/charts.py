"""Charts as server-rendered SVG: no JavaScript, no CDN, no build step.

Each function takes numbers and returns one accessible `<figure>`: an `<svg role="img">`
named by its `<title>` and `<desc>`, and a `<details>` disclosure with a table of the same
numbers, formatted the same way (screen readers, copying, export). An empty chart is a
"No data yet" line, never an empty frame.

Under the strict Content-Security-Policy (`style-src 'self'`) the markup carries no
`style` attribute: geometry is SVG attributes, colours are classes styled in
static/charts.css with CSS variables (light and dark, an Okabe–Ito palette that
colour-blind readers can tell apart, and one marker shape per series as well).

Sizing. Horizontal charts (dot-and-whisker, box/strip, bars) place everything along x
in percent of the SVG's width and along y in pixels, without a viewBox: the chart fills
any width, from a 390 px phone to a 4K screen, and its text keeps its size instead of
shrinking with the drawing. Heat maps have columns, so they scale with a viewBox and
sit in a scroll box (`.chart-scroll`) that keeps them at a legible minimum width.

Every piece of text goes through `escape`; labels longer than a chart has room for are
shortened with "…" and carry the full text in a `<title>` (a tooltip; the table has it too).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from compare.stats import quantile

# Heat-map cells: fill-opacity = MAX_HEAT × the value's share of the domain. Capped so the
# cell's text (always the page's text colour) keeps 4.5:1 contrast on the darkest cell.
MAX_HEAT = 0.6
SERIES = 6  # series colours and marker shapes in static/charts.css (.s0 … .s5), then they repeat
NO_DATA = "No data yet."


@dataclass(frozen=True)
class ChartRow:
    """One row of a dot-and-whisker chart: a value with its interval.

    `group` (e.g. a suite case) starts a headed block of rows whenever it changes; rows
    with the same `label` (e.g. a model) share a colour and a marker across the chart."""

    label: str
    value: float
    low: float
    high: float
    group: str = ""


@dataclass(frozen=True)
class Distribution:
    """The values of one series for a box/strip plot (e.g. one model's latencies)."""

    label: str
    values: Sequence[float]


@dataclass(frozen=True)
class BarSeries:
    """One panel of a bar chart: a value per category (e.g. spend per day), in `unit`."""

    name: str
    values: Sequence[float]
    unit: str = ""


# --- Numbers and text --------------------------------------------------------------


def fmt(value: float | None, unit: str = "") -> str:
    """A number as charts and their tables print it. "%": a share 0–1 as a whole percent;
    "$": dollars to the cent, or to a tenth of a cent when that matters ($0.049); "★": a mean
    rating to 0.1; otherwise whole numbers as such, others to 0.1, then the unit."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if unit == "%":
        return f"{100 * value:.0f} %"
    if unit == "$":
        if value == 0:
            return "$0"
        cents = abs(value) >= 1 or math.isclose(value * 100, round(value * 100), abs_tol=1e-9)
        return f"${value:.2f}" if cents else f"${value:.3f}"
    if unit == "★":
        return f"{value:.1f} ★"
    number = f"{value:.0f}" if float(value).is_integer() or abs(value) >= 100 else f"{value:.1f}"
    return f"{number} {unit}" if unit else number


def _e(text: object) -> str:
    return str(escape(str(text)))


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _text(x: str, y: float, label: str, cls: str, limit: int = 0, anchor: str = "") -> str:
    """An SVG <text>; shortened to `limit` characters with the full text as its <title>."""
    shown = _short(label, limit) if limit else label
    tip = f"<title>{_e(label)}</title>" if shown != label else ""
    anchor_attr = f' text-anchor="{anchor}"' if anchor else ""
    return f'<text class="{cls}" x="{x}" y="{y:g}"{anchor_attr}>{tip}{_e(shown)}</text>'


def _wrap_words(text: str, width: int, lines: int) -> list[str]:
    """`text` in at most `lines` lines of about `width` characters, broken between words;
    what does not fit ends the last line with "…"."""
    out: list[str] = []
    for word in text.split():
        if out and len(out[-1]) + 1 + len(word) <= width:
            out[-1] += " " + word
        else:
            out.append(word)
    if len(out) > lines:
        out = [*out[: lines - 1], _short(" ".join(out[lines - 1 :]), width)]
    return [_short(line, width) for line in out] or [""]


def _pct(share: float) -> str:
    """An x position: a share 0–1 of the plot → percent of the SVG's width (the plot spans 1–99 %)."""
    share = min(max(share, 0.0), 1.0)
    return f"{1 + 98 * share:.2f}%"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values from `low` to `high` (both included when they are round)."""
    if high <= low:
        return [low]
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def nice_domain(low: float, high: float) -> tuple[float, float]:
    """`low`–`high` widened to round tick values on both sides (a point: ±1 around it)."""
    if high <= low:
        return low - 1, high + 1
    ticks = nice_ticks(low, high)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else high - low
    return math.floor(low / step + 1e-9) * step, math.ceil(high / step - 1e-9) * step


def nice_max(value: float) -> float:
    """The smallest round number ≥ `value` (the top of an axis that starts at 0)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    return next(m * magnitude for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if m * magnitude >= value * (1 - 1e-12))


def _uid(kind: str, *parts: object) -> str:
    return f"chart-{kind}-" + hashlib.sha1(repr(parts).encode()).hexdigest()[:10]


def _series_of(labels: Sequence[str]) -> dict[str, int]:
    """A series number per distinct label, in order of appearance."""
    series: dict[str, int] = {}
    for label in labels:
        series.setdefault(label, len(series) % SERIES)
    return series


def _marker(x: str, y: float, series: int, value: str) -> str:
    """A dot: a small nested SVG placed at (x, y) holding the series' shape around its origin,
    so a percent x works for squares and triangles as well as circles."""
    shapes = [
        '<circle r="5.5"/>',
        '<rect x="-5" y="-5" width="10" height="10"/>',
        '<path d="M0,-6.5L6.5,0L0,6.5L-6.5,0Z"/>',
        '<path d="M0,-6.5L6,5L-6,5Z"/>',
        '<path d="M0,6.5L6,-5L-6,-5Z"/>',
        '<path d="M-2,-6h4v4h4v4h-4v4h-4v-4h-4v-4h4Z"/>',
    ]
    return (
        f'<svg class="dot s{series}" x="{x}" y="{y:g}" overflow="visible" data-value="{_e(value)}">'
        f"{shapes[series % len(shapes)]}</svg>"
    )


def _figure(uid: str, kind: str, title: str, caption: str, svg_body: str, height: float, desc: str, table: str) -> str:
    svg = (
        f'<svg class="chart-svg" width="100%" height="{height:g}" role="img" overflow="visible" '
        f'aria-labelledby="{uid}-title {uid}-desc" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{uid}-title">{_e(title)}</title><desc id="{uid}-desc">{_e(desc)}</desc>{svg_body}</svg>'
    )
    return _wrap(uid, kind, title, caption, svg, table)


def _wrap(uid: str, kind: str, title: str, caption: str, svg: str, table: str) -> str:
    cap = f' <span class="chart-caption">{_e(caption)}</span>' if caption else ""
    return (
        f'<figure class="chart chart-{kind}" id="{uid}">'
        f'<figcaption><span class="chart-title">{_e(title)}</span>{cap}</figcaption>{svg}'
        f'<details class="chart-data"><summary>The numbers</summary>'
        f'<div class="table-scroll" tabindex="0" role="region" aria-label="{_e(title)}: the numbers">{table}</div>'
        f"</details></figure>"
    )


def _empty(kind: str, title: str, caption: str, message: str) -> SafeString:
    cap = f' <span class="chart-caption">{_e(caption)}</span>' if caption else ""
    return mark_safe(
        f'<figure class="chart chart-{kind} chart-empty"><figcaption><span class="chart-title">{_e(title)}</span>'
        f'{cap}</figcaption><p class="empty">{_e(message)}</p></figure>'
    )


def _table(head: Sequence[str], body: Sequence[Sequence[str]], numeric_from: int = 1) -> str:
    """A table of already formatted strings; the first column heads its row."""
    ths = "".join(
        f'<th scope="col"{' class="num"' if i >= numeric_from else ""}>{_e(h)}</th>' for i, h in enumerate(head)
    )
    rows = []
    for cells in body:
        tds = "".join(
            f"<td{' class="num"' if i >= numeric_from else ''}>{_e(c)}</td>" for i, c in enumerate(cells) if i
        )
        rows.append(f'<tr><th scope="row">{_e(cells[0])}</th>{tds}</tr>')
    return f'<table class="board chart-table"><thead><tr>{ths}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _x_axis(ticks: Sequence[float], share: Callable[[float], float], unit: str, top: float, bottom: float, name: str):
    """Vertical grid lines from `top` to `bottom`, tick labels under them, the axis name below."""
    parts = []
    for i, tick in enumerate(ticks):
        x = _pct(share(tick))
        parts.append(f'<line class="grid" x1="{x}" x2="{x}" y1="{top:g}" y2="{bottom:g}"/>')
        anchor = "start" if i == 0 and len(ticks) > 1 else "end" if i == len(ticks) - 1 and len(ticks) > 1 else "middle"
        parts.append(_text(x, bottom + 16, fmt(tick, unit), "tick", anchor=anchor))
    parts.append(_text("50%", bottom + 36, name, "axis-name", anchor="middle"))
    return "".join(parts)


# --- Dot and whisker -----------------------------------------------------------------


def dot_whisker(
    rows: Sequence[ChartRow],
    *,
    domain: tuple[float, float] | None = (0, 1),
    unit: str = "%",
    title: str,
    caption: str = "",
    axis: str = "",
    value_name: str = "Value",
) -> SafeString:
    """A horizontal dot-and-whisker chart: per row a dot at `value` and a whisker from `low`
    to `high` (e.g. a success rate with its 95 % Wilson interval).

    With `unit="%"` values and domain are shares 0–1, printed as percents. `domain=None`
    fits the axis to the data. Rows are drawn in the order given; a change of `group`
    starts a headed block, and rows with the same label share a colour and a shape.
    `axis` names the axis (default: the unit); `value_name` heads the table's value column."""
    if not rows:
        return _empty("dots", title, caption, NO_DATA)
    lo, hi = domain if domain is not None else nice_domain(min(r.low for r in rows), max(r.high for r in rows))
    ticks = [t for t in nice_ticks(lo, hi) if lo - 1e-9 <= t <= hi + 1e-9]

    def share(v: float) -> float:
        return (v - lo) / (hi - lo) if hi > lo else 0.5

    series = _series_of([r.label for r in rows])
    uid = _uid("dots", title, rows)
    grouped = any(r.group for r in rows)
    parts, y, current = [], 8.0, None
    marks = []
    for row in rows:
        if grouped and row.group != current:
            current = row.group
            y += 6
            marks.append(_text("0", y + 14, row.group or "—", "group-name", limit=60))
            y += 24
        s = series[row.label]
        value_text = f"{fmt(row.value, unit)} [{fmt(row.low, unit)} – {fmt(row.high, unit)}]"
        x_low, x_high, x_value = _pct(share(row.low)), _pct(share(row.high)), _pct(share(row.value))
        line_y = y + 30
        marks.append(
            f'<g class="row s{s}" data-label="{_e(row.label)}">'
            + _text("0", y + 14, row.label, "label", limit=26)
            + _text("100%", y + 14, value_text, "value", anchor="end")
            + f'<line class="whisker" x1="{x_low}" x2="{x_high}" y1="{line_y:g}" y2="{line_y:g}"/>'
            + f'<line class="cap" x1="{x_low}" x2="{x_low}" y1="{line_y - 5:g}" y2="{line_y + 5:g}"/>'
            + f'<line class="cap" x1="{x_high}" x2="{x_high}" y1="{line_y - 5:g}" y2="{line_y + 5:g}"/>'
            + _marker(x_value, line_y, s, fmt(row.value, unit))
            + "</g>"
        )
        y += 44
    axis_y = y + 2
    parts.append(_x_axis(ticks, share, unit, 4, axis_y, axis or f"{value_name} ({unit})"))
    parts.append(f'<line class="axis" x1="1%" x2="99%" y1="{axis_y:g}" y2="{axis_y:g}"/>')
    parts.extend(marks)
    desc = "; ".join(
        f"{(r.group + ', ') if r.group else ''}{r.label}: {fmt(r.value, unit)} "
        f"(from {fmt(r.low, unit)} to {fmt(r.high, unit)})"
        for r in rows[:20]
    ) + ("; more in the table." if len(rows) > 20 else ".")
    head = (["Group"] if grouped else []) + ["Name", value_name, "Low", "High"]
    body = [
        ([r.group] if grouped else []) + [r.label, fmt(r.value, unit), fmt(r.low, unit), fmt(r.high, unit)]
        for r in rows
    ]
    table = _table(head, body, numeric_from=2 if grouped else 1)
    return mark_safe(_figure(uid, "dots", title, caption, "".join(parts), axis_y + 44, desc, table))


# --- Box and strip ---------------------------------------------------------------------


def box_strip(
    series: Sequence[Distribution],
    *,
    unit: str = "",
    title: str,
    caption: str = "",
    axis: str = "",
) -> SafeString:
    """Per series a box (quartiles, median line, whiskers from minimum to maximum) over the
    individual values as a strip of points; the axis starts at 0. Series without values are
    listed in the table as "no data" and left out of the drawing."""
    drawn = [d for d in series if d.values]
    if not drawn:
        return _empty("box", title, caption, NO_DATA)
    hi = nice_max(max(max(d.values) for d in drawn))
    ticks = nice_ticks(0, hi)

    def share(v: float) -> float:
        return v / hi

    colours = _series_of([d.label for d in series])
    uid = _uid("box", title, [(d.label, list(d.values)) for d in series])
    marks, y = [], 8.0
    for d in drawn:
        s = colours[d.label]
        vals = sorted(d.values)
        q1, med, q3 = quantile(vals, 25), quantile(vals, 50), quantile(vals, 75)
        summary = f"median {fmt(med, unit)} · n={len(vals)}"
        box_y = y + 22
        dots = "".join(
            # a fixed spread over three lanes, so equal values stay visible side by side
            f'<circle class="point" cx="{_pct(share(v))}" cy="{box_y + 12 + 5 * ((i % 3) - 1):g}" r="2.5"/>'
            for i, v in enumerate(vals)
        )
        x1 = _pct(share(q1))
        width = f"{98 * (share(q3) - share(q1)):.2f}%"
        marks.append(
            f'<g class="row s{s}" data-label="{_e(d.label)}">'
            + _text("0", y + 14, d.label, "label", limit=26)
            + _text("100%", y + 14, summary, "value", anchor="end")
            + f'<line class="whisker" x1="{_pct(share(vals[0]))}" x2="{_pct(share(vals[-1]))}" '
            f'y1="{box_y + 12:g}" y2="{box_y + 12:g}"/>'
            + f'<rect class="box" x="{x1}" y="{box_y + 2:g}" width="{width}" height="20" rx="3" '
            f'data-q1="{_e(fmt(q1, unit))}" data-q3="{_e(fmt(q3, unit))}"/>'
            + dots
            + f'<line class="median" x1="{_pct(share(med))}" x2="{_pct(share(med))}" '
            f'y1="{box_y:g}" y2="{box_y + 24:g}" data-value="{_e(fmt(med, unit))}"/>' + "</g>"
        )
        y += 60
    axis_y = y + 2
    parts = [_x_axis(ticks, share, unit, 4, axis_y, axis or unit)]
    parts.append(f'<line class="axis" x1="1%" x2="99%" y1="{axis_y:g}" y2="{axis_y:g}"/>')
    parts.extend(marks)
    rows = []
    for d in series:
        if d.values:
            vals = sorted(d.values)
            qs = [vals[0], quantile(vals, 25), quantile(vals, 50), quantile(vals, 75), vals[-1]]
            rows.append([d.label, str(len(vals)), *(fmt(v, unit) for v in qs)])
        else:
            rows.append([d.label, "0", "no data", "", "", "", ""])
    desc = "; ".join(f"{r[0]}: median {r[4]}, from {r[2]} to {r[6]}, {r[1]} values" for r in rows if r[1] != "0") + "."
    table = _table(["Name", "n", "Minimum", "Lower quartile", "Median", "Upper quartile", "Maximum"], rows)
    return mark_safe(_figure(uid, "box", title, caption, "".join(parts), axis_y + 44, desc, table))


# --- Heat map ------------------------------------------------------------------------------


def heat_map(
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    values: Sequence[Sequence[float | None]],
    *,
    domain: tuple[float, float] = (0, 1),
    unit: str = "%",
    title: str,
    caption: str = "",
    notes: Sequence[Sequence[str]] | None = None,
    corner: str = "",
) -> SafeString:
    """A grid of cells, one per row and column, each filled with one colour at an opacity
    proportional to its value's place in `domain` (`MAX_HEAT` at the top) and printing the
    value. `None` cells (never measured) are hatched and print "·". `notes`, per cell, is a
    short text for the cell's tooltip and table (e.g. "12 battles"). `corner` heads the
    table's first column (e.g. "Row beats column")."""
    if not row_labels or not column_labels or all(v is None for row in values for v in row):
        return _empty("heat", title, caption, NO_DATA)
    lo, hi = domain
    label_w, cell_w, cell_h, head_h = 176, 96, 40, 50
    width = label_w + cell_w * len(column_labels)
    height = head_h + cell_h * len(row_labels) + 4
    uid = _uid("heat", title, row_labels, column_labels, values)
    parts = []
    # A heading's line keeps within its column with room to spare (its 13 px semibold type
    # takes about 8 px a character): at 11 characters "GPT Image 1" ran into "Nano Banana".
    per_line = (cell_w - 16) // 8
    for j, name in enumerate(column_labels):
        cx = label_w + cell_w * j + cell_w / 2
        lines = _wrap_words(name, per_line, 2)
        tip = f"<title>{_e(name)}</title>" if " ".join(lines) != name else ""
        spans = "".join(
            f'<tspan x="{cx:g}" dy="{0 if k == 0 else 15}">{_e(line)}</tspan>' for k, line in enumerate(lines)
        )
        parts.append(
            f'<text class="col-name" x="{cx:g}" y="{head_h - 12 - 15 * (len(lines) - 1):g}" text-anchor="middle">'
            f"{tip}{spans}</text>"
        )
    body = []
    for i, name in enumerate(row_labels):
        y = head_h + cell_h * i
        parts.append(_text("0", y + cell_h / 2 + 5, name, "label", limit=18))
        cells = []
        for j, value in enumerate(values[i]):
            x = label_w + cell_w * j
            note = notes[i][j] if notes else ""
            tip = _e(f"{name} × {column_labels[j]}: {fmt(value, unit)}" + (f" ({note})" if note else ""))
            if value is None:
                parts.append(
                    f'<g class="cell none"><title>{tip}</title><rect x="{x + 2}" y="{y + 2}" width="{cell_w - 4}" '
                    f'height="{cell_h - 4}" rx="4"/><text class="cell-text" x="{x + cell_w / 2:g}" '
                    f'y="{y + cell_h / 2 + 5:g}" text-anchor="middle">·</text></g>'
                )
            else:
                share = min(max((value - lo) / (hi - lo), 0.0), 1.0) if hi > lo else 0.0
                parts.append(
                    f'<g class="cell"><title>{tip}</title><rect class="heat" x="{x + 2}" y="{y + 2}" '
                    f'width="{cell_w - 4}" height="{cell_h - 4}" rx="4" fill-opacity="{MAX_HEAT * share:.3f}" '
                    f'data-value="{_e(fmt(value, unit))}"/><text class="cell-text" x="{x + cell_w / 2:g}" '
                    f'y="{y + cell_h / 2 + 5:g}" text-anchor="middle">{_e(fmt(value, unit))}</text></g>'
                )
            cells.append(fmt(value, unit) + (f" ({note})" if note else ""))
        body.append([name, *cells])
    desc = f"{len(row_labels)} rows × {len(column_labels)} columns; darker cells are higher values; the numbers are in the table."
    svg = (
        f'<div class="chart-scroll" tabindex="0" role="region" aria-label="{_e(title)}">'
        f'<svg class="chart-svg heat-svg{" wide" if width > 416 else ""}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-labelledby="{uid}-title {uid}-desc" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{uid}-title">{_e(title)}</title><desc id="{uid}-desc">{_e(desc)}</desc>{"".join(parts)}</svg></div>'
    )
    table = _table([corner or "", *column_labels], body)
    return mark_safe(_wrap(uid, "heat", title, caption, svg, table))


# --- Bars per day --------------------------------------------------------------------------


def bars(
    categories: Sequence[str],
    panels: Sequence[BarSeries],
    *,
    title: str,
    caption: str = "",
    category_name: str = "Day",
    empty: str = NO_DATA,
    panel_height: int = 96,
) -> SafeString:
    """Vertical bars, one per category (e.g. a day), in one panel per series stacked over a
    shared axis of categories (e.g. runs per day above spend per day). Each panel's y axis
    starts at 0; a zero draws no bar. All zero or no categories: `empty` instead."""
    if not categories or not panels or all(v == 0 for p in panels for v in p.values):
        return _empty("bars", title, caption, empty)
    n = len(categories)
    uid = _uid("bars", title, categories, [(p.name, list(p.values)) for p in panels])
    parts, y, panel_h = [], 0.0, panel_height
    step = 98 / n
    gap = min(step * 0.2, 1.0)
    for k, panel in enumerate(panels):
        top = nice_max(max(panel.values))
        if top < 2 and not panel.unit and all(float(v).is_integer() for v in panel.values):
            top = 2  # counts: no half-run grid line
        parts.append(_text("0", y + 14, f"{panel.name}" + (f" ({panel.unit})" if panel.unit else ""), "panel-name"))
        base = y + 26 + panel_h
        for t in (top / 2, top):
            ty = base - panel_h * t / top
            parts.append(f'<line class="grid" x1="1%" x2="99%" y1="{ty:g}" y2="{ty:g}"/>')
            # in the margin right of the plot (static/charts.css keeps it free), level with its line
            parts.append(_text("100%", ty + 4, fmt(t, panel.unit), "tick y-tick", anchor="start"))
        for i, value in enumerate(panel.values):
            if value <= 0:
                continue
            h = panel_h * value / top
            parts.append(
                f'<rect class="bar s{k}" x="{1 + step * i + gap / 2:.3f}%" y="{base - h:.2f}" '
                f'width="{step - gap:.3f}%" height="{h:.2f}" data-value="{_e(fmt(value, panel.unit))}">'
                f"<title>{_e(categories[i])}: {_e(fmt(value, panel.unit))}</title></rect>"
            )
        parts.append(f'<line class="axis" x1="1%" x2="99%" y1="{base:g}" y2="{base:g}"/>')
        y = base + 8
    # Category labels under the last panel: the first, the last and a few between.
    # At most five, a whole stride apart even at the end, so they never touch on a phone.
    stride = max(1, math.ceil((n - 1) / 4))
    shown = sorted({*(i for i in range(0, n - 1, stride) if i == 0 or n - 1 - i >= stride), n - 1})
    for i in shown:
        x = f"{1 + step * i + step / 2:.2f}%"
        anchor = "start" if i == 0 and n > 1 else "end" if i == n - 1 and n > 1 else "middle"
        if n > 1 and i == 0:
            x = "1%"
        elif n > 1 and i == n - 1:
            x = "99%"
        parts.append(_text(x, y + 14, categories[i], "tick", anchor=anchor))
    parts.append(_text("50%", y + 34, category_name, "axis-name", anchor="middle"))
    totals = ", ".join(f"{p.name}: {fmt(sum(p.values), p.unit)} in all" for p in panels)
    desc = f"{n} {category_name.lower()}s from {categories[0]} to {categories[-1]}; {totals}."
    body = [[c, *(fmt(p.values[i], p.unit) for p in panels)] for i, c in enumerate(categories)]
    table = _table([category_name, *(p.name + (f" ({p.unit})" if p.unit else "") for p in panels)], body)
    return mark_safe(_figure(uid, "bars", title, caption, "".join(parts), y + 44, desc, table))


def day_label(day: date) -> str:
    """A short day for an axis: "Nov 29"."""
    return f"{day:%b} {day.day}"

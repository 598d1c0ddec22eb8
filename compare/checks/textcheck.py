"""The text check: did the image render the strings the prompt asked for, exactly?

- `expected_strings(prompt, expectations)`: a suite case's expectations when it has
  any, else the quoted strings of the prompt ("…", “…”, „…“, 「…」, 『…』, «…»: `QUOTED` of
  compare/text.py, the rule the simulator draws by). The simulator's markers (`[[fault:…]]`,
  `[[latency:…]]`, `[[swap:…]]`, `[[drop:…]]`, see compare/simulator/render.py) are
  not part of what the prompt asks to be written and are removed first.
- `normalise(s)`: NFKC (full-width letters and digits become half-width), case folded,
  every whitespace and invisible formatting character removed.
- `score(expected, spans, max_cer)`: the expected string against the best-matching
  stretch of the OCR text, read in reading order with the spans joined (the OCR engine
  may split "Analytics Dashboard" into two spans; a string may be wrapped over lines).
  This is an approximate substring match (Levenshtein distance with free start and
  end in the OCR text), so other words the image puts next to the string are not
  counted against it; letters missing, wrong or added *inside* the string are.
  CER = edit distance / length of the normalised expected string (0 … 1); the
  string passes when CER <= max_cer (default 0: read exactly after normalising).

The result is a "text item" of the schema in compare/checks/__init__.py, with a
`diff` of the normalised strings ("equal", "replace", "delete", "insert").
"""

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

from compare.text import QUOTED

# Every simulator prompt marker (compare/simulator/faults.py, compare/simulator/render.py).
SIM_MARKER = re.compile(r"\[\[\s*(?:fault|latency|swap|drop)\b[^\]]*\]\]", re.IGNORECASE)


def strip_sim_markers(prompt: str) -> str:
    return SIM_MARKER.sub(" ", prompt or "")


def quoted_strings(prompt: str) -> list[str]:
    """The non-blank quoted strings of a prompt, in order, stripped."""
    found = (next(g for g in m.groups() if g) for m in QUOTED.finditer(prompt or ""))
    return [q.strip() for q in found if q.strip()]


def expected_strings(prompt: str, expectations: Sequence[str] | None = None) -> list[str]:
    """What the image should say: the expectations when given, else the prompt's quoted strings."""
    given = [str(e).strip() for e in (expectations or []) if str(e).strip()]
    strings = given or quoted_strings(strip_sim_markers(prompt))
    unique: list[str] = []
    for s in strings:
        if normalise(s) and s not in unique:
            unique.append(s)
    return unique


def _keep(char: str) -> bool:
    return not char.isspace() and unicodedata.category(char) != "Cf"


def normalise(text: str) -> str:
    """NFKC, case-folded, without whitespace or invisible formatting characters."""
    return "".join(c for c in unicodedata.normalize("NFKC", text).casefold() if _keep(c))


def _normalised_with_origin(spans: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """The spans' normalised text joined, and for each of its characters (span, character) it came from."""
    chars: list[str] = []
    origin: list[tuple[int, int]] = []
    for s, span in enumerate(spans):
        for i, char in enumerate(span):
            for out in normalise(char):
                chars.append(out)
                origin.append((s, i))
    return "".join(chars), origin


def _align(expected: str, text: str) -> tuple[int, int, int, list[tuple[str, str, str]]]:
    """Semi-global Levenshtein: `expected` against its best-matching substring of `text`.

    Returns (distance, start, end, ops), `text[start:end]` being the match and ops a
    list of (op, expected char, read char). Among matches of equal distance the one
    with the most equal characters wins, then the earliest; an edit that continues
    the previous one is preferred, so a missing word shows as one deletion."""
    m = len(expected)
    # Two passes keep memory small: the last row alone finds where the best match ends;
    # the match is at most 2m characters long (m + at most m insertions), so the table
    # kept for the walk back covers only that window of the text.
    last_row = _table(expected, text, keep=False)[-1]
    best = min(range(len(text) + 1), key=lambda j: (last_row[j], j))
    offset = max(0, best - 2 * m)
    text = text[offset:best]
    cost = _table(expected, text, keep=True)
    unit, n = m + 1, len(text)
    end = min(range(n + 1), key=lambda j: (cost[m][j], j))
    ops: list[tuple[str, str, str]] = []
    i, j, last = m, end, "equal"
    while i > 0:
        here = cost[i][j]
        moves = []
        if j > 0 and expected[i - 1] == text[j - 1] and here == cost[i - 1][j - 1] - 1:
            moves.append("equal")
        if j > 0 and expected[i - 1] != text[j - 1] and here == cost[i - 1][j - 1] + unit:
            moves.append("replace")  # one wrong character rather than one missing and one extra
        if here == cost[i - 1][j] + unit:
            moves.append("delete")
        if j > 0 and here == cost[i][j - 1] + unit:
            moves.append("insert")
        op = last if last in moves and last != "equal" else moves[0]
        if op in ("equal", "replace"):
            ops.append((op, expected[i - 1], text[j - 1]))
            i, j = i - 1, j - 1
        elif op == "delete":
            ops.append(("delete", expected[i - 1], ""))
            i -= 1
        else:
            ops.append(("insert", "", text[j - 1]))
            j -= 1
        last = op
    ops.reverse()
    distance = sum(op != "equal" for op, _, _ in ops)
    return distance, offset + j, offset + end, ops


def _table(expected: str, text: str, keep: bool) -> list[list[int]]:
    """The alignment costs, one integer per cell: distance * (m + 1) - equal characters
    (at most m), so the minimum is the smallest distance and, among those, the most
    characters read right. Row 0 is all zeros: the match may start anywhere in the text.
    Without `keep`, only the last row is returned."""
    m, n = len(expected), len(text)
    unit = m + 1
    rows = [[0] * (n + 1)]
    for i in range(1, m + 1):
        prev, row = rows[-1], [i * unit] + [0] * n
        e = expected[i - 1]
        for j in range(1, n + 1):
            diagonal = prev[j - 1] + (-1 if e == text[j - 1] else unit)
            row[j] = min(diagonal, prev[j] + unit, row[j - 1] + unit)
        if keep:
            rows.append(row)
        else:
            rows = [row]
    return rows


def _grouped(ops: list[tuple[str, str, str]]) -> list[list[str]]:
    """Consecutive ops of one kind merged: [op, expected part, read part]."""
    diff: list[list[str]] = []
    for op, e, r in ops:
        if diff and diff[-1][0] == op:
            diff[-1][1] += e
            diff[-1][2] += r
        else:
            diff.append([op, e, r])
    return diff


def _read_back(spans: Sequence[str], origin: list[tuple[int, int]], start: int, end: int) -> str:
    """The OCR text of a match as read (not normalised), the spans it covers joined by spaces."""
    if start >= end:
        return ""
    covered: dict[int, list[int]] = {}
    for s, i in origin[start:end]:
        covered.setdefault(s, []).append(i)
    return " ".join(spans[s][min(idx) : max(idx) + 1].strip() for s, idx in covered.items())


def score(expected: str, spans: Sequence[str], max_cer: float = 0.0) -> dict[str, Any]:
    """One text item (compare/checks/__init__.py) for `expected` against the OCR spans in reading order."""
    want = normalise(expected)
    text, origin = _normalised_with_origin(spans)
    distance, start, end, ops = _align(want, text)
    cer = distance / len(want) if want else 0.0
    return {
        "expected": expected,
        "read": _read_back(spans, origin, start, end),
        "cer": round(cer, 3),
        "passed": cer <= max_cer + 1e-9,
        "diff": _grouped(ops),
    }


def check_text(expected: Sequence[str], spans: Sequence[str], max_cer: float = 0.0) -> list[dict[str, Any]]:
    return [score(e, spans, max_cer) for e in expected]

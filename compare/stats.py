"""Small statistics shared by the leaderboard, the scorecard and the suite results: the
Wilson score interval of a proportion and percentiles by linear interpolation. One rule
in one place, so every page that shows "75 % (30–95 %)" or a p90 computes it the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile: a two-sided 95 % interval


def wilson(share: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for a proportion `share` observed over `n` trials."""
    if n <= 0:
        return 0.0, 1.0
    denom = 1 + z * z / n
    centre = (share + z * z / (2 * n)) / denom
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (NumPy's default, PERCENTILE.INC); None when empty."""
    return quantile(values, q) if values else None


def quantile(values: Sequence[float], q: float) -> float:
    """`percentile` of values that are not empty (`q` in percent)."""
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100
    lo = math.floor(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def newcombe(successes_a: int, n_a: int, successes_b: int, n_b: int, z: float = Z95) -> tuple[float, float]:
    """95 % interval of the difference of two proportions, b − a: Newcombe's hybrid score
    interval (his method 10, 1998), built from the two Wilson intervals. Both n must be > 0."""
    pa, pb = successes_a / n_a, successes_b / n_b
    la, ua = wilson(pa, n_a, z)
    lb, ub = wilson(pb, n_b, z)
    d = pb - pa
    return d - math.sqrt((pb - lb) ** 2 + (ua - pa) ** 2), d + math.sqrt((ub - pb) ** 2 + (pa - la) ** 2)


@dataclass
class Rate:
    """`successes` of `n` counted, with its 95 % Wilson interval (None when n is 0): the one
    "k of n" of the suite results (compare/suites/results.py) and the scorecard's checks."""

    successes: int
    n: int

    @property
    def rate(self) -> float | None:
        return self.successes / self.n if self.n else None

    @cached_property
    def interval(self) -> tuple[float, float] | None:
        return wilson(self.successes / self.n, self.n) if self.n else None

    @property
    def low(self) -> float | None:
        return self.interval[0] if self.interval else None

    @property
    def high(self) -> float | None:
        return self.interval[1] if self.interval else None

    @property
    def pct(self) -> float | None:
        """The rate in percent, for templates."""
        return None if self.rate is None else 100 * self.rate

    @property
    def interval_pct(self) -> tuple[float, float]:
        """The interval in percent, for templates (0–100 when nothing is counted)."""
        low, high = self.interval or (0.0, 1.0)
        return 100 * low, 100 * high

    def text(self) -> str:
        """ "75 % (30–95 %)", or "—" when nothing is counted."""
        if self.rate is None or self.interval is None:
            return "—"
        lo, hi = self.interval
        return f"{_whole(self.rate)} % ({_whole(lo)}–{_whole(hi)} %)"

    def apart_from(self, other: Rate) -> bool:
        """The two 95 % intervals do not overlap."""
        a, b = self.interval, other.interval
        return a is not None and b is not None and (a[1] < b[0] or b[1] < a[0])

    def as_dict(self) -> dict[str, Any]:
        return {
            "successes": self.successes,
            "n": self.n,
            "rate": _round(self.rate),
            "low": _round(self.low),
            "high": _round(self.high),
        }


def _whole(share: float) -> str:
    return f"{100 * share:.0f}"


def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(x, digits)

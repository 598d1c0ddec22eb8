"""Small statistics shared by the leaderboard, the scorecard and the suite results: the
Wilson score interval of a proportion and percentiles by linear interpolation. One rule
in one place, so every page that shows "75 % (30–95 %)" or a p90 computes it the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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

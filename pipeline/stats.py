"""Statistics for detractor drivers (docs/drivers-statistics.md defines each one).

Pure functions over counts, each checked against hand-computed values in tests/test_stats.py.
Intervals are 95% by default; every function takes ``z`` so the configured level is honoured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

from pipeline.nps import nps_estimate

Z95 = NormalDist().inv_cdf(0.975)


@dataclass(frozen=True, slots=True)
class Interval:
    estimate: float
    low: float
    high: float
    p_value: float | None = None  # two-sided, against "no effect"


def two_sided_p(z: float) -> float:
    return 2.0 * (1.0 - NormalDist().cdf(abs(z)))


def wilson_interval(successes: int, n: int, z: float = Z95) -> Interval:
    """Wilson score interval for a proportion (here: the detractor rate among mentions)."""
    if n <= 0:
        raise ValueError("n must be positive")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Interval(p, centre - half, centre + half)


def relative_risk(d_t: int, n_t: int, d_rest: int, n_rest: int, z: float = Z95) -> Interval:
    """Detractor rate among mentions over the rate among the rest, with a log-scale interval.

    0.5 is added to each detractor count when either is zero, so the ratio stays finite."""
    shift = 0.5 if d_t == 0 or d_rest == 0 else 0.0
    a, n1, c, n2 = d_t + shift, n_t + shift, d_rest + shift, n_rest + shift
    rr = (a / n1) / (c / n2)
    se = math.sqrt(1 / a - 1 / n1 + 1 / c - 1 / n2)
    log_rr = math.log(rr)
    return Interval(
        rr, math.exp(log_rr - z * se), math.exp(log_rr + z * se), two_sided_p(log_rr / se) if se else None
    )


def odds_ratio(a: int, b: int, c: int, e: int, z: float = Z95) -> Interval:
    """Odds ratio of the 2×2 table (a = D_t, b = n_t − D_t, c = D_¬t, e = n_¬t − D_¬t).

    0.5 is added to every cell when any cell is zero (Haldane–Anscombe)."""
    cells = [float(a), float(b), float(c), float(e)]
    if 0 in cells:
        cells = [x + 0.5 for x in cells]
    a_, b_, c_, e_ = cells
    odds = a_ * e_ / (b_ * c_)
    se = math.sqrt(1 / a_ + 1 / b_ + 1 / c_ + 1 / e_)
    log_or = math.log(odds)
    return Interval(odds, math.exp(log_or - z * se), math.exp(log_or + z * se), two_sided_p(log_or / se))


def topic_impact(mentioning: tuple[int, int, int], rest: tuple[int, int, int], z: float = Z95) -> Interval:
    """Remove-the-topic impact: NPS(all) − NPS(responses not mentioning the topic).

    Counts are (promoters, passives, detractors). Impact = w·(NPS_t − NPS_¬t) with w = n_t/N;
    SE ≈ w·√(SE_t² + SE_¬t²) with w held fixed and adjusted-Wald standard errors (pseudo-counts
    0.75/1.5/0.75): with plain Wald, a topic mentioned by three detractors has SE_t = 0 and looks
    certain. The p-value uses the standard error under "no effect" instead (both groups share the
    pooled score distribution: SE = w·σ·√(1/n_t + 1/n_¬t)), which stays calibrated for a topic
    of a handful of mentions, as the pooled two-proportion test does."""
    n_t, n_rest = sum(mentioning), sum(rest)
    if n_t == 0 or n_rest == 0:
        raise ValueError("both groups need responses")
    nps_t = 100.0 * (mentioning[0] - mentioning[2]) / n_t
    nps_rest = 100.0 * (rest[0] - rest[2]) / n_rest
    w = n_t / (n_t + n_rest)
    impact = w * (nps_t - nps_rest)
    se = w * math.hypot(nps_estimate(*mentioning).se, nps_estimate(*rest).se)
    n = n_t + n_rest
    p_all, d_all = (mentioning[0] + rest[0]) / n, (mentioning[2] + rest[2]) / n
    sigma = 100.0 * math.sqrt(max(p_all + d_all - (p_all - d_all) ** 2, 0.0))
    se_null = w * sigma * math.sqrt(1 / n_t + 1 / n_rest)
    p = two_sided_p(impact / se_null) if se_null else None
    return Interval(impact, impact - z * se, impact + z * se, p)


def two_proportion_z(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """z and two-sided p for p1 − p2 with the pooled standard error (volume change of a topic)."""
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (x1 / n1 - x2 / n2) / se
    return z, two_sided_p(z)


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg q-values, in the input order (monotone, capped at 1)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    q = [0.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p_values[i] * m / rank)
        q[i] = running
    return q

"""Net Promoter Score with an honest interval.

NPS = 100·(p − d). The interval is the adjusted Wald interval (0.75 promoter, 1.5 passive
and 0.75 detractor pseudo-counts, as in the R `nps` package): it stays sensible for the small
daily and per-segment counts that plain Wald intervals make look certain. The point estimate
itself is the plain NPS, so it matches what every other tool reports.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from statistics import NormalDist

CI_METHOD = "adjusted_wald"
_PSEUDO_PROMOTERS, _PSEUDO_PASSIVES, _PSEUDO_DETRACTORS = 0.75, 1.5, 0.75


@dataclass(frozen=True, slots=True)
class NpsEstimate:
    n: int
    promoters: int
    passives: int
    detractors: int
    nps: float | None  # None when n == 0
    se: float  # standard error of the adjusted estimate, in NPS points
    ci_low: float
    ci_high: float


@functools.cache  # called for every interval of every driver and theme row
def z_value(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def nps_estimate(promoters: int, passives: int, detractors: int, confidence: float = 0.95) -> NpsEstimate:
    if min(promoters, passives, detractors) < 0:
        raise ValueError("counts cannot be negative")
    n = promoters + passives + detractors
    nps = 100.0 * (promoters - detractors) / n if n else None
    n_adj = n + _PSEUDO_PROMOTERS + _PSEUDO_PASSIVES + _PSEUDO_DETRACTORS
    p = (promoters + _PSEUDO_PROMOTERS) / n_adj
    d = (detractors + _PSEUDO_DETRACTORS) / n_adj
    se = 100.0 * math.sqrt((p + d - (p - d) ** 2) / n_adj)
    centre = 100.0 * (p - d)
    half = z_value(confidence) * se
    return NpsEstimate(
        n=n,
        promoters=promoters,
        passives=passives,
        detractors=detractors,
        nps=nps,
        se=se,
        ci_low=max(-100.0, centre - half),
        ci_high=min(100.0, centre + half),
    )


def nps_count_columns(category_column: str = "nps_category") -> str:
    """SQL for a GROUP BY's promoter, passive and detractor counts, in that order (the order
    `nps_estimate` takes them in)."""
    return ", ".join(
        f"count(*) FILTER (WHERE {category_column} = '{category}')"
        for category in ("promoter", "passive", "detractor")
    )

"""Terms over-represented among detractors: weighted log-odds with an informative Dirichlet prior.

Monroe, Colaresi & Quinn (2008), "Fightin' Words", eq. 16-22. For term w, with y_d and y_p the
number of detractor and promoter responses that use it, n_d and n_p the totals over all terms,
and a prior α_w proportional to the term's count in all responses (α_0 = Σ α_w):

    δ_w = log((y_d + α_w) / (n_d + α_0 − y_d − α_w)) − log((y_p + α_w) / (n_p + α_0 − y_p − α_w))
    σ²_w ≈ 1/(y_d + α_w) + 1/(y_p + α_w),   z_w = δ_w / σ_w

The prior shrinks rare terms toward zero, so a word used by two detractors does not top the
list. Counts are responses (a comment that repeats a word counts once). The prior's total mass
is ``prior_scale`` times the background's: at 1 the prior weighs as much as the data and hides
real differences in a survey of a thousand responses; 0.1 keeps rare words shrunk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class TermScore:
    term: str
    detractor_responses: int
    promoter_responses: int
    log_odds: float
    z: float


def log_odds_arrays(
    y_d: NDArray[np.float64],
    y_p: NDArray[np.float64],
    background: NDArray[np.float64],
    prior_scale: float = 0.1,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """δ_w and z_w for aligned count vectors (terms with a zero background count get NaN)."""
    alpha = prior_scale * background
    alpha_0 = alpha.sum()
    n_d, n_p = y_d.sum(), y_p.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.log((y_d + alpha) / (n_d + alpha_0 - y_d - alpha)) - np.log(
            (y_p + alpha) / (n_p + alpha_0 - y_p - alpha)
        )
        z = delta / np.sqrt(1.0 / (y_d + alpha) + 1.0 / (y_p + alpha))
    missing = background <= 0
    delta[missing] = np.nan
    z[missing] = np.nan
    return delta, z


def weighted_log_odds(
    detractor_counts: Mapping[str, int],
    promoter_counts: Mapping[str, int],
    background_counts: Mapping[str, int],
    prior_scale: float = 0.1,
) -> list[TermScore]:
    """Scores for every term with a background count, most detractor-leaning first."""
    terms = [t for t, count in background_counts.items() if count > 0]
    y_d = np.array([detractor_counts.get(t, 0) for t in terms], dtype=np.float64)
    y_p = np.array([promoter_counts.get(t, 0) for t in terms], dtype=np.float64)
    background = np.array([background_counts[t] for t in terms], dtype=np.float64)
    # totals run over every term the groups used, as in the paper
    y_d_all = np.array([*y_d, sum(detractor_counts.values()) - y_d.sum()])
    y_p_all = np.array([*y_p, sum(promoter_counts.values()) - y_p.sum()])
    delta, z = log_odds_arrays(y_d_all, y_p_all, np.array([*background, 0.0]), prior_scale)
    scores = [
        TermScore(term, int(y_d[i]), int(y_p[i]), float(delta[i]), float(z[i]))
        for i, term in enumerate(terms)
    ]
    return sorted(scores, key=lambda s: (-s.z, s.term))

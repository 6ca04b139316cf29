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

The detractor_terms table (pipeline/drivers/terms.py) is scored with it; docs/drivers-statistics.md
describes how.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


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

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

import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TermScore:
    term: str
    detractor_responses: int
    promoter_responses: int
    log_odds: float
    z: float


def weighted_log_odds(
    detractor_counts: Mapping[str, int],
    promoter_counts: Mapping[str, int],
    background_counts: Mapping[str, int],
    prior_scale: float = 0.1,
) -> list[TermScore]:
    """Scores for every term with a background count, most detractor-leaning first."""
    n_d = sum(detractor_counts.values())
    n_p = sum(promoter_counts.values())
    alpha_0 = prior_scale * sum(background_counts.values())
    scores = []
    for term, count in background_counts.items():
        if count <= 0:
            continue
        alpha = prior_scale * count
        y_d = detractor_counts.get(term, 0)
        y_p = promoter_counts.get(term, 0)
        delta = math.log((y_d + alpha) / (n_d + alpha_0 - y_d - alpha)) - math.log(
            (y_p + alpha) / (n_p + alpha_0 - y_p - alpha)
        )
        variance = 1.0 / (y_d + alpha) + 1.0 / (y_p + alpha)
        scores.append(TermScore(term, y_d, y_p, delta, delta / math.sqrt(variance)))
    return sorted(scores, key=lambda s: (-s.z, s.term))

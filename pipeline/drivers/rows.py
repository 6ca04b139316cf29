"""The statistics of a driver row, and the q-values and flags set over a whole window's rows.

Definitions: docs/drivers-statistics.md; the functions over counts are in pipeline/stats.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from pipeline.drivers.load import Mask, WindowData
from pipeline.nps import nps_estimate, z_value
from pipeline.settings import DriverSettings
from pipeline.stats import (
    benjamini_hochberg,
    odds_ratio,
    relative_risk,
    topic_impact,
    two_proportion_z,
    wilson_interval,
)

COMPARISON_COLUMNS = (
    "impact", "impact_ci_low", "impact_ci_high", "impact_p", "relative_risk", "relative_risk_ci_low",
    "relative_risk_ci_high", "relative_risk_p", "odds_ratio", "odds_ratio_ci_low", "odds_ratio_ci_high",
    "odds_ratio_p",
)  # fmt: skip
TESTED = ("impact", "odds_ratio", "adjusted", "volume_change")  # methods with a q-value column
AGREEING = ("impact", "odds_ratio", "adjusted")  # methods that must agree for the robust flag


class Mentions(Protocol):
    """Which responses mention which columns (topics of a level, or themes), and negatively."""

    mention: Mask  # responses × columns
    negative: Mask


@dataclass(frozen=True)
class LevelCounts:
    """Per topic of a level, within a segment cell: mentions, and among them detractors,
    promoters and negative mentions (one pass over the cell for all topics at once)."""

    mentions: NDArray[np.int64]
    detractors: NDArray[np.int64]
    promoters: NDArray[np.int64]
    negative: NDArray[np.int64]

    @classmethod
    def of(cls, data: WindowData, selected: Mask, level: Mentions) -> LevelCounts:
        rows = np.flatnonzero(selected)
        mention = level.mention[rows]
        return cls(
            mention.sum(axis=0),
            mention[data.detractor[rows]].sum(axis=0),
            mention[data.promoter[rows]].sum(axis=0),
            (mention & level.negative[rows]).sum(axis=0),
        )


def driver_row(
    counts: LevelCounts, k: int, n: int, promoters: int, detractors: int, confidence: float
) -> dict[str, Any]:
    """Counts, NPS among the mentions and the rest, detractor rate, and the comparisons of the
    mentions with the rest (impact, relative risk, odds ratio) of topic column ``k``; ``n``,
    ``promoters`` and ``detractors`` are the cell's."""
    z = z_value(confidence)
    n_t, d_t, p_t = int(counts.mentions[k]), int(counts.detractors[k]), int(counts.promoters[k])
    rest = (promoters - p_t, (n - n_t) - (promoters - p_t) - (detractors - d_t), detractors - d_t)
    n_rest = n - n_t
    est = nps_estimate(p_t, n_t - p_t - d_t, d_t, confidence)
    row: dict[str, Any] = {
        "responses": n,
        "detractors_all": detractors,
        "mentions": n_t,
        "prevalence": n_t / n,
        "promoters_mentioning": p_t,
        "detractors_mentioning": d_t,
        "nps_mentioning": est.nps,
        "nps_mentioning_ci_low": est.ci_low,
        "nps_mentioning_ci_high": est.ci_high,
        "nps_rest": 100.0 * (rest[0] - rest[2]) / n_rest if n_rest else None,
        "negative_mention_share": float(counts.negative[k]) / n_t,
        "detractor_share": d_t / detractors if detractors else None,
    }
    rate = wilson_interval(d_t, n_t, z)
    row.update(detractor_rate=rate.estimate, detractor_rate_ci_low=rate.low, detractor_rate_ci_high=rate.high)
    row["lift"] = rate.estimate / (detractors / n) if detractors else None
    if n_rest == 0:  # every response mentions it: nothing to compare with
        row.update(dict.fromkeys(COMPARISON_COLUMNS))
        return row
    impact = topic_impact((p_t, n_t - p_t - d_t, d_t), rest, z)
    rr = relative_risk(d_t, n_t, rest[2], n_rest, z)
    odds = odds_ratio(d_t, n_t - d_t, rest[2], n_rest - rest[2], z)
    row.update(
        impact=impact.estimate, impact_ci_low=impact.low, impact_ci_high=impact.high, impact_p=impact.p_value,
        relative_risk=rr.estimate, relative_risk_ci_low=rr.low, relative_risk_ci_high=rr.high,
        relative_risk_p=rr.p_value,
        odds_ratio=odds.estimate, odds_ratio_ci_low=odds.low, odds_ratio_ci_high=odds.high,
        odds_ratio_p=odds.p_value,
    )  # fmt: skip
    return row


def volume_change_columns(
    mentions: int, responses: int, mentions_before: int, responses_before: int
) -> dict[str, Any]:
    """Prevalence now against the pooled previous periods (two-proportion z test); NULLs when
    the previous periods hold no responses."""
    if responses_before == 0:
        return {"previous_prevalence": None, "volume_change_z": None, "volume_change_p": None}
    z, p = two_proportion_z(mentions, responses, mentions_before, responses_before)
    return {
        "previous_prevalence": mentions_before / responses_before,
        "volume_change_z": z,
        "volume_change_p": p,
    }


def is_low_confidence(row: dict[str, Any], driver_settings: DriverSettings) -> bool:
    """Fewer mentions than ``min_responses`` or fewer detractors among them than ``min_detractors``."""
    return bool(
        row["mentions"] < driver_settings.min_responses
        or row["detractors_mentioning"] < driver_settings.min_detractors
    )


def set_flags(rows: list[dict[str, Any]], driver_settings: DriverSettings) -> None:
    """Benjamini–Hochberg q-values per method over all ``rows`` (one window: every segment cell,
    topic and level), then the robust, rising and emerging flags."""
    for method in TESTED:
        tested = [r for r in rows if r[f"{method}_p"] is not None]
        for row, q in zip(tested, benjamini_hochberg([r[f"{method}_p"] for r in tested]), strict=True):
            row[f"{method}_q"] = q
        for row in rows:
            row.setdefault(f"{method}_q", None)
    fdr = driver_settings.fdr
    for row in rows:
        significant = all(row[f"{m}_q"] is not None and row[f"{m}_q"] < fdr for m in AGREEING)
        pulls_down = (
            significant and row["impact"] < 0 and row["odds_ratio"] > 1 and row["adjusted_impact"] < 0
        )
        lifts = significant and row["impact"] > 0 and row["odds_ratio"] < 1 and row["adjusted_impact"] > 0
        row["robust"] = (pulls_down or lifts) and not row["low_confidence"]
        row["rising"] = (
            row["volume_change_q"] is not None and row["volume_change_q"] < fdr and row["volume_change_z"] > 0
        )
        row["emerging"] = row["rising"] and row["previous_prevalence"] < driver_settings.rare_share

"""The adjusted columns of a driver row: odds ratio and ΔNPS with co-mentioned topics and
controls held fixed (the regressions themselves are in pipeline/regression.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from pipeline.drivers.load import CategoryCodes, Mask, TopicLevel, WindowData
from pipeline.regression import adjusted_effects
from pipeline.settings import DriverSettings

ADJUSTED_COLUMNS = (
    "adjusted_odds_ratio", "adjusted_odds_ratio_ci_low", "adjusted_odds_ratio_ci_high", "adjusted_impact",
    "adjusted_impact_ci_low", "adjusted_impact_ci_high", "adjusted_p",
)  # fmt: skip
NO_ADJUSTMENT: dict[str, Any] = dict.fromkeys(ADJUSTED_COLUMNS)  # the cell is too small to fit


def adjusted_columns(
    data: WindowData, selected: Mask, level: TopicLevel, segment_name: str, window: int,
    driver_settings: DriverSettings, z: float,
) -> dict[int, dict[str, Any]]:  # fmt: skip
    """Adjusted odds ratio and ΔNPS per topic column of ``level``, or nothing when the cell is
    too small (fewer than ``min_responses`` responses, or fewer than ``min_detractors``
    detractors or promoters)."""
    rows = np.flatnonzero(selected)
    detractor, promoter = data.detractor[rows], data.promoter[rows]
    too_few_outcomes = min(detractor.sum(), promoter.sum()) < max(driver_settings.min_detractors, 1)
    if len(rows) < driver_settings.min_responses or too_few_outcomes:
        return {}
    mention = level.mention[rows]
    topic_columns = [k for k in range(mention.shape[1]) if 0 < mention[:, k].sum() < len(rows)]
    if not topic_columns:
        return {}
    controls = _controls(data, rows, segment_name, window)
    x = np.column_stack([np.ones(len(rows)), mention[:, topic_columns].astype(np.float64), *controls])
    x = x[:, [0, *[j for j in range(1, x.shape[1]) if np.ptp(x[:, j]) > 0]]]  # constant controls add nothing
    positions = list(range(1, len(topic_columns) + 1))
    effects = adjusted_effects(x, detractor, promoter, positions, z, driver_settings.ridge)
    result = {}
    for position, k in zip(positions, topic_columns, strict=True):
        effect = effects.get(position)
        if effect is None:
            continue
        result[k] = {
            "adjusted_odds_ratio": effect.odds_ratio.estimate,
            "adjusted_odds_ratio_ci_low": effect.odds_ratio.low,
            "adjusted_odds_ratio_ci_high": effect.odds_ratio.high,
            "adjusted_impact": effect.delta_nps.estimate,
            "adjusted_impact_ci_low": effect.delta_nps.low,
            "adjusted_impact_ci_high": effect.delta_nps.high,
            "adjusted_p": effect.delta_nps.p_value,
        }
    return result


def _controls(
    data: WindowData, rows: NDArray[np.int64], segment_name: str, window: int
) -> list[NDArray[np.float64]]:
    """Comment present, centred log comment length, the other segments' values, and the month
    for windows longer than 31 days."""
    controls = [data.has_comment[rows].astype(np.float64), data.log_chars[rows] - data.log_chars[rows].mean()]
    for name, categories in data.segments.items():
        if name != segment_name:
            controls.extend(dummy_columns(categories, rows))
    if window > 31:
        controls.extend(dummy_columns(data.month, rows))
    return controls


def dummy_columns(categories: CategoryCodes, rows: NDArray[np.int64]) -> list[NDArray[np.float64]]:
    """Indicator columns over ``rows`` for every value present but the most common (the reference
    level; ties go to the first in string order), in string order."""
    codes = categories.codes[rows]
    counts = np.bincount(codes, minlength=len(categories.names))
    present = [j for j in range(len(categories.names)) if counts[j]]
    reference = min(present, key=lambda j: (-counts[j], categories.names[j]))
    return [(codes == j).astype(np.float64) for j in present if j != reference]

"""Adjusted drivers: the regressions reproduce hand-computed values where they must."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.regression import adjusted_effects, fit_logistic
from pipeline.stats import Z95


def _table(groups: list[tuple[int, int, int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows from (x, promoters, passives, detractors) groups: design with intercept, and outcomes."""
    xs, det, pro = [], [], []
    for x, promoters, passives, detractors in groups:
        for category, count in (("p", promoters), ("n", passives), ("d", detractors)):
            xs += [x] * count
            det += [category == "d"] * count
            pro += [category == "p"] * count
    x = np.column_stack([np.ones(len(xs)), np.array(xs, dtype=float)])
    return x, np.array(det), np.array(pro)


def test_single_indicator_gives_the_log_odds_ratio() -> None:
    # mentioning: 8 detractors of 10; not mentioning: 6 of 30 → OR = (8·24)/(2·6) = 16
    x, detractor, _ = _table([(1, 1, 1, 8), (0, 15, 9, 6)])
    fit = fit_logistic(x, detractor, ridge=1e-9)
    assert fit.coef[1] == pytest.approx(math.log(16), rel=1e-6)
    assert fit.coef[0] == pytest.approx(math.log(6 / 24), rel=1e-6)


def test_saturated_model_adjusted_delta_equals_the_raw_impact() -> None:
    # with one topic and no controls the model reproduces the group rates, so
    # adjusted ΔNPS = w·(NPS_t − NPS_¬t) = 0.25·(−70 − 30) = −25
    x, detractor, promoter = _table([(1, 1, 1, 8), (0, 15, 9, 6)])
    effect = adjusted_effects(x, detractor, promoter, [1], Z95, ridge=1e-9)[1]
    assert effect.delta_nps.estimate == pytest.approx(-25.0, abs=1e-5)
    assert effect.odds_ratio.estimate == pytest.approx(16.0, rel=1e-5)
    assert effect.delta_nps.high < 0 < effect.delta_nps.p_value < 0.05  # type: ignore[operator]


def test_a_bystander_topic_loses_its_raw_effect_once_adjusted() -> None:
    # topic A drives detractors; topic B has no effect of its own but is mostly mentioned with A
    rng = np.random.default_rng(7)
    n = 4000
    a = rng.random(n) < 0.3
    b = np.where(a, rng.random(n) < 0.7, rng.random(n) < 0.05)
    detractor = rng.random(n) < np.where(a, 0.7, 0.2)
    promoter = ~detractor & (rng.random(n) < np.where(a, 0.2, 0.6))
    x = np.column_stack([np.ones(n), a, b]).astype(float)
    effects = adjusted_effects(x, detractor, promoter, [1, 2], Z95)
    raw_b = (
        100
        * b.mean()
        * ((promoter[b].mean() - detractor[b].mean()) - (promoter[~b].mean() - detractor[~b].mean()))
    )
    assert raw_b < -10  # the raw comparison blames B
    assert effects[2].delta_nps.low < 0 < effects[2].delta_nps.high  # adjusted: B's interval covers 0
    assert effects[1].delta_nps.high < -10  # A stays a clear driver

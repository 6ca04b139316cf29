"""Weighted log-odds (pipeline/log_odds.py) against values computed by hand."""

import math

import numpy as np
import pytest

from pipeline.log_odds import log_odds_arrays


def _counts(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def test_log_odds_by_hand() -> None:
    # terms 遅い and 親切; the background includes passives
    delta, z = log_odds_arrays(_counts(8, 1), _counts(1, 9), _counts(10, 12), prior_scale=1.0)
    n_d, n_p, a0 = 9, 10, 22
    y_d, y_p, a = 8, 1, 10
    expected = math.log((y_d + a) / (n_d + a0 - y_d - a)) - math.log((y_p + a) / (n_p + a0 - y_p - a))
    assert delta[0] == pytest.approx(expected)
    assert z[0] == pytest.approx(expected / math.sqrt(1 / (y_d + a) + 1 / (y_p + a)))
    assert z[0] > 0 > z[1]


def test_prior_shrinks_rare_terms() -> None:
    # 遅い, 良い, 稀: 稀 is used by detractors only, but by two of them, and stays below 遅い
    _, z = log_odds_arrays(_counts(40, 10, 2), _counts(5, 45, 0), _counts(50, 60, 2), prior_scale=1.0)
    assert z[0] > 1.96 > z[2] > z[1]


def test_prior_scale_scales_alpha() -> None:
    detractors, promoters, background = _counts(5, 1), _counts(1, 5), _counts(60, 60)
    _, strong = log_odds_arrays(detractors, promoters, background, prior_scale=1.0)
    _, weak = log_odds_arrays(detractors, promoters, background, prior_scale=0.1)
    assert weak[0] > strong[0] > 0


def test_terms_without_background_are_not_scored() -> None:
    delta, z = log_odds_arrays(_counts(3, 2, 0), _counts(1, 4, 0), _counts(5, 8, 0))
    assert np.isfinite(delta[:2]).all() and np.isfinite(z[:2]).all()
    assert np.isnan(delta[2]) and np.isnan(z[2])

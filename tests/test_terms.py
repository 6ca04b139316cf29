import math

import pytest

from pipeline.terms import weighted_log_odds


def test_log_odds_by_hand() -> None:
    detractors = {"遅い": 8, "親切": 1}
    promoters = {"遅い": 1, "親切": 9}
    background = {"遅い": 10, "親切": 12}  # includes passives
    scores = {s.term: s for s in weighted_log_odds(detractors, promoters, background, prior_scale=1.0)}
    n_d, n_p, a0 = 9, 10, 22
    y_d, y_p, a = 8, 1, 10
    delta = math.log((y_d + a) / (n_d + a0 - y_d - a)) - math.log((y_p + a) / (n_p + a0 - y_p - a))
    assert scores["遅い"].log_odds == pytest.approx(delta)
    assert scores["遅い"].z == pytest.approx(delta / math.sqrt(1 / (y_d + a) + 1 / (y_p + a)))
    assert scores["遅い"].z > 0 > scores["親切"].z


def test_prior_shrinks_rare_terms() -> None:
    # 稀 is used by detractors only, but by two of them: the prior keeps it below 遅い
    detractors = {"遅い": 40, "良い": 10, "稀": 2}
    promoters = {"遅い": 5, "良い": 45, "稀": 0}
    background = {"遅い": 50, "良い": 60, "稀": 2}
    ranked = weighted_log_odds(detractors, promoters, background, prior_scale=1.0)
    assert [s.term for s in ranked] == ["遅い", "稀", "良い"]
    assert ranked[0].z > 1.96 > ranked[1].z


def test_prior_scale_scales_alpha() -> None:
    detractors, promoters, background = {"a": 5, "b": 1}, {"a": 1, "b": 5}, {"a": 60, "b": 60}
    strong = {s.term: s.z for s in weighted_log_odds(detractors, promoters, background, prior_scale=1.0)}
    weak = {s.term: s.z for s in weighted_log_odds(detractors, promoters, background, prior_scale=0.1)}
    assert weak["a"] > strong["a"] > 0

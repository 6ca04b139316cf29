"""Driver statistics against values computed by hand from the formulas in docs/drivers-statistics.md."""

import math

import pytest

from pipeline.stats import (
    Z95,
    benjamini_hochberg,
    odds_ratio,
    relative_risk,
    topic_impact,
    two_proportion_z,
    wilson_interval,
)


def test_wilson_by_hand() -> None:
    # 8 detractors among 20 mentions: p = .4, z² = 3.8415
    ci = wilson_interval(8, 20)
    z2 = Z95**2
    centre = (0.4 + z2 / 40) / (1 + z2 / 20)
    half = Z95 * math.sqrt(0.4 * 0.6 / 20 + z2 / 1600) / (1 + z2 / 20)
    assert (ci.estimate, ci.low, ci.high) == pytest.approx((0.4, centre - half, centre + half))
    assert ci.low == pytest.approx(0.2188, abs=1e-4) and ci.high == pytest.approx(0.6134, abs=1e-4)


def test_relative_risk_by_hand() -> None:
    # 30 of 50 mentioning are detractors; 100 of 450 others
    rr = relative_risk(30, 50, 100, 450)
    assert rr.estimate == pytest.approx((30 / 50) / (100 / 450))
    se = math.sqrt(1 / 30 - 1 / 50 + 1 / 100 - 1 / 450)
    assert rr.low == pytest.approx(rr.estimate * math.exp(-Z95 * se))
    assert rr.p_value is not None and rr.p_value < 1e-6


def test_odds_ratio_by_hand_and_with_a_zero_cell() -> None:
    ci = odds_ratio(30, 20, 100, 350)
    assert ci.estimate == pytest.approx(30 * 350 / (20 * 100))
    se = math.sqrt(1 / 30 + 1 / 20 + 1 / 100 + 1 / 350)
    assert ci.high == pytest.approx(ci.estimate * math.exp(Z95 * se))
    zero = odds_ratio(5, 0, 10, 10)
    assert zero.estimate == pytest.approx(5.5 * 10.5 / (0.5 * 10.5))


def test_topic_impact_identity_and_interval() -> None:
    mentioning, rest = (5, 10, 35), (150, 180, 120)  # (promoters, passives, detractors)
    nps_all = 100 * (155 - 155) / 500
    nps_rest = 100 * (150 - 120) / 450
    impact = topic_impact(mentioning, rest)
    assert impact.estimate == pytest.approx(nps_all - nps_rest)  # NPS − NPS(¬t)
    w = 50 / 500
    # adjusted Wald: 0.75 promoter, 1.5 passive, 0.75 detractor pseudo-counts in each group
    p, d = 5.75 / 53, 35.75 / 53
    se_t = 100 * math.sqrt((p + d - (p - d) ** 2) / 53)
    p, d = 150.75 / 453, 120.75 / 453
    se_rest = 100 * math.sqrt((p + d - (p - d) ** 2) / 453)
    se = w * math.sqrt(se_t**2 + se_rest**2)
    assert impact.low == pytest.approx(impact.estimate - Z95 * se)
    assert impact.high < 0  # a clear detractor driver
    # the p-value: pooled score variance under "no effect"
    sigma = 100 * math.sqrt(0.31 + 0.31 - 0.0)
    z = (impact.estimate / w) / (sigma * math.sqrt(1 / 50 + 1 / 450))
    assert impact.p_value == pytest.approx(2 * (1 - 0.5 * (1 + math.erf(abs(z) / math.sqrt(2)))))


def test_impact_of_a_tiny_topic_is_not_certain() -> None:
    # three mentions, all detractors: plain Wald would give SE_t = 0 and p ≈ 0
    impact = topic_impact((0, 0, 3), (300, 400, 297))
    assert impact.p_value is not None and impact.p_value > 0.01


def test_two_proportion_z_by_hand() -> None:
    z, p = two_proportion_z(30, 100, 15, 100)
    pooled = 45 / 200
    assert z == pytest.approx(0.15 / math.sqrt(pooled * (1 - pooled) * 0.02))
    assert p == pytest.approx(2 * (1 - 0.5 * (1 + math.erf(abs(z) / math.sqrt(2)))))


def test_benjamini_hochberg_by_hand() -> None:
    p = [0.01, 0.04, 0.03, 0.2]
    # sorted: .01 (rank 1) .03 (2) .04 (3) .2 (4) → raw .04, .06, .0533, .2 → monotone .04, .0533, .0533, .2
    assert benjamini_hochberg(p) == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.2])
    assert benjamini_hochberg([]) == []

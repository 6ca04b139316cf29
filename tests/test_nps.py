"""NPS statistics against values computed by hand."""

import math

import pytest

from pipeline.contracts import NpsCategory, nps_category
from pipeline.nps import nps_estimate, z_value


@pytest.mark.parametrize(
    ("score", "category"),
    [(0, NpsCategory.DETRACTOR), (6, NpsCategory.DETRACTOR), (7, NpsCategory.PASSIVE),
     (8, NpsCategory.PASSIVE), (9, NpsCategory.PROMOTER), (10, NpsCategory.PROMOTER)],
)  # fmt: skip
def test_categories(score: int, category: NpsCategory) -> None:
    assert nps_category(score) is category


def test_score_outside_range_is_an_error() -> None:
    with pytest.raises(ValueError):
        nps_category(11)


def test_adjusted_wald_interval_by_hand() -> None:
    est = nps_estimate(50, 30, 20)
    assert est.nps == pytest.approx(30.0)
    n = 100 + 3.0
    p, d = 50.75 / n, 20.75 / n
    se = 100 * math.sqrt((p + d - (p - d) ** 2) / n)
    assert est.se == pytest.approx(se)
    assert est.ci_low == pytest.approx(100 * (p - d) - 1.959964 * se, abs=1e-4)
    assert est.ci_high == pytest.approx(100 * (p - d) + 1.959964 * se, abs=1e-4)


def test_interval_is_clipped_and_defined_for_tiny_cells() -> None:
    est = nps_estimate(0, 0, 1)
    assert est.nps == -100.0
    assert -100.0 <= est.ci_low < est.ci_high <= 100.0
    assert nps_estimate(0, 0, 0).nps is None


def test_z_value() -> None:
    assert z_value(0.95) == pytest.approx(1.959964, abs=1e-6)

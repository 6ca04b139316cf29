"""The drivers, driver_examples and detractor_terms tables on exports whose answers are known."""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pytest

from pipeline.job import run_job
from pipeline.settings import DriverSettings
from pipeline.stats import Z95, wilson_interval
from pipeline.store import DuckDBStore
from pipeline.taxonomy import Taxonomy
from tests.conftest import SAMPLE_CSV, csv_text, make_settings
from tests.contract import contract_violations
from tests.fakes import CuePredictor

DELIVERY = ["配送が遅い。", "配送が遅れて困った。今後も不安です。"]  # two different complaints
NEUTRAL = "また利用します。"  # mentions no topic


def _one_day_export() -> str:
    """40 responses on 2026-10-01: 10 complain about delivery (8 detractors, 1 passive, 1
    promoter); of the other 30, 6 are detractors, 9 passives and 15 promoters."""
    rows = []
    scores = [2] * 8 + [7, 10] + [3] * 6 + [8] * 9 + [9] * 15
    for i, score in enumerate(scores):
        comment = DELIVERY[i % 2] if i < 10 else NEUTRAL
        rows.append([f"R{i:03d}", "2026/10/01 10:00", str(score), "Web", "ライト", "", comment])
    return csv_text(rows)


def _driver(db: Path, topic: str, segment: tuple[str, str] = ("all", "all"), window: int = 7) -> dict:
    con = duckdb.connect(str(db), read_only=True)
    try:
        cursor = con.execute(
            "SELECT * FROM drivers WHERE topic_id = ? AND segment_name = ? AND segment_value = ? "
            "AND window_days = ? ORDER BY window_end DESC LIMIT 1",
            [topic, *segment, window],
        )
        names = [d[0] for d in cursor.description]
        return dict(zip(names, cursor.fetchone(), strict=True))
    finally:
        con.close()


def test_driver_row_matches_hand_computed_statistics(
    write_export: Callable[..., Path], tmp_path: Path, predictor: CuePredictor, taxonomy: Taxonomy
) -> None:
    settings = make_settings(tmp_path / "voc.duckdb", drivers=DriverSettings(windows=[7]))
    run_job(write_export("one_day.csv", _one_day_export()), settings, predictor, taxonomy)
    row = _driver(settings.store.duckdb_path, "delivery_delay")
    # N = 40, D = 14, P = 16; n_t = 10, D_t = 8, P_t = 1; rest: 15 promoters, 9 passives, 6 detractors
    assert (row["responses"], row["detractors_all"], row["mentions"]) == (40, 14, 10)
    assert row["prevalence"] == pytest.approx(0.25)
    assert row["nps_all"] == pytest.approx(5.0)
    assert row["nps_mentioning"] == pytest.approx(-70.0)
    assert row["nps_rest"] == pytest.approx(30.0)
    assert row["impact"] == pytest.approx(-25.0)  # 5 − 30 = 0.25 · (−70 − 30)
    assert row["detractor_rate"] == pytest.approx(0.8)
    wilson = wilson_interval(8, 10, Z95)
    assert (row["detractor_rate_ci_low"], row["detractor_rate_ci_high"]) == pytest.approx(
        (wilson.low, wilson.high)
    )
    assert row["lift"] == pytest.approx(0.8 / (14 / 40))
    assert row["relative_risk"] == pytest.approx(0.8 / (6 / 30))
    assert row["odds_ratio"] == pytest.approx(8 * 24 / (2 * 6))
    assert row["detractor_share"] == pytest.approx(8 / 14)
    assert row["negative_mention_share"] == pytest.approx(1.0)
    assert row["adjusted_impact"] is not None and row["adjusted_impact"] < 0
    assert row["impact_q"] >= row["impact_p"]
    assert row["low_confidence"] and not row["robust"]  # 10 mentions < 30
    assert row["topic_level"] == "leaf" and row["parent_topic_id"] == "delivery"
    parent = _driver(settings.store.duckdb_path, "delivery")
    assert parent["mentions"] == 10 and parent["topic_level"] == "parent"
    # examples: detractors only, and two identical complaints count once
    con = duckdb.connect(str(settings.store.duckdb_path), read_only=True)
    examples = con.execute(
        "SELECT e.comment_masked, r.nps_category FROM driver_examples e JOIN responses r USING (response_id) "
        "WHERE e.topic_id = 'delivery_delay' AND e.segment_name = 'all' ORDER BY e.example_rank"
    ).fetchall()
    assert sorted(c for c, _ in examples) == sorted(DELIVERY)
    assert {category for _, category in examples} == {"detractor"}
    assert contract_violations(con) == []


def _series_export(weeks: int, surge_share: float) -> str:
    """Ten responses a day; delivery complaints rare (one a week) until the last week's surge."""
    rows, start = [], date(2026, 8, 1)
    rng = random.Random(5)
    for day in range(weeks * 7):
        for j in range(10):
            last_week = day >= (weeks - 1) * 7
            complains = rng.random() < surge_share if last_week else (day % 7 == 0 and j == 0)
            score = rng.choice([0, 3, 5]) if complains else rng.choice([3, 7, 8, 9, 10])
            when = (start + timedelta(days=day)).strftime("%Y/%m/%d 10:00")
            rows.append(
                [
                    f"S{day:03d}-{j}",
                    when,
                    str(score),
                    "Web",
                    "ライト",
                    "",
                    DELIVERY[0] if complains else NEUTRAL,
                ]
            )
    return csv_text(rows)


def test_a_surge_is_rising_and_emerging(
    write_export: Callable[..., Path], tmp_path: Path, predictor: CuePredictor, taxonomy: Taxonomy
) -> None:
    settings = make_settings(tmp_path / "voc.duckdb", drivers=DriverSettings(windows=[7]))
    run_job(write_export("series.csv", _series_export(7, 0.5)), settings, predictor, taxonomy)
    last = _driver(settings.store.duckdb_path, "delivery_delay")
    assert last["window_end"] == date(2026, 9, 18)
    assert last["previous_prevalence"] == pytest.approx(6 / 420)  # one a week over six weeks
    assert last["rising"] and last["emerging"]
    con = duckdb.connect(str(settings.store.duckdb_path), read_only=True)
    earlier = con.execute(
        "SELECT count(*) FILTER (WHERE rising) FROM drivers WHERE window_end < '2026-09-12'"
    ).fetchone()
    assert earlier == (0,)


def test_permuted_scores_flag_no_robust_driver(
    taxonomy: Taxonomy, predictor: CuePredictor, tmp_path: Path
) -> None:
    """The control: the sample's scores shuffled across responses leave topics without any real
    effect, so nothing may be flagged robust, in any window or segment."""
    rows = list(csv.reader(io.StringIO(SAMPLE_CSV.read_text(encoding="utf-8"))))
    header, body = rows[0], rows[1:]
    scored = [r for r in body if len(r) == len(header)]
    scores = [r[2] for r in scored]
    random.Random(2026).shuffle(scores)
    for row, score in zip(scored, scores, strict=True):
        row[2] = score
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, *body])
    export = tmp_path / "permuted.csv"
    export.write_text(buffer.getvalue(), encoding="utf-8")
    settings = make_settings(tmp_path / "voc.duckdb")
    run_job(export, settings, predictor, taxonomy)
    with DuckDBStore(settings.store.duckdb_path) as store:
        total, robust = store.query("SELECT count(*), count(*) FILTER (WHERE robust) FROM drivers")[0]
    assert total > 10_000 and robust == 0


def test_rerunning_one_date_recomputes_the_windows_it_touches(
    write_export: Callable[..., Path], tmp_path: Path, predictor: CuePredictor, taxonomy: Taxonomy
) -> None:
    from pipeline.job import DateScope
    from tests.conftest import VOLATILE, table_snapshot

    settings = make_settings(tmp_path / "voc.duckdb", drivers=DriverSettings(windows=[7, 28]))
    export = write_export("series.csv", _series_export(5, 0.5))
    run_job(export, settings, predictor, taxonomy)
    before = table_snapshot(settings.store.duckdb_path, VOLATILE | _lineage())
    run_job(export, settings, predictor, taxonomy, DateScope.single(date(2026, 8, 20)), kind="backfill")
    after = table_snapshot(settings.store.duckdb_path, VOLATILE | _lineage())
    after.pop("runs"), before.pop("runs")
    assert after == before


def _lineage() -> dict[str, set[str]]:
    from pipeline.schema import table_specs

    return {name: {"run_id"} for name in table_specs()}


def test_dummies_drop_the_most_common_value_ties_going_to_string_order() -> None:
    from pipeline.drivers.adjusted import dummy_columns
    from pipeline.drivers.load import CategoryCodes

    categories = CategoryCodes.of(np.array(["b", "a", "b", "a", "c", "10", "9"], dtype=object))
    assert categories.names == ["10", "9", "a", "b", "c"]  # string order, as the old code's sorted(key=str)
    rows = np.arange(5)  # a and b twice each, c once: a (first in string order) is the reference
    assert [column.tolist() for column in dummy_columns(categories, rows)] == [
        [1, 0, 1, 0, 0],
        [0, 0, 0, 0, 1],
    ]
    months = CategoryCodes.of(np.array([24319, 24320, 24320]))
    assert [column.tolist() for column in dummy_columns(months, np.arange(3))] == [[1, 0, 0]]

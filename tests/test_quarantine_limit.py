"""The loud failure (one reason code quarantining most of a run) and scores with a scale label."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipeline.errors import QuarantineLimitError
from pipeline.job import run_job
from pipeline.schema import table_specs
from pipeline.taxonomy import Taxonomy
from tests.conftest import csv_text, make_settings, table_snapshot
from tests.fakes import CuePredictor
from tests.test_cli import voc

GOOD = [["G1", "2026/07/01 09:00", "9", "店舗", "ライト", "", "スタッフが親切"]]
# what a survey tool exports when it writes the scale label beside the number
LABELLED = [
    [f"L{n:02}", "2026/07/02 10:00", score, "Web", "ライト", "", "配送が遅い"]
    for n, score in enumerate(["10：非常に薦めたい", "０：全く薦めたくない", *["7：どちらでもない"] * 10])
]
EVERY_RUN_COLUMN = {"runs": {c.name for c in table_specs()["runs"].columns}}


def test_a_run_of_labelled_scores_fails_loudly_and_changes_no_table(
    tmp_path: Path, write_export: Callable[..., Path], predictor: CuePredictor, taxonomy: Taxonomy
) -> None:
    settings = make_settings(tmp_path / "voc.duckdb")
    run_job(write_export("good.csv", csv_text(GOOD)), settings, predictor, taxonomy)
    db = settings.store.duckdb_path
    before = table_snapshot(db, EVERY_RUN_COLUMN)

    result = voc("run", write_export("labelled.csv", csv_text(LABELLED)), "--db", db)

    assert result.returncode == 2, result.stderr
    # the example is the quarantine payload's value: masked, so NFKC-normalised (：→:)
    assert result.stderr.splitlines() == [
        "error: 12 of 12 records (100%) were quarantined as bad_score, e.g. score '10:非常に薦めたい'; "
        "set source.score_pattern to read scores with a scale label, or raise source.max_quarantine_share"
    ]
    assert table_snapshot(db, EVERY_RUN_COLUMN) == before
    with duckdb.connect(str(db), read_only=True) as con:
        columns = "source_name, status, rows_published, error"
        runs = con.execute(f"SELECT {columns} FROM runs ORDER BY source_name").fetchall()
    assert runs[0] == ("good.csv", "succeeded", 1, None)
    assert runs[1][:3] == ("labelled.csv", "failed", 0)
    assert runs[1][3].startswith("QuarantineLimitError: 12 of 12 records")


@pytest.mark.parametrize(
    ("pattern", "scores", "read"),
    [
        (r"^(\d+)", ["10：非常に薦めたい", "０：全く薦めたくない", "8"], [10, 0, 8]),
        (r"(\d+)\s*点", ["１０点", "7 点", "満足度 3点"], [10, 7, 3]),
    ],
)
def test_score_pattern_reads_scores_with_a_scale_label(
    pattern: str,
    scores: list[str],
    read: list[int],
    tmp_path: Path,
    write_export: Callable[..., Path],
    predictor: CuePredictor,
    taxonomy: Taxonomy,
) -> None:
    rows = [[f"S{n}", "2026/07/01 10:00", s, "Web", "", "", ""] for n, s in enumerate([*scores, "良い"])]
    settings = make_settings(tmp_path / "voc.duckdb", score_pattern=pattern)
    summary = run_job(write_export("scores.csv", csv_text(rows)), settings, predictor, taxonomy)
    assert (summary.rows_published, dict(summary.quarantine_reasons)) == (len(scores), {"bad_score": 1})
    with duckdb.connect(str(settings.store.duckdb_path), read_only=True) as con:
        found = con.execute("SELECT score FROM responses ORDER BY response_id").fetchall()
    assert [s for (s,) in found] == read


def test_without_a_pattern_labelled_scores_stay_bad(
    tmp_path: Path, write_export: Callable[..., Path], predictor: CuePredictor, taxonomy: Taxonomy
) -> None:
    settings = make_settings(tmp_path / "voc.duckdb", max_quarantine_share=1.0)
    summary = run_job(write_export("labelled.csv", csv_text(LABELLED)), settings, predictor, taxonomy)
    assert (summary.status, summary.rows_published, dict(summary.quarantine_reasons)) == (
        "succeeded", 0, {"bad_score": 12}
    )  # fmt: skip


@pytest.mark.parametrize(
    ("bad", "good", "share", "fails"),
    [
        (1, 2, 0.2, False),  # a small run with a stray bad row publishes
        (9, 0, 0.2, False),  # fewer than source.min_quarantined_to_fail (10)
        (10, 40, 0.2, False),  # 20% is not more than 20%
        (10, 39, 0.2, True),  # 20.4% is
        (12, 0, 1.0, False),  # 1.0 turns the check off
        (12, 0, 0.2, True),
    ],
)
def test_when_a_run_fails_for_its_quarantine(
    bad: int,
    good: int,
    share: float,
    fails: bool,
    tmp_path: Path,
    write_export: Callable[..., Path],
    predictor: CuePredictor,
    taxonomy: Taxonomy,
) -> None:
    rows = [[f"B{n}", "2026/07/01 10:00", "とても", "Web", "", "", ""] for n in range(bad)]
    rows += [[f"G{n}", "2026/07/01 10:00", "9", "Web", "", "", ""] for n in range(good)]
    settings = make_settings(tmp_path / "voc.duckdb", max_quarantine_share=share)
    export = write_export("mixed.csv", csv_text(rows))
    if fails:
        with pytest.raises(QuarantineLimitError, match=rf"{bad} of {bad + good} records .* as bad_score"):
            run_job(export, settings, predictor, taxonomy)
    else:
        summary = run_job(export, settings, predictor, taxonomy)
        assert (summary.rows_published, summary.rows_quarantined) == (good, bad)
        assert summary.partitions == [date(2026, 7, 1)]

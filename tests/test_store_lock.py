"""A DuckDB store that another process holds: runs and readers wait for it instead of failing,
a run holds the file only while it uses it, and a wait past store.lock_timeout is one error line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import duckdb
import pytest

from pipeline.contracts import Predictions
from pipeline.job import run_job
from pipeline.settings import Settings
from pipeline.taxonomy import Taxonomy
from tests.conftest import REPO, csv_text, make_settings
from tests.fakes import CuePredictor
from tests.test_cli import voc

WAITING = "waiting for "
JULY_1 = [
    ["A1", "2026/07/01 09:00", "10", "店舗", "ライト", "", "スタッフが親切"],
    ["A2", "2026/07/01 12:00", "3", "Web", "プレミアム", "", "配送が遅い"],
]
JULY_2 = [["B1", "2026/07/02 10:00", "6", "Web", "ライト", "", "料金が高い"]]


def start_voc(*args: str | Path, lock_timeout: float | None = None) -> subprocess.Popen[str]:
    """`voc` as a user starts it (tests/test_cli.py `voc`), left running."""
    timeout = {} if lock_timeout is None else {"VOC__STORE__LOCK_TIMEOUT": str(lock_timeout)}
    return subprocess.Popen(
        [sys.executable, "-m", "voc", *map(str, args)],
        cwd=REPO,
        env={**os.environ, **timeout},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until_waiting(process: subprocess.Popen[str]) -> list[str]:
    """The process's stderr lines up to the one that says it waits for the store."""
    assert process.stderr is not None
    lines: list[str] = []
    while not lines or WAITING not in lines[-1]:
        line = process.stderr.readline()
        assert line, f"exited without waiting: {''.join(lines)}"
        lines.append(line)
    return lines


@pytest.fixture
def published(
    tmp_path: Path, write_export: Callable[..., Path], predictor: CuePredictor, taxonomy: Taxonomy
) -> Settings:
    settings = make_settings(tmp_path / "voc.duckdb")
    run_job(write_export("july1.csv", csv_text(JULY_1)), settings, predictor, taxonomy)
    return settings


def test_two_runs_started_at_once_both_succeed(tmp_path: Path, write_export: Callable[..., Path]) -> None:
    db = tmp_path / "voc.duckdb"
    exports = [write_export(name, csv_text(rows)) for name, rows in (("a.csv", JULY_1), ("b.csv", JULY_2))]
    holder = duckdb.connect(str(db))  # both runs find the file held, then meet each other
    runs = [start_voc("run", export, "--db", db) for export in exports]
    try:
        for run in runs:
            wait_until_waiting(run)
    finally:
        holder.close()
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
        assert "error" not in err
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT source_name, status FROM runs ORDER BY 1").fetchall() == [
            ("a.csv", "succeeded"),
            ("b.csv", "succeeded"),
        ]
        ids = con.execute("SELECT response_id FROM responses ORDER BY 1").fetchall()
    assert [i for (i,) in ids] == ["A1", "A2", "B1"]


def test_a_reader_waits_for_a_publish_and_reads_what_it_left(published: Settings) -> None:
    db = published.store.duckdb_path
    expected = voc("nps", "--db", db, "--period", "day")
    assert expected.returncode == 0, expected.stderr
    writer = duckdb.connect(str(db))  # a run in the middle of its publish: days deleted, not yet replaced
    writer.execute("BEGIN TRANSACTION")
    writer.execute("DELETE FROM nps_daily")
    reader = start_voc("nps", "--db", db, "--period", "day")
    try:
        said = wait_until_waiting(reader)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    assert out == expected.stdout and "2026-07-01" in out
    assert f"waiting for {db}" in said[-1] and "store.lock_timeout" in said[-1]


def test_a_wait_past_lock_timeout_is_one_error_line(published: Settings) -> None:
    db = published.store.duckdb_path
    holder = duckdb.connect(str(db))
    try:
        reader = start_voc("nps", "--db", db, lock_timeout=0.5)
        out, err = reader.communicate(timeout=60)
    finally:
        holder.close()
    assert reader.returncode == 2
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {db} is in use by another process (PID {os.getpid()}) still, after 0.5 s "
        "(store.lock_timeout): another run publishing, or a BI tool holding it open; wait for it to "
        "finish and run again, or raise store.lock_timeout"
    ]
    assert "Traceback" not in err and out == ""


class OpensTheStoreMeanwhile(CuePredictor):
    """A model that, while it classifies, has another process open the store."""

    def __init__(self, taxonomy: Taxonomy, db: Path) -> None:
        super().__init__(taxonomy)
        self.db = db
        self.others_got_in: list[bool] = []

    def predict(self, texts: Sequence[str], batch_size: int = 32) -> Predictions:
        other = subprocess.run(
            [sys.executable, "-c", f"import duckdb; duckdb.connect({str(self.db)!r}).close()"],
            capture_output=True,
        )
        self.others_got_in.append(other.returncode == 0)
        return super().predict(texts, batch_size)


def test_a_run_lets_the_file_go_while_it_classifies(
    published: Settings, write_export: Callable[..., Path], taxonomy: Taxonomy
) -> None:
    model = OpensTheStoreMeanwhile(taxonomy, published.store.duckdb_path)
    summary = run_job(write_export("july2.csv", csv_text(JULY_2)), published, model, taxonomy)
    assert summary.status == "succeeded"
    assert model.others_got_in == [True]

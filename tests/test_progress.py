"""Progress of long runs: the log-line and live-bar reporters, what the job and training report
through them, and what a piped `voc run` writes to stderr."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console

from models.training import TrainingArguments, train_model
from pipeline.errors import Stage
from pipeline.job import run_job
from pipeline.progress import LogLines, duration_text, no_progress, progress_reporter
from pipeline.progress_bars import LiveBars
from pipeline.taxonomy import Taxonomy
from tests.conftest import HEADER, REPO, csv_text, make_settings
from tests.fakes import CuePredictor
from tests.tiny_model import build_tiny_bert

ROWS = [
    ["P1", "2026/07/01 09:00", "10", "店舗", "ライト", "", "スタッフが親切。また来ます"],
    ["P2", "2026/07/01 12:00", "3", "Web", "プレミアム", "", "配送が遅い。\n二重請求もあった"],
    ["P3", "2026/07/02 10:00", "6", "アプリ", "ライト", "", "料金が高い"],
    ["P4", "2026/07/02 11:00", "8", "Web", "", "", ""],
    ["P5", "2026/07/03 18:00", "11", "Web", "ライト", "", "範囲外"],
]

Call = tuple[str, int, int | None, str]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_log_lines_write_at_most_one_line_per_interval() -> None:
    clock, lines = Clock(), []
    log = LogLines(lines.append, every=10, clock=clock)
    for second in range(26):
        clock.now = float(second)
        log("ingest", second * 1_000_000, 30_000_000, "bytes")
    assert lines == [
        "progress: ingest 10.0/30.0 MB (33%), 1.0 MB/s, about 20 s left",
        "progress: ingest 20.0/30.0 MB (67%), 1.0 MB/s, about 10 s left",
    ]


def test_a_log_line_names_each_stage_reported_since_the_last() -> None:
    clock, lines = Clock(), []
    log = LogLines(lines.append, every=5, clock=clock)
    log("normalize", 0, None, "records")
    clock.now = 2
    log("classify", 100, None, "sentences")
    clock.now = 6  # a total not known yet: the count and the rate, no time left
    log("normalize", 3_000, None, "records")
    clock.now = 8
    log("classify", 2_100, 5_000, "sentences")
    clock.now = 11  # normalize said nothing since the last line
    log("classify", 3_100, 5_000, "sentences")
    assert lines == [
        "progress: normalize 3,000 records, 500 records/s; classify 100 sentences",
        "progress: classify 3,100/5,000 sentences (62%), 333 sentences/s, about 6 s left",
    ]
    assert (duration_text(125), duration_text(3725)) == ("2 min 05 s", "1 h 02 min")


def test_live_bars_draw_done_of_total_rate_and_time_left() -> None:
    buffer, clock = io.StringIO(), Clock()
    bars = LiveBars(Console(file=buffer, force_terminal=True, width=120, color_system=None), clock=clock)
    with bars.bars:
        for second in (0, 2, 4):
            clock.now = second
            bars("classify", 1_000 * second, 10_000, "sentences")
        bars("normalize", 2_000, None, "records")
    drawn = buffer.getvalue()
    assert "\x1b[" in drawn  # drawn live, with cursor movements
    final = drawn.rsplit("\x1b[2K", 1)[-1].splitlines()  # the last redraw, left on screen
    assert "classify" in final[0] and "4,000/10,000 sentences" in final[0]
    assert "1,000 sentences/s" in final[0] and "0:00:06" in final[0]  # 6,000 left at 1,000 a second
    assert "normalize" in final[1] and "2,000 records" in final[1] and "/" not in final[1]


def _reported(calls: list[Call]) -> dict[str, tuple[int, int | None, str]]:
    """The last report of each stage, in the order the stages first reported."""
    return {stage: (done, total, unit) for stage, done, total, unit in calls}


def _check_monotonic(calls: list[Call]) -> None:
    for stage in {c[0] for c in calls}:
        dones = [done for s, done, total, _ in calls if s == stage]
        assert dones == sorted(dones), stage
        assert all(total is None or done <= total for s, done, total, _ in calls if s == stage), stage


def test_run_job_reports_every_stage_up_to_its_total(
    predictor: CuePredictor, taxonomy: Taxonomy, write_export: Callable[..., Path], tmp_path: Path
) -> None:
    export = write_export("export.csv", csv_text(ROWS))
    settings = make_settings(tmp_path / "p.duckdb", chunk_rows=2)
    calls: list[Call] = []
    summary = run_job(export, settings, predictor, taxonomy, progress=lambda *call: calls.append(call))
    last = _reported(calls)
    assert list(last) == list(Stage)
    size = export.stat().st_size
    assert last[Stage.INGEST] == (size, size, "bytes")
    assert summary.rows_read == len(ROWS)
    for stage in (Stage.NORMALIZE, Stage.TOKENIZE, Stage.TERMS, Stage.WRITE):
        assert last[stage] == (len(ROWS), len(ROWS), "records")
    with duckdb.connect(str(settings.store.duckdb_path), read_only=True) as con:
        (sentences,) = con.execute("SELECT count(*) FROM sentences").fetchone()  # type: ignore[misc]
    assert sentences == 5 and last[Stage.CLASSIFY] == (5, 5, "sentences")
    assert last[Stage.PUBLISH] == (3, 3, "chunks")  # 5 records in chunks of 2
    assert last[Stage.AGGREGATE] == (1, 1, "steps")
    assert last[Stage.THEMES] == (2, 2, "dates") and last[Stage.DRIVERS][0] == last[Stage.DRIVERS][1]
    _check_monotonic(calls)
    # a CSV's record count is not known before it is read; bytes read are counted along the way
    # (this small file fits the reader's first buffer, so its first count may already be all of it)
    first_ingest = next(c for c in calls if c[0] == Stage.INGEST)
    assert 0 < first_ingest[1] <= size and first_ingest[2] == size
    assert next(c for c in calls if c[0] == Stage.NORMALIZE)[2] is None


def test_a_parquet_record_total_is_known_from_the_start(
    predictor: CuePredictor, taxonomy: Taxonomy, tmp_path: Path
) -> None:
    export = tmp_path / "export.parquet"
    pq.write_table(pa.table({name: [row[i] for row in ROWS] for i, name in enumerate(HEADER)}), export)
    calls: list[Call] = []
    settings = make_settings(tmp_path / "pq.duckdb", chunk_rows=2)
    run_job(export, settings, predictor, taxonomy, progress=lambda *call: calls.append(call))
    ingest = [c for c in calls if c[0] == Stage.INGEST]
    assert ingest[0] == (Stage.INGEST, 2, 5, "records") and ingest[-1] == (Stage.INGEST, 5, 5, "records")
    normalize = [c[1:3] for c in calls if c[0] == Stage.NORMALIZE]
    assert normalize == [(2, 5), (4, 5), (5, 5), (5, 5)]


def test_training_reports_fine_tune_steps_and_texts_encoded(taxonomy: Taxonomy, tmp_path: Path) -> None:
    encoder = build_tiny_bert(tmp_path / "bert")
    arguments = TrainingArguments(
        name="tiny", encoder=str(encoder), fine_tune=True, max_steps=2, batch_size=8
    )
    calls: list[Call] = []
    data = REPO / "data" / "labelled" / "topics_train.jsonl"
    train_model([data], tmp_path / "m", taxonomy, arguments, progress=lambda *call: calls.append(call))
    last = _reported(calls)
    assert list(last) == ["fine-tune", "encode"]
    assert [c[1] for c in calls if c[0] == "fine-tune"] == [0, 1, 2] and last["fine-tune"] == (2, 2, "steps")
    texts = last["encode"][1]
    assert texts is not None and texts > 32 and last["encode"] == (texts, texts, "texts")
    assert len([c for c in calls if c[0] == "encode"]) == 1 + -(-texts // 32)  # the start, then each batch
    _check_monotonic(calls)


def test_piped_run_writes_log_lines_not_bars(write_export: Callable[..., Path], tmp_path: Path) -> None:
    export = write_export("export.csv", csv_text(ROWS))
    args = ["run", export, "--db", tmp_path / "cli.duckdb", "--progress-every", "0", "--format", "json"]
    result = subprocess.run(
        [sys.executable, "-m", "voc", *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("progress: ")]
    for stage in Stage:
        assert any(line.startswith(f"progress: {stage} ") for line in lines), stage
    assert any("classify 5/5 sentences (100%)" in line for line in lines)
    run = json.loads(result.stdout)["run"]  # stdout holds the summary alone
    assert run[0]["rows_read"] == 5 and run[0]["rows_published"] == 4 and run[0]["rows_out_of_scope"] == 0


def test_auto_draws_bars_on_a_terminal_and_writes_log_lines_elsewhere() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    with progress_reporter("auto", io.StringIO()) as piped:
        assert isinstance(piped, LogLines)
    with progress_reporter("auto", Terminal()) as terminal:
        assert isinstance(terminal, LiveBars)
    with progress_reporter("none", Terminal()) as nobody:
        assert nobody is no_progress

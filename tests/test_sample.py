"""The bundled sample export through the whole job: what the README's main command shows."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import duckdb
import pytest

from pipeline.job import RunSummary, run_job
from pipeline.normalize import normalize_text
from pipeline.report import detractor_terms
from pipeline.store import DuckDBStore, table_specs
from pipeline.taxonomy import Taxonomy
from tests.conftest import SAMPLE_CSV, SAMPLE_PII, make_settings, table_snapshot
from tests.contract import contract_violations
from tests.fakes import CuePredictor


@pytest.fixture(scope="module")
def sample_run(taxonomy: Taxonomy, tmp_path_factory: pytest.TempPathFactory) -> tuple[RunSummary, Path]:
    db = tmp_path_factory.mktemp("sample") / "voc.duckdb"
    return run_job(SAMPLE_CSV, make_settings(db), CuePredictor(taxonomy), taxonomy), db


def test_sample_reconciles(sample_run: tuple[RunSummary, Path]) -> None:
    summary, db = sample_run
    assert summary.rows_read == summary.rows_in == 1213
    assert (summary.rows_published, summary.rows_quarantined) == (1200, 13)
    assert len(summary.partitions) >= 90
    assert summary.quarantine_reasons == Counter(
        bad_score=2, score_out_of_range=2, missing_score=1, bad_timestamp=2, missing_timestamp=1,
        missing_response_id=1, duplicate_response_id=2, malformed_record=2,
    )  # fmt: skip
    con = duckdb.connect(str(db), read_only=True)
    assert contract_violations(con) == []
    # the unclosed quote on line 914 costs that line only: the two rows after it are published
    assert con.execute(
        "SELECT count(*) FROM responses WHERE response_id IN ('R20260910-0002', 'R20260910-0003')"
    ).fetchone() == (2,)
    assert con.execute("SELECT reason_code FROM quarantine WHERE source_row = 914").fetchone() == (
        "malformed_record",
    )


def test_no_sample_pii_in_any_table(sample_run: tuple[RunSummary, Path]) -> None:
    _, db = sample_run
    values = [v for v in SAMPLE_PII.read_text(encoding="utf-8").splitlines() if v]
    assert len(values) > 50
    dump = repr(table_snapshot(db))
    leaked = [v for v in values if v in dump or normalize_text(v) in dump]
    assert leaked == []


def test_planted_drivers_show_in_detractor_terms(sample_run: tuple[RunSummary, Path]) -> None:
    summary, db = sample_run
    with DuckDBStore(db) as store:
        terms = {
            t.term for t in detractor_terms(store, summary.partitions[0], summary.partitions[-1], limit=30)
        }
    # delivery delays, phone waits at the call centre and billing mistakes are planted in the sample
    assert {"配送", "電話", "請求"} <= terms
    assert "親切" not in terms


def test_cp932_copy_of_the_sample_gives_the_same_tables(
    predictor: CuePredictor, taxonomy: Taxonomy, tmp_path: Path
) -> None:
    text = SAMPLE_CSV.read_text(encoding="utf-8")
    encodable = "".join(c for c in text if _cp932_ok(c))  # emoji do not exist in CP932
    utf8, sjis = tmp_path / "utf8.csv", tmp_path / "sjis.csv"
    utf8.write_text(encodable, encoding="utf-8")
    sjis.write_bytes(encodable.encode("cp932"))
    a, b = make_settings(tmp_path / "a.duckdb"), make_settings(tmp_path / "b.duckdb")
    run_job(utf8, a, predictor, taxonomy, source_name="sample")
    run_job(sjis, b, predictor, taxonomy, source_name="sample")
    lineage = {
        name: {"run_id", "source_sha256", "started_at", "finished_at", "seconds_by_stage"}
        for name in table_specs()
    }
    assert table_snapshot(a.store.duckdb_path, lineage) == table_snapshot(b.store.duckdb_path, lineage)


def _cp932_ok(char: str) -> bool:
    try:
        char.encode("cp932")
        return True
    except UnicodeEncodeError:
        return False

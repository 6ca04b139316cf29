"""The bundled sample export through the whole job: what the README's main command shows."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from pipeline.job import RunSummary, run_job
from pipeline.normalize import normalize_text
from pipeline.report import top_detractor_terms
from pipeline.schema import table_specs
from pipeline.settings import DriverSettings
from pipeline.store import DuckDBStore
from pipeline.taxonomy import Taxonomy
from tests.conftest import RUN_STATS, SAMPLE_CSV, SAMPLE_PII, make_settings, table_snapshot
from tests.contract import contract_violations
from tests.fakes import CuePredictor
from tests.golden import FINGERPRINT, fingerprint


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
    # text columns only: a 7-digit postcode also turns up among the digits of a float
    dump = "\n".join(
        v for rows in table_snapshot(db).values() for row in rows for v in row if isinstance(v, str)
    )
    leaked = [v for v in values if v in dump or normalize_text(v) in dump]
    assert leaked == []


def test_planted_drivers_show_in_detractor_terms(sample_run: tuple[RunSummary, Path]) -> None:
    summary, db = sample_run
    with DuckDBStore(db) as store:
        rows = top_detractor_terms(store, 90, summary.partitions[-1], limit=30)
    terms = {t["term"] for t in rows}
    # delivery delays, phone waits at the call centre and billing mistakes are planted in the sample
    assert {"配送", "電話", "請求"} <= terms
    assert "親切" not in terms
    covered = {t["term"]: t["covered_by_topic_id"] for t in rows}
    assert covered["配送"] == "delivery_delay" and covered["請求"] == "billing_error"


def test_cp932_copy_of_the_sample_gives_the_same_tables(
    predictor: CuePredictor, taxonomy: Taxonomy, tmp_path: Path
) -> None:
    text = SAMPLE_CSV.read_text(encoding="utf-8")
    encodable = "".join(c for c in text if _cp932_ok(c))  # emoji do not exist in CP932
    utf8, sjis = tmp_path / "utf8.csv", tmp_path / "sjis.csv"
    utf8.write_text(encodable, encoding="utf-8")
    sjis.write_bytes(encodable.encode("cp932"))
    one_window = DriverSettings(windows=[28])  # the drivers take part; one window keeps it quick
    a = make_settings(tmp_path / "a.duckdb", drivers=one_window)
    b = make_settings(tmp_path / "b.duckdb", drivers=one_window)
    run_job(utf8, a, predictor, taxonomy, source_name="sample")
    run_job(sjis, b, predictor, taxonomy, source_name="sample")
    lineage = {name: {"run_id", "source_sha256"} | RUN_STATS for name in table_specs()}
    assert table_snapshot(a.store.duckdb_path, lineage) == table_snapshot(b.store.duckdb_path, lineage)


def _cp932_ok(char: str) -> bool:
    try:
        char.encode("cp932")
        return True
    except UnicodeEncodeError:
        return False


@pytest.mark.parametrize(
    ("window", "segment", "value", "planted", "top"),
    [
        (90, "all", "all", "delivery_delay", 1),  # late deliveries in app and Web since 8/15
        (90, "channel", "Web", "delivery_delay", 1),
        (90, "channel", "コールセンター", "waiting_time", 1),  # waits on the phone
        (90, "plan", "プレミアム", "billing_error", 1),  # billing mistakes on premium since 9/1
        (28, "channel", "アプリ", "app_bugs", 2),  # app crashes since 10/1 (11 mentions: impact only)
    ],
)
def test_planted_drivers_come_out_on_top(
    sample_run: tuple[RunSummary, Path], window: int, segment: str, value: str, planted: str, top: int
) -> None:
    _, db = sample_run
    con = duckdb.connect(str(db), read_only=True)
    ranked = con.execute(
        "SELECT topic_id, impact_ci_high, adjusted_impact_ci_high FROM drivers "
        "WHERE window_end = '2026-10-31' AND window_days = ? AND segment_name = ? AND segment_value = ? "
        "AND topic_level = 'leaf' ORDER BY impact",
        [window, segment, value],
    ).fetchall()
    assert planted in [r[0] for r in ranked[:top]]
    _, impact_high, adjusted_high = next(r for r in ranked if r[0] == planted)
    assert impact_high < 0  # the interval excludes zero
    if window == 90:
        assert adjusted_high < 0  # and holding co-mentioned topics fixed does not explain it away
    robust = con.execute(
        "SELECT topic_id FROM drivers WHERE window_end = '2026-10-31' AND window_days = 90 "
        "AND segment_name = 'all' AND robust AND impact < 0"
    ).fetchall()
    assert ("delivery_delay",) in robust


def test_every_table_matches_the_committed_fingerprint(sample_run: tuple[RunSummary, Path]) -> None:
    """Row for row (apart from run ids and timings) what the committed fingerprint records; a
    change that is meant to alter results commits a new one (`python -m tests.golden --write`)."""
    _, db = sample_run
    assert fingerprint(db) == json.loads(FINGERPRINT.read_text(encoding="utf-8"))

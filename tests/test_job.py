"""The main job end to end on small exports: reconciliation, contract, idempotency, scopes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipeline.errors import StoreError
from pipeline.job import DateScope, run_job
from pipeline.schema import table_specs
from pipeline.settings import Settings
from pipeline.store import DuckDBStore
from pipeline.taxonomy import Taxonomy
from tests.conftest import VOLATILE, csv_text, make_settings, table_snapshot
from tests.contract import contract_violations
from tests.fakes import CuePredictor

PII = ["090-1234-5678", "taro@example.co.jp", "123-4567", "A1234567"]
ROWS = [
    ["R01", "2026/07/01 09:00", "10", "店舗", "ライト", "20代", "スタッフがとても親切でした😊また来ます"],
    ["R02", "2026/07/01 12:00", "3", "Web", "プレミアム", "30代", "配送が遅い。\n二重請求もあった！！"],
    ["R03", "2026/07/01 18:00", "7", "アプリ", "ライト", "", "料金は高いけどスタッフは親切"],
    [
        "R04",
        "2026/07/02 10:00",
        "0",
        "コールセンター",
        "スタンダード",
        "",
        "電話が全然つながらない。090-1234-5678に折り返しを",
    ],
    ["R05", "2026/07/02 11:00", "8", "Web", "", "", ""],
    ["R06", "2026/07/02 23:59", "9", "アプリ", "ライト", "", "taro@example.co.jp 宛に領収書をください"],
    ["R07", "2026-07-02T15:30:00Z", "6", "店舗", "ライト", "", "〒123-4567の店舗、狭い"],  # 7/3 in Tokyo
    ["R08", "2026/07/03 10:00", "５", "Web", "ライト", "", "注文番号：A1234567 が届かない"],
    ["R09", "2026/07/03 10:00", "11", "Web", "ライト", "", "範囲外"],
    ["R01", "2026/07/03 10:00", "9", "Web", "ライト", "", "重複ID"],
    ["R10", "bad-date", "9", "Web", "ライト", "", "日付なし"],
]


@pytest.fixture
def export(write_export: Callable[..., Path]) -> Path:
    return write_export("export.csv", csv_text(ROWS))


def counts(db: Path) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {name: con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in table_specs()}  # type: ignore[index]
    finally:
        con.close()


def test_every_row_is_published_or_quarantined(
    predictor: CuePredictor, taxonomy: Taxonomy, export: Path, settings: Settings
) -> None:
    summary = run_job(export, settings, predictor, taxonomy)
    assert summary.rows_read == len(ROWS)
    assert summary.rows_in == summary.rows_published + summary.rows_quarantined == len(ROWS)
    assert (summary.rows_published, summary.rows_quarantined) == (8, 3)
    assert summary.partitions == [date(2026, 7, 1), date(2026, 7, 2), date(2026, 7, 3)]
    db = settings.store.duckdb_path
    n = counts(db)
    assert n["responses"] == 8 and n["quarantine"] == 3 and n["runs"] == 1
    con = duckdb.connect(str(db), read_only=True)
    run = con.execute("SELECT rows_in, rows_published, rows_quarantined, status FROM runs").fetchone()
    assert run == (11, 8, 3, "succeeded")
    assert con.execute("SELECT response_date FROM responses WHERE response_id = 'R07'").fetchone() == (
        date(2026, 7, 3),
    )
    daily = con.execute(
        "SELECT responses, promoters, passives, detractors, nps FROM nps_daily "
        "WHERE response_date = '2026-07-01' AND segment_name = 'all'"
    ).fetchone()
    assert daily == (3, 1, 1, 1, 0.0)


def test_tables_match_their_documentation(
    predictor: CuePredictor, taxonomy: Taxonomy, export: Path, settings: Settings
) -> None:
    run_job(export, settings, predictor, taxonomy)
    con = duckdb.connect(str(settings.store.duckdb_path), read_only=True)
    assert contract_violations(con) == []
    documented = {name for name in table_specs()}
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert documented <= tables


def test_no_pii_reaches_any_table(
    predictor: CuePredictor, taxonomy: Taxonomy, export: Path, settings: Settings
) -> None:
    run_job(export, settings, predictor, taxonomy)
    dump = repr(table_snapshot(settings.store.duckdb_path))
    for value in PII:
        assert value not in dump
    assert "[PHONE]" in dump and "[EMAIL]" in dump and "[POSTCODE]" in dump and "[ID]" in dump


# Timings and the moment a run happened legitimately differ between executions.


def test_rerun_leaves_every_table_identical(
    predictor: CuePredictor, taxonomy: Taxonomy, export: Path, settings: Settings
) -> None:
    run_job(export, settings, predictor, taxonomy)
    first = table_snapshot(settings.store.duckdb_path, VOLATILE)
    run_job(export, settings, predictor, taxonomy)
    assert table_snapshot(settings.store.duckdb_path, VOLATILE) == first


def test_cp932_copy_gives_the_same_tables(
    predictor: CuePredictor,
    taxonomy: Taxonomy,
    export: Path,
    write_export: Callable[..., Path],
    tmp_path: Path,
) -> None:
    rows = [[cell.replace("😊", "") for cell in row] for row in ROWS]  # CP932 has no emoji
    utf8 = write_export("utf8.csv", csv_text(rows))
    sjis = write_export("sjis.csv", csv_text(rows), "cp932")
    a, b = make_settings(tmp_path / "a.duckdb"), make_settings(tmp_path / "b.duckdb")
    run_job(utf8, a, predictor, taxonomy, source_name="survey")
    run_job(sjis, b, predictor, taxonomy, source_name="survey")
    # lineage that names the input file's bytes differs; every value derived from it must not
    lineage = {name: {"run_id", "source_sha256"} | VOLATILE.get(name, set()) for name in table_specs()}
    assert table_snapshot(a.store.duckdb_path, lineage) == table_snapshot(b.store.duckdb_path, lineage)


def test_date_scope_replaces_only_its_partition(
    predictor: CuePredictor,
    taxonomy: Taxonomy,
    export: Path,
    settings: Settings,
    write_export: Callable[..., Path],
) -> None:
    run_job(export, settings, predictor, taxonomy)
    edited = write_export("edited.csv", csv_text([[*ROWS[0][:2], "2", *ROWS[0][3:]]]))
    summary = run_job(
        edited, settings, predictor, taxonomy, DateScope.single(date(2026, 7, 2)), source_name="export.csv"
    )
    # nothing in the edited file is dated 7/2, so that day is now empty; 7/1 and 7/3 keep their rows
    assert summary.rows_read == 1 and summary.rows_in == 0 and summary.rows_out_of_scope == 1
    con = duckdb.connect(str(settings.store.duckdb_path), read_only=True)
    by_day = dict(con.execute("SELECT response_date, count(*) FROM responses GROUP BY 1").fetchall())
    assert by_day == {date(2026, 7, 1): 3, date(2026, 7, 3): 2}
    assert con.execute("SELECT count(*) FROM nps_daily WHERE response_date = '2026-07-02'").fetchone() == (0,)


def test_backfill_range_counts_undated_rows_once(
    predictor: CuePredictor, taxonomy: Taxonomy, export: Path, settings: Settings
) -> None:
    summary = run_job(
        export, settings, predictor, taxonomy, DateScope(date(2026, 7, 1), date(2026, 7, 2)), kind="backfill"
    )
    # R10 has no readable date: it is in every run of its source; R09 and the R01 duplicate are dated 7/3
    assert (summary.rows_published, summary.rows_quarantined, summary.rows_out_of_scope) == (6, 1, 4)
    assert summary.partitions == [date(2026, 7, 1), date(2026, 7, 2)]


def test_failed_run_leaves_tables_unchanged(
    predictor: CuePredictor,
    taxonomy: Taxonomy,
    export: Path,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_job(export, settings, predictor, taxonomy)
    before = table_snapshot(
        settings.store.duckdb_path, {"runs": set(c.name for c in table_specs()["runs"].columns)}
    )
    original = DuckDBStore.insert

    def failing_insert(self: DuckDBStore, table: str, rows: list[dict[str, object]]) -> None:
        if table == "nps_daily":
            raise RuntimeError("disk full")
        original(self, table, rows)

    monkeypatch.setattr(DuckDBStore, "insert", failing_insert)
    with pytest.raises(RuntimeError, match="disk full"):
        run_job(export, settings, predictor, taxonomy, kind="backfill")
    monkeypatch.undo()
    after = table_snapshot(
        settings.store.duckdb_path, {"runs": set(c.name for c in table_specs()["runs"].columns)}
    )
    assert after == before
    con = duckdb.connect(str(settings.store.duckdb_path), read_only=True)
    statuses = sorted(con.execute("SELECT kind, status, error FROM runs").fetchall())
    assert statuses == [("backfill", "failed", "RuntimeError: disk full"), ("run", "succeeded", None)]


def test_second_writer_gets_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "locked.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(db)!r}); print('ok', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        with pytest.raises(StoreError, match=r"in use by another process \(PID \d+\) still, after 0.2 s"):
            DuckDBStore(db, lock_timeout=0.2)
    finally:
        holder.kill()
        holder.wait()


def test_store_with_other_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE responses (response_id VARCHAR)")
    con.close()
    with pytest.raises(StoreError, match="does not match schema"):
        DuckDBStore(db)


def test_predictions_and_versions_reach_the_tables(
    predictor: CuePredictor, taxonomy: Taxonomy, export: Path, settings: Settings
) -> None:
    run_job(export, settings, predictor, taxonomy)
    con = duckdb.connect(str(settings.store.duckdb_path), read_only=True)
    r02 = con.execute(
        "SELECT sentiment_label, topics, model_version, taxonomy_version FROM responses "
        "WHERE response_id = 'R02'"
    ).fetchone()
    assert r02 == ("negative", "billing_error,delivery_delay", "cue-test-1", taxonomy.version)
    empty = con.execute(
        "SELECT sentiment_label, p_negative, topics FROM responses WHERE response_id = 'R05'"
    ).fetchone()
    assert empty == (None, None, "")
    topic_rows = con.execute(
        "SELECT topic_id, topic_sentiment, evidence_terms, nps_category FROM response_topics "
        "WHERE response_id = 'R03' ORDER BY topic_id"
    ).fetchall()
    # one sentence mentions both topics, so both take its sentiment (cue tie → negative)
    assert topic_rows == [
        ("price", "negative", "料金 高い", "passive"),
        ("staff_attitude", "negative", "スタッフ 親切", "passive"),
    ]
    assert con.execute(
        "SELECT count(*) FROM topics WHERE taxonomy_version = ?", [taxonomy.version]
    ).fetchone() == (len(taxonomy.topics),)
    for table in ("responses", "sentences", "response_topics", "runs"):
        versions = con.execute(f"SELECT DISTINCT model_version, taxonomy_version FROM {table}").fetchall()
        assert versions == [("cue-test-1", taxonomy.version)], table


def test_id_published_by_another_run_is_not_counted_twice(
    predictor: CuePredictor, taxonomy: Taxonomy, settings: Settings, write_export: Callable[..., Path]
) -> None:
    first = write_export("a.csv", csv_text([["R1", "2026/07/01 10:00", "9", "Web", "ライト", "", "良い"]]))
    rows = [
        ["R1", "2026/07/02 10:00", "3", "店舗", "ライト", "", "遅い"],
        ["R2", "2026/07/02 11:00", "8", "店舗", "", "", ""],
    ]
    second = write_export("b.csv", csv_text(rows))
    run_job(first, settings, predictor, taxonomy)
    summary = run_job(second, settings, predictor, taxonomy)
    assert (summary.rows_in, summary.rows_published, summary.rows_quarantined) == (2, 1, 1)
    con = duckdb.connect(str(settings.store.duckdb_path), read_only=True)
    assert contract_violations(con) == []
    assert con.execute("SELECT response_date FROM responses WHERE response_id = 'R1'").fetchall() == [
        (date(2026, 7, 1),)
    ]
    assert con.execute(
        "SELECT responses FROM nps_daily WHERE response_date = '2026-07-02' AND segment_name = 'all'"
    ).fetchone() == (1,)
    detail = con.execute("SELECT detail FROM quarantine WHERE response_id = 'R1'").fetchone()
    assert detail is not None and "already published for 2026-07-01" in detail[0]


def test_nightly_files_with_the_same_name_keep_their_quarantine(
    predictor: CuePredictor, taxonomy: Taxonomy, settings: Settings, tmp_path: Path
) -> None:
    export = tmp_path / "export.csv"
    for day, bad in (("2026/07/01", "R9"), ("2026/07/02", "R8")):
        export.write_text(
            csv_text(
                [
                    ["R" + day[-1], f"{day} 10:00", "9", "Web", "", "", ""],
                    [bad, "昨日", "9", "Web", "", "", ""],
                ]
            ),
            encoding="utf-8",
        )
        run_job(export, settings, predictor, taxonomy)
    con = duckdb.connect(str(settings.store.duckdb_path), read_only=True)
    assert sorted(r[0] for r in con.execute("SELECT response_id FROM quarantine").fetchall()) == ["R8", "R9"]
    assert contract_violations(con) == []


def test_a_table_shadowing_the_insert_relation_is_an_error(tmp_path: Path, taxonomy: Taxonomy) -> None:
    """Rows reach DuckDB by a variable name, which a table of that name in the file would hide:
    the insert then writes nothing, and must say so instead of losing the rows."""
    from pipeline.aggregate import topic_rows

    with DuckDBStore(tmp_path / "voc.duckdb") as store:
        store.con.execute("CREATE TABLE _voc_incoming_rows AS SELECT * FROM topics WHERE false")
        with pytest.raises(StoreError, match="_voc_incoming_rows"):
            store.insert("topics", topic_rows(taxonomy))


def test_low_confidence_sentences_are_flagged_and_counted_per_run(
    predictor: CuePredictor, taxonomy: Taxonomy, export: Path, settings: Settings
) -> None:
    """A sentence's flag follows its label's probability; the run records the flagged share."""
    # the cue model gives 0.45 to a sentence without cues and 0.51 to one with a single cue
    model = settings.model.model_copy(update={"low_confidence_below": 0.5})
    settings = settings.model_copy(update={"model": model})
    summary = run_job(export, settings, predictor, taxonomy)
    con = duckdb.connect(str(settings.store.duckdb_path), read_only=True)
    flags = con.execute(
        "SELECT low_confidence, greatest(p_negative, p_neutral, p_positive) FROM sentences"
    ).fetchall()
    assert flags and all((p < settings.model.low_confidence_below) == flag for flag, p in flags)
    assert {flag for flag, _ in flags} == {True, False}
    share = sum(flag for flag, _ in flags) / len(flags)
    recorded = con.execute("SELECT low_confidence_share FROM runs WHERE run_id = ?", [summary.run_id])
    assert recorded.fetchone() == (pytest.approx(share),)
    assert summary.low_confidence_share == pytest.approx(share)

"""The same tables in PostgreSQL: contract, equality with DuckDB, idempotency, concurrent writers.

Needs a server: set VOC_TEST_POSTGRES_URL (``.ci/run`` sets it to the machine's server)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from pipeline.html_report import build_report
from pipeline.job import DateScope, run_job
from pipeline.schema import table_specs
from pipeline.settings import DriverSettings, Settings
from pipeline.store import PostgresStore, open_store
from pipeline.taxonomy import Taxonomy, load_taxonomy
from tests.conftest import REPO, RUN_STATS, SAMPLE_CSV, make_settings, table_snapshot
from tests.contract import contract_violations
from tests.fakes import CuePredictor

URL = os.environ.get("VOC_TEST_POSTGRES_URL")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not URL, reason="VOC_TEST_POSTGRES_URL is not set (bash .ci/run sets it)"),
]
ONE_WINDOW = DriverSettings(windows=[28])  # drivers included, one window keeps the tests quick
VOLATILE = {name: {"run_id"} | RUN_STATS for name in table_specs()}


@pytest.fixture
def pg_settings(tmp_path: Path) -> Iterator[Settings]:
    settings = make_settings(tmp_path / "unused.duckdb", drivers=ONE_WINDOW, store_url=URL)
    yield settings
    store = PostgresStore(URL, settings.store.postgres_schema)  # type: ignore[arg-type]
    store.query(f'DROP SCHEMA IF EXISTS "{settings.store.postgres_schema}" CASCADE')
    store.close()


def test_postgres_tables_match_duckdb_and_their_contract(
    pg_settings: Settings, taxonomy: Taxonomy, predictor: CuePredictor, tmp_path: Path
) -> None:
    duck = make_settings(tmp_path / "voc.duckdb", drivers=ONE_WINDOW)
    run_job(SAMPLE_CSV, duck, predictor, taxonomy)
    summary = run_job(SAMPLE_CSV, pg_settings, predictor, taxonomy)
    assert "postgresql" in summary.store_location and "schema t_" in summary.store_location
    with open_store(pg_settings.store) as store:
        assert contract_violations(store) == []
        in_postgres = table_snapshot(store, VOLATILE, digits=9)
        # views run on PostgreSQL too
        assert store.query("SELECT count(*) FROM top_detractor_drivers")[0][0] > 0
        assert store.query("SELECT count(*) FROM nps_trend")[0][0] > 0
        assert store.query("SELECT count(*) FROM topic_sentiment_by_segment")[0][0] > 0
    assert in_postgres == table_snapshot(duck.store.duckdb_path, VOLATILE, digits=9)


def test_the_html_report_reads_postgresql_as_it_reads_duckdb(
    pg_settings: Settings, taxonomy: Taxonomy, predictor: CuePredictor, tmp_path: Path
) -> None:
    duck = make_settings(tmp_path / "voc.duckdb", drivers=ONE_WINDOW)
    run_job(SAMPLE_CSV, duck, predictor, taxonomy)
    run_job(SAMPLE_CSV, pg_settings, predictor, taxonomy)
    found = {}
    for name, settings in (("duckdb", duck), ("postgresql", pg_settings)):
        with open_store(settings.store) as store:
            data, [page] = build_report(store, settings, 28, segment="channel", out=tmp_path / f"{name}.html")
        found[name] = data
        assert page.stat().st_size > 0
    pg, dk = found["postgresql"], found["duckdb"]
    assert (pg.headline.current, pg.headline.change) == (dk.headline.current, dk.headline.change)
    assert pg.trend == dk.trend and pg.sentiment == dk.sentiment
    assert _rounded(pg.drivers) == _rounded(dk.drivers) and len(dk.drivers) > 5
    assert pg.quality.quarantined == dk.quality.quarantined and pg.quality.versions == dk.quality.versions


def _rounded(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: round(v, 9) if isinstance(v, float) else v for k, v in r.items()} for r in rows]


def test_rerun_in_postgres_changes_nothing(
    pg_settings: Settings, taxonomy: Taxonomy, predictor: CuePredictor
) -> None:
    scope = DateScope.single(date(2026, 10, 1))
    run_job(SAMPLE_CSV, pg_settings, predictor, taxonomy)
    with open_store(pg_settings.store) as store:
        first = table_snapshot(store, VOLATILE)
    run_job(SAMPLE_CSV, pg_settings, predictor, taxonomy, scope, kind="backfill")
    run_job(SAMPLE_CSV, pg_settings, predictor, taxonomy)
    with open_store(pg_settings.store) as store:
        again = table_snapshot(store, VOLATILE)
    # the backfill adds its own run record, and its own copy of the undated rejects (keyed by run)
    for snapshot in (first, again):
        snapshot.pop("runs")
        snapshot["quarantine"] = [row for row in snapshot["quarantine"] if row[2] is not None]
    assert again == first


def _run_in_process(settings_json: str, start_together: Any) -> None:
    settings = Settings.model_validate_json(settings_json)
    taxonomy = load_taxonomy(REPO / "configs" / "taxonomy.yaml")
    september = DateScope(date(2026, 9, 1), date(2026, 9, 30))
    start_together.wait()
    run_job(SAMPLE_CSV, settings, CuePredictor(taxonomy), taxonomy, september, kind="backfill")


def test_two_runs_writing_the_same_dates_at_once_leave_them_correct(
    pg_settings: Settings, taxonomy: Taxonomy, predictor: CuePredictor
) -> None:
    # reference: the two runs one after the other
    september = DateScope(date(2026, 9, 1), date(2026, 9, 30))
    run_job(SAMPLE_CSV, pg_settings, predictor, taxonomy, september, kind="backfill")
    with open_store(pg_settings.store) as store:
        expected = table_snapshot(store, VOLATILE)
        for name in table_specs():  # start the concurrent pair from empty tables
            store.query(f'DELETE FROM "{name}"')
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    workers = [
        context.Process(target=_run_in_process, args=(pg_settings.model_dump_json(), barrier))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert [w.exitcode for w in workers] == [0, 0]
    with open_store(pg_settings.store) as store:
        assert contract_violations(store) == []  # no duplicated keys from interleaved writes
        assert table_snapshot(store, VOLATILE) == expected

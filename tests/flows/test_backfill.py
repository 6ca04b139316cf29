"""Backfill as one run per date: the same tables as each date alone, and failures kept to their date."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pytest
from prefect.states import State

from flows.backfill import DaskOptions, backfill, process_date
from pipeline.job import DateScope, run_job
from pipeline.schema import partitioned_tables, table_specs
from pipeline.settings import load_settings
from pipeline.store import open_store
from pipeline.taxonomy import Taxonomy
from tests.conftest import csv_text, make_settings, table_snapshot
from tests.fakes import CuePredictor
from tests.flows.conftest import (
    DAYS,
    POISON_DAY,
    ROWS,
    VOLATILE,
    ChokingPredictor,
    artifact,
    child_runs,
    db_of,
    write_config,
)

POSTGRES_URL = os.environ.get("VOC_TEST_POSTGRES_URL")


def run_backfill(export: Path, config: Path, **options: Any) -> State[Any]:
    state = backfill(DAYS[0], DAYS[-1], str(export), str(config), return_state=True, **options)
    assert isinstance(state, State)
    return state


def test_backfill_gives_the_tables_of_each_date_alone(
    use_model: Any, export: Path, config: Path, each_date_alone: dict[str, Any]
) -> None:
    state = run_backfill(export, config)
    assert state.is_completed(), state.message
    results = state.result()
    assert [r["date"] for r in results] == [d.isoformat() for d in DAYS]
    assert {r["state"] for r in results} == {"completed"}
    assert table_snapshot(db_of(config), VOLATILE) == each_date_alone
    # one visible child flow run per date
    children = child_runs(state.state_details.flow_run_id)
    assert [c.name for c in children] == [f"backfill-{d}" for d in DAYS]
    assert all(c.state and c.state.is_completed() for c in children)
    # the per-date counts reconcile, and the table artifact says what happened to each date
    counts = [r["counts"] for r in results]
    assert all(c["rows_in"] == c["rows_published"] + c["rows_quarantined"] for c in counts)
    assert "2026-07-06" in str(artifact("backfill-dates").data)


def test_a_second_backfill_is_served_from_the_inference_cache(
    use_model: Any, taxonomy: Taxonomy, export: Path, config: Path, each_date_alone: dict[str, Any]
) -> None:
    model = use_model(CuePredictor(taxonomy))
    first = run_backfill(export, config)
    assert first.is_completed(), first.message
    encoded = sum(model.calls)
    computed = sum(r["counts"]["predictions_computed"] for r in first.result())
    # sentences that repeat on a later date were reused already by the first backfill
    distinct_per_date = computed + sum(r["counts"]["predictions_reused"] for r in first.result())
    assert encoded == computed > 0

    second = run_backfill(export, config)
    assert second.is_completed(), second.message
    assert sum(model.calls) == encoded  # the model saw no sentence again
    counts = [r["counts"] for r in second.result()]
    assert sum(c["predictions_computed"] for c in counts) == 0
    assert sum(c["predictions_reused"] for c in counts) == distinct_per_date
    assert table_snapshot(db_of(config), VOLATILE) == each_date_alone

    # a new model version misses the cache: every sentence is computed again, by the new model
    class RetrainedModel(CuePredictor):
        model_version = "cue-test-2"

    retrained = use_model(RetrainedModel(taxonomy))
    third = run_backfill(export, config)
    assert third.is_completed(), third.message
    assert sum(retrained.calls) == computed
    assert sum(r["counts"]["predictions_computed"] for r in third.result()) == computed


def test_a_failing_date_fails_only_its_own_run_and_can_be_rerun_alone(
    use_model: Any, taxonomy: Taxonomy, export: Path, config: Path, each_date_alone: dict[str, Any]
) -> None:
    use_model(ChokingPredictor(taxonomy))
    state = run_backfill(export, config)
    assert state.is_failed()
    assert "1 of 6 dates failed: 2026-07-04 (" in str(state.message)
    children = child_runs(state.state_details.flow_run_id)
    failed = [c.name for c in children if c.state and c.state.is_failed()]
    completed = [c.name for c in children if c.state and c.state.is_completed()]
    assert failed == [f"backfill-{POISON_DAY}"]
    assert completed == [f"backfill-{d}" for d in DAYS if d != POISON_DAY]
    con = duckdb.connect(str(db_of(config)), read_only=True)
    try:
        days = {d for (d,) in con.execute("SELECT DISTINCT response_date FROM responses").fetchall()}
        runs = con.execute("SELECT status, count(*) FROM runs GROUP BY 1 ORDER BY 1").fetchall()
    finally:
        con.close()
    assert days == set(DAYS) - {POISON_DAY}  # the failed date's transaction was rolled back
    assert runs == [("failed", 1), ("succeeded", 5)]

    # once the model is fixed, re-running that date alone completes the backfill: the same values;
    # the rolling windows ending after it, and the themes from it on, were recomputed by its run,
    # so they carry its run id
    use_model()
    rerun = process_date(POISON_DAY, str(export), str(config), return_state=True)
    assert rerun.is_completed()
    replayed = [
        *partitioned_tables("window_end"),
        "themes",
        "theme_events",
        "theme_sentences",
        "theme_examples",
    ]
    windows = {table: {"run_id"} for table in replayed}
    assert table_snapshot(db_of(config), {**VOLATILE, **windows}) == _without(each_date_alone, windows)


def test_dask_fan_out_gives_the_same_tables(
    use_model: Any, export: Path, config: Path, each_date_alone: dict[str, Any]
) -> None:
    # threads, so the workers see the stand-in model; with DuckDB the dates run one after another
    state = run_backfill(export, config, fan_out="dask", dask=DaskOptions(workers=2, processes=False))
    assert state.is_completed(), state.message
    assert table_snapshot(db_of(config), VOLATILE) == each_date_alone


def test_dask_fan_out_keeps_a_failure_to_its_date(
    use_model: Any, taxonomy: Taxonomy, export: Path, config: Path
) -> None:
    use_model(ChokingPredictor(taxonomy))
    state = run_backfill(export, config, fan_out="dask", dask=DaskOptions(workers=2, processes=False))
    assert state.is_failed()
    con = duckdb.connect(str(db_of(config)), read_only=True)
    try:
        days = {d for (d,) in con.execute("SELECT DISTINCT response_date FROM responses").fetchall()}
    finally:
        con.close()
    assert days == set(DAYS) - {POISON_DAY}


def test_deployments_fan_out_runs_one_deployment_run_per_date_in_order(
    use_model: Any,
    export: Path,
    config: Path,
    each_date_alone: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`run_deployment` needs a worker; here the date's flow runs in this process instead, so what is
    checked is the fan-out around it: names, parameters, order with DuckDB, and the outcome."""
    started: list[tuple[str, dict[str, Any]]] = []

    class Finished:
        def __init__(self, state: State[Any]) -> None:
            self.id, self.state = state.state_details.flow_run_id, state

    def fake_run_deployment(name: str, parameters: dict[str, Any], flow_run_name: str) -> Finished:
        started.append((name, parameters))
        return Finished(process_date(**parameters, return_state=True))

    monkeypatch.setattr("flows.backfill.run_deployment", fake_run_deployment)
    state = run_backfill(export, config, fan_out="deployments")
    assert state.is_completed(), state.message
    assert [name for name, _ in started] == ["process-date/process-date"] * len(DAYS)
    assert [p["day"] for _, p in started] == [d.isoformat() for d in DAYS]
    assert table_snapshot(db_of(config), VOLATILE) == each_date_alone


def test_parallel_dates_need_postgresql(export: Path, config: Path) -> None:
    state = run_backfill(export, config, fan_out="dask", parallel=True)
    assert state.is_failed() and "PostgreSQL" in str(state.message)


@pytest.mark.slow
@pytest.mark.skipif(not POSTGRES_URL, reason="VOC_TEST_POSTGRES_URL is not set (bash .ci/run sets it)")
def test_parallel_dates_on_postgresql_give_the_sequential_tables(
    use_model: Any, taxonomy: Taxonomy, tmp_path: Path
) -> None:
    # no response id on two dates: then which date commits first cannot matter
    rows = [r for r in ROWS if not (r[0] == "R01" and r[1].startswith("2026/07/03"))]
    export = tmp_path / "nps_export.csv"
    export.write_text(csv_text(rows), encoding="utf-8")
    duck = make_settings(tmp_path / "voc.duckdb")
    predictor: Any = CuePredictor(taxonomy)
    for day in DAYS:
        run_job(export, duck, predictor, taxonomy, DateScope.single(day), "backfill")
    schema = "t_flows_" + uuid.uuid4().hex[:8]
    config = write_config(tmp_path / "pg.yaml", tmp_path / "unused.duckdb", url=POSTGRES_URL, schema=schema)
    settings = load_settings(config)
    try:
        state = run_backfill(
            export, config, fan_out="dask", dask=DaskOptions(workers=2, processes=False), parallel=True
        )
        assert state.is_completed(), state.message
        # which run recomputed a rolling window depends on the commit order; the values do not
        lineage = {name: {"run_id"} | VOLATILE.get(name, set()) for name in table_specs()}
        with open_store(settings.store) as store:
            in_postgres = table_snapshot(store, lineage, digits=9)
        assert in_postgres == table_snapshot(duck.store.duckdb_path, lineage, digits=9)
    finally:
        with open_store(settings.store) as store:
            store.query(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_string_dates_from_the_cli_are_accepted() -> None:
    """`prefect deployment run 'backfill/backfill' --param start=2026-07-01` sends text."""
    params = backfill.validate_parameters(
        {"start": "2026-07-01", "end": "2026-07-06", "input_path": "x.csv", "dask": {"workers": 3}}
    )
    assert params["start"] == DAYS[0] and params["end"] == DAYS[-1]
    assert params["dask"] == DaskOptions(workers=3)


def _without(snapshot: dict[str, list[tuple[Any, ...]]], skip: dict[str, set[str]]) -> dict[str, Any]:
    """A snapshot taken with ``VOLATILE`` minus further columns of some tables."""
    specs = table_specs()
    result = dict(snapshot)
    for table, columns in skip.items():
        kept = [c for c in specs[table].column_names if c not in VOLATILE.get(table, set())]
        keep = [i for i, c in enumerate(kept) if c not in columns]
        result[table] = sorted((tuple(row[i] for i in keep) for row in snapshot[table]), key=repr)
    return result


class SlowPredictor(CuePredictor):
    """The stand-in model, taking a second per batch as an encoder would on real data."""

    def predict(self, texts: Sequence[str], batch_size: int = 32) -> Any:
        time.sleep(1.0)
        return super().predict(texts, batch_size)


@pytest.mark.slow
@pytest.mark.skipif(not POSTGRES_URL, reason="VOC_TEST_POSTGRES_URL is not set (bash .ci/run sets it)")
def test_parallel_dates_on_postgresql_classify_at_the_same_time(
    use_model: Any, export: Path, taxonomy: Taxonomy, tmp_path: Path
) -> None:
    """The store's write lock is taken only to publish, so two dates on two workers are in the
    classify stage at overlapping times (the runs table records when each stage ran)."""
    use_model(SlowPredictor(taxonomy))
    schema = "t_flows_" + uuid.uuid4().hex[:8]
    config = write_config(tmp_path / "pg.yaml", tmp_path / "unused.duckdb", url=POSTGRES_URL, schema=schema)
    settings = load_settings(config)
    days = DAYS[:2]
    try:
        two_workers = DaskOptions(workers=2, processes=False)
        state = backfill(days[0], days[-1], str(export), str(config), fan_out="dask", dask=two_workers,
                         parallel=True, return_state=True)  # fmt: skip
        assert isinstance(state, State) and state.is_completed(), state.message
        with open_store(settings.store) as store:
            found = store.query("SELECT scope_start, stage_times FROM runs ORDER BY scope_start")
        classify = {day: json.loads(times)["classify"] for day, times in found}
        assert sorted(classify) == days
        (first_start, first_end), (second_start, second_end) = classify.values()
        assert max(first_start, second_start) < min(first_end, second_end), classify
    finally:
        with open_store(settings.store) as store:
            store.query(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

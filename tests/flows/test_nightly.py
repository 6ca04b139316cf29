"""The nightly flow: its date from the scheduled time (around midnight in Tokyo), and its artifacts."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pytest
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.flow_engine import run_flow
from prefect.states import Scheduled, State

from flows.artifacts import count_rows, detractor_driver_rows, drivers_markdown, nps_rows
from flows.nightly import nightly, nightly_date
from pipeline.job import run_job
from pipeline.store import open_store
from pipeline.taxonomy import Taxonomy
from tests.conftest import csv_text, make_settings
from tests.fakes import CuePredictor
from tests.flows.conftest import ROWS, artifact, db_of

JST = timezone(timedelta(hours=9))


@pytest.mark.parametrize(
    ("scheduled", "expected"),
    [
        (datetime(2026, 7, 3, 23, 59, tzinfo=JST), date(2026, 7, 2)),
        (datetime(2026, 7, 4, 0, 0, tzinfo=JST), date(2026, 7, 3)),
        (datetime(2026, 7, 4, 0, 1, tzinfo=JST), date(2026, 7, 3)),
        (datetime(2026, 7, 4, 2, 30, tzinfo=JST), date(2026, 7, 3)),  # the schedule itself
        # the same moments as Prefect stores them, in UTC: the UTC date is a day earlier
        (datetime(2026, 7, 3, 14, 59, tzinfo=UTC), date(2026, 7, 2)),
        (datetime(2026, 7, 3, 15, 0, tzinfo=UTC), date(2026, 7, 3)),
        (datetime(2026, 7, 3, 15, 1, tzinfo=UTC), date(2026, 7, 3)),
        (datetime(2026, 7, 3, 17, 30, tzinfo=UTC), date(2026, 7, 3)),
        # a month and a year boundary
        (datetime(2026, 8, 1, 0, 0, tzinfo=JST), date(2026, 7, 31)),
        (datetime(2025, 12, 31, 15, 0, tzinfo=UTC), date(2025, 12, 31)),
    ],
)
def test_nightly_date_is_the_day_before_in_tokyo(scheduled: datetime, expected: date) -> None:
    assert nightly_date(scheduled) == expected


def test_nightly_date_follows_the_configured_zone() -> None:
    # 2026-07-03 23:30 UTC is already 7/4 in Tokyo but still 7/3 in New York
    moment = datetime(2026, 7, 3, 23, 30, tzinfo=UTC)
    assert nightly_date(moment) == date(2026, 7, 3)
    assert nightly_date(moment, "America/New_York") == date(2026, 7, 2)


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        nightly_date(datetime(2026, 7, 4, 2, 30))


@pytest.fixture
def daily_exports(tmp_path: Path) -> str:
    """One export per day, as a nightly deployment reads them, plus the undated record every day."""
    folder = tmp_path / "exports"
    folder.mkdir()
    for day in ("01", "02", "03", "04"):
        rows = [r for r in ROWS if r[1].startswith(f"2026/07/{day}") or r[1] == "bad-date"]
        (folder / f"nps_202607{day}.csv").write_text(csv_text(rows), encoding="utf-8")
    return str(folder / "nps_{date:%Y%m%d}.csv")


def test_a_scheduled_run_processes_the_day_before_its_scheduled_time(
    use_model: Any, config: Path, daily_exports: str
) -> None:
    """Created for 00:10 on 7/4 in Tokyo and started now (long after): it still processes 7/3."""
    parameters = {"input_path": daily_exports, "config": str(config)}
    scheduled = datetime(2026, 7, 4, 0, 10, tzinfo=JST)
    client: SyncPrefectClient
    with get_client(sync_client=True) as client:
        state: State[Any] = Scheduled(scheduled_time=scheduled)
        flow_run = client.create_flow_run(nightly, parameters=parameters, state=state)
    counts = run_flow(nightly, flow_run=flow_run, parameters=parameters)
    assert isinstance(counts, dict)
    assert counts["dates"] == ["2026-07-03"]
    # R07 and R01 published; the out-of-range score and the undated record quarantined
    assert (counts["rows_in"], counts["rows_published"], counts["rows_quarantined"]) == (4, 2, 2)
    con = duckdb.connect(str(db_of(config)), read_only=True)
    try:
        assert con.execute("SELECT DISTINCT response_date FROM responses").fetchall() == [(date(2026, 7, 3),)]
        assert con.execute("SELECT kind, status FROM runs").fetchall() == [("nightly", "succeeded")]
    finally:
        con.close()
    published = _table_artifact("nightly-counts")
    assert {"count": "rows in", "value": 4} in published
    assert {"count": "quarantined: score_out_of_range", "value": 1} in published
    nps = _table_artifact("nightly-nps")
    assert [row["period"] for row in nps] == ["2026-07-03", "28 days to 2026-07-03"]
    assert all(row["ci_low"] <= row["nps"] <= row["ci_high"] for row in nps)
    assert "2026-06-06 .. 2026-07-03" in str(artifact("nightly-drivers").data)
    assert "New and rising themes, 28 days to 2026-07-03" in str(artifact("nightly-themes").data)
    # the HTML report of the 28 days to the day, beside the DuckDB file, and its headline artifact
    page = db_of(config).parent / "reports" / "nps-28d-2026-07-03.html"
    assert page.exists() and "2026-06-06 〜 2026-07-03" in page.read_text(encoding="utf-8")
    report = str(artifact("nightly-report").data)
    assert "NPS report, 2026-06-06 .. 2026-07-03" in report and str(page.resolve()) in report


def test_an_explicit_day_wins_over_the_schedule(use_model: Any, config: Path, daily_exports: str) -> None:
    counts = nightly(daily_exports, str(config), day=date(2026, 7, 1))
    assert counts["dates"] == ["2026-07-01"] and counts["rows_published"] == 3


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory, taxonomy: Taxonomy) -> Path:
    folder = tmp_path_factory.mktemp("artifacts")
    export = folder / "export.csv"
    export.write_text(csv_text(ROWS), encoding="utf-8")
    settings = make_settings(folder / "voc.duckdb")
    predictor: Any = CuePredictor(taxonomy)
    run_job(export, settings, predictor, taxonomy)
    return folder / "voc.duckdb"


def test_detractor_driver_rows(store_path: Path) -> None:
    with open_store(make_settings(store_path).store) as store:
        drivers = detractor_driver_rows(store, date(2026, 7, 6))
        before = detractor_driver_rows(store, date(2026, 6, 1))  # a window with no responses
    assert before == []
    assert drivers, "the export has detractors complaining about delivery"
    assert all(
        set(d) == {"topic_id", "label", "n", "nps", "impact", "impact_low", "impact_high", "examples"}
        for d in drivers
    )
    impacts = [d["impact"] for d in drivers]
    assert impacts == sorted(impacts) and all(i < 0 for i in impacts)
    delivery = next(d for d in drivers if d["topic_id"] == "delivery_delay")
    assert delivery["impact_low"] <= delivery["impact"] <= delivery["impact_high"]
    assert 1 <= len(delivery["examples"]) <= 2 and all("配送" in e for e in delivery["examples"])
    markdown = drivers_markdown(drivers, date(2026, 7, 6))
    assert delivery["label"] in markdown and delivery["examples"][0] in markdown


def test_nps_rows_and_counts(store_path: Path) -> None:
    with open_store(make_settings(store_path).store) as store:
        rows = nps_rows(store, date(2026, 7, 1))
    day = rows[0]
    assert (day["responses"], day["promoters"], day["passives"], day["detractors"]) == (3, 1, 1, 1)
    assert day["nps"] == 0.0 and day["ci_low"] < 0 < day["ci_high"]
    counts = {
        "run_id": "r",
        "status": "succeeded",
        "dates": [],
        "rows_in": 5,
        "rows_published": 3,
        "rows_quarantined": 2,
        "quarantine_reasons": {"bad_score": 2},
        "predictions_computed": 4,
        "predictions_reused": 1,
    }
    assert count_rows(counts)[3:] == [  # type: ignore[arg-type]
        {"count": "quarantined: bad_score", "value": 2},
        {"count": "sentences classified by the model", "value": 4},
        {"count": "sentences from the inference cache", "value": 1},
    ]


def _table_artifact(key: str) -> list[dict[str, Any]]:
    found = artifact(key)
    assert found.type == "table"
    return json.loads(found.data) if isinstance(found.data, str) else found.data  # type: ignore[return-value]

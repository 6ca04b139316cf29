"""Flow tests: real Prefect flows against one temporary Prefect server per session, real DuckDB files,
and the cue-word stand-in model instead of the encoder.

The server (``prefect_test_harness``) takes several seconds to start, so it is entered once. Heartbeats
are switched off here only: each sync flow run otherwise pays about a second at exit joining the
heartbeat thread; production keeps them because they detect crashed runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from prefect.artifacts import Artifact
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
from prefect.client.schemas.objects import Artifact as ArtifactResponse
from prefect.client.schemas.objects import FlowRun
from prefect.settings import (
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
    PREFECT_HOME,
    PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW,
    PREFECT_SERVER_ANALYTICS_ENABLED,
    temporary_settings,
)
from prefect.testing.utilities import prefect_test_harness

from pipeline.classify import SentencePredictor
from pipeline.job import DateScope, run_job
from pipeline.settings import Settings
from pipeline.taxonomy import Taxonomy
from tests.conftest import REPO, VOLATILE, csv_text, make_settings, table_snapshot
from tests.fakes import CuePredictor

# Six days of responses. Cue words steer the stand-in model; R01 comes back on 7/3 (a duplicate
# across dates), one score is out of range and one timestamp unreadable (such a record belongs to
# every run of its source). The 7/4 row with 爆発 is the one a test's model chokes on.
ROWS = [
    ["R01", "2026/07/01 09:00", "10", "店舗", "ライト", "", "スタッフがとても親切でした"],
    ["R02", "2026/07/01 12:00", "3", "Web", "プレミアム", "", "配送が遅い。二重請求もあった"],
    ["R03", "2026/07/01 18:00", "7", "アプリ", "ライト", "", "料金は高いけどスタッフは親切"],
    ["R04", "2026/07/02 10:00", "0", "コールセンター", "スタンダード", "", "配送が遅れた。最悪です"],
    ["R05", "2026/07/02 11:00", "8", "Web", "", "", ""],
    ["R06", "2026/07/02 15:30", "9", "アプリ", "ライト", "", "ポイントが溜まって満足"],
    ["R07", "2026/07/03 09:00", "6", "店舗", "ライト", "", "品揃えが少ない。店が狭い"],
    ["R01", "2026/07/03 10:00", "9", "Web", "ライト", "", "重複した回答"],
    ["R08", "2026/07/03 10:00", "11", "Web", "ライト", "", "範囲外"],
    ["R09", "2026/07/04 08:00", "2", "Web", "プレミアム", "", "配送が遅い。箱が潰れていた。爆発"],
    ["R10", "2026/07/04 20:00", "10", "店舗", "スタンダード", "", "店員さんが丁寧で良かった"],
    ["R11", "2026/07/05 09:30", "5", "アプリ", "ライト", "", "料金が高い。値上げは困る"],
    ["R12", "2026/07/05 10:30", "1", "Web", "ライト", "", "配送が遅い。届かない"],
    ["R13", "2026/07/06 11:00", "9", "Web", "スタンダード", "", "配送が早くて便利"],
    ["R14", "2026/07/06 12:00", "4", "コールセンター", "ライト", "", "配送が遅れた。電話もつながらない"],
    ["R15", "bad-date", "9", "Web", "ライト", "", "日付なし"],
]
DAYS = [date(2026, 7, d) for d in range(1, 7)]
POISON_DAY = date(2026, 7, 4)


class ChokingPredictor(CuePredictor):
    """The stand-in model, failing on 爆発 as a real model fails on a batch it cannot process."""

    def predict(self, texts: Sequence[str], batch_size: int = 32) -> Any:
        if any("爆発" in t for t in texts):
            raise RuntimeError("the model could not process a batch")
        return super().predict(texts, batch_size)


@pytest.fixture(scope="session", autouse=True)
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    os.environ.setdefault("DO_NOT_TRACK", "1")
    updates = {
        PREFECT_HOME: tmp_path_factory.mktemp("prefect-home"),
        PREFECT_SERVER_ANALYTICS_ENABLED: False,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
        PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW: "ignore",  # tasks called on their own
    }
    with temporary_settings(updates=updates), prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture
def use_model(monkeypatch: pytest.MonkeyPatch, taxonomy: Taxonomy) -> Any:
    """Make the flows load ``predictor`` (default: the cue-word model) instead of the encoder."""

    def use(predictor: SentencePredictor | None = None) -> SentencePredictor:
        chosen = predictor or cast(SentencePredictor, CuePredictor(taxonomy))
        monkeypatch.setattr("flows.common.get_model", lambda settings: (taxonomy, chosen))
        return chosen

    use()
    return use


@pytest.fixture(scope="session")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("exports") / "nps_export.csv"
    path.write_text(csv_text(ROWS), encoding="utf-8")
    return path


def write_config(path: Path, db: Path, url: str | None = None, schema: str = "public") -> Path:
    """A settings file as a deployment would get it: the Japanese column mapping, a store of its own."""
    config = yaml.safe_load((REPO / "configs" / "pipeline.yaml").read_text(encoding="utf-8"))
    config["store"] = {"duckdb_path": str(db)} | ({"url": url, "postgres_schema": schema} if url else {})
    config["taxonomy"] = {"path": str(REPO / "configs" / "taxonomy.yaml")}
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "pipeline.yaml", tmp_path / "voc.duckdb")


def db_of(config: Path) -> Path:
    return Path(yaml.safe_load(config.read_text(encoding="utf-8"))["store"]["duckdb_path"])


@pytest.fixture(scope="session")
def each_date_alone(
    tmp_path_factory: pytest.TempPathFactory, export: Path, taxonomy: Taxonomy
) -> dict[str, list[tuple[Any, ...]]]:
    """The tables from running the job for each date alone, oldest first, without Prefect."""
    settings: Settings = make_settings(tmp_path_factory.mktemp("reference") / "voc.duckdb")
    predictor: Any = CuePredictor(taxonomy)
    for day in DAYS:
        run_job(export, settings, predictor, taxonomy, DateScope.single(day), "backfill")
    return table_snapshot(settings.store.duckdb_path, VOLATILE)


def artifact(key: str) -> ArtifactResponse:
    """The latest artifact published under ``key``."""
    found = Artifact.get(key)
    assert isinstance(found, ArtifactResponse), f"no artifact {key!r}"
    return found


def child_runs(parent_id: Any) -> list[FlowRun]:
    """The flow runs a parent started, by name."""
    client: SyncPrefectClient
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_id]))
        )
    return sorted(runs, key=lambda r: r.name)

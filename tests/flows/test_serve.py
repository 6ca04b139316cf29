"""Deployments: `voc serve` and prefect.yaml declare the same schedule, limits and entry points."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.flows import Flow, load_flow_from_entrypoint

from flows import serve
from flows.serve import build_deployments
from tests.conftest import REPO
from voc.cli import main


def test_served_deployments(config: Path) -> None:
    deployments = {d.name: d for d in build_deployments("exports/nps_{date:%Y%m%d}.csv", str(config))}
    assert set(deployments) == {"nightly", "backfill", "process-date", "train"}
    nightly = deployments["nightly"]
    [schedule] = [s.schedule for s in nightly.schedules or []]
    assert getattr(schedule, "cron", None) == "30 2 * * *"
    assert getattr(schedule, "timezone", None) == "Asia/Tokyo"
    assert deployments["backfill"].concurrency_limit == 1
    assert not deployments["backfill"].schedules
    # flow runs start in processes of their own: paths must not depend on their working folder
    for name in ("nightly", "backfill", "process-date"):
        parameters = deployments[name].parameters
        assert Path(parameters["input_path"]).is_absolute()
        assert parameters["input_path"].endswith("nps_{date:%Y%m%d}.csv")
        assert parameters["config"] == str(config)
    assert deployments["process-date"].entrypoint == "flows/backfill.py:process_date"


def test_prefect_yaml_matches_the_served_deployments() -> None:
    document = yaml.safe_load((REPO / "prefect.yaml").read_text(encoding="utf-8"))
    declared = {d["name"]: d for d in document["deployments"]}
    assert set(declared) == {"nightly", "backfill", "process-date", "train"}
    assert declared["nightly"]["schedules"] == [{"cron": "30 2 * * *", "timezone": "Asia/Tokyo"}]
    assert declared["backfill"]["concurrency_limit"]["limit"] == 1
    for name, deployment in declared.items():
        flow: Flow[Any, Any] = load_flow_from_entrypoint(str(REPO / deployment["entrypoint"]))
        assert flow.name == name
        assert set(deployment["parameters"]) <= set(flow.parameters.properties)


def test_voc_serve_hands_the_input_and_config_to_the_deployments(
    monkeypatch: pytest.MonkeyPatch, config: Path
) -> None:
    served: list[Any] = []
    monkeypatch.setattr(serve, "serve_deployments", lambda *args: served.append(args))
    assert main(["serve", "--input", "exports/nps_{date:%Y%m%d}.csv", "--config", str(config)]) == 0
    assert served == [("exports/nps_{date:%Y%m%d}.csv", str(config))]


def test_voc_serve_refuses_a_bad_config_before_serving(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serve, "serve", lambda *deployments: pytest.fail("served despite a bad config"))
    assert main(["serve", "--input", "x.csv", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert capsys.readouterr().err.startswith("error: config file")

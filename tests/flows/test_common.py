"""What the flows share: retries only for transient I/O, per-day inputs, one model load per process."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
from prefect.states import State

import flows
from flows import common
from flows.common import input_for, is_transient, run_dates
from pipeline.errors import InputError, StoreBusyError, StoreError
from pipeline.settings import ModelSettings, Settings, TaxonomySettings
from pipeline.taxonomy import Taxonomy
from tests.fakes import CuePredictor
from tests.flows.conftest import DAYS


def _raised_from(cause: BaseException) -> StoreError:
    try:
        raise StoreError("voc.duckdb is in use by another process") from cause
    except StoreError as exc:
        return exc


def _raised_while_handling(first: BaseException) -> RuntimeError:
    try:
        try:
            raise first
        except OSError:
            raise RuntimeError("a bug in the error handling") from None
    except RuntimeError as exc:
        return exc


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (_raised_from(duckdb.IOException("Could not set lock on file")), True),
        (StoreBusyError("a run held the PostgreSQL schema past store.lock_timeout"), True),
        (_raised_from(psycopg.OperationalError("server closed the connection unexpectedly")), True),
        (ConnectionResetError("connection reset by peer"), True),
        (TimeoutError("timed out"), True),
        (FileNotFoundError("nps_20260701.csv"), False),
        (PermissionError("voc.duckdb"), False),
        (InputError("input file x.csv does not exist"), False),
        (StoreError("table runs does not match schema version 3"), False),
        (RuntimeError("the model could not process a batch"), False),
        (_raised_while_handling(ConnectionResetError()), False),
    ],
)
def test_only_transient_io_is_retried(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


def test_a_transient_failure_is_retried_and_a_bug_is_not(
    taxonomy: Taxonomy, export: Path, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[int] = []

    def flaky_model(settings: Settings) -> tuple[Taxonomy, CuePredictor]:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionResetError("model cache on a network drive went away")
        return taxonomy, CuePredictor(taxonomy)

    monkeypatch.setattr(common, "get_model", flaky_model)
    quick = run_dates.with_options(retry_delay_seconds=0)
    counts = quick(str(export), DAYS[0], DAYS[0], str(config))
    assert len(attempts) == 2 and counts["rows_published"] == 3

    def broken_model(settings: Settings) -> Any:
        attempts.append(1)
        raise RuntimeError("a bug fails the same way every time")

    attempts.clear()
    monkeypatch.setattr(common, "get_model", broken_model)
    state = quick(str(export), DAYS[0], DAYS[0], str(config), return_state=True)
    assert isinstance(state, State) and state.is_failed() and len(attempts) == 1


def test_input_for_names_one_file_per_day_or_one_for_all() -> None:
    day = date(2026, 7, 1)
    assert input_for("exports/nps_{date:%Y%m%d}.csv", day) == Path("exports/nps_20260701.csv")
    assert input_for("exports/{date}/answers.jsonl", day) == Path("exports/2026-07-01/answers.jsonl")
    assert input_for("exports/all.csv", day) == Path("exports/all.csv")


def test_the_model_is_loaded_once_per_process_and_setting(
    taxonomy: Taxonomy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    loads: list[Settings] = []

    def load(settings: Settings) -> tuple[Taxonomy, CuePredictor]:
        loads.append(settings)
        return taxonomy, CuePredictor(taxonomy)

    monkeypatch.setattr("models.registry.load_configured_model", load)
    common._load_model.cache_clear()
    try:
        first = Settings(model=ModelSettings(path=str(tmp_path / "m")))
        same = first.model_copy(update={"nps": first.nps.model_copy(update={"confidence": 0.9})})
        other = first.model_copy(update={"taxonomy": TaxonomySettings(path=tmp_path / "t.yaml")})
        a, b, c = common.get_model(first), common.get_model(same), common.get_model(other)
    finally:
        common._load_model.cache_clear()
    assert a is b and a is not c
    assert [s.taxonomy.path for s in loads] == [first.taxonomy.path, tmp_path / "t.yaml"]
    assert loads[0].model.path == str(tmp_path / "m")


def test_offline_defaults_reach_prefect_and_the_environment_wins() -> None:
    """In a fresh process, as a worker starts: flows first, then Prefect reads its settings."""
    code = (
        "import flows, os\n"
        "from prefect.settings import get_current_settings\n"
        "s = get_current_settings()\n"
        "print(s.server.analytics_enabled, s.server.ephemeral.startup_timeout_seconds)\n"
        "print(os.environ['DO_NOT_TRACK'])"
    )
    env = {k: v for k, v in os.environ.items() if k not in flows.OFFLINE_DEFAULTS}
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"  # set by the user: kept
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "120", "1"]

"""The `voc` command as a user runs it: real subprocesses, one-line errors, readable tables."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, csv_text

ROWS = [
    ["R1", "2026/07/01 09:00", "10", "店舗", "ライト", "", "スタッフが親切"],
    ["R2", "2026/07/01 12:00", "3", "Web", "プレミアム", "", "配送が遅い"],
    ["R3", "2026/08/02 10:00", "8", "Web", "ライト", "", ""],
]


def voc(*args: str | Path, cwd: Path = REPO, cache: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"VOC_MODEL_CACHE": str(cache)} if cache else {})}
    return subprocess.run(
        [sys.executable, "-m", "voc", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def export(write_export: Callable[..., Path]) -> Path:
    return write_export("export.csv", csv_text(ROWS))


@pytest.mark.slow
def test_run_then_nps(export: Path, tmp_path: Path, default_model: Any, model_cache: Path) -> None:
    db = tmp_path / "cli.duckdb"
    result = voc("run", export, "--db", db, cache=model_cache)
    assert result.returncode == 0, result.stderr
    assert "published 3 + quarantined 0" in result.stdout
    assert str(db) in result.stdout
    assert f"model {default_model.model_version}" in result.stdout
    nps = voc("nps", "--db", db, "--period", "month", "--segment", "channel")
    assert nps.returncode == 0, nps.stderr
    lines = nps.stdout.splitlines()
    assert lines[0].split() == [
        "period",
        "channel",
        "n",
        "promoters",
        "passives",
        "detractors",
        "NPS",
        "95%",
        "CI",
    ]
    assert any(line.startswith("2026-07") and "Web" in line and "-100.0" in line for line in lines)


def test_backfill(export: Path, tmp_path: Path) -> None:
    result = voc(
        "backfill", export, "--start", "2026-07-01", "--end", "2026-07-31", "--db", tmp_path / "b.duckdb"
    )
    assert result.returncode == 0, result.stderr
    assert "published 2 + quarantined 0 (1 outside the date scope)" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "missing.csv"], "error: input file missing.csv does not exist"),
        (
            ["run", "{export}", "--config", "{bad_config}"],
            "error: {bad_config}: unknown config key 'source.colmns'",
        ),
        (["run", "{no_comment}"], "error: no_comment.csv: column(s) ご意見・ご感想 not found"),
        (["nps", "--segment", "region"], "error: unknown segment 'region'"),
        (
            ["backfill", "{export}", "--start", "2026-08-01", "--end", "2026-07-01"],
            "error: --start 2026-08-01 is after",
        ),
    ],
)
def test_user_errors_are_one_line(
    args: list[str], message: str, export: Path, tmp_path: Path, write_export: Callable[..., Path]
) -> None:
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("source:\n  colmns: {}\n", encoding="utf-8")
    no_comment = write_export(
        "no_comment.csv",
        csv_text(
            [r[:6] for r in ROWS],
            header=["回答ID", "回答日時", "推奨度", "利用チャネル", "ご契約プラン", "年代"],
        ),
    )
    values = {"export": export, "bad_config": bad_config, "no_comment": no_comment}
    args = [a.format(**values) for a in args]
    result = voc(
        *args,
        "--db",
        tmp_path / "e.duckdb",
        cwd=tmp_path if args[0] == "run" and args[1] == "missing.csv" else REPO,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(message.format(**values)), result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

"""`--format csv|json` of the summary commands: CSV parses back, agrees with the JSON, and both
agree with the result tables they were read from."""

from __future__ import annotations

import csv
import io
import json
import random
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from pipeline.settings import Settings, ThemeSettings
from pipeline.table_output import csv_cell
from pipeline.taxonomy import Taxonomy
from tests.conftest import csv_text, make_settings
from tests.fakes import CuePredictor
from voc import cli

FIRST = date(2026, 7, 1)
DAYS = 21
WORDS = ("机", "椅子", "窓", "花", "空", "海", "山", "川", "犬", "猫", "本", "紙", "鉛筆", "時計",
         "電車", "橋", "公園", "学校", "映画", "音楽", "料理", "野菜", "果物", "魚", "肉", "卵")  # fmt: skip
PLANTED = ("QRコード決済が失敗して{}。", "QRコード決済がまた失敗した、{}。", "{}でQRコード決済の失敗が続く。")
CHANNELS = ("店舗", "Web", "アプリ")


def _rows() -> list[list[str]]:
    """Three weeks of comments: everyday words, late deliveries from detractors, and from the
    tenth day a payment problem that becomes a theme."""
    rng = random.Random(11)
    rows = []
    for day in range(DAYS):
        when = FIRST + timedelta(days=day)
        for n in range(10):
            words = rng.sample(WORDS, 3)
            comment, score = f"{words[0]}と{words[1]}と{words[2]}。", str(rng.randint(5, 10))
            if n == 9:
                comment, score = "配送が遅い。", str(rng.randint(0, 4))
            if day >= 9 and n < 3:
                comment, score = comment + PLANTED[n].format(rng.choice(WORDS)), str(rng.randint(0, 4))
            when_text = f"{when:%Y/%m/%d} 10:{n:02d}"
            rows.append([f"R{day:02d}{n:02d}", when_text, score, CHANNELS[n % 3], "ライト", "", comment])
    return rows


def _settings(tmp: Path) -> Settings:
    themes = ThemeSettings(
        pool_days=7, min_cluster_size=6, assign_similarity=0.75, novelty_similarity=0.9, merge_similarity=0.9
    )
    return make_settings(tmp / "voc.duckdb").model_copy(update={"themes": themes})


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory, taxonomy: Taxonomy) -> tuple[Path, Path]:
    """The export, and a config whose store `voc run` filled with the cue-word model."""
    tmp = tmp_path_factory.mktemp("formats")
    export = tmp / "export.csv"
    export.write_text(csv_text(_rows()), encoding="utf-8")
    config = tmp / "pipeline.yaml"
    config.write_text(yaml.safe_dump(_settings(tmp).model_dump(mode="json"), allow_unicode=True), "utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "_load_model", lambda settings: (taxonomy, CuePredictor(taxonomy)))
        assert cli.main(["run", str(export), "--config", str(config), "--progress", "none"]) == 0
    return export, config


def _voc(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert cli.main(list(args)) == 0
    captured = capsys.readouterr()
    assert "progress" not in captured.out
    return captured.out


def _both(
    capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """The command's CSV rows, checked to say what its JSON rows say."""
    as_csv = list(csv.DictReader(io.StringIO(_voc(capsys, *args, "--format", "csv"))))
    as_json = json.loads(_voc(capsys, *args, "--format", "json"))
    assert as_json and [list(row) for row in as_csv] == [list(row) for row in as_json]
    assert as_csv == [{k: csv_cell(v) for k, v in row.items()} for row in as_json]
    return as_csv, as_json


def _query(config: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    db = yaml.safe_load(config.read_text(encoding="utf-8"))["store"]["duckdb_path"]
    with duckdb.connect(db, read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def test_nps_csv_and_json_agree_with_the_store(
    results: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, config = results
    as_csv, as_json = _both(
        capsys, "nps", "--config", str(config), "--period", "week", "--segment", "channel"
    )
    counts = _query(config, """
        SELECT strftime(date_trunc('week', r.response_date), '%Y-%m-%d'), g.segment_value, count(*),
               count(*) FILTER (WHERE r.nps_category = 'promoter'),
               count(*) FILTER (WHERE r.nps_category = 'detractor')
        FROM responses r JOIN response_segments g ON g.response_id = r.response_id
        WHERE g.segment_name = 'channel' GROUP BY 1, 2 ORDER BY 1, 2""")  # fmt: skip
    assert [
        (r["period"], r["segment_value"], r["n"], r["promoters"], r["detractors"]) for r in as_json
    ] == counts
    assert len(counts) == 4 * 3  # four weeks touched, three channels
    for row, text in zip(as_json, as_csv, strict=True):
        assert row["nps"] == 100 * (row["promoters"] - row["detractors"]) / row["n"] == float(text["nps"])
        assert row["ci_low"] < row["nps"] < row["ci_high"] and float(text["ci_low"]) == row["ci_low"]
        assert (row["segment_name"], row["confidence"], text["confidence"]) == ("channel", 0.95, "0.95")
        assert row["n"] == row["promoters"] + row["passives"] + row["detractors"]


def test_drivers_csv_and_json_agree_with_the_store(
    results: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, config = results
    as_csv, as_json = _both(capsys, "drivers", "--config", str(config), "--examples", "2", "--limit", "10")
    stored = _query(config, """
        SELECT topic_id, impact, impact_ci_low, impact_ci_high, mentions, window_end FROM drivers
        WHERE window_days = 28 AND segment_name = 'all' AND topic_level = 'leaf' AND impact < 0
          AND window_end = (SELECT max(window_end) FROM drivers) ORDER BY impact, topic_id""")  # fmt: skip
    assert stored and [(r["topic_id"], r["impact"], r["impact_ci_low"], r["impact_ci_high"], r["mentions"],
                        date.fromisoformat(r["window_end"])) for r in as_json] == stored  # fmt: skip
    assert "delivery_delay" in {r["topic_id"] for r in as_json}
    for row, text in zip(as_json, as_csv, strict=True):
        assert 1 <= len(row["examples"]) <= 2 and json.loads(text["examples"]) == row["examples"]
        assert isinstance(row["robust"], bool) and text["robust"] in ("true", "false")
        assert float(text["impact"]) == row["impact"] and float(text["odds_ratio"]) == row["odds_ratio"]


def test_themes_csv_and_json_agree_with_the_store(
    results: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, config = results
    as_csv, as_json = _both(capsys, "themes", "--config", str(config), "--all", "--examples", "2")
    stored = _query(config, """
        SELECT theme_id, mentions FROM theme_windows WHERE window_days = 28 AND segment_name = 'all'
          AND window_end = (SELECT max(window_end) FROM theme_windows) ORDER BY theme_id""")  # fmt: skip
    assert stored and sorted((r["theme_id"], r["mentions"]) for r in as_json) == stored
    assert any("QRコード決済" in " ".join(r["examples"]) for r in as_json)  # UTF-8, not escaped
    assert all(1 <= len(r["examples"]) <= 2 for r in as_json)
    assert all(
        json.loads(text["examples"]) == row["examples"] for row, text in zip(as_json, as_csv, strict=True)
    )


def test_empty_selection_is_an_empty_table(
    results: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, config = results
    args = ("nps", "--config", str(config), "--start", "2030-01-01")
    assert _voc(capsys, *args, "--format", "json") == "[]\n"
    assert _voc(capsys, *args, "--format", "csv") == ""


def test_run_csv_is_its_counts_and_json_every_summary_table(
    results: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    taxonomy: Taxonomy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    export, config = results
    monkeypatch.setattr(cli, "_load_model", lambda settings: (taxonomy, CuePredictor(taxonomy)))
    run = ["run", str(export), "--config", str(config), "--progress", "none"]
    (counts,) = list(csv.DictReader(io.StringIO(_voc(capsys, *run, "--format", "csv"))))
    stored = _query(config, "SELECT run_id, rows_read, rows_published, rows_quarantined FROM runs")
    assert [(counts["run_id"], int(counts["rows_read"]), int(counts["rows_published"]),
             int(counts["rows_quarantined"]))] == stored == [(counts["run_id"], 210, 210, 0)]  # fmt: skip
    assert (counts["first_date"], counts["last_date"], counts["dates_replaced"]) == (
        "2026-07-01",
        "2026-07-21",
        "21",
    )
    tables = json.loads(_voc(capsys, *run, "--format", "json"))
    assert list(tables) == ["run", "nps", "nps_by_month", "nps_by_channel", "nps_by_plan", "drivers",
                            "detractor_terms", "themes"]  # fmt: skip
    assert tables["run"][0]["run_id"] == counts["run_id"] and tables["run"][0]["rows_read"] == 210
    dates = ("--start", "2026-07-01", "--end", "2026-07-21")
    nps = ("nps", "--config", str(config), "--period", "all", "--segment", "channel", *dates)
    by_channel = json.loads(_voc(capsys, *nps, "--format", "json"))
    assert tables["nps_by_channel"] == by_channel
    assert tables["nps"][0]["n"] == 210 and tables["drivers"] and tables["themes"]

"""Theme discovery: a problem nobody labelled becomes a theme named by its own phrases, keeps its
id night to night, and nightly runs, a backfill and a re-run of one day agree."""

from __future__ import annotations

import random
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
import yaml

from pipeline.job import DateScope, run_job
from pipeline.schema import table_specs
from pipeline.settings import Settings, ThemeSettings
from pipeline.taxonomy import Taxonomy, load_taxonomy
from tests.conftest import csv_text, make_settings, table_snapshot
from tests.fakes import CuePredictor
from voc.cli import main

FIRST = date(2026, 7, 1)
DAYS = 21
ONSET = FIRST + timedelta(days=9)
WORDS = ("机", "椅子", "窓", "花", "空", "海", "山", "川", "犬", "猫", "本", "紙", "鉛筆", "時計", "電車",
         "橋", "公園", "学校", "映画", "音楽", "料理", "野菜", "果物", "魚", "肉", "卵", "牛乳", "砂糖",
         "塩", "雨", "雪", "風", "星", "月", "鳥", "森", "島", "畑", "庭", "門")  # fmt: skip
PLANTED = ("QRコード決済が失敗して{}。", "QRコード決済がまた失敗した、{}。", "{}でQRコード決済の失敗が続く。")
THEME_TABLES = ("themes", "theme_events", "theme_sentences", "theme_examples", "theme_windows", "coverage")
THEMES = ThemeSettings(
    pool_days=7, min_cluster_size=6, assign_similarity=0.75, novelty_similarity=0.9, merge_similarity=0.9
)


def _rows() -> list[list[str]]:
    rng = random.Random(7)
    rows = []
    for day in range(DAYS):
        when = FIRST + timedelta(days=day)
        for n in range(10):
            words = rng.sample(WORDS, 3)
            comment = f"{words[0]}と{words[1]}と{words[2]}。"
            score = str(rng.randint(0, 10))
            if when >= ONSET and n < 3:
                comment += PLANTED[n].format(rng.choice(WORDS))
                score = str(rng.randint(0, 4))
            rows.append(
                [f"R{day:02d}{n:02d}", f"{when:%Y/%m/%d} 10:{n:02d}", score, "Web", "ライト", "", comment]
            )
    return rows


@pytest.fixture
def export(write_export) -> Path:  # type: ignore[no-untyped-def]
    return write_export("themes.csv", csv_text(_rows()))


def _settings(db: Path) -> Settings:
    return make_settings(db).model_copy(update={"themes": THEMES})


def _theme_tables(db: Path) -> dict[str, list[tuple]]:
    snapshot = table_snapshot(db, {name: {"run_id"} for name in table_specs()})
    return {name: snapshot[name] for name in THEME_TABLES}


def test_a_new_problem_becomes_a_theme_named_by_its_phrases(
    export: Path, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    settings = _settings(tmp_path / "voc.duckdb")
    run_job(export, settings, CuePredictor(taxonomy), taxonomy)
    con = duckdb.connect(str(settings.store.duckdb_path), read_only=True)
    themes = con.execute("SELECT theme_id, key_phrases, created_on, covered FROM themes").fetchall()
    assert len(themes) == 1, themes
    theme_id, phrases, created_on, covered = themes[0]
    assert "決済" in phrases.split(",") and isinstance(covered, bool)
    assert ONSET <= created_on <= ONSET + timedelta(days=3)
    members = con.execute(
        "SELECT s.sentence_text FROM theme_sentences m JOIN sentences s USING (response_id, sentence_index)"
    ).fetchall()
    assert len(members) >= 3 * (DAYS - 12) and all("決済" in text for (text,) in members)
    flagged = con.execute("SELECT DISTINCT theme_id FROM new_and_rising_themes").fetchall()
    assert flagged == [(theme_id,)]
    coverage = con.execute(
        "SELECT sentences, sentences_uncovered FROM coverage WHERE segment_name = 'all' AND window_days = 7"
    ).fetchall()
    assert coverage and all(0 <= uncovered <= total for total, uncovered in coverage)


def test_nightly_runs_a_backfill_and_a_rerun_of_one_day_agree(
    export: Path, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    nightly = _settings(tmp_path / "nightly.duckdb")
    for day in range(DAYS):
        run_job(
            export, nightly, CuePredictor(taxonomy), taxonomy, DateScope.single(FIRST + timedelta(days=day))
        )
    backfill = _settings(tmp_path / "backfill.duckdb")
    run_job(
        export, backfill, CuePredictor(taxonomy), taxonomy, DateScope(FIRST, FIRST + timedelta(days=DAYS - 1))
    )
    expected = _theme_tables(backfill.store.duckdb_path)
    assert expected["themes"], "the backfill found no theme"
    assert _theme_tables(nightly.store.duckdb_path) == expected
    # replaying from a day in the middle leaves the same themes and ids
    run_job(export, backfill, CuePredictor(taxonomy), taxonomy, DateScope.single(ONSET + timedelta(days=2)))
    assert _theme_tables(backfill.store.duckdb_path) == expected


def test_voc_themes_prints_them_and_promote_adds_the_topic(
    export: Path, tmp_path: Path, taxonomy: Taxonomy, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings(tmp_path / "voc.duckdb")
    run_job(export, settings, CuePredictor(taxonomy), taxonomy)
    taxonomy_file = tmp_path / "taxonomy.yaml"
    taxonomy_file.write_text(Path("configs/taxonomy.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump({
        "store": {"duckdb_path": str(settings.store.duckdb_path)},
        "taxonomy": {"path": str(taxonomy_file)},
        "source": {"segments": {"channel": "利用チャネル"}},
        "drivers": {"windows": [7, 28, 90]},
    }), encoding="utf-8")  # fmt: skip
    assert main(["themes", "--config", str(config), "--window", "28"]) == 0
    printed = capsys.readouterr().out
    theme_id = (
        duckdb.connect(str(settings.store.duckdb_path), read_only=True)
        .execute("SELECT theme_id FROM themes")
        .fetchall()[0][0]
    )
    assert theme_id in printed and "uncovered" in printed and "QRコード決済" in printed

    args = [
        "taxonomy",
        "promote",
        theme_id,
        "--id",
        "qr_payment",
        "--label-ja",
        "QR決済",
        "--config",
        str(config),
    ]
    assert main(args) == 0
    promoted = load_taxonomy(taxonomy_file)
    assert promoted.version != taxonomy.version and "qr_payment" in promoted.leaf_ids
    topic = next(t for t in promoted.topics if t.id == "qr_payment")
    assert len(topic.examples) >= 3 and all("決済" in e for e in topic.examples)
    assert "# Topic taxonomy" in taxonomy_file.read_text(encoding="utf-8")  # the file's comments stay
    assert main(args) == 2  # the id is taken now


def test_the_nightly_artifact_lists_new_themes_with_examples(
    export: Path, tmp_path: Path, taxonomy: Taxonomy
) -> None:
    from flows.artifacts import themes_markdown
    from pipeline.store import DuckDBStore

    settings = _settings(tmp_path / "voc.duckdb")
    run_job(export, settings, CuePredictor(taxonomy), taxonomy)
    with DuckDBStore(settings.store.duckdb_path) as store:
        markdown = themes_markdown(store, FIRST + timedelta(days=DAYS - 1))
        quiet = themes_markdown(store, FIRST + timedelta(days=2))
    assert "New and rising themes, 28 days to 2026-07-21" in markdown
    assert "QRコード決済" in markdown and "covered" in markdown
    assert "No theme is new or rising" in quiet

"""Theme discovery measured on a planted corpus: three problems the taxonomy has no topic for,
each starting on its own day (`bench.plants`), and the same corpus without them.

    .venv/bin/python -m bench.themes                     # 10,000 responses over 90 days
    .venv/bin/python -m bench.themes --responses 20000

For each plant: whether a theme surfaces whose top phrases name it, how many days after onset it
is first flagged new or rising (any window, all responses), and its purity (the share of the
theme's sentences that are the plant's). Without plants: how many themes are ever flagged rising
over the 90 days (false alarms). Each corpus goes through the whole pipeline with the default
model in one run, which leaves what the nightly runs would (tests/test_themes.py checks that).
Prints a table with the CPU and writes ``output/bench/themes-<N>.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from bench.cpu import cpu_report, format_cpu
from bench.plants import PlantTruth, build_planted_responses, key_phrase_hits
from models import quiet_model_loading
from pipeline.job import run_job
from pipeline.report import format_table
from pipeline.settings import Settings, StoreSettings, load_settings

PURE = 0.8  # the bar: a plant's theme is at least this share plant sentences


def run_corpus(n: int, out: Path, settings: Settings, planted: bool) -> tuple[PlantTruth, Path, float]:
    """Write the corpus and run the pipeline over it into a fresh DuckDB file."""
    from models.registry import load_configured_model

    name = "planted" if planted else "unplanted"
    truth = build_planted_responses(n, out / f"themes-{name}-{n}.csv", plants=planted)
    db = out / f"themes-{name}-{n}.duckdb"
    db.unlink(missing_ok=True)
    settings = settings.model_copy(update={"store": StoreSettings(duckdb_path=db)})
    taxonomy, model = load_configured_model(settings)
    started = time.perf_counter()
    run_job(truth.path, settings, model, taxonomy)
    return truth, db, time.perf_counter() - started


def theme_members(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """Each surviving theme's sentences (merged themes counted under the theme they merged into)."""
    into = dict(con.execute("SELECT theme_id, merged_into FROM themes").fetchall())

    def survivor(theme_id: str) -> str:
        while into.get(theme_id):
            theme_id = into[theme_id]
        return theme_id

    members: dict[str, list[str]] = defaultdict(list)
    for theme_id, text in con.execute(
        "SELECT m.theme_id, s.sentence_text FROM theme_sentences m "
        "JOIN sentences s USING (response_id, sentence_index)"
    ).fetchall():
        members[survivor(theme_id)].append(text)
    return members


def plant_rows(db: Path, truth: PlantTruth) -> list[dict[str, Any]]:
    """Per plant: its best theme (the purest with the most plant sentences), surfaced or not."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        members = theme_members(con)
        phrases = dict(con.execute("SELECT theme_id, key_phrases FROM themes").fetchall())
        flagged = _first_flags(con)
    finally:
        con.close()
    owner = {theme: Counter(truth.plant_of(text) for text in texts) for theme, texts in members.items()}
    rows = []
    for record in truth.records:
        plant = record.plant.id
        candidates = [
            (counts[plant] / sum(counts.values()), counts[plant], theme)
            for theme, counts in owner.items()
            if counts[plant]
        ]
        pure = [c for c in candidates if c[0] >= PURE]
        best = max(pure or candidates, key=lambda c: (c[1], c[0]), default=None)
        theme = best[2] if best else None
        top = phrases.get(theme, "").split(",") if theme else []
        first = flagged.get(theme) if theme else None
        rows.append({
            "plant": plant, "onset": record.onset.isoformat(), "planted_sentences": len(record.sentences),
            "theme": theme, "key_phrases": top, "named_by": list(key_phrase_hits(record.plant, top)),
            "purity": round(best[0], 3) if best else None, "plant_sentences_in_theme": best[1] if best else 0,
            "first_flagged": first.isoformat() if first else None,
            "days_to_flag": (first - record.onset).days if first else None,
        })  # fmt: skip
    return rows


def _first_flags(con: duckdb.DuckDBPyConnection) -> dict[str, date]:
    """Each surviving theme's first window end with a new or rising flag (all responses)."""
    return dict(
        con.execute(
            "SELECT theme_id, min(window_end) FROM theme_windows "
            "WHERE segment_name = 'all' AND (new OR rising) GROUP BY 1"
        ).fetchall()
    )


def false_alarms(db: Path) -> dict[str, Any]:
    """Themes ever flagged rising (all responses), per window length, and themes created."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        rising = con.execute(
            "SELECT window_days, count(DISTINCT theme_id) FROM theme_windows "
            "WHERE segment_name = 'all' AND rising GROUP BY 1 ORDER BY 1"
        ).fetchall()
        themes = con.execute("SELECT count(*), count(*) FILTER (WHERE NOT covered) FROM themes").fetchone()
        any_rising = con.execute(
            "SELECT count(DISTINCT theme_id) FROM theme_windows WHERE segment_name = 'all' AND rising"
        ).fetchone()
    finally:
        con.close()
    return {
        "rising_themes_by_window": {str(days): count for days, count in rising},
        "rising_themes": any_rising[0] if any_rising else 0,
        "themes": themes[0] if themes else 0,
        "uncovered_themes": themes[1] if themes else 0,
    }


def format_report(report: dict[str, Any]) -> str:
    plants = format_table(
        ["plant", "onset", "planted", "theme", "named by", "purity", "first flagged", "days"],
        [_plant_cells(r) for r in report["plants"]],
        right=[False, False, True, False, False, True, False, True],
    )
    alarms = report["without_plants"]
    seconds = report["seconds"]
    return "\n".join(
        [
            format_cpu(report["cpu"]),
            f"{report['responses']} responses over 90 days; pipeline {seconds['planted']:.0f} s "
            f"(planted), {seconds['unplanted']:.0f} s (without plants)",
            "",
            plants,
            "",
            f"Without plants: {alarms['rising_themes']} theme(s) ever flagged rising "
            f"(by window: {alarms['rising_themes_by_window'] or 'none'}); {alarms['themes']} themes, "
            f"{alarms['uncovered_themes']} not covered by the taxonomy.",
            "Bars: each plant named, purity >= 0.8, flagged within 7 days; "
            "at most 1 rising theme without plants.",
        ]
    )


def _plant_cells(row: dict[str, Any]) -> list[Any]:
    purity = f"{row['purity']:.2f}" if row["purity"] is not None else "-"
    days = row["days_to_flag"] if row["days_to_flag"] is not None else "-"
    named = " ".join(row["named_by"]) or "-"
    return [row["plant"], row["onset"], row["planted_sentences"], row["theme"] or "-", named, purity,
            row["first_flagged"] or "-", days]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--responses", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=Path("output/bench"))
    args = parser.parse_args(argv)
    quiet_model_loading()
    args.out.mkdir(parents=True, exist_ok=True)
    settings = load_settings()
    truth, planted_db, planted_seconds = run_corpus(args.responses, args.out, settings, planted=True)
    _, unplanted_db, unplanted_seconds = run_corpus(args.responses, args.out, settings, planted=False)
    report = {
        "cpu": cpu_report(),
        "responses": args.responses,
        "plants": plant_rows(planted_db, truth),
        "without_plants": false_alarms(unplanted_db),
        "seconds": {"planted": round(planted_seconds, 1), "unplanted": round(unplanted_seconds, 1)},
    }
    (args.out / f"themes-{args.responses}.json").write_text(json.dumps(report, ensure_ascii=False, indent=2))
    print(format_report(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Reading the theme tables for people: `voc themes` (new and rising themes of a window, with
example sentences) and `voc taxonomy promote` (a discovered theme written into the taxonomy as a
topic)."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import VocError
from pipeline.report import format_table
from pipeline.store import Store
from pipeline.taxonomy import load_taxonomy

THEME_COLUMNS = ("theme_id", "label", "key_phrases", "created_on", "status", "covered", "nearest_topic_id",
                 "segment_name", "segment_value", "window_start", "window_end", "mentions", "prevalence",
                 "nps_mentioning", "impact", "impact_ci_low", "impact_ci_high", "new", "rising", "fading",
                 "low_confidence")  # fmt: skip


def window_themes(
    store: Store, window: int, segment: str | None, end: date | None, everything: bool = False
) -> list[dict[str, Any]]:
    """Theme rows of the window ending on ``end`` (default the latest): new or rising ones, or
    all with ``everything``; uncovered first, then by mentions."""
    if end is None:
        found = store.query("SELECT max(window_end) FROM theme_windows WHERE window_days = ?", [window])
        end = found[0][0] if found else None
    if end is None:
        return []
    cells = "w.segment_name = ?" if segment else "w.segment_name = 'all'"
    params: list[Any] = [end, window, *([segment] if segment else [])]
    rows = store.query(
        f"""
        SELECT t.theme_id, t.label, t.key_phrases, t.created_on, t.status, t.covered, t.nearest_topic_id,
               w.segment_name, w.segment_value, w.window_start, w.window_end, w.mentions, w.prevalence,
               w.nps_mentioning, w.impact, w.impact_ci_low, w.impact_ci_high, w.new, w.rising, w.fading,
               w.low_confidence
        FROM theme_windows w JOIN themes t ON t.theme_id = w.theme_id
        WHERE w.window_end = ? AND w.window_days = ? AND {cells}
        """,
        params,
    )
    chosen = [dict(zip(THEME_COLUMNS, r, strict=True)) for r in rows]
    if not everything:
        chosen = [r for r in chosen if r["new"] or r["rising"]]
    return sorted(chosen, key=lambda r: (r["segment_value"], r["covered"], -r["mentions"], r["theme_id"]))


def theme_examples(store: Store, theme_ids: list[str], limit: int) -> dict[str, list[str]]:
    if not theme_ids:
        return {}
    examples: dict[str, list[str]] = {}
    rows = store.query(
        "SELECT theme_id, example_rank, sentence_text FROM theme_examples WHERE theme_id = ANY(?)",
        [theme_ids],
    )
    for theme_id, rank, text in sorted(rows):
        if rank <= limit:
            examples.setdefault(theme_id, []).append(text)
    return examples


def format_themes(rows: list[dict[str, Any]], examples: dict[str, list[str]]) -> str:
    """A table of themes, then each theme's example sentences."""
    table = format_table(
        [
            "theme",
            "segment",
            "key phrases",
            "n",
            "share",
            "NPS",
            "impact",
            "95% CI",
            "flags",
            "nearest topic",
        ],
        [
            [
                r["theme_id"],
                r["segment_value"],
                r["label"],
                r["mentions"],
                f"{r['prevalence']:.1%}",
                f"{r['nps_mentioning']:+.1f}",
                _signed(r["impact"]),
                _interval(r),
                _flags(r),
                r["nearest_topic_id"] or "-",
            ]
            for r in rows
        ],
        right=[False, False, False, True, True, True, True],
    )
    lines = [table]
    for theme_id in dict.fromkeys(r["theme_id"] for r in rows):
        lines.append(f"\n{theme_id}:")
        lines += [f"  「{text}」" for text in examples.get(theme_id, [])]
    return "\n".join(lines)


def _flags(row: dict[str, Any]) -> str:
    names = [n for n in ("new", "rising", "fading") if row[n]]
    names.append("covered" if row["covered"] else "uncovered")
    return " ".join(names + (["low-n"] if row["low_confidence"] else []))


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"


def _interval(row: dict[str, Any]) -> str:
    if row["impact_ci_low"] is None:
        return "-"
    return f"[{row['impact_ci_low']:+.1f}, {row['impact_ci_high']:+.1f}]"


def promote_theme(
    store: Store, taxonomy_path: Path, theme_id: str, topic_id: str, label_ja: str, label_en: str | None,
    parent: str | None,
) -> str:  # fmt: skip
    """Append the theme to the taxonomy file as a leaf topic (its examples and key phrases as
    examples and seed terms) and bump the version; returns the new version. The file's comments
    and layout stay as they are."""
    taxonomy = load_taxonomy(taxonomy_path)
    if topic_id in {t.id for t in taxonomy.topics}:
        raise VocError(f"topic {topic_id!r} is already in {taxonomy_path}")
    found = store.query("SELECT key_phrases, nearest_topic_id FROM themes WHERE theme_id = ?", [theme_id])
    if not found:
        raise VocError(f"no theme {theme_id!r} (see `voc themes`)")
    examples = theme_examples(store, [theme_id], 10).get(theme_id, [])
    if len(examples) < 3:
        raise VocError(f"theme {theme_id} has {len(examples)} example sentences; a topic needs at least 3")
    topic = {
        "id": topic_id, "label_ja": label_ja, "label_en": label_en or topic_id.replace("_", " ").capitalize(),
        "parent": parent, "description": f"{label_ja}（発見されたテーマ {theme_id} から追加）",
        "seed_terms": [p for p in found[0][0].split(",") if p and " " not in p][:8], "examples": examples,
    }  # fmt: skip
    version = _next_version(taxonomy.version)
    text = taxonomy_path.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^version:.*$", f"version: {version}", text, count=1)
    block = yaml.safe_dump([topic], allow_unicode=True, sort_keys=False, width=1000)
    text = text.rstrip("\n") + "\n" + "".join(f"  {line}\n" for line in block.splitlines())
    load_from_text(text, taxonomy_path)
    taxonomy_path.write_text(text, encoding="utf-8")
    return version


def load_from_text(text: str, path: Path) -> None:
    """Refuse to write a taxonomy that would not load."""
    check = path.with_name(f".{path.name}.check")
    check.write_text(text, encoding="utf-8")
    try:
        load_taxonomy(check)
    finally:
        check.unlink()


def _next_version(version: str) -> str:
    """consumer-services-2026.1 → consumer-services-2026.2; anything else gets ".1" appended."""
    match = re.fullmatch(r"(.*?)(\d+)", version)
    return f"{match.group(1)}{int(match.group(2)) + 1}" if match else f"{version}.1"

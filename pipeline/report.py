"""Readable terminal output: run summaries and NPS tables.

Japanese characters take two terminal columns, so padding counts display width, not len().
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import date
from typing import Any, Literal

from pipeline.contracts import BLANK_SEGMENT
from pipeline.nps import nps_count_columns, nps_estimate
from pipeline.store import Store
from pipeline.summary import RunSummary
from pipeline.table_output import nps_table, theme_table

Period = Literal["day", "week", "month", "all"]


THEMES_SHOWN = 5  # new and rising themes in a run's summary


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[bool] = ()) -> str:
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(display_width(r[i]) for r in cells) for i in range(len(headers))]
    align = list(right) + [False] * (len(headers) - len(right))

    def line(row: list[str]) -> str:
        out = []
        for value, width, is_right in zip(row, widths, align, strict=True):
            pad = " " * (width - display_width(value))
            out.append(pad + value if is_right else value + pad)
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:+.1f}" if abs(value) <= 100 else f"{value:.1f}"
    return str(value)


def nps_by_period(
    store: Store,
    period: Period = "month",
    segment: str | None = None,
    start: date | None = None,
    end: date | None = None,
    confidence: float = 0.95,
) -> list[dict[str, Any]]:
    """NPS per period (and segment value) with its interval, computed from counts, never averaged."""
    label = "%Y-%m" if period == "month" else "%Y-%m-%d"
    bucket = "'all'" if period == "all" else f"CAST(date_trunc('{period}', r.response_date) AS DATE)"
    segment_sql = "'all'" if segment is None else f"coalesce(g.segment_value, '{BLANK_SEGMENT}')"
    join = (
        ""
        if segment is None
        else "JOIN response_segments g ON g.response_id = r.response_id AND g.segment_name = ?"
    )
    params: list[Any] = [] if segment is None else [segment]
    where = []
    if start is not None:
        where.append("r.response_date >= ?")
        params.append(start)
    if end is not None:
        where.append("r.response_date <= ?")
        params.append(end)
    where_sql = f"WHERE {' AND '.join(where)}" if where else ""
    rows = store.query(
        f"""
        SELECT {bucket} AS period, {segment_sql} AS segment_value,
               {nps_count_columns("r.nps_category")}
        FROM responses r {join} {where_sql}
        GROUP BY 1, 2 ORDER BY 1, 2
        """,
        params,
    )
    result = []
    for period_start, segment_value, promoters, passives, detractors in rows:
        est = nps_estimate(promoters, passives, detractors, confidence)
        name = period_start if period == "all" else period_start.strftime(label)
        result.append({"period": name, "segment_value": segment_value, "estimate": est})
    return result


def format_nps_rows(rows: list[dict[str, Any]], segment: str | None, confidence: float = 0.95) -> str:
    headers = ["period", *([segment] if segment else []), "n", "promoters", "passives", "detractors",
               "NPS", f"{confidence:.0%} CI"]  # fmt: skip
    table = []
    for row in rows:
        est = row["estimate"]
        table.append(
            [
                row["period"],
                *([row["segment_value"]] if segment else []),
                est.n,
                f"{100 * est.promoters / est.n:.0f}%",
                f"{100 * est.passives / est.n:.0f}%",
                f"{100 * est.detractors / est.n:.0f}%",
                est.nps,
                f"[{est.ci_low:+.1f}, {est.ci_high:+.1f}]",
            ]
        )
    right = [False, *([False] if segment else []), True, True, True, True, True, False]
    return format_table(headers, table, right)


def format_run_summary(
    summary: RunSummary,
    store: Store,
    segments: Sequence[str],
    model_version: str,
    confidence: float = 0.95,
    windows: Sequence[int] = (7, 28, 90),
) -> str:
    """What a run did, then NPS, drivers and detractor terms over its dates, from the store."""
    lines = _run_counts(summary, model_version)
    if summary.partitions:
        start, end = summary.partitions[0], summary.partitions[-1]
        lines += _nps_sections(store, segments, start, end, confidence)
        window = summary_window(windows)
        lines += _driver_sections(store, window, end, confidence)
        lines += _theme_section(store, window, end)
    lines += ["", f"Result tables: {summary.store_location}"]
    return "\n".join(lines)


def summary_window(windows: Sequence[int]) -> int:
    """The drivers window a run's summary shows: 28 days when it is computed, else the longest."""
    return 28 if 28 in windows else max(windows)


def run_summary_tables(
    summary: RunSummary,
    store: Store,
    segments: Sequence[str],
    model_version: str,
    confidence: float = 0.95,
    windows: Sequence[int] = (7, 28, 90),
) -> dict[str, list[dict[str, Any]]]:
    """`format_run_summary`'s numbers as named tables (``voc run --format json``): the run's
    counts; NPS over its dates, by month and by each segment; the drivers, detractor terms and
    themes of the summary's window ending on its last date."""
    from pipeline.theme_report import theme_examples, window_themes  # it builds on this module

    tables: dict[str, list[dict[str, Any]]] = {"run": [run_counts_row(summary, model_version)]}
    if not summary.partitions:
        return tables
    start, end = summary.partitions[0], summary.partitions[-1]
    sections: list[tuple[str, Period, str | None]] = [("nps", "all", None), ("nps_by_month", "month", None)]
    sections += [(f"nps_by_{segment}", "all", segment) for segment in segments]
    for name, period, segment in sections:
        tables[name] = nps_table(
            nps_by_period(store, period, segment, start, end, confidence), segment, confidence
        )
    window = summary_window(windows)
    tables["drivers"] = detractor_drivers(store, window, None, end, limit=5)
    tables["detractor_terms"] = top_detractor_terms(store, window, end)
    themes = window_themes(store, window, None, end)[:THEMES_SHOWN]
    tables["themes"] = theme_table(themes, theme_examples(store, [r["theme_id"] for r in themes], 1))
    return tables


def run_counts_row(summary: RunSummary, model_version: str) -> dict[str, Any]:
    """What a run did as one row: the counts at the top of `format_run_summary`, unformatted."""
    dates = summary.partitions
    return {
        "run_id": summary.run_id,
        "kind": summary.kind,
        "status": summary.status,
        "source_name": summary.source_name,
        "model_version": model_version,
        "rows_read": summary.rows_read,
        "rows_in": summary.rows_in,
        "rows_published": summary.rows_published,
        "rows_quarantined": summary.rows_quarantined,
        "rows_out_of_scope": summary.rows_out_of_scope,
        "quarantine_reasons": dict(sorted(summary.quarantine_reasons.items())),
        "dates_replaced": len(dates),
        "first_date": dates[0] if dates else None,
        "last_date": dates[-1] if dates else None,
        "predictions_computed": summary.predictions_computed,
        "predictions_reused": summary.predictions_reused,
        "sentences_classified": summary.sentences_classified,
        "low_confidence_share": summary.low_confidence_share,
        "seconds": sum(summary.seconds_by_stage.values()),
        "result_tables": summary.store_location,
    }


def _run_counts(summary: RunSummary, model_version: str) -> list[str]:
    lines = [
        f"Run {summary.run_id} ({summary.kind}) {summary.status}: {summary.source_name}",
        f"  model {model_version}",
        f"  records read {summary.rows_read}, in scope {summary.rows_in} = "
        f"published {summary.rows_published} + quarantined {summary.rows_quarantined}"
        + (f" ({summary.rows_out_of_scope} outside the date scope)" if summary.rows_out_of_scope else ""),
    ]
    if summary.partitions:
        lines.append(
            f"  dates replaced: {len(summary.partitions)} "
            f"({summary.partitions[0].isoformat()} .. {summary.partitions[-1].isoformat()})"
        )
    if summary.quarantine_reasons:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(summary.quarantine_reasons.items()))
        lines.append(f"  quarantined by reason: {reasons}")
    if summary.predictions_computed or summary.predictions_reused:
        lines.append(
            f"  distinct sentences classified by the model {summary.predictions_computed}, "
            f"reused from the inference cache {summary.predictions_reused}"
        )
    if summary.low_confidence_share is not None:
        lines.append(
            f"  sentences with a low-confidence sentiment {summary.sentences_low_confidence} of "
            f"{summary.sentences_classified} ({summary.low_confidence_share:.1%})"
        )
    lines.append(f"  took {sum(summary.seconds_by_stage.values()):.1f} s")
    return lines


def _nps_sections(
    store: Store, segments: Sequence[str], start: date, end: date, confidence: float
) -> list[str]:
    level = f"{confidence:.0%}"
    lines = ["", f"NPS over the run's dates ({level} interval, adjusted Wald):"]
    lines.append(format_nps_rows(nps_by_period(store, "all", None, start, end, confidence), None, confidence))
    lines += ["", "NPS by month:"]
    lines.append(
        format_nps_rows(nps_by_period(store, "month", None, start, end, confidence), None, confidence)
    )
    for segment in segments:
        lines += ["", f"NPS by {segment}:"]
        rows = nps_by_period(store, "all", segment, start, end, confidence)
        lines.append(format_nps_rows(rows, segment, confidence))
    return lines


def _driver_sections(store: Store, window: int, end: date, confidence: float) -> list[str]:
    lines: list[str] = []
    rows = detractor_drivers(store, window, None, end, limit=5)
    if rows:
        lines += ["", f"Top detractor drivers, {window} days to {end} (`voc drivers` for more):"]
        lines.append(format_drivers(rows, confidence, examples=1))
    terms = top_detractor_terms(store, window, end)
    if terms:
        lines += ["", f"Words detractors use more than promoters, {window} days to {end} "
                  "(weighted log-odds; a screening list):"]  # fmt: skip
        lines.append(format_table(
            ["term", "detractors", "promoters", "z", "covered by topic"],
            [[t["term"], t["detractor_responses"], t["promoter_responses"], f"{t['z']:.1f}",
              t["covered_by_topic_id"] or "(none yet)"] for t in terms],
            [False, True, True, True, False],
        ))  # fmt: skip
    return lines


def _theme_section(store: Store, window: int, end: date) -> list[str]:
    # imported here: pipeline.theme_report builds on this module's tables
    from pipeline.theme_report import format_themes, theme_examples, window_themes

    rows = window_themes(store, window, None, end)[:THEMES_SHOWN]
    if not rows:
        return []
    examples = theme_examples(store, [r["theme_id"] for r in rows], 1)
    return ["", f"New and rising themes, {window} days to {end} (`voc themes` for more):",
            format_themes(rows, examples)]  # fmt: skip


def detractor_drivers(
    store: Store, window: int, segment: str | None, end: date | None = None, limit: int = 10,
    include_parents: bool = False,
) -> list[dict[str, Any]]:  # fmt: skip
    """Driver rows that pull NPS down, most first, for one window (latest end by default) and
    each value of ``segment`` (or all responses), with their example comments."""
    if end is None:
        found = store.query("SELECT max(window_end) FROM drivers WHERE window_days = ?", [window])
        end = found[0][0] if found else None
        if end is None:
            return []
    segment_name = segment or "all"
    levels = ["leaf", "parent"] if include_parents else ["leaf"]
    columns = ("segment_value", "topic_id", "label_ja", "topic_level", "mentions", "prevalence",
               "nps_mentioning", "nps_mentioning_ci_low", "nps_mentioning_ci_high", "impact", "impact_ci_low",
               "impact_ci_high", "impact_q", "detractor_rate", "odds_ratio", "odds_ratio_ci_low",
               "odds_ratio_ci_high", "adjusted_impact", "adjusted_impact_ci_low", "adjusted_impact_ci_high",
               "robust", "rising", "emerging", "low_confidence", "window_start")  # fmt: skip
    select = ", ".join(f"t.{c}" if c == "label_ja" else f"d.{c}" for c in columns)
    found_rows = store.query(
        f"""
        SELECT {select} FROM drivers d
        JOIN topics t ON t.topic_id = d.topic_id AND t.taxonomy_version = d.taxonomy_version
        WHERE d.window_days = ? AND d.window_end = ? AND d.segment_name = ? AND d.topic_level = ANY(?)
          AND d.impact < 0
        ORDER BY d.segment_value, d.impact, d.topic_id
        """,
        [window, end, segment_name, levels],
    )
    examples: dict[tuple[str, str], list[str]] = {}
    for value, topic_id, comment in store.query(
        "SELECT segment_value, topic_id, comment_masked FROM driver_examples "
        "WHERE window_days = ? AND window_end = ? AND segment_name = ? ORDER BY example_rank",
        [window, end, segment_name],
    ):
        examples.setdefault((value, topic_id), []).append(comment)
    result: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for found_row in found_rows:
        row = dict(zip(columns, found_row, strict=True))
        if counts.get(row["segment_value"], 0) >= limit:
            continue
        counts[row["segment_value"]] = counts.get(row["segment_value"], 0) + 1
        row.update(window_end=end, window_days=window, segment_name=segment_name,
                   examples=examples.get((row["segment_value"], row["topic_id"]), []))  # fmt: skip
        result.append(row)
    return result


def format_drivers(rows: list[dict[str, Any]], confidence: float = 0.95, examples: int = 3) -> str:
    """Driver rows as a table per segment value, each followed by its example comments."""
    level = f"{confidence:.0%}"
    blocks = []
    for value in dict.fromkeys(r["segment_value"] for r in rows):
        group = [r for r in rows if r["segment_value"] == value]
        table = format_table(
            ["#", "topic", "n", "share", "NPS", f"{level} CI", "impact", f"{level} CI", "adjusted", "OR",
             "flags"],
            [[i, f"{r['label_ja']} ({r['topic_id']})", r["mentions"], f"{100 * r['prevalence']:.0f}%",
              r["nps_mentioning"], f"[{r['nps_mentioning_ci_low']:+.1f}, {r['nps_mentioning_ci_high']:+.1f}]",
              r["impact"], f"[{r['impact_ci_low']:+.1f}, {r['impact_ci_high']:+.1f}]",
              "-" if r["adjusted_impact"] is None else f"{r['adjusted_impact']:+.1f}",
              f"{r['odds_ratio']:.2f}", _flags(r)] for i, r in enumerate(group, start=1)],
            [True, False, True, True, True, False, True, False, True, True, False],
        )  # fmt: skip
        lines = [f"[{group[0]['segment_name']} = {value}]"] if group[0]["segment_name"] != "all" else []
        lines.append(table)
        for i, r in enumerate(group, start=1):
            for comment in r["examples"][:examples]:
                lines.append(f"  {i}. 「{one_line(comment, 80)}」")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _flags(row: dict[str, Any]) -> str:
    names = [name for name in ("robust", "rising", "emerging") if row[name]]
    if row["low_confidence"]:
        names.append("low-n")
    return ",".join(names)


def one_line(text: str, width: int) -> str:
    """One line of at most ``width`` characters: a comment's line breaks would break the table."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def top_detractor_terms(store: Store, window: int, end: date, limit: int = 10) -> list[dict[str, Any]]:
    """The detractor_terms rows of one window for all responses, best first."""
    columns = ("term", "term_kind", "detractor_responses", "promoter_responses", "z", "covered_by_topic_id")
    rows = store.query(
        f"SELECT {', '.join(columns)} FROM detractor_terms WHERE window_days = ? AND window_end = ? "
        "AND segment_name = 'all' ORDER BY rank LIMIT ?",
        [window, end, limit],
    )
    return [dict(zip(columns, row, strict=True)) for row in rows]

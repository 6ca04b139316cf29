"""Readable terminal output: run summaries and NPS tables.

Japanese characters take two terminal columns, so padding counts display width, not len().
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import date
from typing import Any, Literal

from pipeline.job import BLANK_SEGMENT, RunSummary
from pipeline.nps import nps_estimate, z_value
from pipeline.stats import topic_impact
from pipeline.store import DuckDBStore
from pipeline.terms import TermScore, weighted_log_odds

Period = Literal["day", "week", "month", "all"]


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
    store: DuckDBStore,
    period: Period = "month",
    segment: str | None = None,
    start: date | None = None,
    end: date | None = None,
    confidence: float = 0.95,
) -> list[dict[str, Any]]:
    """NPS per period (and segment value) with its interval, computed from counts, never averaged."""
    label = "%Y-%m" if period == "month" else "%Y-%m-%d"
    bucket = "'all'" if period == "all" else f"strftime(date_trunc('{period}', r.response_date), '{label}')"
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
               count(*) FILTER (WHERE r.nps_category = 'promoter'),
               count(*) FILTER (WHERE r.nps_category = 'passive'),
               count(*) FILTER (WHERE r.nps_category = 'detractor')
        FROM responses r {join} {where_sql}
        GROUP BY ALL ORDER BY ALL
        """,
        params,
    )
    result = []
    for period_start, segment_value, promoters, passives, detractors in rows:
        est = nps_estimate(promoters, passives, detractors, confidence)
        result.append({"period": period_start, "segment_value": segment_value, "estimate": est})
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
    store: DuckDBStore,
    segments: Sequence[str],
    model_version: str,
    confidence: float = 0.95,
) -> str:
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
    seconds = sum(summary.seconds_by_stage.values())
    lines.append(f"  took {seconds:.1f} s")
    if summary.partitions:
        start, end = summary.partitions[0], summary.partitions[-1]
        level = f"{confidence:.0%}"
        lines += ["", f"NPS over the run's dates ({level} interval, adjusted Wald):"]
        lines.append(
            format_nps_rows(nps_by_period(store, "all", None, start, end, confidence), None, confidence)
        )
        lines += ["", "NPS by month:"]
        lines.append(
            format_nps_rows(nps_by_period(store, "month", None, start, end, confidence), None, confidence)
        )
        for segment in segments:
            lines += ["", f"NPS by {segment}:"]
            rows = nps_by_period(store, "all", segment, start, end, confidence)
            lines.append(format_nps_rows(rows, segment, confidence))
        drivers = topic_impacts(store, start, end, confidence)
        if drivers:
            lines += [
                "",
                "Topics that pull NPS down most (impact = NPS − NPS without the topic's responses):",
            ]
            lines.append(format_table(
                ["topic", "responses", "detractors", "NPS", f"{level} CI", "impact", f"{level} CI"],
                [[f"{d['label']} ({d['topic_id']})", d["n"], f"{100 * d['detractor_rate']:.0f}%", d["nps"],
                  f"[{d['ci_low']:+.1f}, {d['ci_high']:+.1f}]", f"{d['impact']:+.1f}",
                  f"[{d['impact_low']:+.1f}, {d['impact_high']:+.1f}]"] for d in drivers],
                [False, True, True, True, False, True, False],
            ))  # fmt: skip
        top = detractor_terms(store, start, end)
        if top:
            lines += [
                "",
                "Words over-represented in detractor comments (weighted log-odds z > 1.96; a screening",
            ]
            lines += ["list: two-sided 5% per word, not corrected for the many words tested):"]
            lines.append(format_table(
                ["term", "detractors", "promoters", "z"],
                [[t.term, t.detractor_responses, t.promoter_responses, f"{t.z:.1f}"] for t in top],
                [False, True, True, True],
            ))  # fmt: skip
    lines += ["", f"Result tables: {summary.db_path.resolve()}"]
    return "\n".join(lines)


def detractor_terms(store: DuckDBStore, start: date, end: date, limit: int = 10) -> list[TermScore]:
    """Lemmas used by detractors more than by promoters: z > 1.96 (two-sided 5% per word, detractor side).

    No correction for testing hundreds of words: read it as a screening list, not as findings."""
    rows = store.query(
        "SELECT lemma, nps_category, count(*) FROM terms WHERE response_date BETWEEN ? AND ? GROUP BY ALL",
        [start, end],
    )
    by_category: dict[str, dict[str, int]] = {"promoter": {}, "passive": {}, "detractor": {}}
    background: dict[str, int] = {}
    for lemma, category, count in rows:
        by_category[category][lemma] = count
        background[lemma] = background.get(lemma, 0) + count
    scores = weighted_log_odds(by_category["detractor"], by_category["promoter"], background)
    return [s for s in scores if s.z > 1.96][:limit]


def topic_impacts(
    store: DuckDBStore, start: date, end: date, confidence: float = 0.95, limit: int = 5
) -> list[dict[str, Any]]:
    """Leaf topics ranked by remove-the-topic impact: NPS(all) − NPS(responses not mentioning it)."""
    totals = store.query(
        "SELECT count(*) FILTER (WHERE nps_category = 'promoter'), "
        "count(*) FILTER (WHERE nps_category = 'passive'), "
        "count(*) FILTER (WHERE nps_category = 'detractor') "
        "FROM responses WHERE response_date BETWEEN ? AND ?",
        [start, end],
    )[0]
    if sum(totals) == 0:
        return []
    rows = store.query(
        """
        SELECT rt.topic_id, any_value(t.label_ja),
               count(*) FILTER (WHERE rt.nps_category = 'promoter'),
               count(*) FILTER (WHERE rt.nps_category = 'passive'),
               count(*) FILTER (WHERE rt.nps_category = 'detractor')
        FROM response_topics rt
        JOIN topics t ON t.topic_id = rt.topic_id AND t.taxonomy_version = rt.taxonomy_version
        WHERE rt.response_date BETWEEN ? AND ? GROUP BY rt.topic_id
        """,
        [start, end],
    )
    drivers = []
    for topic_id, label, promoters, passives, detractors in rows:
        mentioning = nps_estimate(promoters, passives, detractors, confidence)
        rest_counts = (totals[0] - promoters, totals[1] - passives, totals[2] - detractors)
        if mentioning.nps is None or sum(rest_counts) == 0:
            continue
        impact = topic_impact((promoters, passives, detractors), rest_counts, z_value(confidence))
        drivers.append(
            {
                "topic_id": topic_id,
                "label": label,
                "n": mentioning.n,
                "detractor_rate": detractors / mentioning.n,
                "nps": mentioning.nps,
                "ci_low": mentioning.ci_low,
                "ci_high": mentioning.ci_high,
                "impact": impact.estimate,
                "impact_low": impact.low,
                "impact_high": impact.high,
            }
        )
    pulling_down = [d for d in drivers if d["impact"] < 0]
    return sorted(pulling_down, key=lambda d: (d["impact"], d["topic_id"]))[:limit]
